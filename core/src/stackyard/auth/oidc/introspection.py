"""Token introspection (RFC 7662) for confidential and machine clients.

A token is active when it is one of this provider's, unexpired, not revoked (its grant
lives) and issued to the client asking: a client learns nothing about other clients'
tokens (`{"active": false}`, as for unknown or malformed ones). Refresh tokens are
introspected too (only the current one of a grant is active). An access token revoked at
the revocation endpoint (its jti is on the denylist) is inactive, with or without a grant
(client credentials have none)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidToken
from ..sessions import REFRESH_PREFIX
from ..tokens import verify_access_token
from .clients import AuthenticatedClient
from .errors import OAuthError
from .revocation import denylisted

if TYPE_CHECKING:
    from ..context import AuthContext

INACTIVE: dict[str, Any] = {"active": False}


async def introspect(
    ctx: AuthContext, client: AuthenticatedClient, token: str | None, token_type_hint: str | None = None
) -> dict[str, Any]:
    """The RFC 7662 response. Public clients are refused (invalid_client); the hint only
    orders the lookups (both kinds are tried)."""
    if client.method == "none":
        raise OAuthError.invalid_client("introspection needs client authentication with a secret", basic=False)
    if not token or len(token) > 8192:
        return dict(INACTIVE)
    if token.startswith(REFRESH_PREFIX):
        return await _refresh(ctx, client, token)
    return await _access(ctx, client, token)


async def _refresh(ctx: AuthContext, client: AuthenticatedClient, token: str) -> dict[str, Any]:
    grant = await ctx.sessions.grant_of_token(token)
    if grant is None or grant.client_id != client.client_id:
        return dict(INACTIVE)
    return {
        "active": True,
        "token_type": "refresh_token",
        "scope": " ".join(grant.scopes),
        "client_id": grant.client_id,
        "sub": grant.user_id,
        "exp": int(grant.expires_at.timestamp()),
        "iss": ctx.issuer,
        "sid": grant.session_id,
    }


async def _access(ctx: AuthContext, client: AuthenticatedClient, token: str) -> dict[str, Any]:
    try:
        claims = verify_access_token(
            token, ctx.keys, issuer=ctx.issuer, audience=None, now=ctx.clock(), leeway=0, require_sid=False
        )
    except InvalidToken:
        return dict(INACTIVE)
    if claims.client_id != client.client_id:
        return dict(INACTIVE)
    if claims.sid:
        grant = await ctx.sessions.grant(claims.sid)
        if grant is None or grant.client_id != client.client_id:
            return dict(INACTIVE)
    if await denylisted(ctx, claims.jti):
        return dict(INACTIVE)
    body: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer",
        "scope": claims.scope or "",
        "client_id": claims.client_id,
        "sub": claims.sub,
        "exp": claims.exp,
        "iat": claims.iat,
        "nbf": claims.raw.get("nbf", claims.iat),
        "aud": claims.raw["aud"],
        "iss": ctx.issuer,
        "jti": claims.jti,
    }
    if claims.sid:
        body["sid"] = claims.sid
    return body
