"""Authorization requests waiting for the user: the authorize endpoint validates a request,
keeps it here under a random id while the hosted pages sign the user in (or ask consent),
then carries it on (`/oauth2/authorize/continue?ar=<id>`). Only the id travels in URLs."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..context import AuthContext

PENDING_TTL_SECONDS = 30 * 60
"""How long a login may take before the request is forgotten (the user starts again at the app)."""


@dataclass(frozen=True)
class PendingAuthorization:
    id: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    response_mode: str = "query"
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    login_hint: str | None = None
    ui_locales: str | None = None
    created_at: float = 0.0
    """Unix time the request arrived: with prompt=login, a login must be newer than this."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else the protocol layer keeps with the request (e.g. acr_values, claims)."""

    def with_id(self, new_id: str) -> PendingAuthorization:
        return PendingAuthorization(**(asdict(self) | {"id": new_id}))


def _key(ctx: AuthContext, request_id: str) -> str:
    return ctx.rkey("oidc-ar", request_id)


async def save_pending(ctx: AuthContext, request: PendingAuthorization) -> PendingAuthorization:
    """Stores the request under a new random id (`ar_...`) and returns it with that id."""
    stored = request.with_id("ar_" + secrets.token_urlsafe(18))
    await ctx.redis.set(_key(ctx, stored.id), json.dumps(asdict(stored)), ex=PENDING_TTL_SECONDS)
    return stored


async def update_pending(ctx: AuthContext, request: PendingAuthorization) -> None:
    """Stores a changed request under its id (e.g. marked consented), keeping its expiry."""
    await ctx.redis.set(_key(ctx, request.id), json.dumps(asdict(request)), xx=True, keepttl=True)


async def load_pending(ctx: AuthContext, request_id: str | None) -> PendingAuthorization | None:
    """The waiting request; None when the id is unknown, malformed or expired."""
    if not request_id or not request_id.startswith("ar_") or len(request_id) > 64:
        return None
    raw = await ctx.redis.get(_key(ctx, request_id))
    if raw is None:
        return None
    return PendingAuthorization(**json.loads(raw))


async def drop_pending(ctx: AuthContext, request_id: str) -> None:
    """Forgets the request once a code or an error went back to the client."""
    await ctx.redis.delete(_key(ctx, request_id))
