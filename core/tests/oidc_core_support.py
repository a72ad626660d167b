"""A Stack's OpenID Provider for the core oidc tests: an AuthContext on the harness's real
Redis and MongoDB-wire server with four registered clients, a clock of the test's own,
and the steps of a login (browser session, authorization request, code, token request)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from stackyard.auth.context import AuthContext
from stackyard.auth.keys import KeySet, generate_key
from stackyard.auth.oidc import authorize
from stackyard.auth.oidc.browser import BrowserSession, start_browser_session
from stackyard.auth.oidc.clients import authenticate_client
from stackyard.auth.oidc.grants import token_request
from stackyard.auth.passwords import PasswordHasher
from stackyard.auth.sessions import ClientInfo
from stackyard.auth.users import UserRecord
from stackyard.clients import AnyRedis, redis_client
from stackyard.resources.oidc import OIDCClientSpec
from stackyard.resources.stack import AuthSettings

ISSUER = "https://id.acme.dev"
AUDIENCE = "https://api.acme.dev"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEB_REDIRECT = "https://app.acme.dev/callback"
SPA_REDIRECT = "http://127.0.0.1:8400/cb"
BROWSER = ClientInfo(ip="203.0.113.7", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
APP_SERVER = ClientInfo(ip="10.0.0.9", user_agent="python-httpx/0.28")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def spec(**fields: Any) -> OIDCClientSpec:
    return OIDCClientSpec.model_validate({"stackRef": {"name": "acme"}} | fields)


def clients() -> dict[str, OIDCClientSpec]:
    return {
        "webapp": spec(
            type="confidential",
            redirectUris=[WEB_REDIRECT],
            postLogoutRedirectUris=["https://app.acme.dev/bye"],
            displayName="Acme Web",
        ),
        "spa": spec(type="public", redirectUris=[SPA_REDIRECT, "https://spa.acme.dev/cb"]),
        "partner": spec(
            type="confidential",
            redirectUris=["https://partner.example/cb"],
            thirdParty=True,
            scopes=["openid", "email", "profile"],
            grantTypes=["authorization_code"],
            audience="https://partner-api.acme.dev",
        ),
        "reports-bot": spec(type="machine", scopes=["reports:read", "reports:write"]),
        "old-app": spec(type="confidential", redirectUris=["https://old.acme.dev/cb"], enabled=False),
    }


SECRETS = {
    "webapp": ["web-current-secret-" + "x" * 30, "web-previous-secret-" + "y" * 30],
    "partner": ["partner-secret-" + "z" * 30],
    "reports-bot": ["bot-secret-" + "w" * 30],
    "old-app": ["old-secret-" + "v" * 30],
}


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[AnyRedis]:
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(redis: AnyRedis, db: Any, clock: Clock, hasher: PasswordHasher) -> AuthContext:
    return AuthContext(
        redis=redis,
        db=db,
        settings=AuthSettings.model_validate({"issuer": ISSUER}),
        keys=KeySet((generate_key("EdDSA", START - timedelta(days=1)),)),
        issuer=ISSUER,
        audience=AUDIENCE,
        scope=f"test/{uuid.uuid4().hex[:10]}",
        hasher=hasher,
        clock=clock,
        oidc_clients=clients(),
        oidc_client_secrets={k: list(v) for k, v in SECRETS.items()},
    )


async def new_user(ctx: AuthContext, email: str = "ana@example.com", **fields: Any) -> UserRecord:
    return await ctx.users.create(
        email, email_verified=True, profile={"name": "Ana Lima", "givenName": "Ana"}, now=ctx.clock(), **fields
    )


async def signed_in(ctx: AuthContext, user: UserRecord, amr: list[str] | None = None) -> tuple[str, BrowserSession]:
    return await start_browser_session(ctx, user, amr or ["pwd"], BROWSER)


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def auth_params(client_id: str = "webapp", **extra: str) -> dict[str, str]:
    redirect = {"webapp": WEB_REDIRECT, "spa": SPA_REDIRECT, "partner": "https://partner.example/cb"}[client_id]
    return {
        "client_id": client_id,
        "redirect_uri": redirect,
        "response_type": "code",
        "scope": "openid email profile offline_access" if client_id != "partner" else "openid email",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
    } | extra


async def authorize_code(
    ctx: AuthContext, browser: BrowserSession, client_id: str = "webapp", **extra: str
) -> tuple[str, str, dict[str, str]]:
    """(code, verifier, the request's params): a complete authorization request for a
    signed-in user that ends in a code."""
    verifier, challenge = pkce()
    params = auth_params(client_id, code_challenge=challenge, code_challenge_method="S256") | extra
    pending = authorize.validate(ctx, params)
    decision = await authorize.decide(ctx, pending, browser)
    assert isinstance(decision, authorize.Respond), decision
    answer = query(decision.response.url())
    assert answer["state"] == params["state"] and answer["iss"] == ISSUER
    return answer["code"], verifier, params


def basic(client_id: str, secret: str) -> str:
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


async def token(
    ctx: AuthContext, form: dict[str, str], client_id: str = "webapp", secret: str | None = None
) -> dict[str, Any]:
    """A token request authenticated with client_secret_basic (public clients: client_id)."""
    if client_id in SECRETS:
        header: str | None = basic(client_id, secret or SECRETS[client_id][0])
    else:
        header, form = None, form | {"client_id": client_id}
    client = authenticate_client(ctx, authorization=header, form=form)
    return await token_request(ctx, client, form, client_info=APP_SERVER)


async def exchange(
    ctx: AuthContext, code: str, verifier: str, client_id: str = "webapp", redirect_uri: str | None = None
) -> dict[str, Any]:
    redirect = (
        redirect_uri
        or {"webapp": WEB_REDIRECT, "spa": SPA_REDIRECT, "partner": "https://partner.example/cb"}[client_id]
    )
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": redirect}
    return await token(ctx, form, client_id)
