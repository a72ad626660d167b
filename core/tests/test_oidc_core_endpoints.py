"""userinfo, introspection (RFC 7662), revocation (RFC 7009) and RP-initiated logout on the
real Redis and MongoDB-wire server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from oidc_core_support import ISSUER, SECRETS, START, Clock, authorize_code, basic, exchange, new_user, signed_in, token
from stackyard.auth.context import AuthContext
from stackyard.auth.keys import KeySet, generate_key
from stackyard.auth.oidc import logout
from stackyard.auth.oidc.browser import current_browser_session
from stackyard.auth.oidc.clients import AuthenticatedClient, authenticate_client
from stackyard.auth.oidc.errors import BearerError, OAuthError
from stackyard.auth.oidc.introspection import introspect
from stackyard.auth.oidc.revocation import revoke
from stackyard.auth.oidc.userinfo import bearer_token, userinfo
from stackyard.auth.sessions import ClientInfo


def client(ctx: AuthContext, client_id: str = "webapp") -> AuthenticatedClient:
    if client_id in SECRETS:
        return authenticate_client(ctx, authorization=basic(client_id, SECRETS[client_id][0]), form={})
    return authenticate_client(ctx, authorization=None, form={"client_id": client_id})


async def tokens(ctx: AuthContext, client_id: str = "webapp", **extra: str) -> tuple[dict[str, Any], Any, str]:
    """(token response, browser session, cookie) of a signed-in user."""
    user = await new_user(ctx)
    cookie, browser = await signed_in(ctx, user)
    code, verifier, _ = await authorize_code(ctx, browser, client_id, **extra)
    return await exchange(ctx, code, verifier, client_id), browser, cookie


# -- userinfo ---------------------------------------------------------------------------------


async def test_userinfo_gives_the_claims_of_the_scopes(ctx: AuthContext) -> None:
    body, _, _ = await tokens(ctx)
    info = await userinfo(ctx, bearer_token("Bearer " + body["access_token"]))
    assert info["sub"].startswith("usr_")
    assert (info["email"], info["email_verified"], info["name"]) == ("ana@example.com", True, "Ana Lima")
    narrow = await token(
        ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "scope": "openid"}
    )
    assert set(await userinfo(ctx, narrow["access_token"])) == {"sub"}


async def test_userinfo_refuses_missing_expired_revoked_and_scopeless_tokens(ctx: AuthContext, clock: Clock) -> None:
    with pytest.raises(BearerError) as missing:
        await userinfo(ctx, bearer_token(None))
    assert missing.value.status == 401 and missing.value.headers["WWW-Authenticate"].startswith("Bearer error=")
    body, _, _ = await tokens(ctx, scope="email")
    with pytest.raises(BearerError) as scopeless:
        await userinfo(ctx, body["access_token"])
    assert (scopeless.value.error, scopeless.value.status) == ("insufficient_scope", 403)
    body, _, _ = await tokens(ctx)
    await revoke(ctx, client(ctx), body["refresh_token"])
    with pytest.raises(BearerError, match="revoked"):
        await userinfo(ctx, body["access_token"])
    body, _, _ = await tokens(ctx)
    clock.advance(16 * 60)
    with pytest.raises(BearerError, match="expired"):
        await userinfo(ctx, body["access_token"])
    body, _, _ = await tokens(ctx)
    ctx.oidc_clients["webapp"] = ctx.oidc_clients["webapp"].model_copy(update={"enabled": False})
    with pytest.raises(BearerError, match="disabled"):
        await userinfo(ctx, body["access_token"])
    app = await ctx.sessions.start(await new_user(ctx, "bo@example.com"), ClientInfo(), ["pwd"])
    with pytest.raises(BearerError, match="OpenID client"):
        await userinfo(ctx, app.access_token)


def test_a_bearer_token_in_both_header_and_form_is_refused() -> None:
    assert bearer_token("Bearer abc") == "abc" and bearer_token(None, "abc") == "abc"
    assert bearer_token("Basic abc") is None
    with pytest.raises(BearerError):
        bearer_token("Bearer abc", "abc")


# -- introspection ----------------------------------------------------------------------------


async def test_introspection_describes_an_active_access_and_refresh_token(ctx: AuthContext) -> None:
    body, _, _ = await tokens(ctx)
    access = await introspect(ctx, client(ctx), body["access_token"])
    assert access["active"] is True and access["client_id"] == "webapp" and access["iss"] == ISSUER
    assert access["scope"] == body["scope"] and access["token_type"] == "Bearer"
    assert access["sub"].startswith("usr_") and access["exp"] - access["iat"] == 15 * 60
    assert access["aud"] == "https://api.acme.dev"
    refresh = await introspect(ctx, client(ctx), body["refresh_token"], "refresh_token")
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token" and refresh["sub"] == access["sub"]


async def test_introspection_is_inactive_for_expired_revoked_malformed_and_other_clients_tokens(
    ctx: AuthContext, clock: Clock
) -> None:
    body, _, _ = await tokens(ctx)
    for value in ("", "garbage", "a.b.c", "rt_ses_nope.secret", body["id_token"]):
        assert await introspect(ctx, client(ctx), value) == {"active": False}
    assert await introspect(ctx, client(ctx, "reports-bot"), body["access_token"]) == {"active": False}
    assert await introspect(ctx, client(ctx, "reports-bot"), body["refresh_token"]) == {"active": False}
    rotated = await token(ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert await introspect(ctx, client(ctx), body["refresh_token"]) == {"active": False}
    clock.advance(15 * 60 + 1)
    assert await introspect(ctx, client(ctx), rotated["access_token"]) == {"active": False}
    assert (await introspect(ctx, client(ctx), rotated["refresh_token"]))["active"] is True


async def test_introspection_of_a_machine_token_and_by_a_public_client(ctx: AuthContext) -> None:
    machine = await token(ctx, {"grant_type": "client_credentials"}, "reports-bot")
    answer = await introspect(ctx, client(ctx, "reports-bot"), machine["access_token"])
    assert answer["active"] is True and answer["sub"] == "reports-bot" and "sid" not in answer
    with pytest.raises(OAuthError, match="invalid_client"):
        await introspect(ctx, client(ctx, "spa"), machine["access_token"])


async def test_a_token_signed_by_a_retired_or_foreign_key_is_inactive(ctx: AuthContext, clock: Clock) -> None:
    body, _, _ = await tokens(ctx)
    ctx.keys = KeySet((generate_key("EdDSA", START - timedelta(days=1)),))
    assert await introspect(ctx, client(ctx), body["access_token"]) == {"active": False}


# -- revocation -------------------------------------------------------------------------------


async def test_revoking_a_refresh_token_ends_the_grant(ctx: AuthContext) -> None:
    body, _, _ = await tokens(ctx)
    assert await revoke(ctx, client(ctx), body["refresh_token"], "refresh_token") is True
    assert await introspect(ctx, client(ctx), body["access_token"]) == {"active": False}
    with pytest.raises(OAuthError, match="invalid_grant"):
        await token(ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert await revoke(ctx, client(ctx), body["refresh_token"]) is False  # again: nothing, still a success


async def test_revoking_an_access_token_ends_its_grant(ctx: AuthContext) -> None:
    body, _, _ = await tokens(ctx, "spa")
    assert await revoke(ctx, client(ctx, "spa"), body["access_token"], "access_token") is True
    with pytest.raises(OAuthError, match="invalid_grant"):
        await token(ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, "spa")


async def test_another_clients_or_unknown_tokens_revoke_nothing(ctx: AuthContext) -> None:
    body, _, _ = await tokens(ctx, "spa")
    assert await revoke(ctx, client(ctx), body["refresh_token"]) is False
    assert await revoke(ctx, client(ctx), body["access_token"]) is False
    for value in ("", "nonsense", "rt_ses_01.unknown"):
        assert await revoke(ctx, client(ctx), value) is False
    assert (await token(ctx, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, "spa"))[
        "access_token"
    ]


# -- logout -----------------------------------------------------------------------------------


async def test_logout_with_an_id_token_hint_ends_the_session_and_returns_to_the_client(
    ctx: AuthContext, clock: Clock
) -> None:
    body, browser, cookie = await tokens(ctx, scope="openid email")
    clock.advance(2 * 3600)  # the ID token has expired: still a valid hint
    request = logout.validate_logout(
        ctx,
        {
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": "https://app.acme.dev/bye",
            "state": "s1",
        },
    )
    assert request.client_id == "webapp" and request.hint_sid == browser.sid
    assert not logout.needs_confirmation(request, browser)
    where = await logout.end_session(ctx, request, cookie, ClientInfo())
    assert where == "https://app.acme.dev/bye?state=s1"
    assert await current_browser_session(ctx, cookie) is None
    assert await introspect(ctx, client(ctx), body["refresh_token"]) == {"active": False}


async def test_logout_refuses_unregistered_uris_and_hints_of_another_client_or_issuer(ctx: AuthContext) -> None:
    body, _, _ = await tokens(ctx)
    for params in (
        {"id_token_hint": body["id_token"], "post_logout_redirect_uri": "https://evil.example/bye"},
        {"post_logout_redirect_uri": "https://app.acme.dev/bye"},
        {"id_token_hint": body["id_token"], "client_id": "spa"},
        {"client_id": "nobody"},
        {"id_token_hint": "not.a.token"},
    ):
        with pytest.raises(OAuthError) as refused:
            logout.validate_logout(ctx, params)
        assert refused.value.error == "invalid_request", params
    foreign = jwt.encode({"iss": "https://other.example", "sub": "x", "aud": "webapp"}, "k" * 32, algorithm="HS256")
    with pytest.raises(OAuthError):
        logout.validate_logout(ctx, {"id_token_hint": foreign})
    key = ctx.keys.keys[0]
    other_issuer = jwt.encode(
        {"iss": "https://other.example", "sub": "x", "aud": "webapp"},
        key.private_key,
        algorithm=key.alg,
        headers={"kid": key.kid},
    )
    with pytest.raises(OAuthError, match="another issuer"):
        logout.validate_logout(ctx, {"id_token_hint": other_issuer})


async def test_logout_without_a_hint_asks_the_user_and_keeps_the_request_for_the_page(ctx: AuthContext) -> None:
    _, browser, cookie = await tokens(ctx)
    request = logout.validate_logout(
        ctx, {"client_id": "webapp", "post_logout_redirect_uri": "https://app.acme.dev/bye", "state": "s2"}
    )
    assert logout.needs_confirmation(request, browser)
    assert not logout.needs_confirmation(request, None)
    kept = await logout.save_logout(ctx, request)
    assert await logout.load_logout(ctx, kept) == request
    assert await logout.load_logout(ctx, kept, consume=True) == request
    assert await logout.load_logout(ctx, kept) is None
    where = await logout.end_session(ctx, logout.validate_logout(ctx, {}), cookie, ClientInfo())
    assert where == ISSUER + "/oauth2/ui/logged-out"
    assert await current_browser_session(ctx, cookie) is None


async def test_logout_without_the_cookie_ends_the_session_the_hint_names(ctx: AuthContext) -> None:
    body, _, cookie = await tokens(ctx, scope="openid")
    request = logout.validate_logout(ctx, {"id_token_hint": body["id_token"]})
    assert not logout.needs_confirmation(request, None)
    await logout.end_session(ctx, request, None, ClientInfo())
    assert await current_browser_session(ctx, cookie) is None
    assert await introspect(ctx, client(ctx), body["access_token"]) == {"active": False}


async def test_a_hint_does_not_end_an_app_session_or_another_users(ctx: AuthContext) -> None:
    _, browser, cookie = await tokens(ctx, scope="openid")
    forged = logout.LogoutRequest(hint_sub="usr_someone_else", hint_sid=browser.sid)
    await logout.end_session(ctx, forged, None, ClientInfo())
    assert await current_browser_session(ctx, cookie) is not None
    bo = await new_user(ctx, "bo@example.com")
    app = await ctx.sessions.start(bo, ClientInfo(), ["pwd"])
    other = logout.LogoutRequest(hint_sub=bo.id, hint_sid=app.session_id)
    await logout.end_session(ctx, other, None, ClientInfo())
    assert await ctx.sessions.get(app.session_id) is not None
