"""Authorization codes (RFC 6749 §4.1.2): random, one use, short-lived, in Redis.

Redis holds only the code's SHA-256 (key `oidc-code:<hash>`) with what it grants as JSON:
the client, the redirect URI, the PKCE challenge, the nonce, the scopes, the user and the
browser session (sid, auth_time, amr). Redeeming is a GETDEL, so a code works once even
when two requests race. A redeemed code is remembered (`oidc-code-used:<hash>`, for
`USED_CODE_MEMORY_SECONDS`) with the grant it made: presenting it again is `invalid_grant`
and revokes that grant (RFC 6749 §4.1.2: "SHOULD revoke ... all tokens previously issued")."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..onetime import token_hash
from .errors import INVALID_GRANT, OAuthError

if TYPE_CHECKING:
    from ..context import AuthContext

USED_CODE_MEMORY_SECONDS = 24 * 3600
"""How long a redeemed code is remembered, to revoke its grant when it comes back."""


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    user_id: str
    scopes: list[str]
    browser_sid: str
    auth_time: int
    """Unix time of the login (the browser session's start)."""
    amr: list[str] = field(default_factory=list)
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    redirect_uri_omitted: bool = False
    """The request had no redirect_uri (the client has one): the token request may omit it."""


def _key(ctx: AuthContext, code: str) -> str:
    return ctx.rkey("oidc-code", token_hash(code))


def _used_key(ctx: AuthContext, code: str) -> str:
    return ctx.rkey("oidc-code-used", token_hash(code))


async def issue_code(ctx: AuthContext, grant: CodeGrant, lifetime: float) -> str:
    """A new code for `grant`, valid `lifetime` seconds."""
    code = secrets.token_urlsafe(32)
    await ctx.redis.set(_key(ctx, code), json.dumps(asdict(grant)), px=max(1, int(lifetime * 1000)))
    return code


async def redeem_code(ctx: AuthContext, code: str) -> CodeGrant:
    """What the code grants, once. An unknown or expired code raises invalid_grant; a code
    redeemed before also revokes the grant it made."""
    if not code or len(code) > 200:
        raise OAuthError(INVALID_GRANT, "the authorization code is invalid")
    raw = await ctx.redis.getdel(_key(ctx, code))
    if raw is None:
        used = await ctx.redis.get(_used_key(ctx, code))
        if used is not None:
            grant_sid = used.decode() if isinstance(used, bytes) else str(used)
            if grant_sid.startswith("ses_"):
                await ctx.sessions.revoke(grant_sid, "authorization code reused")
            else:  # redeemed a moment ago, its grant not made yet: remember_grant revokes it
                await ctx.redis.set(_used_key(ctx, code), "reused", xx=True, keepttl=True)
            raise OAuthError(INVALID_GRANT, "the authorization code was already used; the tokens it gave are revoked")
        raise OAuthError(INVALID_GRANT, "the authorization code is invalid or expired")
    await ctx.redis.set(_used_key(ctx, code), "", ex=USED_CODE_MEMORY_SECONDS)
    return CodeGrant(**json.loads(raw))


async def remember_grant(ctx: AuthContext, code: str, grant_sid: str) -> None:
    """Records the grant a redeemed code made (revoked if the code comes back). When the
    code came back while the grant was being made, the grant is revoked and this raises
    invalid_grant."""
    before = await ctx.redis.set(_used_key(ctx, code), grant_sid, ex=USED_CODE_MEMORY_SECONDS, get=True)
    if before in (b"reused", "reused"):
        await ctx.sessions.revoke(grant_sid, "authorization code reused")
        raise OAuthError(INVALID_GRANT, "the authorization code was used twice; its tokens are revoked")
