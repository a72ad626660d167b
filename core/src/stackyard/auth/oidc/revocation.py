"""Token revocation (RFC 7009).

A refresh token revokes its grant (the grant's session: its access tokens stop at every
api that checks `sid`, and the refresh token is gone); an access token of a user's grant
revokes that grant too. Unknown, malformed, expired or already revoked tokens, and tokens
of another client, revoke nothing and are answered the same (200): a client cannot probe
tokens. Access tokens of client credentials carry no grant: they stay valid until they
expire (keep their lifetime short)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidToken
from ..sessions import REFRESH_PREFIX, ClientInfo
from ..tokens import verify_access_token
from .clients import AuthenticatedClient

if TYPE_CHECKING:
    from ..context import AuthContext


async def revoke(
    ctx: AuthContext,
    client: AuthenticatedClient,
    token: str | None,
    token_type_hint: str | None = None,
    *,
    client_info: ClientInfo | None = None,
) -> bool:
    """Revokes the grant behind the token when it is this client's; whether one was revoked
    (the endpoint answers 200 either way)."""
    if not token or len(token) > 8192:
        return False
    if token.startswith(REFRESH_PREFIX):
        grant = await ctx.sessions.grant_of_token(token)
        if grant is None or grant.client_id != client.client_id:
            return False
        return await ctx.sessions.revoke(grant.session_id, "token revoked by the client", client_info)
    try:
        claims = verify_access_token(token, ctx.keys, issuer=ctx.issuer, audience=None, now=ctx.clock())
    except InvalidToken:
        return False
    if claims.client_id != client.client_id:
        return False
    grant = await ctx.sessions.grant(claims.sid)
    if grant is None or grant.client_id != client.client_id:
        return False
    return await ctx.sessions.revoke(grant.session_id, "token revoked by the client", client_info)
