"""Sign in with a passkey on the OpenID Provider's hosted pages, against the real api app, real
Redis and FerretDB, with the harness's software authenticator in the part of the browser
(passkey.js's calls made over HTTP): options and verify need the page's CSRF token; a
verified passkey lands on /oauth2/authorize/continue with the browser session's cookie and
goes on to a code (amr webauthn); the challenge works once; a passkey without user
verification on an account with TOTP leads to the MFA step; the hosted pages' origin must be
one of the relying party's, and where it is not the login page leaves passkeys out. (Real
browsers with a virtual authenticator: tests/oidc/test_rp_passkey.py.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pyotp
import pytest
from auth_http import bearer, sign_up_and_log_in
from hosted_methods_support import (
    BROWSER_COOKIE,
    Authorization,
    authorize,
    code_at_client,
    configure,
    csrf_of,
    login_page,
    origin,
    token_claims,
)
from stackyard.auth.passkeys import RelyingParty
from stackyard_api.hosted.passkey import REFUSED, serves_issuer
from stackyard_harness.auth_stack import APP_URL, AuthStack
from stackyard_harness.webauthn_authenticator import SoftwareAuthenticator

REDIS_DATABASE = 46
EMAIL = "pia@example.com"


def passkey_settings(auth: AuthStack, origins: list[str] | None = None) -> dict[str, Any]:
    return {"requireEmailVerification": False, "passkeys": {"rpId": "127.0.0.1", "origins": origins or [auth.url]}}


@pytest.fixture
def auth(running: AuthStack) -> AuthStack:
    running.reset()
    configure(running, passkey_settings(running))
    return running


class Browser:
    """The login page and passkey.js: the page's CSRF token in X-CSRF-Token, the issuer's Origin."""

    def __init__(self, auth: AuthStack, http: httpx.Client, authorization: Authorization) -> None:
        self.auth, self.http, self.authorization = auth, http, authorization
        self.csrf = csrf_of(login_page(http, authorization))

    def post(self, path: str, body: dict[str, Any], *, csrf: bool = True) -> httpx.Response:
        headers = origin(self.auth) | ({"X-CSRF-Token": self.csrf} if csrf else {})
        return self.http.post(path, json=body, headers=headers)

    def options(self, **body: Any) -> dict[str, Any]:
        answer = self.post("/oauth2/ui/passkey/options", {"ar": self.authorization.ar} | body)
        assert answer.status_code == 200, answer.text
        options: dict[str, Any] = answer.json()
        return options

    def verify(self, options: dict[str, Any], credential: dict[str, Any]) -> httpx.Response:
        body = {"ar": self.authorization.ar, "challengeToken": options["challengeToken"], "credential": credential}
        return self.post("/oauth2/ui/passkey/verify", body)


def with_passkey(auth: AuthStack, http: httpx.Client, device: SoftwareAuthenticator) -> dict[str, Any]:
    """An account with `device`'s passkey, registered through the API; its session."""
    session = sign_up_and_log_in(http, EMAIL)
    options = http.post("/v1/auth/passkeys/register/options", headers=bearer(session))
    assert options.status_code == 200, options.text
    body = options.json()
    registered = http.post(
        "/v1/auth/passkeys/register/verify",
        headers=bearer(session),
        json={"challengeToken": body["challengeToken"], "credential": device.register(body["publicKey"])},
    )
    assert registered.status_code == 201, registered.text
    return session


def test_the_login_page_offers_passkeys_through_its_script(auth: AuthStack, http: httpx.Client) -> None:
    page = login_page(http, authorize(http)).text
    assert '<section id="passkey-signin"' in page and "hidden" in page.split('id="passkey-signin"')[1].split(">")[0]
    assert '<script src="/oauth2/ui/static/passkey.js" defer></script>' in page
    script = http.get("/oauth2/ui/static/passkey.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/oauth2/ui/passkey/options" in page and "navigator.credentials" in script.text
    configure(auth, passkey_settings(auth), hosted_pages={"passkeys": False})
    assert "passkey-signin" not in login_page(http, authorize(http)).text


def test_a_passkey_signs_in_and_the_authorization_goes_on(auth: AuthStack, http: httpx.Client) -> None:
    device = SoftwareAuthenticator(origin=auth.url)
    with_passkey(auth, http, device)
    http.cookies.clear()
    authorization = authorize(http)
    browser = Browser(auth, http, authorization)
    options = browser.options()
    assert options["publicKey"]["rpId"] == "127.0.0.1" and options["publicKey"]["allowCredentials"] == []
    answer = browser.verify(options, device.authenticate(options["publicKey"]))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"redirect": authorization.continue_url}
    assert http.cookies.get(BROWSER_COOKIE)
    claims = token_claims(http, authorization, code_at_client(http, authorization))
    assert claims["email"] == EMAIL and claims["amr"] == ["webauthn"]


def test_options_and_verify_need_the_pages_csrf_token(auth: AuthStack, http: httpx.Client) -> None:
    device = SoftwareAuthenticator(origin=auth.url)
    with_passkey(auth, http, device)
    browser = Browser(auth, http, authorize(http))
    assert browser.post("/oauth2/ui/passkey/options", {"ar": browser.authorization.ar}, csrf=False).status_code == 403
    options = browser.options()
    body = {
        "ar": browser.authorization.ar,
        "challengeToken": options["challengeToken"],
        "credential": device.authenticate(options["publicKey"]),
    }
    refused = browser.post("/oauth2/ui/passkey/verify", body, csrf=False)
    assert refused.status_code == 403 and "sy_op=" not in refused.headers.get("set-cookie", "")
    elsewhere = http.post(
        "/oauth2/ui/passkey/options",
        json={"ar": browser.authorization.ar},
        headers={"Origin": "https://evil.example", "X-CSRF-Token": browser.csrf},
    )
    assert elsewhere.status_code == 403


