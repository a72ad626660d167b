"""The token endpoint on the real Redis and MongoDB-wire server: the code exchange (PKCE,
redirect URI, client binding, one use), ID tokens verified with PyJWT against the JWKS,
refresh token rotation and reuse, and client credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import timedelta
from typing import Any

import jwt
import pytest
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet as JoseKeySet
from joserfc.jws import JWSRegistry
from oidc_core_support import (
    AUDIENCE,
    ISSUER,
    SECRETS,
    START,
    Clock,
    authorize_code,
    basic,
    exchange,
    new_user,
    signed_in,
    token,
)
from stackyard.auth.context import AuthContext
from stackyard.auth.keys import KeySet, generate_key
from stackyard.auth.oidc.browser import end_browser_session
from stackyard.auth.oidc.clients import authenticate_client
from stackyard.auth.oidc.discovery import metadata
from stackyard.auth.oidc.errors import OAuthError
from stackyard.auth.oidc.introspection import introspect
from stackyard.auth.rotation import rotate
from stackyard.auth.sessions import ClientInfo
from stackyard.auth.tokens import verify_access_token


def id_claims(ctx: AuthContext, id_token: str, audience: str = "webapp") -> dict[str, Any]:
    """The ID token's claims, verified as a relying party would: the JWKS, the kid, iss, aud."""
    header = jwt.get_unverified_header(id_token)
    jwks = jwt.PyJWKSet.from_dict(ctx.keys.jwks(ctx.clock()))
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat", "sub"]},
    )
    assert header["typ"] == "JWT"
    return claims


async def refused(ctx: AuthContext, form: dict[str, str], client_id: str = "webapp") -> OAuthError:
    with pytest.raises(OAuthError) as error:
        await token(ctx, form, client_id)
    return error.value


async def active(ctx: AuthContext, value: str, client_id: str = "webapp") -> bool:
    client = authenticate_client(ctx, authorization=basic(client_id, SECRETS[client_id][0]), form={})
    return bool((await introspect(ctx, client, value))["active"])


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
async def test_a_code_gives_tokens_and_an_id_token_with_the_standard_claims(
    ctx: AuthContext, clock: Clock, alg: Any
) -> None:
    ctx.keys = KeySet((generate_key(alg, START - timedelta(days=1)),))
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user, ["pwd", "otp"])
    clock.advance(30)
    code, verifier, params = await authorize_code(ctx, browser)
    body = await exchange(ctx, code, verifier)
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "id_token", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    assert body["scope"] == "openid email profile offline_access"
    claims = id_claims(ctx, body["id_token"])
    assert claims["sub"] == user.id and claims["aud"] == "webapp" and claims["azp"] == "webapp"
    assert claims["nonce"] == params["nonce"]
    assert claims["auth_time"] == int(START.timestamp()) and claims["iat"] == int(START.timestamp()) + 30
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["sid"] == browser.sid and claims["amr"] == ["pwd", "otp"]
    assert (claims["email"], claims["email_verified"], claims["name"], claims["given_name"]) == (
        "ana@example.com",
        True,
        "Ana Lima",
        "Ana",
    )
    assert claims["updated_at"] == int(user.updated_at.timestamp())
    # at_hash as client libraries compute it (Authlib: SHA-512 for EdDSA, SHA-256 for ES256 and RS256).
    assert claims["at_hash"] == create_half_hash(body["access_token"], alg).decode()
    access = verify_access_token(body["access_token"], ctx.keys, issuer=ISSUER, audience=AUDIENCE, now=clock())
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert (access.sub, access.client_id, access.scope) == (user.id, "webapp", body["scope"])
    assert access.sid.startswith("ses_") and access.sid != browser.sid


