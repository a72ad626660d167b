"""What the OpenID Provider's endpoint tests do again and again: register OIDCClients (and
their client secrets) in the api's config, sign a user in to the provider's browser session
(`start_browser_session`, as the hosted login does, the cookie put in the client's jar), run
an authorization request to its code, and read a redirect's query.

The api is AuthStack's, its issuer set to the api's own URL so that every URL the provider
names can be followed; cookies are insecure (`sy_op`) so that httpx sends them over http."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from stackyard_harness.auth_stack import AuthStack

SPA = "https://spa.example.com"
SPA_CALLBACK = f"{SPA}/callback"
WEB_CALLBACK = "https://shop.example.com/auth/callback"
WEB_LOGGED_OUT = "https://shop.example.com/bye"
WEB_SECRET = "shop-client-secret-" + "s" * 30
WEB_PREVIOUS_SECRET = "shop-previous-secret-" + "p" * 30
MACHINE_SECRET = "reports-client-secret-" + "m" * 30

CLIENTS: dict[str, dict[str, Any]] = {
    "spa": {"type": "public", "displayName": "Acme SPA", "redirectUris": [SPA_CALLBACK]},
    "shop": {
        "type": "confidential",
        "displayName": "Acme Shop",
        "redirectUris": [WEB_CALLBACK],
        "postLogoutRedirectUris": [WEB_LOGGED_OUT],
        "scopes": ["openid", "profile", "email", "offline_access"],
    },
    "reports": {"type": "machine", "scopes": ["reports:read", "reports:write"], "audience": "https://reports.acme.dev"},
}
SECRETS = {
    "oidcclient.shop.clientSecret": WEB_SECRET,
    "oidcclient.shop.previousClientSecret": WEB_PREVIOUS_SECRET,
    "oidcclient.reports.clientSecret": MACHINE_SECRET,
}


def configure_provider(
    auth: AuthStack,
    clients: dict[str, dict[str, Any]] | None = None,
    secrets_: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
    *,
    fresh_database: bool = True,
) -> None:
    """The Stack's auth (issuer = the api's URL, no email verification, insecure cookies) with
    these OIDCClients (name -> spec without stackRef) and client secrets (credentials keys);
    `fresh_database=False` keeps the users of the config before."""
    from stackyard.config import RuntimeConfig
    from stackyard.resources.oidc import OIDCClientSpec

    # The credentials Secret holds these clients' secrets only (AuthStack keeps what it was given).
    for key in [k for k in auth.credentials if k.startswith("oidcclient.")]:
        del auth.credentials[key]
    auth.configure(
        {
            "issuer": auth.url,
            "requireEmailVerification": False,
            "cookies": {"secure": False},
            "lockout": {"ipMaxAttempts": 100000},
        }
        | (settings or {}),
        extra_credentials=SECRETS if secrets_ is None else secrets_,
        fresh_database=fresh_database,
    )
    path = auth.directory / "config.json"
    config = RuntimeConfig.model_validate_json(path.read_text())
    specs = {
        name: OIDCClientSpec.model_validate({"stackRef": {"name": "demo"}} | spec)
        for name, spec in (CLIENTS if clients is None else clients).items()
    }
    auth.generation += 1
    path.write_text(config.model_copy(update={"generation": auth.generation, "oidc_clients": specs}).canonical_json())
    auth.wait_applied()


def sign_in_browser(auth: AuthStack, http: httpx.Client, email: str, amr: tuple[str, ...] = ("pwd",)) -> str:
    """Starts the provider's browser session for the user (as the hosted login does after a
    password), puts its cookie in `http`'s jar and returns it."""
    from pymongo import AsyncMongoClient
    from redis.asyncio import Redis
    from stackyard.auth.context import AuthContext
    from stackyard.auth.keys import KeySet
    from stackyard.auth.oidc.browser import cookie_name, start_browser_session
    from stackyard.auth.passwords import PasswordHasher
    from stackyard.auth.sessions import ClientInfo
    from stackyard.config import RuntimeConfig

    config = RuntimeConfig.model_validate_json((auth.directory / "config.json").read_text())

    async def start() -> str:
        redis = Redis.from_url(auth.redis_url)
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(auth.mongo_url)
        try:
            ctx = AuthContext(
                redis=redis,
                db=mongo[auth.database],
                settings=config.spec.auth,
                keys=KeySet.from_json(auth.credentials["stack.auth.signingKeys"]),
                issuer=auth.url,
                audience=auth.url,
                scope="ns/demo",
                hasher=PasswordHasher(),
            )
            user = await ctx.users.by_email(email)
            assert user is not None, email
            cookie, _ = await start_browser_session(ctx, user, list(amr), ClientInfo("127.0.0.1", "oidc tests"))
            return cookie
        finally:
            await redis.aclose()
            await mongo.close()

    cookie = asyncio.run(start())
    http.cookies.set(cookie_name(False), cookie)
    return cookie


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def authorize_params(client_id: str, redirect_uri: str, pkce: Pkce | None, **params: str) -> dict[str, str]:
    base = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": "st-" + secrets.token_urlsafe(8),
        "nonce": "n-" + secrets.token_urlsafe(8),
    }
    if pkce is not None:
        base |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    return base | params


def redirect_of(answer: httpx.Response) -> tuple[str, dict[str, str]]:
    """A 303's location without its query, and its query."""
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    return location.split("?")[0], query_of(location)


def code_for(http: httpx.Client, client_id: str, redirect_uri: str, pkce: Pkce | None, **params: str) -> str:
    """Authorization with a signed-in browser: the code of the answer (its state checked)."""
    asked = authorize_params(client_id, redirect_uri, pkce, **params)
    target, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert target == redirect_uri, query
    assert query["state"] == asked["state"] and "code" in query, query
    return query["code"]


def code_form(code: str, redirect_uri: str, pkce: Pkce, **form: str) -> dict[str, str]:
    """The token request's form that redeems `code` with its verifier (RFC 6749 §4.1.3, RFC 7636),
    and `form` (client_id for a public client)."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": pkce.verifier,
    } | form
