"""Login with an IdentityProvider through HTTP against the real api app, a real OpenID Provider
(the node oidc-provider package, driven through its login and consent pages), real Redis and
FerretDB, and a real worker sending the auth mails to an SMTP sink."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
import redis
from auth_http import PASSWORD, bearer, problem
from pymongo import MongoClient
from stackyard.auth.federation import forget_cached_metadata, pkce_challenge
from stackyard_harness.auth_stack import APP_URL, AuthStack
from stackyard_harness.fake_github import FakeGitHub
from stackyard_harness.oidc_provider import OidcProvider

PROVIDER = "corp"
CLIENT_SECRET = "corp-client-secret-0123456789abcdef"
WELCOME = APP_URL + "/welcome"
SCOPE = "ns/demo"
"""The AuthStack's Stack: namespace ns, name demo."""
REDIS_DATABASE = 10
RUN_WORKER = True


@pytest.fixture(scope="module")
def provider(running: AuthStack, oidc_provider) -> OidcProvider:  # type: ignore[no-untyped-def]
    started: OidcProvider = oidc_provider(
        [f"{running.url}/v1/auth/oauth/{PROVIDER}/callback"], client_id="stackyard-app", client_secret=CLIENT_SECRET
    )
    return started


def identity_provider(provider: OidcProvider, **spec: Any) -> dict[str, Any]:
    return {
        "type": "oidc",
        "displayName": "Corp SSO",
        "issuer": provider.issuer,
        "clientId": "stackyard-app",
        "clientSecretSecretRef": {"name": "corp-oauth", "key": "secret"},
    } | spec


def configure(auth: AuthStack, provider: OidcProvider, settings: dict[str, Any] | None = None, **spec: Any) -> None:
    auth.configure(
        {"issuer": auth.url, "lockout": {"ipMaxAttempts": 100000}, "cookies": {"secure": False}} | (settings or {}),
        identity_providers={PROVIDER: identity_provider(provider, **spec)},
        extra_credentials={f"identityprovider.{PROVIDER}.clientSecret": CLIENT_SECRET},
    )


@pytest.fixture
def auth(running: AuthStack, provider: OidcProvider) -> AuthStack:
    """In place of the shared `auth`: the provider configured, its metadata fetched afresh."""
    running.reset()
    forget_cached_metadata()
    configure(running, provider)
    return running


@pytest.fixture
def http(http: httpx.Client) -> httpx.Client:
    """The shared client with more patience: a callback waits on the provider."""
    http.timeout = httpx.Timeout(15)
    return http


def authorize(http: httpx.Client, redirect_to: str | None = WELCOME, mode: str = "cookie", **params: str) -> str:
    """The provider URL that authorize redirects to."""
    query = {"mode": mode, **params} | ({"redirect_to": redirect_to} if redirect_to else {})
    answer = http.get(f"/v1/auth/oauth/{PROVIDER}/authorize", params=query)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def back_from_provider(auth: AuthStack, provider: OidcProvider, http: httpx.Client, login: str, **kw: Any) -> str:
    """Authorize, then the provider's pages: the callback URL the browser is sent to."""
    url = provider.sign_in(authorize(http, **kw), login)
    assert url.startswith(f"{auth.url}/v1/auth/oauth/{PROVIDER}/callback?"), url
    return url


def oauth_login(auth: AuthStack, provider: OidcProvider, http: httpx.Client, login: str, **kw: Any) -> httpx.Response:
    """A whole login up to the callback's answer."""
    return http.get(back_from_provider(auth, provider, http, login, **kw))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def session_cookies(answer: httpx.Response) -> dict[str, str]:
    return {c.name: c.value for c in answer.cookies.jar}


def me_by_cookie(http: httpx.Client, answer: httpx.Response) -> dict[str, Any]:
    cookies = session_cookies(answer)
    assert "sy_at" in cookies, answer.headers
    me = by_cookie(http, "/v1/auth/me", cookies["sy_at"])
    assert me.status_code == 200, me.text
    body: dict[str, Any] = me.json()
    return body


