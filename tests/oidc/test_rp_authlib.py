"""Authlib as the confidential web app demo-web: discovery, a login through the hosted pages
with PKCE, state and nonce, the ID token checked against the JWKS, userinfo, a refresh with
rotation, and RP-initiated logout that ends the provider's session and the grant."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest
from stackyard_harness.local_stack import LocalStack

from . import (
    LOG_OUT,
    jose_header,
    log_out_in_browser,
    query,
    screenshot,
    signing_algorithm,
)
from .authlib_rp import AuthlibApp, OAuthError, sign_in_with_authlib

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .callbacks import CallbackServer
    from .conftest import Client, Person


def test_authlib_signs_in_through_the_hosted_pages_refreshes_and_logs_out(
    page: Page,
    make_up: LocalStack,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
) -> None:
    web = stack_clients["demo-web"]
    assert web.redirect_uri and web.post_logout_redirect_uri and web.secret
    app = AuthlibApp(issuer, web.client_id, web.secret)
    metadata = app.metadata
    algorithm = signing_algorithm(make_up)
    assert metadata["issuer"] == issuer
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert algorithm in metadata["id_token_signing_alg_values_supported"]
    assert "RS256" in metadata["id_token_signing_alg_values_supported"], "Discovery 1.0 §3: RS256 MUST be listed"
    assert metadata["authorization_response_iss_parameter_supported"] is True

    signed_in = sign_in_with_authlib(
        page, app, web.redirect_uri, callbacks[web.client_id], person, shot="login", scope="openid email profile"
    )
    authorization, token = signed_in.authorization, signed_in.token
    sent = query(authorization.url)
    assert sent["code_challenge_method"] == "S256" and sent["nonce"] == authorization.nonce
    back = query(signed_in.callback)
    assert back["state"] == authorization.state and back["iss"] == issuer, back

    assert token["token_type"].lower() == "bearer" and token["refresh_token"], sorted(token)
    claims = token["userinfo"]  # the ID token, validated by Authlib: signature, iss, aud, exp, nonce, at_hash
    assert claims["iss"] == issuer and claims["aud"] in (web.client_id, [web.client_id])
    assert claims["nonce"] == authorization.nonce and claims["email"] == person.email
    assert claims["email_verified"] is True and claims["name"] == person.name
    assert {"sub", "sid", "auth_time", "at_hash", "exp", "iat"} <= set(claims), sorted(claims)
    header = jose_header(token["id_token"])
    assert header["alg"] == algorithm
    assert header["kid"] in [key["kid"] for key in app.fetch_jwk_set()["keys"]]

    userinfo = app.get_userinfo(token)
    assert userinfo["sub"] == claims["sub"] and userinfo["email"] == person.email, userinfo
    assert userinfo.get("name") == person.name, userinfo

    refreshed = app.refresh(token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"], "refresh tokens rotate"
    assert app.get_userinfo(refreshed)["sub"] == claims["sub"]

    logout = app.create_logout_url(
        post_logout_redirect_uri=web.post_logout_redirect_uri, id_token_hint=token["id_token"]
    )
    returned = log_out_in_browser(
        page, logout["url"], callbacks[web.client_id], urlsplit(web.post_logout_redirect_uri).path, "logout-confirm"
    )
    assert query(returned).get("state") == logout["state"], returned

    # The provider's session is over: a silent request needs a login again.
    silent = app.authorize(web.redirect_uri, prompt="none")
    mark = callbacks[web.client_id].mark()
    page.goto(silent.url)
    answer = query(callbacks[web.client_id].wait(after=mark))
    assert answer["error"] == "login_required" and answer["state"] == silent.state, answer
    # ... and the grant tied to it (no offline_access) is gone: its tokens stop working.
    with pytest.raises(OAuthError) as refused:
        app.refresh(refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"
    bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}
    assert httpx.get(metadata["userinfo_endpoint"], headers=bearer, timeout=10).status_code == 401


def test_logout_without_id_token_hint_asks_first(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
) -> None:
    """An end-session request that cannot prove which session it means (no id_token_hint, only
    client_id) is confirmed on the hosted logout page; without a post-logout redirect URI the
    person lands on the provider's own signed-out page."""
    from playwright.sync_api import expect

    web = stack_clients["demo-web"]
    assert web.redirect_uri and web.post_logout_redirect_uri
    app = AuthlibApp(issuer, web.client_id, web.secret)
    token = sign_in_with_authlib(page, app, web.redirect_uri, callbacks[web.client_id], person).token

    logout = app.create_logout_url(post_logout_redirect_uri=web.post_logout_redirect_uri, client_id=web.client_id)
    page.goto(logout["url"])
    assert urlsplit(page.url).path == "/oauth2/ui/logout", page.url
    expect(page.get_by_text(person.email)).to_be_visible()
    returned = log_out_in_browser(
        page, logout["url"], callbacks[web.client_id], urlsplit(web.post_logout_redirect_uri).path, "logout-confirm"
    )
    assert query(returned).get("state") == logout["state"], returned
    with pytest.raises(OAuthError) as refused:
        app.refresh(token["refresh_token"])
    assert refused.value.error == "invalid_grant"

    # Signed out already, with nowhere to return to: the provider's page says so.
    page.goto(app.create_logout_url()["url"])
    if urlsplit(page.url).path == "/oauth2/ui/logout":
        page.get_by_role("button", name=LOG_OUT).first.click()
    page.wait_for_url(f"{issuer}/oauth2/ui/logged-out**")
    expect(page.get_by_role("heading", level=1)).to_have_text("You are signed out")
    screenshot(page, "logged-out")