def test_a_challenge_works_once_and_a_wrong_origin_is_refused(auth: AuthStack, http: httpx.Client) -> None:
    device = SoftwareAuthenticator(origin=auth.url)
    with_passkey(auth, http, device)
    http.cookies.clear()
    authorization = authorize(http)
    browser = Browser(auth, http, authorization)
    options = browser.options()
    assert browser.verify(options, device.authenticate(options["publicKey"])).status_code == 200
    replayed = browser.verify(options, device.authenticate(options["publicKey"]))
    assert replayed.status_code == 400 and replayed.json()["error"]
    fresh = browser.options()
    phished = browser.verify(fresh, device.authenticate(fresh["publicKey"], origin="https://127.0.0.1.evil.example"))
    assert phished.status_code == 401 and phished.json() == {"error": REFUSED}


def test_without_user_verification_an_account_with_totp_is_asked_for_its_code(
    auth: AuthStack, http: httpx.Client
) -> None:
    key = SoftwareAuthenticator(origin=auth.url, user_verifying=False)  # a security key without a PIN
    session = with_passkey(auth, http, key)
    enrolled = http.post("/v1/auth/mfa/totp/enroll", headers=bearer(session))
    secret = enrolled.json()["secret"]
    confirmed = http.post("/v1/auth/mfa/totp/confirm", headers=bearer(session), json={"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200, confirmed.text
    http.cookies.clear()
    authorization = authorize(http)
    browser = Browser(auth, http, authorization)
    options = browser.options(email=EMAIL)
    answer = browser.verify(options, key.authenticate(options["publicKey"]))
    assert answer.status_code == 200 and answer.json() == {"redirect": f"/oauth2/ui/mfa?ar={authorization.ar}"}
    assert not http.cookies.get(BROWSER_COOKIE)


def test_the_hosted_pages_origin_must_be_a_passkey_origin(auth: AuthStack, http: httpx.Client) -> None:
    configure(auth, passkey_settings(auth, origins=[APP_URL]))
    browser = Browser(auth, http, authorize(http))
    answer = browser.post("/oauth2/ui/passkey/options", {"ar": browser.authorization.ar})
    assert answer.status_code == 503 and "not available" in answer.json()["error"]


@pytest.mark.parametrize(
    "passkeys",
    [
        {"rpId": "127.0.0.1", "origins": [APP_URL]},  # the issuer's origin is not one of the origins
        {"rpId": "acme.dev", "origins": ["{issuer}"]},  # the rpId is not the issuer's host
        {},  # the defaults, from appUrl (https://app.acme.dev): neither
    ],
    ids=["origin-not-listed", "rp-id-elsewhere", "app-url-defaults"],
)
def test_the_login_page_leaves_passkeys_out_when_they_cannot_work_there(
    auth: AuthStack, http: httpx.Client, passkeys: dict[str, Any]
) -> None:
    """The button would only say "not available": the same check as the 503 above leaves the
    section and its script out, and the other methods stay."""
    passkeys = {k: [o.format(issuer=auth.url) for o in v] if k == "origins" else v for k, v in passkeys.items()}
    configure(auth, {"requireEmailVerification": False, "appUrl": APP_URL, "passkeys": passkeys})
    browser = Browser(auth, http, authorize(http))
    page = login_page(http, browser.authorization).text
    assert "passkey-signin" not in page and "passkey.js" not in page
    assert 'type="password"' in page
    answer = browser.post("/oauth2/ui/passkey/options", {"ar": browser.authorization.ar})
    assert answer.status_code == 503, answer.text
    configure(auth, {"requireEmailVerification": False, "appUrl": APP_URL} | passkey_settings(auth))
    assert '<section id="passkey-signin"' in login_page(http, authorize(http)).text


@pytest.mark.parametrize(
    ("rp_id", "origins", "serves"),
    [
        ("auth.acme.dev", ["https://auth.acme.dev"], True),
        ("acme.dev", ["https://app.acme.dev", "https://auth.acme.dev"], True),  # a parent domain
        ("acme.dev", ["https://app.acme.dev"], False),
        ("cme.dev", ["https://auth.acme.dev"], False),  # a suffix, not a parent domain
        ("other.acme.dev", ["https://auth.acme.dev"], False),
        ("auth.acme.dev", ["http://auth.acme.dev"], False),  # another scheme is another origin
    ],
)
def test_a_relying_party_serves_the_issuer_from_its_host_or_a_parent_domain(
    rp_id: str, origins: list[str], serves: bool
) -> None:
    ctx: Any = SimpleNamespace(issuer="https://auth.acme.dev/")
    rp = RelyingParty(id=rp_id, name="acme", origins=origins)
    assert serves_issuer(ctx, rp) is serves


def test_an_expired_authorization_request_is_refused(auth: AuthStack, http: httpx.Client) -> None:
    browser = Browser(auth, http, authorize(http))
    answer = browser.post("/oauth2/ui/passkey/options", {"ar": "ar_unknown"})
    assert answer.status_code == 400 and "no longer valid" in answer.json()["error"]