def by_cookie(http: httpx.Client, path: str, access: str) -> httpx.Response:
    """A GET with the access cookie only (as a browser sends it; no CSRF header for a GET)."""
    return httpx.get(str(http.base_url).rstrip("/") + path, cookies={"sy_at": access}, timeout=10)


def exchange(http: httpx.Client, answer: httpx.Response, **body: Any) -> httpx.Response:
    assert answer.status_code == 302, answer.text
    code = query_of(answer.headers["location"])["code"]
    return http.post("/v1/auth/oauth/exchange", json={"code": code} | body)


def sign_up(auth: AuthStack, http: httpx.Client, email: str, *, verify: bool) -> None:
    answer = http.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 202, answer.text
    if verify:
        token = auth.token_from_mail(email, "Confirm your email")
        assert http.post("/v1/auth/verify-email", json={"token": token}).status_code == 200


def password_login(http: httpx.Client, email: str) -> httpx.Response:
    return http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})


def state_key(authorize_url: str) -> str:
    state = query_of(authorize_url)["state"]
    return f"sy:auth:{{{SCOPE}}}:once:oauth-state:" + hashlib.sha256(state.encode()).hexdigest()


def tamper_state(auth: AuthStack, authorize_url: str, **changes: str) -> None:
    """Change what the api remembers of a login (as if it had sent something else)."""
    with redis.Redis.from_url(auth.redis_url) as client:
        key = state_key(authorize_url)
        subject = json.loads(client.get(key) or "null")
        assert subject is not None
        client.set(key, json.dumps(subject | changes), keepttl=True)


def events(auth: AuthStack) -> list[str]:
    with MongoClient(auth.mongo_url) as client:
        return [e["type"] for e in client[auth.database]["auth_events"].find({}, sort=[("_id", 1)])]


# -- the provider list --------------------------------------------------------------------


def test_providers_lists_the_enabled_ones_without_secrets(auth, provider, http):
    answer = http.get("/v1/auth/oauth/providers")
    assert answer.status_code == 200
    assert answer.json() == {"items": [{"name": PROVIDER, "type": "oidc", "displayName": "Corp SSO"}]}
    assert CLIENT_SECRET not in answer.text
    configure(auth, provider, enabled=False)
    assert http.get("/v1/auth/oauth/providers").json() == {"items": []}
    problem(http.get(f"/v1/auth/oauth/{PROVIDER}/authorize"), 404, "identity-provider-not-found")


def test_the_callback_url_is_under_the_public_issuer(auth, provider, http):
    configure(auth, provider, {"issuer": "https://auth.acme.dev"})
    sent = query_of(authorize(http))
    assert sent["redirect_uri"] == f"https://auth.acme.dev/v1/auth/oauth/{PROVIDER}/callback"
    assert (sent["response_type"], sent["client_id"]) == ("code", "stackyard-app")
    assert set(sent["scope"].split()) == {"openid", "email", "profile"}


def test_config_lists_the_identity_provider(auth, http):
    assert http.get("/v1/config").json()["identityProviders"] == [PROVIDER]


# -- logging in ---------------------------------------------------------------------------


def test_first_login_creates_a_user_and_a_cookie_session(auth, provider, http):
    provider.set_account("ana", email="ana@example.com", email_verified=True, name="Ana Lima")
    answer = oauth_login(auth, provider, http, "ana")
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"] == WELCOME
    me = me_by_cookie(http, answer)
    assert me["email"] == "ana@example.com" and me["emailVerified"] is True
    assert me["amr"] == [f"oauth:{PROVIDER}"]
    user = by_cookie(http, "/v1/auth/user", session_cookies(answer)["sy_at"]).json()
    assert user["profile"]["name"] == "Ana Lima" and user["hasPassword"] is False
    assert [i["provider"] for i in user["identities"]] == [PROVIDER]
    assert {"user.created", "identity.linked", "login.succeeded", "session.created"} <= set(events(auth))


