"""The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6; OpenID Connect Core §3.1.3).

- `authorization_code`: the code (one use, bound to the client and the redirect URI) and
  its PKCE verifier (S256) give an access token, an ID token (scope openid) and, when the
  client has the refresh_token grant, a refresh token;
- `refresh_token`: rotation with reuse detection; the token must be the presenting client's
  (checked before anything rotates); a reused one ends the grant;
- `client_credentials`: machine clients get an access token about themselves (sub = client id).

Each user grant is a session of kind "grant" (`Sessions.open_grant`): its id is the access
token's `sid`, so revoking it (revocation, logout, "sign out everywhere", a reused refresh
token or code) stops its access tokens at every api that checks `sid`. Without the
offline_access scope a grant ends with the browser session it came from."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...resources.base import duration_seconds
from ..errors import InvalidToken, RefreshTokenReused
from ..sessions import ClientInfo, GrantOfAnotherClient
from ..tokens import issue_client_access_token
from .browser import tie_grant
from .clients import AuthenticatedClient
from .codes import redeem_code, remember_grant
from .errors import (
    INVALID_GRANT,
    INVALID_REQUEST,
    INVALID_SCOPE,
    UNAUTHORIZED_CLIENT,
    UNSUPPORTED_GRANT_TYPE,
    OAuthError,
)
from .id_tokens import issue_id_token

if TYPE_CHECKING:
    from ...resources.oidc import OIDCClientSpec
    from ..context import AuthContext
    from ..users import UserRecord

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def access_lifetime(ctx: AuthContext, spec: OIDCClientSpec) -> int:
    return int(duration_seconds(spec.token_lifetimes.access_token or ctx.settings.access_token_lifetime))


def refresh_lifetime(ctx: AuthContext, spec: OIDCClientSpec) -> float:
    return duration_seconds(spec.token_lifetimes.refresh_token or ctx.settings.refresh_token_lifetime)


def refresh_idle(ctx: AuthContext, spec: OIDCClientSpec) -> float:
    return duration_seconds(spec.token_lifetimes.refresh_token_idle or ctx.settings.session_idle_timeout)


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def verifier_matches(verifier: str | None, challenge: str | None) -> bool:
    """Whether the code_verifier is well formed (43-128 unreserved characters) and hashes to
    the challenge; with no challenge, only a missing verifier matches (no PKCE downgrade)."""
    if challenge is None:
        return verifier is None
    if verifier is None or not 43 <= len(verifier) <= 128 or not set(verifier) <= VERIFIER_CHARS:
        return False
    return hmac.compare_digest(s256(verifier), challenge)


def _scopes(value: str | None) -> list[str]:
    return list(dict.fromkeys((value or "").split()))


async def token_request(
    ctx: AuthContext, client: AuthenticatedClient, form: Mapping[str, str], *, client_info: ClientInfo
) -> dict[str, Any]:
    """The token endpoint: the JSON response for an authenticated client's request. Raises
    OAuthError (invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type,
    invalid_scope)."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError(INVALID_REQUEST, "grant_type is required")
    if grant_type not in GRANT_TYPES:
        raise OAuthError(UNSUPPORTED_GRANT_TYPE, f"grant_type {grant_type[:60]!r} is not supported")
    if grant_type not in client.spec.allowed_grants():
        raise OAuthError(UNAUTHORIZED_CLIENT, f"this client may not use the {grant_type} grant")
    if grant_type == "authorization_code":
        return await authorization_code(ctx, client, form, client_info=client_info)
    if grant_type == "refresh_token":
        return await refresh_token(ctx, client, form, client_info=client_info)
    return client_credentials(ctx, client, form)


