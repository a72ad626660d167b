"""ID tokens (OpenID Connect Core §2): a JWT for the client saying who signed in, when and how.

Claims: iss, sub (the user id), aud (the client id), azp, exp (`tokenLifetimes.idToken`),
iat, auth_time, nonce (when the request had one), sid (the provider's browser session),
amr, at_hash (with the access token issued alongside), and by scope: email and
email_verified (`email`); name, given_name, family_name, picture, locale and updated_at
(`profile`). Signed like access tokens with the Stack's current key (EdDSA, ES256 or RS256,
`kid` header), but `typ` JWT, so one can never pass for the other.

`at_hash` is the left half of the access token's hash, base64url: SHA-256 for ES256 and
RS256, SHA-512 for EdDSA (Ed25519), as the OpenID Foundation and client libraries do it."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import jwt

from ..errors import AuthNotConfigured
from ..keys import NoSigningKey
from ..tokens import ALGORITHMS, LEEWAY_SECONDS
from .errors import INVALID_REQUEST, OAuthError

if TYPE_CHECKING:
    from ..context import AuthContext
    from ..users import UserRecord

ID_TOKEN_TYPE = "JWT"
PROFILE_CLAIMS = {
    "name": "name",
    "given_name": "givenName",
    "family_name": "familyName",
    "picture": "picture",
    "locale": "locale",
}


def token_hash(value: str, alg: str) -> str:
    """at_hash (or c_hash) of `value` for a token signed with `alg` (OIDC Core §3.1.3.6: the
    hash of the JWS algorithm, SHA-256 for ES256 and RS256; SHA-512 for Ed25519)."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def user_claims(user: UserRecord, scopes: list[str]) -> dict[str, Any]:
    """The claims about the user that the scopes allow (email, profile); never sub."""
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    if "profile" in scopes:
        for claim, field in PROFILE_CLAIMS.items():
            value = user.profile.get(field)
            if value:
                claims[claim] = value
        claims["updated_at"] = int(user.updated_at.timestamp())
    return claims


def issue_id_token(
    ctx: AuthContext,
    *,
    client_id: str,
    user: UserRecord,
    scopes: list[str],
    auth_time: int,
    sid: str,
    amr: list[str],
    lifetime: int,
    nonce: str | None = None,
    access_token: str | None = None,
) -> str:
    """A signed ID token for `client_id` about `user`."""
    now = ctx.clock()
    try:
        key = ctx.keys.signing_key(now)
    except NoSigningKey as exc:
        raise AuthNotConfigured(str(exc)) from None
    issued = int(now.timestamp())
    claims: dict[str, Any] = user_claims(user, scopes) | {
        "iss": ctx.issuer,
        "sub": user.id,
        "aud": client_id,
        "azp": client_id,
        "iat": issued,
        "exp": issued + lifetime,
        "auth_time": auth_time,
        "sid": sid,
        "amr": list(amr),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["at_hash"] = token_hash(access_token, key.alg)
    return jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": ID_TOKEN_TYPE})


def verify_id_token_hint(ctx: AuthContext, token: str) -> dict[str, Any]:
    """The claims of an ID token this provider issued (signature by a published key, iss);
    expired ones are accepted (a logout usually comes after the token expired). The caller
    checks `aud` against the client. Raises OAuthError invalid_request."""

    def refuse(why: str) -> OAuthError:
        return OAuthError(INVALID_REQUEST, f"id_token_hint {why}")

    if not token or len(token) > 8192 or token.count(".") != 2:
        raise refuse("is malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise refuse("is malformed") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS or not isinstance(kid, str):
        raise refuse("is not an ID token of this provider")
    if header.get("typ", ID_TOKEN_TYPE) != ID_TOKEN_TYPE:
        raise refuse("is not an ID token")
    key = ctx.keys.verification_key(kid, ctx.clock())
    if key is None or key.alg != alg:
        raise refuse("is signed by an unknown or retired key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            issuer=ctx.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud"], "verify_exp": False, "verify_aud": False},
        )
    except jwt.InvalidIssuerError:
        raise refuse("is from another issuer") from None
    except jwt.PyJWTError:
        raise refuse("does not verify") from None
    return claims


def audiences(claims: dict[str, Any]) -> list[str]:
    """The `aud` of verified claims as a list."""
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]