def test_second_login_is_the_same_user(auth, provider, http):
    provider.set_account("ben", email="ben@example.com", email_verified=True)
    first = me_by_cookie(http, oauth_login(auth, provider, http, "ben"))
    session = exchange(http, oauth_login(auth, provider, http, "ben", mode="code"))
    assert session.status_code == 200, session.text
    second = http.get("/v1/auth/me", headers=bearer(session.json())).json()
    assert second["id"] == first["id"] and second["sessionId"] != first["sessionId"]
    identities = http.get("/v1/auth/identities", headers=bearer(session.json())).json()["items"]
    assert [(i["provider"], i["type"], i["email"]) for i in identities] == [(PROVIDER, "oidc", "ben@example.com")]


def test_login_links_to_a_password_user_with_the_same_verified_email(auth, provider, http):
    sign_up(auth, http, "cai@example.com", verify=True)
    before = password_login(http, "cai@example.com").json()
    provider.set_account("cai", email="Cai@Example.com", email_verified=True)
    session = exchange(http, oauth_login(auth, provider, http, "cai", mode="code")).json()
    me = http.get("/v1/auth/me", headers=bearer(session)).json()
    assert me["id"] == http.get("/v1/auth/me", headers=bearer(before)).json()["id"]
    assert password_login(http, "cai@example.com").status_code == 200, "the password still works"
    assert "identity.linked" in events(auth)


def test_unverified_password_account_is_linked_without_its_password(auth, provider, http):
    # Someone registered dia's address without proving it; dia, verified by the provider,
    # gets the account, and the unproven password stops working.
    sign_up(auth, http, "dia@example.com", verify=False)
    provider.set_account("dia", email="dia@example.com", email_verified=True)
    session = exchange(http, oauth_login(auth, provider, http, "dia", mode="code")).json()
    user = http.get("/v1/auth/user", headers=bearer(session)).json()
    assert user["emailVerified"] is True and user["hasPassword"] is False
    assert password_login(http, "dia@example.com").status_code == 401


def test_unverified_account_is_not_linked_when_the_provider_does_not_allow_it(auth, provider, http):
    configure(auth, provider, linkByVerifiedEmail=False)
    sign_up(auth, http, "eli@example.com", verify=False)
    provider.set_account("eli", email="eli@example.com", email_verified=True)
    problem(oauth_login(auth, provider, http, "eli"), 409, "account-link-refused")


def test_an_email_the_provider_has_not_verified_never_links(auth, provider, http):
    sign_up(auth, http, "fay@example.com", verify=True)
    provider.set_account("fay", email="fay@example.com", email_verified=False)
    body = problem(oauth_login(auth, provider, http, "fay"), 409, "identity-email-unverified")
    assert "not verified" in body["detail"]
    assert "identity.linked" not in events(auth)


def test_unverified_email_of_a_new_user_makes_an_unverified_account(auth, provider, http):
    provider.set_account("gil", email="gil@example.com", email_verified=False)
    session = exchange(http, oauth_login(auth, provider, http, "gil", mode="code")).json()
    assert http.get("/v1/auth/user", headers=bearer(session)).json()["emailVerified"] is False


def test_sign_up_closed_refuses_a_new_user(auth, provider, http):
    configure(auth, provider, allowSignup=False)
    problem(oauth_login(auth, provider, http, "hal"), 403, "signup-disabled")


# -- the protections ------------------------------------------------------------------------


def test_state_is_single_use_and_a_wrong_state_is_refused(auth, provider, http):
    callback = back_from_provider(auth, provider, http, "ivy")
    assert http.get(callback).status_code == 302
    problem(http.get(callback), 400, "invalid-oauth-state")
    forged = callback.replace(f"state={query_of(callback)['state']}", "state=" + secrets.token_urlsafe(32))
    problem(http.get(forged), 400, "invalid-oauth-state")
    problem(http.get(f"/v1/auth/oauth/{PROVIDER}/callback", params={"code": "x"}), 400, "invalid-oauth-state")


