"""Sign in with an IdentityProvider on the OpenID Provider's hosted pages, against the real api
app, a real upstream OpenID Provider (the node oidc-provider package, driven through its login
and consent pages), real Redis and FerretDB: the login page lists the enabled providers, the
round trip through the provider lands on /oauth2/authorize/continue with the browser session's
cookie and goes on to a code; the state is bound to the browser and used once; refusals at the
provider and logins that cannot be completed come back to the login page with a message; an
account with TOTP is asked for its code."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
import pyotp
import pytest
import redis
from auth_http import PASSWORD, bearer
from hosted_methods_support import (
    SCOPE,
    Authorization,
    authorize,
    code_at_client,
    configure,
    csrf_of,
    login_page,
    origin,
    query_of,
    signed_in,
    token_claims,
)
from stackyard.auth.federation import forget_cached_metadata
from stackyard_harness.auth_stack import AuthStack
from stackyard_harness.oidc_provider import OidcProvider

REDIS_DATABASE = 45
PROVIDER = "corp"
CLIENT_SECRET = "corp-client-secret-0123456789abcdef"
STATE_COOKIE = "sy_op_social"


@pytest.fixture(scope="module")
def provider(running: AuthStack, oidc_provider) -> OidcProvider:  # type: ignore[no-untyped-def]
    started: OidcProvider = oidc_provider(
        [f"{running.url}/oauth2/ui/social/{PROVIDER}/callback", f"{running.url}/v1/auth/oauth/{PROVIDER}/callback"],
        client_id="stackyard-app",
        client_secret=CLIENT_SECRET,
    )
    return started


def with_provider(auth: AuthStack, provider: OidcProvider, settings: dict[str, Any] | None = None, **kw: Any) -> None:
    configure(
        auth,
        {"requireEmailVerification": False} | (settings or {}),
        identity_providers={
            PROVIDER: {
                "type": "oidc",
                "displayName": "Corp SSO",
                "issuer": provider.issuer,
                "clientId": "stackyard-app",
                "clientSecretSecretRef": {"name": "corp-oauth", "key": "secret"},
            }
        },
        extra_credentials={f"identityprovider.{PROVIDER}.clientSecret": CLIENT_SECRET},
        **kw,
    )


@pytest.fixture
def auth(running: AuthStack, provider: OidcProvider) -> AuthStack:
    running.reset()
    forget_cached_metadata()
    with_provider(running, provider)
    return running


@pytest.fixture
def http(http: httpx.Client) -> httpx.Client:
    http.timeout = httpx.Timeout(15)
    return http


def to_provider(http: httpx.Client, authorization: Authorization) -> str:
    """The login page's button: 303 to the provider, the state in this browser's cookie."""
    page = login_page(http, authorization)
    button = f'href="/oauth2/ui/social/{PROVIDER}?ar={authorization.ar}"'
    assert button in page.text and "Continue with Corp SSO" in page.text
    answer = http.get(f"/oauth2/ui/social/{PROVIDER}", params={"ar": authorization.ar})
    assert answer.status_code == 303, answer.text
    assert http.cookies.get(STATE_COOKIE) == query_of(answer.headers["location"])["state"]
    return answer.headers["location"]


def back_from_provider(auth: AuthStack, provider: OidcProvider, http: httpx.Client, login: str, **kw: Any) -> str:
    url = provider.sign_in(to_provider(http, kw.pop("authorization")), login, **kw)
    assert url.startswith(f"{auth.url}/oauth2/ui/social/{PROVIDER}/callback?"), url
    return url


def test_the_login_page_lists_the_enabled_providers_only_when_social_is_on(auth, provider, http) -> None:
    authorization = authorize(http)
    assert "Continue with Corp SSO" in login_page(http, authorization).text
    with_provider(auth, provider, hosted_pages={"social": False})
    authorization = authorize(http)
    assert "/oauth2/ui/social/" not in login_page(http, authorization).text
    assert http.get(f"/oauth2/ui/social/{PROVIDER}", params={"ar": authorization.ar}).status_code == 404


def test_a_login_through_the_provider_lands_on_continue_with_the_cookie(auth, provider, http) -> None:
    provider.set_account("ana", email="ana@example.com", email_verified=True, name="Ana Lima")
    authorization = authorize(http)
    location = to_provider(http, authorization)
    sent = query_of(location)
    assert sent["redirect_uri"] == f"{auth.url}/oauth2/ui/social/{PROVIDER}/callback"
    assert sent["code_challenge_method"] == "S256" and sent["nonce"] and sent["state"]
    answer = http.get(provider.sign_in(location, "ana"))
    signed_in(answer, authorization)
    assert STATE_COOKIE not in http.cookies
    claims = token_claims(http, authorization, code_at_client(http, authorization))
    assert claims["email"] == "ana@example.com" and claims["name"] == "Ana Lima"
    assert claims["amr"] == [f"oauth:{PROVIDER}"]


def test_a_callback_in_another_browser_signs_no_one_in(auth, provider, http) -> None:
    authorization = authorize(http)
    url = back_from_provider(auth, provider, http, "ben", authorization=authorization)
    with httpx.Client(timeout=15) as stranger:
        refused = stranger.get(url)
    assert refused.status_code == 400 and "not started in this browser" in refused.text
    assert "sy_op=" not in refused.headers.get("set-cookie", "")
    signed_in(http.get(url), authorization)  # the state was not spent: its own browser goes on


def test_the_state_works_once(auth, provider, http) -> None:
    authorization = authorize(http)
    url = back_from_provider(auth, provider, http, "cy", authorization=authorization)
    signed_in(http.get(url), authorization)
    http.cookies.set(STATE_COOKIE, query_of(url)["state"])
    again = http.get(url)
    assert again.status_code == 400 and "expired or was already used" in again.text


def test_the_apis_callback_does_not_take_a_hosted_login(auth, provider, http) -> None:
    authorization = authorize(http)
    url = back_from_provider(auth, provider, http, "dee", authorization=authorization)
    api_callback = url.replace(f"/oauth2/ui/social/{PROVIDER}/callback", f"/v1/auth/oauth/{PROVIDER}/callback")
    refused = http.get(api_callback)
    assert refused.status_code == 400 and refused.json()["type"].endswith("/invalid-oauth-state")


def test_a_refusal_at_the_provider_comes_back_to_the_login_page(auth, provider, http) -> None:
    authorization = authorize(http)
    url = back_from_provider(auth, provider, http, "eve", authorization=authorization, abort=True)
    assert query_of(url)["error"] == "access_denied"
    page = http.get(url)
    assert page.status_code == 400 and 'role="alert"' in page.text
    assert "Signing in with Corp SSO did not work" in page.text and f'name="ar" value="{authorization.ar}"' in page.text


def test_an_id_token_that_does_not_check_out_comes_back_to_the_login_page(auth, provider, http) -> None:
    authorization = authorize(http)
    location = to_provider(http, authorization)
    key = f"sy:auth:{{{SCOPE}}}:once:oauth-state:" + hashlib.sha256(query_of(location)["state"].encode()).hexdigest()
    with redis.Redis.from_url(auth.redis_url) as client:  # as if another nonce had been sent
        subject = json.loads(client.get(key) or "null")
        client.set(key, json.dumps(subject | {"nonce": "another-nonce"}), keepttl=True)
    page = http.get(provider.sign_in(location, "hal"))
    assert page.status_code == 401 and "Signing in with Corp SSO did not work" in page.text
    assert "nonce" not in page.text and "sy_op=" not in page.headers.get("set-cookie", "")


def test_an_email_the_provider_has_not_verified_is_explained_on_the_login_page(auth, provider, http) -> None:
    answer = http.post("/v1/auth/signup", json={"email": "fay@example.com", "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    provider.set_account("fay", email="fay@example.com", email_verified=False)
    authorization = authorize(http)
    page = http.get(back_from_provider(auth, provider, http, "fay", authorization=authorization))
    assert page.status_code == 409 and "has not verified" in page.text
    assert "sy_op=" not in page.headers.get("set-cookie", "")


def test_an_account_with_totp_is_asked_for_its_code(auth, provider, http) -> None:
    provider.set_account("gus", email="gus@example.com", email_verified=True)
    session = api_session(auth, provider, http, "gus")
    enrolled = http.post("/v1/auth/mfa/totp/enroll", headers=bearer(session))
    assert enrolled.status_code == 200, enrolled.text
    totp = pyotp.TOTP(enrolled.json()["secret"])
    assert http.post("/v1/auth/mfa/totp/confirm", headers=bearer(session), json={"code": totp.now()}).status_code == 200

    authorization = authorize(http)
    answer = http.get(back_from_provider(auth, provider, http, "gus", authorization=authorization))
    assert answer.status_code == 303 and answer.headers["location"] == f"/oauth2/ui/mfa?ar={authorization.ar}"
    assert "sy_op=" not in answer.headers.get("set-cookie", "")
    page = http.get(answer.headers["location"])
    step = http.post(
        f"/oauth2/ui/mfa?ar={authorization.ar}",
        data={"csrf_token": csrf_of(page), "ar": authorization.ar, "code": totp.at(time.time() + 30)},
        headers=origin(auth),
    )
    signed_in(step, authorization)


def api_session(auth: AuthStack, provider: OidcProvider, http: httpx.Client, login: str) -> dict[str, Any]:
    """A session of the API for the provider's account (its code mode), to turn TOTP on."""
    start = http.get(
        f"/v1/auth/oauth/{PROVIDER}/authorize", params={"mode": "code", "redirect_to": "https://app.acme.dev/done"}
    )
    assert start.status_code == 302, start.text
    back = http.get(provider.sign_in(start.headers["location"], login))
    assert back.status_code == 302, back.text
    answer = http.post("/v1/auth/oauth/exchange", json={"code": query_of(back.headers["location"])["code"]})
    assert answer.status_code == 200, answer.text
    session: dict[str, Any] = answer.json()
    return session
