"""Access tokens: short-lived JWTs (RFC 9068 profile, `typ` at+jwt) signed with the Stack's
current key (EdDSA, ES256 or RS256, with `kid`), verifiable by anyone with the JWKS.

Verification accepts only the asymmetric algorithm of a published key named by `kid`, so
`alg: none`, HS256 signed with the public key (an RSA key's PEM included), another
algorithm of the same key type (RS384, PS256), unknown or retired keys and tampered
payloads all fail; expiry and not-before are checked against the caller's clock."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jwt

from ..resources.base import duration_seconds
from .errors import AuthNotConfigured, InvalidToken
from .keys import KeySet, NoSigningKey

if TYPE_CHECKING:
    from .context import AuthContext
    from .users import UserRecord

ACCESS_TOKEN_TYPE = "at+jwt"
ALGORITHMS = ("EdDSA", "ES256", "RS256")
LEEWAY_SECONDS = 30
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "sid", "jti")


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    sid: str
    email: str | None
    email_verified: bool
    name: str | None
    amr: list[str]
    orgs: dict[str, str]
    exp: int
    iat: int
    jti: str
    raw: dict[str, Any] = field(repr=False)
    client_id: str | None = None
    """The OIDC client the token was issued to (RFC 9068); None for the api's own sessions."""
    scope: str | None = None
    """The OAuth scopes granted, space-separated (OIDC clients' tokens)."""


def issue_access_token(
    ctx: AuthContext, user: UserRecord, session_id: str, amr: list[str], orgs: dict[str, str] | None = None
) -> tuple[str, int]:
    """(token, lifetime in seconds)."""
    now = ctx.clock()
    try:
        key = ctx.keys.signing_key(now)
    except NoSigningKey as exc:
        raise AuthNotConfigured(str(exc)) from None
    lifetime = int(duration_seconds(ctx.settings.access_token_lifetime))
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": ctx.issuer,
        "sub": user.id,
        "aud": ctx.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": secrets.token_urlsafe(12),
        "sid": session_id,
        "email": user.email,
        "email_verified": user.email_verified,
        "amr": amr,
        "orgs": orgs or {},
    }
    if user.name:
        claims["name"] = user.name
    token = jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE})
    return token, lifetime


def issue_client_access_token(
    ctx: AuthContext,
    *,
    subject: str,
    client_id: str,
    scope: str,
    audience: str | None = None,
    lifetime: int | None = None,
    sid: str | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """(token, lifetime in seconds) of an access token issued to an OIDC client (RFC 9068:
    `typ` at+jwt, claims iss, sub, aud, exp, iat, nbf, jti, client_id, scope, and `sid` when
    a user's grant backs it). `subject` is the user id, or the client id for client
    credentials; `audience` defaults to the Stack's, `lifetime` to its accessTokenLifetime."""
    now = ctx.clock()
    try:
        key = ctx.keys.signing_key(now)
    except NoSigningKey as exc:
        raise AuthNotConfigured(str(exc)) from None
    seconds = lifetime if lifetime is not None else int(duration_seconds(ctx.settings.access_token_lifetime))
    issued = int(now.timestamp())
    claims: dict[str, Any] = dict(extra or {}) | {
        "iss": ctx.issuer,
        "sub": subject,
        "aud": audience or ctx.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + seconds,
        "jti": secrets.token_urlsafe(12),
        "client_id": client_id,
        "scope": scope,
    }
    if sid is not None:
        claims["sid"] = sid
    token = jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE})
    return token, seconds


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read from the first segment alone (PyJWT's get_unverified_header
    checks all three segments, and decode does that again)."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError):
        raise InvalidToken("the access token is malformed") from None
    if not isinstance(header, dict) or token.count(".") != 2:
        raise InvalidToken("the access token is malformed")
    return header


def verify_access_token(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    audience: str | None,
    now: datetime,
    leeway: int = LEEWAY_SECONDS,
    require_sid: bool = True,
) -> AccessClaims:
    """The claims of a valid access token. `audience` None accepts any audience (the OpenID
    Provider's own endpoints: userinfo, introspection); `require_sid` False also accepts
    tokens without a session (client credentials), whose `sid` is then ""."""
    header = _header(token)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise InvalidToken(f"algorithm {str(alg)[:40]!r} is not accepted")
    if header.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("not an access token (typ must be at+jwt)")
    if not isinstance(kid, str):
        raise InvalidToken("the token names no signing key (kid)")
    key = keys.verification_key(kid, now)
    if key is None:
        raise InvalidToken("the token's signing key is unknown or retired")
    if key.alg != alg:
        raise InvalidToken(f"key {kid} does not sign with {alg}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            audience=audience,
            issuer=issuer,
            options={
                "require": [c for c in REQUIRED_CLAIMS if require_sid or c != "sid"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": audience is not None,
            },
        )
    except jwt.InvalidAudienceError:
        raise InvalidToken("the token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("the token is from another issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"the token has no {exc.claim} claim") from None
    except jwt.PyJWTError:
        raise InvalidToken("the token's signature does not verify") from None
    moment = now.timestamp()
    if not isinstance(claims["exp"], int) or moment > claims["exp"] + leeway:
        raise InvalidToken("the access token has expired")
    if moment + leeway < claims.get("nbf", claims["iat"]):
        raise InvalidToken("the access token is not valid yet")
    return AccessClaims(
        sub=claims["sub"],
        sid=claims.get("sid") or "",
        email=claims.get("email"),
        email_verified=bool(claims.get("email_verified")),
        name=claims.get("name"),
        amr=list(claims.get("amr") or []),
        orgs=dict(claims.get("orgs") or {}),
        exp=claims["exp"],
        iat=claims["iat"],
        jti=claims["jti"],
        raw=claims,
        client_id=claims.get("client_id") if isinstance(claims.get("client_id"), str) else None,
        scope=claims.get("scope") if isinstance(claims.get("scope"), str) else None,
    )
