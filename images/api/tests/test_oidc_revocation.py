"""Revocation (RFC 7009) of access tokens over HTTP against the real api, Redis and FerretDB:
a machine client's token (no grant behind it) and a user's token become inactive at
introspection, a user's is refused at userinfo and by the api's own routes, and another
client's revocation does nothing. tests/oidc drives the same through client libraries.

Redis database 52."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from auth_http import EMAIL, sign_up_and_log_in
from oidc_http import (
    CLIENTS,
    MACHINE_SECRET,
    SECRETS,
    WEB_CALLBACK,
    WEB_SECRET,
    Pkce,
    basic,
    code_for,
    code_form,
    configure_provider,
    sign_in_browser,
)
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 52
ROBOT_SECRET = "robot-client-secret-" + "r" * 30


@pytest.fixture
def auth(running: AuthStack) -> AuthStack:
    """The provider's clients (spa, shop, reports) and `robot`, a machine client whose tokens
    are for the Stack's own audience (the api's)."""
    running.reset()
    configure_provider(
        running,
        clients=CLIENTS | {"robot": {"type": "machine", "scopes": ["jobs:run"]}},
        secrets_=SECRETS | {"oidcclient.robot.clientSecret": ROBOT_SECRET},
    )
    return running


@pytest.fixture
def browser(auth: AuthStack, http: httpx.Client) -> str:
    sign_up_and_log_in(http, profile={"name": "Ana"})
    return sign_in_browser(auth, http, EMAIL)


def shop_tokens(http: httpx.Client) -> dict[str, Any]:
    pkce = Pkce.new()
    code = code_for(http, "shop", WEB_CALLBACK, pkce, scope="openid email")
    form = code_form(code, WEB_CALLBACK, pkce)
    answer = http.post("/oauth2/token", data=form, headers=basic("shop", WEB_SECRET))
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def machine_token(http: httpx.Client, client_id: str = "reports", secret: str = MACHINE_SECRET) -> str:
    answer = http.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret))
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def revoke(http: httpx.Client, token: str, client_id: str, secret: str) -> None:
    answer = http.post("/oauth2/revoke", data={"token": token}, headers=basic(client_id, secret))
    assert answer.status_code == 200 and answer.json() == {}, answer.text


def active(http: httpx.Client, token: str, client_id: str, secret: str) -> bool:
    answer = http.post("/oauth2/introspect", data={"token": token}, headers=basic(client_id, secret))
    assert answer.status_code == 200, answer.text
    value: bool = answer.json()["active"]
    return value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_revoked_machine_token_is_inactive(auth: AuthStack, http: httpx.Client):
    token, other = machine_token(http), machine_token(http)
    assert active(http, token, "reports", MACHINE_SECRET)
    revoke(http, token, "reports", MACHINE_SECRET)
    assert not active(http, token, "reports", MACHINE_SECRET)
    assert active(http, other, "reports", MACHINE_SECRET), "only the revoked token"
    revoke(http, token, "reports", MACHINE_SECRET)  # again: 200, nothing to do


def test_a_revoked_user_access_token_is_inactive_and_refused_at_userinfo_and_the_api(
    auth: AuthStack, http: httpx.Client, browser: str
):
    tokens = shop_tokens(http)
    access = tokens["access_token"]
    assert http.get("/oauth2/userinfo", headers=bearer(access)).status_code == 200
    assert http.get("/v1/auth/me", headers=bearer(access)).status_code == 200, "a first-party client's token"
    revoke(http, access, "shop", WEB_SECRET)
    assert not active(http, access, "shop", WEB_SECRET)
    refused = http.get("/oauth2/userinfo", headers=bearer(access))
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert http.get("/v1/auth/me", headers=bearer(access)).status_code == 401, "the grant has ended"
    # As before, the grant behind it ended: its refresh token is gone.
    again = http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic("shop", WEB_SECRET),
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_another_clients_revocation_does_nothing(auth: AuthStack, http: httpx.Client, browser: str):
    tokens = shop_tokens(http)
    machine = machine_token(http)
    revoke(http, tokens["access_token"], "reports", MACHINE_SECRET)
    revoke(http, machine, "shop", WEB_SECRET)
    answer = http.post("/oauth2/revoke", data={"token": machine, "client_id": "spa"})
    assert answer.status_code == 200
    assert active(http, tokens["access_token"], "shop", WEB_SECRET)
    assert active(http, machine, "reports", MACHINE_SECRET)
    assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    assert http.get("/v1/auth/me", headers=bearer(tokens["access_token"])).status_code == 200


def test_a_machine_token_never_calls_the_api_as_a_user(auth: AuthStack, http: httpx.Client):
    """A client-credentials token for the Stack's audience has no session (`sid`): the api's
    routes refuse it, revoked or not, so the denylist is for the provider's endpoints and the
    apis that introspect."""
    token = machine_token(http, "robot", ROBOT_SECRET)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == auth.url and "sid" not in claims
    assert active(http, token, "robot", ROBOT_SECRET)
    assert http.get("/v1/auth/me", headers=bearer(token)).status_code == 401
    revoke(http, token, "robot", ROBOT_SECRET)
    assert not active(http, token, "robot", ROBOT_SECRET)
    assert http.get("/v1/auth/me", headers=bearer(token)).status_code == 401
