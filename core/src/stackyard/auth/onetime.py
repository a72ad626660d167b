"""Single-use, expiring tokens (verification, reset and magic links, MFA and OAuth state).

The token is 32 random bytes (base64url); Redis holds only its SHA-256 under the purpose,
with the subject as JSON and a TTL. `consume` is a GETDEL: a token works once, and a
leaked Redis dump holds no usable token."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import AuthContext


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class OneTimeTokens:
    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def _key(self, purpose: str, token: str) -> str:
        return self.ctx.rkey("once", purpose, token_hash(token))

    async def issue(self, purpose: str, subject: dict[str, Any], ttl_seconds: float) -> str:
        token = secrets.token_urlsafe(32)
        await self.ctx.redis.set(self._key(purpose, token), json.dumps(subject), px=max(1, int(ttl_seconds * 1000)))
        return token

    async def consume(self, purpose: str, token: str) -> dict[str, Any] | None:
        """The subject, once; None when the token is unknown, expired or already used."""
        if not token or len(token) > 200:
            return None
        raw = await self.ctx.redis.getdel(self._key(purpose, token))
        if raw is None:
            return None
        subject: dict[str, Any] = json.loads(raw)
        return subject

    async def peek(self, purpose: str, token: str) -> dict[str, Any] | None:
        """The subject without using the token (to validate before a step that may fail)."""
        if not token or len(token) > 200:
            return None
        raw = await self.ctx.redis.get(self._key(purpose, token))
        return json.loads(raw) if raw is not None else None