def test_code_cannot_be_redeemed_without_the_pkce_verifier(auth, provider, http):
    start = authorize(http)
    assert query_of(start)["code_challenge_method"] == "S256"
    callback = provider.sign_in(start, "jon")
    code = query_of(callback)["code"]
    token_endpoint = provider.discovery()["token_endpoint"]
    stolen = httpx.post(
        token_endpoint,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": query_of(start)["redirect_uri"]},
        auth=("stackyard-app", CLIENT_SECRET),
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant", stolen.text


def test_login_fails_when_the_verifier_is_not_the_one_of_the_challenge(auth, provider, http):
    start = authorize(http)
    tamper_state(auth, start, verifier=secrets.token_urlsafe(48))
    callback = provider.sign_in(start, "kim")
    body = problem(http.get(callback), 401, "oauth-login-failed")
    assert "invalid_grant" in body["detail"]


def test_id_token_with_another_nonce_is_refused(auth, provider, http):
    start = authorize(http)
    tamper_state(auth, start, nonce=secrets.token_urlsafe(24))
    body = problem(http.get(provider.sign_in(start, "lea")), 401, "oauth-login-failed")
    assert "nonce" in body["detail"]


def test_access_denied_returns_to_the_app_with_the_error(auth, provider, http):
    callback = provider.sign_in(authorize(http), "max", abort=True)
    answer = http.get(callback)
    assert answer.status_code == 302
    target = answer.headers["location"]
    assert target.startswith(WELCOME + "?")
    assert query_of(target)["error"] == "access_denied" and query_of(target)["error_description"]
    assert "sy_at" not in session_cookies(answer)


@pytest.mark.parametrize(
    "redirect_to",
    [
        "https://evil.example/",
        "https://app.acme.dev.evil.example/welcome",
        "https://app.acme.dev@evil.example/",
        "http://app.acme.dev/welcome",
        "https://partner.acme.dev/callbackX",
        "javascript:alert(1)",
    ],
)
def test_redirect_outside_the_allowed_urls_is_refused(auth, provider, http, redirect_to):
    configure(auth, provider, {"allowedRedirectUrls": ["https://partner.acme.dev/callback"]})
    answer = http.get(f"/v1/auth/oauth/{PROVIDER}/authorize", params={"redirect_to": redirect_to})
    problem(answer, 400, "redirect-not-allowed")


def test_an_allowed_redirect_url_is_where_the_login_ends(auth, provider, http):
    configure(auth, provider, {"allowedRedirectUrls": ["https://partner.acme.dev/callback"]})
    answer = oauth_login(auth, provider, http, "ned", redirect_to="https://partner.acme.dev/callback/done?x=1")
    assert answer.headers["location"] == "https://partner.acme.dev/callback/done?x=1"


def test_login_code_is_single_use_and_bound_to_the_apps_challenge(auth, provider, http):
    verifier = secrets.token_urlsafe(48)
    answer = oauth_login(auth, provider, http, "ola", mode="code", code_challenge=pkce_challenge(verifier))
    code = query_of(answer.headers["location"])["code"]
    problem(http.post("/v1/auth/oauth/exchange", json={"code": code}), 400, "invalid-oauth-state")
    answer = oauth_login(auth, provider, http, "ola", mode="code", code_challenge=pkce_challenge(verifier))
    code = query_of(answer.headers["location"])["code"]
    assert http.post("/v1/auth/oauth/exchange", json={"code": code, "codeVerifier": verifier}).status_code == 200
    problem(
        http.post("/v1/auth/oauth/exchange", json={"code": code, "codeVerifier": verifier}), 400, "invalid-oauth-state"
    )


# -- identities -----------------------------------------------------------------------------


def test_the_only_way_to_log_in_cannot_be_unlinked(auth, provider, http):
    session = exchange(http, oauth_login(auth, provider, http, "pia", mode="code")).json()
    problem(http.delete(f"/v1/auth/identities/{PROVIDER}", headers=bearer(session)), 409, "last-login-method")
    problem(http.delete("/v1/auth/identities/other", headers=bearer(session)), 404, "identity-provider-not-found")


def test_an_identity_beside_a_password_can_be_unlinked(auth, provider, http):
    sign_up(auth, http, "quy@example.com", verify=True)
    provider.set_account("quy", email="quy@example.com", email_verified=True)
    session = exchange(http, oauth_login(auth, provider, http, "quy", mode="code")).json()
    assert http.delete(f"/v1/auth/identities/{PROVIDER}", headers=bearer(session)).status_code == 204
    assert http.get("/v1/auth/identities", headers=bearer(session)).json() == {"items": []}
    # Logging in with the provider again links again (by the verified email).
    again = exchange(http, oauth_login(auth, provider, http, "quy", mode="code")).json()
    assert http.get("/v1/auth/me", headers=bearer(again)).json()["email"] == "quy@example.com"


# -- GitHub (a local server following GitHub's OAuth app contract) ----------------------------


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def with_github(auth: AuthStack, provider: OidcProvider, github: FakeGitHub) -> FakeGitHub:
    auth.configure(
        {"issuer": auth.url, "lockout": {"ipMaxAttempts": 100000}, "cookies": {"secure": False}},
        identity_providers={
            PROVIDER: identity_provider(provider),
            "github": {
                "type": "github",
                "clientId": github.client_id,
                "clientSecretSecretRef": {"name": "gh", "key": "secret"},
            }
            | github.spec(),
        },
        extra_credentials={
            f"identityprovider.{PROVIDER}.clientSecret": CLIENT_SECRET,
            "identityprovider.github.clientSecret": github.client_secret,
        },
    )
    return github


def github_login(http: httpx.Client, **params: str) -> httpx.Response:
    start = http.get("/v1/auth/oauth/github/authorize", params={"redirect_to": WELCOME} | params)
    assert start.status_code == 302, start.text
    at_github = httpx.get(start.headers["location"], timeout=10)
    assert at_github.status_code == 302, at_github.text
    return http.get(at_github.headers["location"])


def test_github_login_takes_the_primary_verified_email(with_github, http):
    with_github.sign_in_as("octocat", 583231, email="octo@example.com", name="The Octocat")
    answer = github_login(http)
    assert answer.status_code == 302, answer.text
    me = me_by_cookie(http, answer)
    assert (me["email"], me["emailVerified"], me["amr"]) == ("octo@example.com", True, ["oauth:github"])
    sent = with_github.token_requests[-1]
    assert sent["client_secret"] == with_github.client_secret, "GitHub takes the secret in the form"
    assert len(sent["code_verifier"]) >= 43
    providers = http.get("/v1/auth/oauth/providers").json()["items"]
    assert {"name": "github", "type": "github", "displayName": "GitHub"} in providers


def test_github_unverified_primary_email_does_not_link(with_github, auth, http):
    sign_up(auth, http, "mona@example.com", verify=True)
    with_github.sign_in_as("mona", 9919, email="mona@example.com", verified=False)
    problem(github_login(http), 409, "identity-email-unverified")


def test_github_cancel_returns_to_the_app_with_access_denied(with_github, http):
    with_github.deny()
    answer = github_login(http)
    assert answer.status_code == 302
    assert query_of(answer.headers["location"])["error"] == "access_denied"


# -- second factor --------------------------------------------------------------------------


def test_an_account_with_mfa_still_asks_for_its_second_factor(auth, provider, http):
    session = exchange(http, oauth_login(auth, provider, http, "rio", mode="code")).json()
    enrolled = http.post("/v1/auth/mfa/totp/enroll", headers=bearer(session))
    assert enrolled.status_code == 200, enrolled.text
    totp = pyotp.TOTP(enrolled.json()["secret"])
    confirmed = http.post("/v1/auth/mfa/totp/confirm", headers=bearer(session), json={"code": totp.now()})
    assert confirmed.status_code == 200, confirmed.text

    cookie_mode = oauth_login(auth, provider, http, "rio")
    assert cookie_mode.status_code == 302 and "sy_at" not in session_cookies(cookie_mode)
    assert query_of(cookie_mode.headers["location"])["mfa_token"]

    challenge = exchange(http, oauth_login(auth, provider, http, "rio", mode="code")).json()
    assert challenge["mfaRequired"] is True
    code = totp.at(time.time() + 30)  # the step after: the enrolment's code cannot be replayed
    done = http.post("/v1/auth/login/mfa", json={"mfaToken": challenge["mfaToken"], "code": code})
    assert done.status_code == 200, done.text
    amr = http.get("/v1/auth/me", headers=bearer(done.json())).json()["amr"]
    assert amr[0] == f"oauth:{PROVIDER}" and len(amr) == 2
