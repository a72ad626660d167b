"""The OpenID Provider's hosted pages through HTTP against the real api (AuthStack, Redis and
FerretDB): login with the client's name, errors that stay on the page, the browser session's
cookie and the way on to /oauth2/authorize/continue, the MFA step, cancel, consent, logout,
the theme, and no secret on any page. Redis database 40."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pyotp
import pytest
from auth_http import EMAIL, PASSWORD, bearer, sign_up_and_log_in
from hosted_http import (
    FIRST_PARTY,
    ISSUER,
    ORIGIN,
    REDIRECT_URI,
    THIRD_PARTY,
    add_clients,
    csrf_of,
    post_page,
    query_of,
    waiting_logout,
    waiting_request,
)
from stackyard.resources.stack import HostedPagesSettings
from stackyard_api.hosted.theme import contrast_ratio, readable_on, text_on, theme_css
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 40
MAX_FAILURES = 3
AUTH_SETTINGS: dict[str, Any] = {
    "requireEmailVerification": False,
    "cookies": {"secure": False},
    "lockout": {"maxFailures": MAX_FAILURES},
    "hostedPages": {"appName": "Acme", "primaryColor": "#0b5cad"},
}
BROWSER_COOKIE = "sy_op"


@pytest.fixture
def clients(auth: AuthStack) -> AuthStack:
    add_clients(auth, {"shop": FIRST_PARTY, "buddy": THIRD_PARTY})
    return auth


def login_url(ar: str) -> str:
    return f"/oauth2/ui/login?ar={ar}"


def set_cookies(answer: httpx.Response) -> dict[str, str]:
    """name -> the whole Set-Cookie header of each cookie the answer sets."""
    return {h.split("=", 1)[0]: h for h in answer.headers.get_list("set-cookie")}


def sign_in(http: httpx.Client, ar: str, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
    return post_page(http, login_url(ar), {"ar": ar, "email": email, "password": password})


def test_login_page_names_the_client_and_prefills_the_login_hint(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients, login_hint="ana@example.com")
    page = http.get(login_url(ar))
    assert page.status_code == 200, page.text
    html = page.text
    assert "<title>Sign in to Acme Shop · Acme</title>" in html
    assert "<h1>Sign in to Acme Shop</h1>" in html and html.count("<h1") == 1
    assert '<html lang="en">' in html
    assert 'src="https://cdn.example.com/shop.png"' in html
    assert re.search(r'id="email"[^>]*autocomplete="username"[^>]*value="ana@example.com"', html, re.S)
    assert 'autocomplete="current-password"' in html
    assert '<label for="email">' in html and '<label for="password">' in html
    csp = page.headers["content-security-policy"]
    assert "form-action 'self' https://shop.example.com" in csp
    assert "img-src 'self' https://cdn.example.com" in csp
    assert "Cancel and go back to the application" in html


def test_wrong_password_stays_on_the_page_with_an_error_and_no_session(clients: AuthStack, http: httpx.Client):
    sign_up_and_log_in(http)
    ar = waiting_request(clients)
    wrong = sign_in(http, ar, password="not the password")
    assert wrong.status_code == 401
    assert BROWSER_COOKIE not in set_cookies(wrong)
    assert 'role="alert"' in wrong.text and "The email address or the password is not right." in wrong.text
    assert 'aria-invalid="true"' in wrong.text and 'value="ana@example.com"' in wrong.text
    assert "not the password" not in wrong.text
    nobody = sign_in(http, ar, email="nobody@example.com", password="not the password")
    assert nobody.status_code == 401 and "The email address or the password is not right." in nobody.text


def test_right_password_sets_the_browser_cookie_and_continues(clients: AuthStack, http: httpx.Client, db: Any):
    user = sign_up_and_log_in(http)
    ar = waiting_request(clients)
    answer = sign_in(http, ar)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/oauth2/authorize/continue?ar={ar}"
    cookie = set_cookies(answer)[BROWSER_COOKIE]
    assert "HttpOnly" in cookie and "Path=/" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    value = http.cookies.get(BROWSER_COOKIE)
    assert value and value.startswith("rt_")
    # The browser session is the provider's own (kind op): it is not a first-party refresh token.
    refused = httpx.post(f"{clients.url}/v1/auth/token/refresh", json={"refreshToken": value})
    assert refused.status_code == 401
    # One session for the app's own login, one for the browser: the hosted login made no other.
    assert len(http.get("/v1/auth/sessions", headers=bearer(user)).json()["items"]) == 2
    assert db["auth_events"].count_documents({"type": "login.succeeded"}) >= 1


def test_lockout_says_when_to_try_again(clients: AuthStack, http: httpx.Client):
    sign_up_and_log_in(http)
    ar = waiting_request(clients)
    for _ in range(MAX_FAILURES):
        assert sign_in(http, ar, password="wrong wrong wrong").status_code == 401
    locked = sign_in(http, ar)
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert re.search(r"try again in \d+ (second|minute)s?", locked.text)
    assert BROWSER_COOKIE not in set_cookies(locked)


def test_an_unverified_address_is_asked_to_confirm_first(clients: AuthStack, http: httpx.Client):
    clients.configure(AUTH_SETTINGS | {"requireEmailVerification": True})
    add_clients(clients, {"shop": FIRST_PARTY})
    answer = http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD})
    assert answer.status_code == 202, answer.text
    ar = waiting_request(clients)
    refused = sign_in(http, ar)
    assert refused.status_code == 403
    assert "Confirm your email address first" in refused.text and BROWSER_COOKIE not in set_cookies(refused)
    assert "Send the confirmation link again" in refused.text
    for address in (EMAIL, "nobody@example.com"):
        resent = post_page(
            http, login_url(ar), {"ar": ar, "email": address}, url=f"/oauth2/ui/verify-email/resend?ar={ar}"
        )
        assert resent.status_code == 200, resent.text
        assert f"If {address} has an account waiting for confirmation, a new link is on its way" in resent.text
        assert 'role="status"' in resent.text


def away_from_step_edges(margin: float = 6.0) -> None:
    left = 30 - time.time() % 30
    if left < margin:
        time.sleep(left + 0.05)


def turn_on_mfa(http: httpx.Client) -> tuple[str, list[str]]:
    session = sign_up_and_log_in(http)
    secret = http.post("/v1/auth/mfa/totp/enroll", headers=bearer(session)).json()["secret"]
    away_from_step_edges()
    previous = pyotp.TOTP(secret).at(time.time() - 30)
    confirmed = http.post("/v1/auth/mfa/totp/confirm", headers=bearer(session), json={"code": previous})
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recoveryCodes"]


def test_mfa_step_asks_a_code_then_starts_the_session(clients: AuthStack, http: httpx.Client):
    secret, recovery_codes = turn_on_mfa(http)
    ar = waiting_request(clients)
    first = sign_in(http, ar)
    assert first.status_code == 303 and first.headers["location"] == f"/oauth2/ui/mfa?ar={ar}"
    assert BROWSER_COOKIE not in set_cookies(first)
    challenge_cookie = set_cookies(first)["sy_op_mfa"]
    assert "HttpOnly" in challenge_cookie and "SameSite=lax" in challenge_cookie and "Max-Age=300" in challenge_cookie
    page = http.get(f"/oauth2/ui/mfa?ar={ar}")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
    assert "<h1>Two-step verification</h1>" in page.text
    wrong = post_page(http, f"/oauth2/ui/mfa?ar={ar}", {"ar": ar, "code": "000000"})
    assert wrong.status_code == 401 and 'role="alert"' in wrong.text and BROWSER_COOKIE not in set_cookies(wrong)
    right = post_page(http, f"/oauth2/ui/mfa?ar={ar}", {"ar": ar, "code": pyotp.TOTP(secret).now()})
    assert right.status_code == 303, right.text
    assert right.headers["location"] == f"/oauth2/authorize/continue?ar={ar}"
    assert BROWSER_COOKIE in set_cookies(right)

    http.cookies.clear()
    again = waiting_request(clients)
    assert sign_in(http, again).headers["location"] == f"/oauth2/ui/mfa?ar={again}"
    recovered = post_page(http, f"/oauth2/ui/mfa?ar={again}", {"ar": again, "code": recovery_codes[0]})
    assert recovered.status_code == 303 and BROWSER_COOKIE in set_cookies(recovered)


def test_the_mfa_page_without_a_challenge_goes_back_to_login(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients)
    answer = http.get(f"/oauth2/ui/mfa?ar={ar}")
    assert answer.status_code == 303 and answer.headers["location"] == login_url(ar)


@pytest.mark.parametrize("ar", ["ar_unknown0000000000000000", "", "not-an-id", "ar_" + "x" * 80])
def test_an_unknown_request_shows_the_error_page_saying_to_start_again(clients: AuthStack, http: httpx.Client, ar: str):
    for path in ("login", "mfa", "consent"):
        answer = http.get(f"/oauth2/ui/{path}?ar={ar}")
        assert answer.status_code == 400, (path, answer.text)
        assert "location" not in answer.headers
        assert "Go back to the application and sign in again" in answer.text
        assert answer.headers["content-type"].startswith("text/html")


def test_cancel_sends_access_denied_back_to_the_client(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients, state="keep-me")
    page = http.get(login_url(ar))
    answer = http.post(f"/oauth2/ui/cancel?ar={ar}", data={"csrf_token": csrf_of(page), "ar": ar}, headers=ORIGIN)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    assert query_of(location) == {
        "error": "access_denied",
        "error_description": "the user cancelled the sign-in",
        "state": "keep-me",
        "iss": ISSUER,
    }
    assert http.get(login_url(ar)).status_code == 400


def signed_in(clients: AuthStack, http: httpx.Client) -> None:
    sign_up_and_log_in(http)
    ar = waiting_request(clients)
    assert sign_in(http, ar).status_code == 303


def test_consent_page_names_the_client_its_links_and_the_scopes(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients, "buddy", scopes=["openid", "email", "offline_access", "orders:read"])
    assert http.get(f"/oauth2/ui/consent?ar={ar}").headers["location"] == login_url(ar)
    signed_in(clients, http)
    page = http.get(f"/oauth2/ui/consent?ar={ar}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Budget Buddy wants to use your Acme account</h1>" in html and html.count("<h1") == 1
    assert "Signed in as <strong>ana@example.com</strong>" in html
    assert "See your email address and whether it is verified" in html
    assert "Stay connected when you are not using it" in html
    assert "“orders:read”" in html
    for link in ("https://buddy.example.org/privacy", "https://buddy.example.org/terms", "https://buddy.example.org"):
        assert f'href="{link}"' in html
    assert "form-action 'self' https://buddy.example.org" in page.headers["content-security-policy"]


def test_consent_allow_grants_the_scopes_and_continues(clients: AuthStack, http: httpx.Client, db: Any):
    signed_in(clients, http)
    ar = waiting_request(clients, "buddy", scopes=["openid", "email"])
    answer = post_page(http, f"/oauth2/ui/consent?ar={ar}", {"ar": ar, "decision": "allow"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/oauth2/authorize/continue?ar={ar}"
    granted = db["oidc_consents"].find_one({"clientId": "buddy"})
    assert granted is not None and sorted(granted["scopes"]) == ["email", "openid"]


def test_consent_deny_sends_access_denied_and_grants_nothing(clients: AuthStack, http: httpx.Client, db: Any):
    signed_in(clients, http)
    ar = waiting_request(clients, "buddy", state="s-9")
    answer = post_page(http, f"/oauth2/ui/consent?ar={ar}", {"ar": ar, "decision": "deny"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("https://buddy.example.org/cb?")
    query = query_of(answer.headers["location"])
    assert query["error"] == "access_denied" and query["state"] == "s-9" and query["iss"] == ISSUER
    assert db["oidc_consents"].count_documents({}) == 0


def test_logout_asks_then_ends_the_browser_session(clients: AuthStack, http: httpx.Client):
    signed_in(clients, http)
    cookie = http.cookies.get(BROWSER_COOKIE)
    token = waiting_logout(clients, post_logout_redirect_uri="https://shop.example.com/bye", state="l-1")
    page = http.get(f"/oauth2/ui/logout?lr={token}")
    assert page.status_code == 200, page.text
    assert "<h1>Sign out of Acme Shop?</h1>" in page.text and "ana@example.com" in page.text
    assert "form-action 'self' https://shop.example.com" in page.headers["content-security-policy"]
    answer = http.post("/oauth2/ui/logout", data={"csrf_token": csrf_of(page), "lr": token}, headers=ORIGIN)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "https://shop.example.com/bye?state=l-1"
    assert 'sy_op=""' in set_cookies(answer)[BROWSER_COOKIE] or "Max-Age=0" in set_cookies(answer)[BROWSER_COOKIE]
    # The session is over: the consent page now asks to sign in.
    ar = waiting_request(clients, "buddy")
    with httpx.Client(base_url=clients.url, cookies={BROWSER_COOKIE: cookie or ""}) as old_browser:
        assert old_browser.get(f"/oauth2/ui/consent?ar={ar}").status_code == 303
    # The confirmation is used once.
    assert http.get(f"/oauth2/ui/logout?lr={token}").status_code == 400


def test_logout_without_a_redirect_ends_on_the_logged_out_page(clients: AuthStack, http: httpx.Client):
    signed_in(clients, http)
    token = waiting_logout(clients, client_id=None)
    page = http.get(f"/oauth2/ui/logout?lr={token}")
    assert "<h1>Sign out of Acme?</h1>" in page.text
    answer = http.post("/oauth2/ui/logout", data={"csrf_token": csrf_of(page), "lr": token}, headers=ORIGIN)
    assert answer.status_code == 303 and answer.headers["location"].endswith("/oauth2/ui/logged-out")
    done = http.get("/oauth2/ui/logged-out")
    assert done.status_code == 200 and "You are signed out of Acme" in done.text


def test_theme_css_reflects_the_stacks_colours(clients: AuthStack, http: httpx.Client):
    clients.configure(
        AUTH_SETTINGS
        | {
            "hostedPages": {
                "appName": "Acme",
                "primaryColor": "#ffdd00",
                "backgroundColor": "#102030",
                "colorScheme": "dark",
            }
        }
    )
    css = http.get("/oauth2/ui/theme.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "--sy-primary: #ffdd00;" in css.text
    assert "--sy-on-primary: #111827;" in css.text
    assert "--sy-bg: #102030;" in css.text and "color-scheme: dark;" in css.text
    assert "prefers-color-scheme" not in css.text
    assert http.get("/oauth2/ui/theme.css", headers={"If-None-Match": css.headers["etag"]}).status_code == 304

    clients.configure(AUTH_SETTINGS | {"hostedPages": {"primaryColor": "#0b5cad", "colorScheme": "auto"}})
    auto = http.get("/oauth2/ui/theme.css").text
    assert "--sy-primary: #0b5cad;" in auto and "--sy-on-primary: #ffffff;" in auto
    assert "@media (prefers-color-scheme: dark)" in auto and "color-scheme: light dark;" in auto
    assert auto != css.text


def test_the_logo_and_app_name_come_from_the_stack(clients: AuthStack, http: httpx.Client):
    clients.configure(AUTH_SETTINGS | {"hostedPages": {"logoUrl": "https://img.acme.dev/logo.svg"}})
    add_clients(clients, {"shop": FIRST_PARTY})
    page = http.get(login_url(waiting_request(clients)))
    assert '<img class="logo" src="https://img.acme.dev/logo.svg" alt="demo">' in page.text
    assert "· demo</title>" in page.text
    assert "https://img.acme.dev" in page.headers["content-security-policy"]


def test_no_secret_on_any_page(clients: AuthStack, http: httpx.Client):
    secret, _ = turn_on_mfa(http)
    ar = waiting_request(clients, "buddy")
    pages = [http.get(login_url(ar))]
    pages.append(sign_in(http, ar, password="wrong password!"))
    challenge = sign_in(http, ar)
    pages.append(http.get(f"/oauth2/ui/mfa?ar={ar}"))
    mfa_token = http.cookies.get("sy_op_mfa")
    pages.append(post_page(http, f"/oauth2/ui/mfa?ar={ar}", {"ar": ar, "code": pyotp.TOTP(secret).now()}))
    browser = http.cookies.get(BROWSER_COOKIE)
    pages.append(http.get(f"/oauth2/ui/consent?ar={ar}"))
    pages.append(http.get(f"/oauth2/ui/logout?lr={waiting_logout(clients)}"))
    pages.append(http.get("/oauth2/ui/login?ar=ar_gone"))
    assert challenge.status_code == 303 and mfa_token and browser
    secrets_ = [PASSWORD, secret, mfa_token, browser, browser.split(".")[-1]] + [
        v for k, v in clients.credentials.items() if k.startswith("stack.auth.") and len(v) > 16
    ]
    for answer in pages:
        for value in secrets_:
            assert value not in answer.text, (answer.url, "a secret is on the page")


# -- the theme's arithmetic --------------------------------------------------------------


def test_contrast_ratio_follows_wcag():
    assert contrast_ratio("#ffffff", "#000000") == pytest.approx(21)
    assert contrast_ratio("#777777", "#777777") == pytest.approx(1)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize(
    "primary", ["#4f46e5", "#ffdd00", "#00ff00", "#0b5cad", "#e11d48", "#777777", "#ffffff", "#000000"]
)
def test_text_and_links_on_any_primary_colour_are_readable(primary: str):
    assert contrast_ratio(text_on(primary), primary) >= 3.0
    for surface in ("#ffffff", "#1e293b"):
        assert contrast_ratio(readable_on(primary, surface), surface) >= 4.5


def test_the_theme_is_the_same_for_the_same_settings():
    settings = HostedPagesSettings(primary_color="#123456", color_scheme="light")
    assert theme_css(settings) == theme_css(HostedPagesSettings(primary_color="#123456", color_scheme="light"))
    assert "@media" not in theme_css(settings)


# -- the whole way, with the authorize endpoint ---------------------------------------------

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def authorize(http: httpx.Client, client_id: str, redirect_uri: str, **extra: str) -> httpx.Response:
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid email",
        "state": "st-e2e",
        "nonce": "n-e2e",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    } | extra
    return http.get("/oauth2/authorize", params=params)


def local(location: str) -> str:
    """A URL of the issuer as a path on the api under test."""
    assert location.startswith(ISSUER) or location.startswith("/"), location
    return location.removeprefix(ISSUER)


def test_a_login_through_the_hosted_pages_gives_the_client_a_code(clients: AuthStack, http: httpx.Client):
    sign_up_and_log_in(http)
    started = authorize(http, "shop", REDIRECT_URI)
    assert started.status_code == 303, started.text
    page = local(started.headers["location"])
    assert page.startswith("/oauth2/ui/login?ar=ar_")
    ar = query_of(page)["ar"]
    signed = post_page(http, page, {"ar": ar, "email": EMAIL, "password": PASSWORD})
    assert signed.status_code == 303, signed.text
    back = http.get(local(signed.headers["location"]))
    assert back.status_code == 303, back.text
    location = back.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = query_of(location)
    assert query["state"] == "st-e2e" and query["iss"] == ISSUER and query["code"]
    token = httpx.post(
        f"{clients.url}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": "shop",
            "code_verifier": VERIFIER,
        },
    )
    assert token.status_code == 200, token.text
    assert token.json()["id_token"]
    # Single sign-on: the next request of the browser needs no login page.
    again = authorize(http, "shop", REDIRECT_URI, state="st-2")
    assert again.status_code == 303 and again.headers["location"].startswith(REDIRECT_URI + "?code=")


def test_a_third_party_client_goes_through_consent_once(clients: AuthStack, http: httpx.Client):
    sign_up_and_log_in(http)
    buddy = THIRD_PARTY["redirectUris"][0]
    page = local(authorize(http, "buddy", buddy).headers["location"])
    ar = query_of(page)["ar"]
    signed = post_page(http, page, {"ar": ar, "email": EMAIL, "password": PASSWORD})
    asked = http.get(local(signed.headers["location"]))
    assert asked.status_code == 303
    consent = local(asked.headers["location"])
    assert consent == f"/oauth2/ui/consent?ar={ar}"
    allowed = post_page(http, consent, {"ar": ar, "decision": "allow"})
    done = http.get(local(allowed.headers["location"]))
    assert done.status_code == 303 and done.headers["location"].startswith(buddy + "?code=")
    again = authorize(http, "buddy", buddy, state="st-3")
    assert again.headers["location"].startswith(buddy + "?code=")


def test_logout_from_the_client_without_a_hint_asks_first(clients: AuthStack, http: httpx.Client):
    signed_in(clients, http)
    asked = http.get(
        "/oauth2/logout",
        params={"client_id": "shop", "post_logout_redirect_uri": "https://shop.example.com/bye", "state": "z"},
    )
    assert asked.status_code == 303, asked.text
    page = local(asked.headers["location"])
    assert page.startswith("/oauth2/ui/logout?lr=")
    confirmed = post_page(http, page, {"lr": query_of(page)["lr"]})
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "https://shop.example.com/bye?state=z"
    assert local(authorize(http, "shop", REDIRECT_URI).headers["location"]).startswith("/oauth2/ui/login")


def test_a_new_login_ends_the_browsers_previous_session(clients: AuthStack, http: httpx.Client):
    user = sign_up_and_log_in(http)
    signed_in_first = sign_in(http, waiting_request(clients))
    assert signed_in_first.status_code == 303
    first = http.cookies.get(BROWSER_COOKIE)
    again = sign_in(http, waiting_request(clients, prompt=["login"]))
    assert again.status_code == 303
    second = http.cookies.get(BROWSER_COOKIE)
    assert first and second and first != second
    # The app's own session and the new browser session are left; the first browser session is gone.
    assert len(http.get("/v1/auth/sessions", headers=bearer(user)).json()["items"]) == 2
    ar = waiting_request(clients, "buddy")
    with httpx.Client(base_url=clients.url, cookies={BROWSER_COOKIE: first}) as old_browser:
        assert old_browser.get(f"/oauth2/ui/consent?ar={ar}").status_code == 303


def test_cancel_with_form_post_answers_a_page_that_posts_to_the_client(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients, response_mode="form_post", state="fp-1")
    page = http.get(login_url(ar))
    answer = http.post(f"/oauth2/ui/cancel?ar={ar}", data={"csrf_token": csrf_of(page), "ar": ar}, headers=ORIGIN)
    assert answer.status_code == 200, answer.text
    html = answer.text
    assert f'<form method="post" action="{REDIRECT_URI}" data-auto-submit>' in html
    assert '<input type="hidden" name="error" value="access_denied">' in html
    assert '<input type="hidden" name="state" value="fp-1">' in html
    assert '<script src="/oauth2/ui/static/form_post.js" defer></script>' in html
    assert "form-action 'self' https://shop.example.com" in answer.headers["content-security-policy"]
    assert http.get("/oauth2/ui/static/form_post.js").headers["content-type"].startswith("text/javascript")
