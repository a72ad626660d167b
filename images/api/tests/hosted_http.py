"""What the hosted pages' tests do over HTTP: register OIDC clients in the api's config, start
an authorization request waiting for the login (`ar`), read a page's CSRF token, and post a
hosted form as a browser on the issuer's origin would.

The api under test is AuthStack's (issuer https://auth.acme.dev); its cookies are made
insecure (`cookies.secure: false`) so that httpx's jar sends them over http://127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import redis
from stackyard.auth.oidc.interaction import PendingAuthorization
from stackyard_harness.auth_stack import AuthStack

ISSUER = "https://auth.acme.dev"
ORIGIN = {"Origin": ISSUER}
REDIRECT_URI = "https://shop.example.com/callback"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

FIRST_PARTY = {
    "type": "public",
    "displayName": "Acme Shop",
    "redirectUris": [REDIRECT_URI],
    "postLogoutRedirectUris": ["https://shop.example.com/bye"],
    "scopes": ["openid", "profile", "email", "offline_access"],
    "logoUri": "https://cdn.example.com/shop.png",
}
THIRD_PARTY = {
    "type": "confidential",
    "displayName": "Budget Buddy",
    "thirdParty": True,
    "redirectUris": ["https://buddy.example.org/cb"],
    "scopes": ["openid", "profile", "email", "offline_access", "orders:read"],
    "clientUri": "https://buddy.example.org",
    "policyUri": "https://buddy.example.org/privacy",
    "tosUri": "https://buddy.example.org/terms",
}


def add_clients(auth: AuthStack, clients: dict[str, dict[str, Any]]) -> None:
    """Registers OIDCClients (name -> spec without stackRef) in the config in force: a new
    generation with the same database."""
    from stackyard.config import RuntimeConfig
    from stackyard.resources.oidc import OIDCClientSpec

    path = auth.directory / "config.json"
    config = RuntimeConfig.model_validate_json(path.read_text())
    auth.generation += 1
    specs = {n: OIDCClientSpec.model_validate({"stackRef": {"name": "demo"}} | c) for n, c in clients.items()}
    updated = config.model_copy(update={"generation": auth.generation, "oidc_clients": specs})
    path.write_text(updated.canonical_json())
    auth.wait_applied()


def waiting_request(auth: AuthStack, client_id: str = "shop", **fields: Any) -> str:
    """An authorization request waiting for the user, as the authorize endpoint keeps it: its id."""
    redirect_uri = fields.pop("redirect_uri", REDIRECT_URI if client_id == "shop" else THIRD_PARTY["redirectUris"][0])
    pending = PendingAuthorization(
        id="ar_" + secrets.token_urlsafe(18),
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=fields.pop("scopes", ["openid", "email"]),
        state=fields.pop("state", "st-123"),
        nonce="n-1",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
        created_at=time.time(),
        **fields,
    )
    with redis.Redis.from_url(auth.redis_url) as client:
        client.set(f"sy:auth:{{ns/demo}}:oidc-ar:{pending.id}", json.dumps(asdict(pending)), ex=1800)
    return pending.id


def waiting_logout(auth: AuthStack, client_id: str | None = "shop", **fields: Any) -> str:
    """A logout request the end-session endpoint kept for the confirmation page: its token."""
    from stackyard.auth.oidc.logout import LogoutRequest

    request = LogoutRequest(client_id=client_id, **fields)
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    with redis.Redis.from_url(auth.redis_url) as client:
        client.set(f"sy:auth:{{ns/demo}}:once:oidc-logout:{digest}", json.dumps(asdict(request)), ex=600)
    return token


def csrf_of(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match, "no csrf_token field on the page"
    return match.group(1)


def post_page(
    http: httpx.Client, page: str, data: dict[str, Any], url: str | None = None, **kwargs: Any
) -> httpx.Response:
    """GET `page` (its CSRF cookie and token), then POST its form (to `url`, else the page
    itself) with the token and the issuer's Origin, as the browser would."""
    shown = http.get(page)
    assert shown.status_code == 200, shown.text
    headers = ORIGIN | kwargs.pop("headers", {})
    return http.post(url or page, data={"csrf_token": csrf_of(shown)} | data, headers=headers, **kwargs)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
