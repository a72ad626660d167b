"""Revocation (RFC 7009) of access tokens by their jti: a machine client's token (no grant)
and a user's token become inactive at introspection and refused at userinfo; another client
revokes nothing; the denylist entry lasts as long as the token (by the ctx clock). Real Redis
and MongoDB-wire server."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
import pytest
from oidc_core_support import SECRETS, Clock, authorize_code, basic, exchange, new_user, signed_in, token
from stackyard.auth.context import AuthContext
from stackyard.auth.oidc.clients import AuthenticatedClient, authenticate_client
from stackyard.auth.oidc.errors import BearerError, OAuthError
from stackyard.auth.oidc.introspection import introspect
from stackyard.auth.oidc.revocation import denylist, denylist_key, denylisted, revoke
from stackyard.auth.oidc.userinfo import userinfo
from stackyard.auth.tokens import LEEWAY_SECONDS, verify_access_token

LIFETIME = 15 * 60  # the default access token lifetime


def client(ctx: AuthContext, client_id: str = "webapp") -> AuthenticatedClient:
    if client_id in SECRETS:
        return authenticate_client(ctx, authorization=basic(client_id, SECRETS[client_id][0]), form={})
    return authenticate_client(ctx, authorization=None, form={"client_id": client_id})


async def user_tokens(ctx: AuthContext, client_id: str = "webapp") -> dict[str, Any]:
    user = await new_user(ctx)
    _, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser, client_id)
    return await exchange(ctx, code, verifier, client_id)


async def machine_token(ctx: AuthContext) -> str:
    body = await token(ctx, {"grant_type": "client_credentials"}, "reports-bot")
    access: str = body["access_token"]
    return access


def jti(access_token: str) -> str:
    value: str = jwt.decode(access_token, options={"verify_signature": False})["jti"]
    return value


async def test_a_revoked_machine_token_is_inactive(ctx: AuthContext) -> None:
    bot = client(ctx, "reports-bot")
    access, other = await machine_token(ctx), await machine_token(ctx)
    assert (await introspect(ctx, bot, access))["active"] is True
    assert await revoke(ctx, bot, access, "access_token") is True
    assert await introspect(ctx, bot, access) == {"active": False}
    assert await denylisted(ctx, jti(access))
    assert await revoke(ctx, bot, access) is False  # again: nothing new, still a success
    assert (await introspect(ctx, bot, other))["active"] is True, "only that token is revoked"


async def test_a_revoked_user_access_token_is_inactive_refused_at_userinfo_and_ends_its_grant(
    ctx: AuthContext,
) -> None:
    body = await user_tokens(ctx)
    assert (await userinfo(ctx, body["access_token"]))["sub"].startswith("usr_")
    assert await revoke(ctx, client(ctx), body["access_token"]) is True
    assert await introspect(ctx, client(ctx), body["access_token"]) == {"active": False}
    with pytest.raises(BearerError, match="revoked") as refused:
        await userinfo(ctx, body["access_token"])
    assert (refused.value.error, refused.value.status) == ("invalid_token", 401)
    assert await denylisted(ctx, jti(body["access_token"]))
    with pytest.raises(OAuthError, match="invalid_grant"):  # the grant ended too (as before)
        await token(ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})


async def test_the_denylist_alone_refuses_a_token_whose_grant_lives(ctx: AuthContext) -> None:
    body = await user_tokens(ctx)
    claims = verify_access_token(body["access_token"], ctx.keys, issuer=ctx.issuer, audience=None, now=ctx.clock())
    assert await denylist(ctx, claims) is True
    assert await introspect(ctx, client(ctx), body["access_token"]) == {"active": False}
    with pytest.raises(BearerError, match="revoked"):
        await userinfo(ctx, body["access_token"])
    assert (await introspect(ctx, client(ctx), body["refresh_token"]))["active"] is True
    renewed = await token(ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert (await introspect(ctx, client(ctx), renewed["access_token"]))["active"] is True
    assert (await userinfo(ctx, renewed["access_token"]))["sub"] == claims.sub


async def test_another_clients_or_unknown_tokens_revoke_nothing(ctx: AuthContext) -> None:
    body = await user_tokens(ctx, "spa")
    access = await machine_token(ctx)
    assert await revoke(ctx, client(ctx), access) is False
    assert await revoke(ctx, client(ctx, "reports-bot"), body["access_token"]) is False
    assert await revoke(ctx, client(ctx), body["access_token"]) is False
    for value in ("", "nonsense", "a.b.c", body["id_token"]):
        assert await revoke(ctx, client(ctx, "reports-bot"), value) is False
    assert not await denylisted(ctx, jti(access)) and not await denylisted(ctx, jti(body["access_token"]))
    assert (await introspect(ctx, client(ctx, "reports-bot"), access))["active"] is True
    assert (await userinfo(ctx, body["access_token"]))["sub"].startswith("usr_")


async def test_the_denylist_entry_lasts_as_long_as_the_token(ctx: AuthContext, clock: Clock) -> None:
    bot = client(ctx, "reports-bot")
    access, later, expired = await machine_token(ctx), await machine_token(ctx), await machine_token(ctx)
    assert await revoke(ctx, bot, access) is True
    ttl = await ctx.redis.pttl(denylist_key(ctx, jti(access)))
    assert (LIFETIME + LEEWAY_SECONDS - 5) * 1000 < ttl <= (LIFETIME + LEEWAY_SECONDS) * 1000
    clock.advance(10 * 60)  # by the ctx clock, 5 minutes of the token's life are left
    assert await revoke(ctx, bot, later) is True
    ttl = await ctx.redis.pttl(denylist_key(ctx, jti(later)))
    assert (5 * 60 + LEEWAY_SECONDS - 5) * 1000 < ttl <= (5 * 60 + LEEWAY_SECONDS) * 1000
    clock.advance(5 * 60 + LEEWAY_SECONDS + 1)  # expired, leeway included: nothing to remember
    assert await revoke(ctx, bot, expired) is False
    assert await ctx.redis.exists(denylist_key(ctx, jti(expired))) == 0


async def test_a_denylist_entry_goes_away_when_its_token_expires(ctx: AuthContext, clock: Clock) -> None:
    bot = client(ctx, "reports-bot")
    access = await machine_token(ctx)
    clock.advance(LIFETIME + LEEWAY_SECONDS - 0.5)  # half a second of life left, leeway included
    claims = verify_access_token(access, ctx.keys, issuer=ctx.issuer, audience=None, now=ctx.clock(), require_sid=False)
    assert await revoke(ctx, bot, access) is True
    assert await denylisted(ctx, claims.jti)
    await asyncio.sleep(1.2)  # the shortest entry is kept 1 s (Redis expires it in real time)
    assert not await denylisted(ctx, claims.jti)