async def test_an_rs256_id_token_verifies_with_joserfc_against_the_jwks_and_discovery(
    ctx: AuthContext, clock: Clock
) -> None:
    """A relying party that knows only RS256 (express-openid-connect, next-auth 4, AWS ALB):
    discovery names RS256, the JWKS has the RSA key, and Authlib's joserfc verifies the ID
    token with exactly that algorithm; at_hash is the left half of SHA-256."""
    ctx.keys = KeySet((generate_key("RS256", START - timedelta(days=1)),))
    document = metadata(ctx)
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user, ["pwd"])
    code, verifier, params = await authorize_code(ctx, browser)
    body = await exchange(ctx, code, verifier)
    jwks = JoseKeySet.import_key_set(ctx.keys.jwks(clock()))
    (jwk,) = ctx.keys.jwks(clock())["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    decoded = jose_jwt.decode(body["id_token"], jwks, registry=JWSRegistry(algorithms=["RS256"]))
    assert decoded.header == {"alg": "RS256", "kid": jwk["kid"], "typ": "JWT"}
    claims = jose_jwt.JWTClaimsRegistry(
        now=int(clock().timestamp()),
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "webapp"},
        sub={"essential": True, "value": user.id},
        nonce={"essential": True, "value": params["nonce"]},
    )
    claims.validate(decoded.claims)
    digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
    assert decoded.claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # joserfc refuses it under any other algorithm: no downgrade or confusion on the relying party's side.
    for other in (["EdDSA"], ["HS256"], ["RS512"]):
        with pytest.raises(JoseError):
            jose_jwt.decode(body["id_token"], jwks, registry=JWSRegistry(algorithms=other))
    # The access token issued alongside is RS256 as well, and the provider verifies it.
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"
    assert verify_access_token(body["access_token"], ctx.keys, issuer=ISSUER, audience=AUDIENCE, now=clock()).sub


async def test_discovery_lists_both_algorithms_while_a_switch_to_rs256_is_published_ahead(
    ctx: AuthContext, clock: Clock
) -> None:
    """The Stack changes EdDSA to RS256: discovery follows the published keys, so it lists
    both while the RSA key waits and the EdDSA key's tokens are valid, then RS256 alone; ID
    tokens switch algorithm at the successor's activation."""
    period, lifetime = timedelta(hours=720), timedelta(minutes=15)
    ctx.keys = KeySet((generate_key("EdDSA", START - timedelta(days=1)),))
    ctx.keys = rotate(
        ctx.keys,
        clock(),
        alg="RS256",
        period=period,
        token_lifetime=lifetime,
        new_key=lambda at: generate_key("RS256", clock(), activates_at=at),
    )
    ed, rs = ctx.keys.keys
    assert metadata(ctx)["id_token_signing_alg_values_supported"] == ["EdDSA", "RS256"]
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user, ["pwd"])
    code, verifier, _ = await authorize_code(ctx, browser)
    assert jwt.get_unverified_header((await exchange(ctx, code, verifier))["id_token"])["alg"] == "EdDSA"
    clock.advance((rs.activates_at - clock()).total_seconds())
    _, browser = await signed_in(ctx, user, ["pwd"])
    code, verifier, _ = await authorize_code(ctx, browser)
    id_token = (await exchange(ctx, code, verifier))["id_token"]
    assert jwt.get_unverified_header(id_token) == {"alg": "RS256", "kid": rs.kid, "typ": "JWT"}
    assert id_claims(ctx, id_token)["sub"] == user.id
    assert ed.retires_at is not None
    clock.advance((ed.retires_at - clock()).total_seconds())
    assert metadata(ctx)["id_token_signing_alg_values_supported"] == ["RS256"]
    # Before the operator made any key, discovery names the Stack's algorithm.
    ctx.keys = KeySet()
    ctx.settings = ctx.settings.model_copy(update={"signing_algorithm": "RS256"})
    assert metadata(ctx)["id_token_signing_alg_values_supported"] == ["RS256"]


async def test_the_id_token_carries_only_the_claims_of_its_scopes(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser, scope="openid", nonce="abc")
    claims = id_claims(ctx, (await exchange(ctx, code, verifier))["id_token"])
    assert not {"email", "email_verified", "name", "updated_at"} & set(claims)


async def test_without_openid_there_is_no_id_token(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser, scope="email")
    body = await exchange(ctx, code, verifier)
    assert "id_token" not in body and body["scope"] == "email"