async def authorization_code(
    ctx: AuthContext, client: AuthenticatedClient, form: Mapping[str, str], *, client_info: ClientInfo
) -> dict[str, Any]:
    code = form.get("code")
    if not code:
        raise OAuthError(INVALID_REQUEST, "code is required")
    grant = await redeem_code(ctx, code)
    if not hmac.compare_digest(grant.client_id.encode(), client.client_id.encode()):
        raise OAuthError(INVALID_GRANT, "the authorization code was issued to another client")
    redirect_uri = form.get("redirect_uri")
    if redirect_uri is None and not grant.redirect_uri_omitted:
        raise OAuthError(INVALID_GRANT, "redirect_uri is required (it was in the authorization request)")
    if redirect_uri is not None and redirect_uri != grant.redirect_uri:
        raise OAuthError(INVALID_GRANT, "redirect_uri is not the one of the authorization request")
    if not verifier_matches(form.get("code_verifier"), grant.code_challenge):
        raise OAuthError(INVALID_GRANT, "code_verifier does not match the code_challenge (PKCE)")
    user = await ctx.users.by_id(grant.user_id)
    if user is None or user.disabled:
        raise OAuthError(INVALID_GRANT, "the user's account is disabled or deleted")
    if not await ctx.sessions.alive(grant.browser_sid):
        raise OAuthError(INVALID_GRANT, "the user signed out before the code was redeemed")
    spec = client.spec
    scopes = [s for s in grant.scopes if s in spec.scopes]
    with_refresh = "refresh_token" in spec.allowed_grants()
    offline = with_refresh and "offline_access" in scopes
    lifetime = refresh_lifetime(ctx, spec) if with_refresh else access_lifetime(ctx, spec)
    idle = refresh_idle(ctx, spec) if with_refresh else access_lifetime(ctx, spec)
    sid, refresh = await ctx.sessions.open_grant(
        user,
        client_info,
        grant.amr,
        client_id=client.client_id,
        scopes=scopes,
        browser_sid=grant.browser_sid,
        offline=offline,
        auth_time=grant.auth_time,
        lifetime=lifetime,
        idle=idle,
    )
    await remember_grant(ctx, code, sid)
    if not offline:
        await tie_grant(ctx, grant.browser_sid, sid, lifetime)
    return _user_tokens(
        ctx,
        client,
        user,
        scopes,
        grant_sid=sid,
        browser_sid=grant.browser_sid,
        auth_time=grant.auth_time,
        amr=grant.amr,
        nonce=grant.nonce,
        refresh=refresh if with_refresh else None,
    )


def _user_tokens(
    ctx: AuthContext,
    client: AuthenticatedClient,
    user: UserRecord,
    scopes: list[str],
    *,
    grant_sid: str,
    browser_sid: str,
    auth_time: int,
    amr: list[str],
    nonce: str | None,
    refresh: str | None,
) -> dict[str, Any]:
    body = _access_token(ctx, client, subject=user.id, scopes=scopes, sid=grant_sid)
    if "openid" in scopes:
        body["id_token"] = issue_id_token(
            ctx,
            client_id=client.client_id,
            user=user,
            scopes=scopes,
            auth_time=auth_time,
            sid=browser_sid,
            amr=amr,
            lifetime=int(duration_seconds(client.spec.token_lifetimes.id_token)),
            nonce=nonce,
            access_token=body["access_token"],
        )
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


async def refresh_token(
    ctx: AuthContext, client: AuthenticatedClient, form: Mapping[str, str], *, client_info: ClientInfo
) -> dict[str, Any]:
    token = form.get("refresh_token")
    if not token:
        raise OAuthError(INVALID_REQUEST, "refresh_token is required")
    try:
        rotated = await ctx.sessions.rotate_grant(token, client_info, client_id=client.client_id)
    except GrantOfAnotherClient:
        raise OAuthError(INVALID_GRANT, "the refresh token was issued to another client") from None
    except RefreshTokenReused:
        raise OAuthError(INVALID_GRANT, "the refresh token was already used; the grant is revoked") from None
    except InvalidToken as exc:
        raise OAuthError(INVALID_GRANT, exc.detail) from None
    granted = [s for s in rotated.scopes if s in client.spec.scopes]
    asked = _scopes(form.get("scope"))
    if asked and not set(asked) <= set(granted):
        raise OAuthError(INVALID_SCOPE, "scope may only narrow the scopes granted")
    scopes = asked or granted
    return _user_tokens(
        ctx,
        client,
        rotated.user,
        scopes,
        grant_sid=rotated.session_id,
        browser_sid=rotated.browser_sid,
        auth_time=rotated.auth_time,
        amr=rotated.amr,
        nonce=None,
        refresh=rotated.refresh_token,
    )


def client_credentials(ctx: AuthContext, client: AuthenticatedClient, form: Mapping[str, str]) -> dict[str, Any]:
    if client.method == "none":
        raise OAuthError.invalid_client("client credentials need a client secret", basic=False)
    spec = client.spec
    asked = _scopes(form.get("scope"))
    unknown = [s for s in asked if s not in spec.scopes or s in ("openid", "offline_access")]
    if unknown:
        raise OAuthError(INVALID_SCOPE, f"scope not allowed for this client: {' '.join(unknown)[:200]}")
    scopes = asked or [s for s in spec.scopes if s not in ("openid", "offline_access")]
    return _access_token(ctx, client, subject=client.client_id, scopes=scopes)


def _access_token(
    ctx: AuthContext, client: AuthenticatedClient, *, subject: str, scopes: list[str], sid: str | None = None
) -> dict[str, Any]:
    """The token response's access token for `client` (its audience and lifetime) with `scopes`:
    access_token, token_type, expires_in and scope (RFC 6749 §5.1)."""
    scope = " ".join(scopes)
    access, expires_in = issue_client_access_token(
        ctx,
        subject=subject,
        client_id=client.client_id,
        scope=scope,
        audience=client.spec.audience,
        lifetime=access_lifetime(ctx, client.spec),
        sid=sid,
    )
    return {"access_token": access, "token_type": "Bearer", "expires_in": expires_in, "scope": scope}
