"""Token revocation (RFC 7009).

A refresh token revokes its grant (the grant's session: its access tokens stop at every
api that checks `sid`, and the refresh token is gone). An access token is put on the
denylist by its `jti` until it expires (plus the verification leeway), so introspection
answers `active: false` and userinfo refuses it; a user's access token also revokes its
grant. That covers the access tokens of client credentials too, which have no grant.
Unknown, malformed, expired or already revoked tokens, and tokens of another client, revoke
nothing and are answered the same (200): a client cannot probe tokens."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import InvalidToken
from ..sessions import REFRESH_PREFIX, ClientInfo
from ..tokens import LEEWAY_SECONDS, AccessClaims, verify_access_token
from .clients import AuthenticatedClient

if TYPE_CHECKING:
    from ..context import AuthContext


def denylist_key(ctx: AuthContext, jti: str) -> str:
    return ctx.rkey("oidc-revoked-jti", jti)


async def denylist(ctx: AuthContext, claims: AccessClaims) -> bool:
    """Records the access token's jti as revoked until the token expires (plus the leeway
    verifiers allow, by the ctx clock); whether it was not recorded already."""
    remaining = claims.exp + LEEWAY_SECONDS - ctx.clock().timestamp()
    if remaining <= 0:
        return False
    added = await ctx.redis.set(
        denylist_key(ctx, claims.jti), claims.client_id or "", px=max(1000, math.ceil(remaining * 1000)), nx=True
    )
    return bool(added)


async def denylisted(ctx: AuthContext, jti: str) -> bool:
    """Whether the access token of this jti was revoked (RFC 7009) and has not expired yet."""
    return bool(await ctx.redis.exists(denylist_key(ctx, jti)))


async def revoke(
    ctx: AuthContext,
    client: AuthenticatedClient,
    token: str | None,
    token_type_hint: str | None = None,
    *,
    client_info: ClientInfo | None = None,
) -> bool:
    """Revokes the token when it is this client's (an access token: its jti, and the grant
    behind it if any; a refresh token: its grant); whether anything was revoked now (the
    endpoint answers 200 either way)."""
    if not token or len(token) > 8192:
        return False
    if token.startswith(REFRESH_PREFIX):
        grant = await ctx.sessions.grant_of_token(token)
        if grant is None or grant.client_id != client.client_id:
            return False
        return await ctx.sessions.revoke(grant.session_id, "token revoked by the client", client_info)
    try:
        claims = verify_access_token(
            token, ctx.keys, issuer=ctx.issuer, audience=None, now=ctx.clock(), require_sid=False
        )
    except InvalidToken:
        return False
    if claims.client_id is None or claims.client_id != client.client_id:
        return False
    ended = False
    if claims.sid:
        grant = await ctx.sessions.grant(claims.sid)
        if grant is not None and grant.client_id == client.client_id:
            ended = await ctx.sessions.revoke(grant.session_id, "token revoked by the client", client_info)
    return await denylist(ctx, claims) or ended