async def test_a_pkce_mismatch_or_a_missing_verifier_is_invalid_grant(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    for wrong in ("x" * 50, None):
        code, verifier, params = await authorize_code(ctx, browser)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"]}
        if wrong:
            form["code_verifier"] = wrong
        error = await refused(ctx, form)
        assert (error.error, error.status) == ("invalid_grant", 400)
        assert "code_verifier" in error.description
        # The code is gone even though the exchange failed.
        assert (await refused(ctx, form | {"code_verifier": verifier})).error == "invalid_grant"


async def test_the_redirect_uri_must_be_the_one_of_the_request(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser)
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    error = await refused(ctx, form | {"redirect_uri": "https://app.acme.dev/other"})
    assert error.error == "invalid_grant" and "redirect_uri" in error.description
    code, verifier, _ = await authorize_code(ctx, browser)
    assert (
        await refused(ctx, {"grant_type": "authorization_code", "code": code, "code_verifier": verifier})
    ).error == ("invalid_grant")


async def test_a_code_of_another_client_is_refused(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser, "spa")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": "http://127.0.0.1:8400/cb",
    }
    assert (await refused(ctx, form, "webapp")).error == "invalid_grant"


async def test_a_reused_code_is_refused_and_revokes_the_tokens_it_gave(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser)
    body = await exchange(ctx, code, verifier)
    assert await active(ctx, body["access_token"]) and await active(ctx, body["refresh_token"])
    with pytest.raises(OAuthError) as again:
        await exchange(ctx, code, verifier)
    assert again.value.error == "invalid_grant" and "already used" in again.value.description
    assert not await active(ctx, body["access_token"])
    assert not await active(ctx, body["refresh_token"])
    error = await refused(ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert error.error == "invalid_grant"


async def test_a_code_expires_after_its_lifetime(ctx: AuthContext, clock: Clock, redis: Any) -> None:
    ctx.oidc_clients["webapp"] = ctx.oidc_clients["webapp"].model_copy(
        update={
            "token_lifetimes": ctx.oidc_clients["webapp"].token_lifetimes.model_copy(
                update={"authorization_code": "1s"}
            )
        }
    )
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser)
    await asyncio.sleep(1.2)
    with pytest.raises(OAuthError, match="invalid or expired"):
        await exchange(ctx, code, verifier)


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_grant(ctx: AuthContext, clock: Clock) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser)
    first = await exchange(ctx, code, verifier)
    clock.advance(60)
    second = await token(ctx, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert second["refresh_token"] != first["refresh_token"]
    claims = id_claims(ctx, second["id_token"])
    assert claims["sub"] == user.id and claims["auth_time"] == int(START.timestamp()) and "nonce" not in claims
    narrowed = await token(
        ctx, {"grant_type": "refresh_token", "refresh_token": second["refresh_token"], "scope": "openid"}
    )
    assert narrowed["scope"] == "openid"
    error = await refused(
        ctx, {"grant_type": "refresh_token", "refresh_token": narrowed["refresh_token"], "scope": "openid admin"}
    )
    assert error.error == "invalid_scope"
    # The first token again: theft is assumed, the whole grant ends.
    error = await refused(ctx, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert error.error == "invalid_grant" and "already used" in error.description
    assert not await active(ctx, narrowed["refresh_token"])
    assert not await active(ctx, narrowed["access_token"])


async def test_another_clients_refresh_token_is_refused_without_rotating_it(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser, "spa")
    spa = await exchange(ctx, code, verifier, "spa")
    error = await refused(ctx, {"grant_type": "refresh_token", "refresh_token": spa["refresh_token"]}, "webapp")
    assert error.error == "invalid_grant" and "another client" in error.description
    # Still the spa's current token: it refreshes for the spa.
    again = await token(ctx, {"grant_type": "refresh_token", "refresh_token": spa["refresh_token"]}, "spa")
    assert again["refresh_token"] != spa["refresh_token"]


async def test_an_app_sessions_refresh_token_is_not_an_oidc_grant(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    app = await ctx.sessions.start(user, ClientInfo(), ["pwd"])
    error = await refused(ctx, {"grant_type": "refresh_token", "refresh_token": app.refresh_token})
    assert error.error == "invalid_grant"
    # And the other way round: a grant's refresh token is no app session's, nor is the cookie.
    cookie, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser)
    body = await exchange(ctx, code, verifier)
    from stackyard.auth.errors import InvalidToken

    for value in (body["refresh_token"], cookie):
        with pytest.raises(InvalidToken):
            await ctx.sessions.refresh(value, ClientInfo())


async def test_the_grant_without_offline_access_ends_with_the_browser_session(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    cookie, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser, scope="openid email")
    online = await exchange(ctx, code, verifier)
    code, verifier, _ = await authorize_code(ctx, browser)
    offline = await exchange(ctx, code, verifier)
    await end_browser_session(ctx, cookie, ClientInfo())
    assert not await active(ctx, online["access_token"])
    error = await refused(ctx, {"grant_type": "refresh_token", "refresh_token": online["refresh_token"]})
    assert error.error == "invalid_grant"
    assert await active(ctx, offline["access_token"])
    assert "access_token" in await token(
        ctx, {"grant_type": "refresh_token", "refresh_token": offline["refresh_token"]}
    )


async def test_a_browser_session_that_expired_ends_its_online_grants_at_refresh(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser, scope="openid")
    body = await exchange(ctx, code, verifier)
    await ctx.redis.delete(ctx.rkey("sess", browser.sid))  # as if its idle timeout passed
    error = await refused(ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert error.error == "invalid_grant" and "session" in error.description
    assert not await active(ctx, body["access_token"])


async def test_a_client_without_the_refresh_grant_gets_no_refresh_token(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    from stackyard.auth.oidc import consents

    await consents.grant(ctx, user.id, "partner", ["openid", "email"])
    code, verifier, _ = await authorize_code(ctx, browser, "partner")
    body = await exchange(ctx, code, verifier, "partner")
    assert "refresh_token" not in body and "id_token" in body
    access = verify_access_token(
        body["access_token"], ctx.keys, issuer=ISSUER, audience="https://partner-api.acme.dev", now=ctx.clock()
    )
    assert access.client_id == "partner"
    error = await refused(ctx, {"grant_type": "refresh_token", "refresh_token": "rt_ses_x.y"}, "partner")
    assert error.error == "unauthorized_client"


async def test_client_credentials_give_a_machine_token_within_its_scopes(ctx: AuthContext) -> None:
    body = await token(ctx, {"grant_type": "client_credentials", "scope": "reports:read"}, "reports-bot")
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"} and body["scope"] == "reports:read"
    claims = verify_access_token(
        body["access_token"], ctx.keys, issuer=ISSUER, audience=AUDIENCE, now=ctx.clock(), require_sid=False
    )
    assert (claims.sub, claims.client_id, claims.sid) == ("reports-bot", "reports-bot", "")
    with pytest.raises(Exception, match="sid"):
        verify_access_token(body["access_token"], ctx.keys, issuer=ISSUER, audience=AUDIENCE, now=ctx.clock())
    everything = await token(ctx, {"grant_type": "client_credentials"}, "reports-bot")
    assert everything["scope"] == "reports:read reports:write"
    error = await refused(ctx, {"grant_type": "client_credentials", "scope": "reports:delete"}, "reports-bot")
    assert error.error == "invalid_scope"
    assert (await refused(ctx, {"grant_type": "client_credentials"}, "webapp")).error == "unauthorized_client"


async def test_unknown_or_missing_grant_types(ctx: AuthContext) -> None:
    assert (await refused(ctx, {"grant_type": "password"})).error == "unsupported_grant_type"
    assert (await refused(ctx, {})).error == "invalid_request"


async def test_two_refreshes_racing_with_one_token_cannot_both_win(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser)
    body = await exchange(ctx, code, verifier)
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    results = await asyncio.gather(token(ctx, form), token(ctx, form), return_exceptions=True)
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, OAuthError)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].error == "invalid_grant"


async def test_a_code_redeemed_twice_at_once_leaves_no_live_tokens(ctx: AuthContext) -> None:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser)
    results = await asyncio.gather(exchange(ctx, code, verifier), exchange(ctx, code, verifier), return_exceptions=True)
    errors = [r for r in results if isinstance(r, OAuthError)]
    assert errors and all(e.error == "invalid_grant" for e in errors)
    for body in (r for r in results if isinstance(r, dict)):
        assert not await active(ctx, body["access_token"])
        assert not await active(ctx, body["refresh_token"])
