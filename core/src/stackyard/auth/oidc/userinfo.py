"""The userinfo endpoint (OpenID Connect Core §5.3): the signed-in user's claims for a
bearer access token that an OIDC client got with the openid scope, while its grant lives
and the token is not revoked (RFC 7009 denylist)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidToken
from ..tokens import verify_access_token
from .clients import find_client
from .errors import INSUFFICIENT_SCOPE, INVALID_TOKEN, BearerError
from .id_tokens import user_claims
from .revocation import denylisted

if TYPE_CHECKING:
    from ..context import AuthContext


def bearer_token(authorization: str | None, form_token: str | None = None) -> str | None:
    """The access token of an `Authorization: Bearer` header or an `access_token` form
    field (RFC 6750 §2.2); both at once is refused."""
    header = None
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            header = value.strip()
    if header and form_token:
        raise BearerError("invalid_request", "send the access token once (header or form, not both)")
    return header or form_token or None


async def userinfo(ctx: AuthContext, token: str | None) -> dict[str, Any]:
    """{"sub", ...claims by scope}. Raises BearerError invalid_token (missing, malformed,
    expired, revoked, not an OIDC client's) or insufficient_scope (no openid)."""
    if not token:
        raise BearerError(INVALID_TOKEN, "an access token is required (Authorization: Bearer)")
    try:
        claims = verify_access_token(token, ctx.keys, issuer=ctx.issuer, audience=None, now=ctx.clock())
    except InvalidToken as exc:
        raise BearerError(INVALID_TOKEN, exc.detail) from None
    if claims.client_id is None:
        raise BearerError(INVALID_TOKEN, "not an access token of an OpenID client")
    if find_client(ctx, claims.client_id) is None:
        raise BearerError(INVALID_TOKEN, "the token's client is disabled or no longer registered")
    scopes = (claims.scope or "").split()
    if "openid" not in scopes:
        raise BearerError(INSUFFICIENT_SCOPE, "the access token lacks the openid scope")
    grant = await ctx.sessions.grant(claims.sid)
    if grant is None or grant.client_id != claims.client_id or grant.user_id != claims.sub:
        raise BearerError(INVALID_TOKEN, "the access token was revoked")
    if await denylisted(ctx, claims.jti):
        raise BearerError(INVALID_TOKEN, "the access token was revoked")
    user = await ctx.users.by_id(claims.sub)
    if user is None or user.disabled:
        raise BearerError(INVALID_TOKEN, "the user's account is disabled or deleted")
    return {"sub": user.id} | user_claims(user, scopes)
