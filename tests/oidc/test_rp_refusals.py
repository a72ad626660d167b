"""What the specs refuse, refused as they say, seen by the client libraries and the browser:
an unregistered redirect URI gets an error page and no redirect (RFC 6749 §4.1.2.1), so does
a confidential client's loopback URI on another port (RFC 8252 §7.3 is for public clients), a request
without PKCE from a public client goes back as invalid_request (OAuth 2.1), a code used twice
is invalid_grant and what it gave is revoked (RFC 6749 §4.1.2), and a refresh token used twice
is invalid_grant and ends the grant, the rotated token included (OAuth 2.1 §6.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from . import query, screenshot
from .authlib_rp import AuthlibApp, OAuthError, sign_in_with_authlib
from .callbacks import CallbackServer
from .node_rp import NodeRelyingParty, OpenIdClientError, sign_in_with_openid_client

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import Client, Person


def test_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(
    page: Page, issuer: str, stack_clients: dict[str, Client], callbacks: dict[str, CallbackServer]
) -> None:
    web = stack_clients["demo-web"]
    assert web.redirect_uri
    app = AuthlibApp(issuer, web.client_id, web.secret)
    # Exact matching (only a public client's loopback URI may differ in its port, RFC 8252 §7.3).
    for wrong in (f"{web.redirect_uri}/elsewhere", "https://app.example.net/callback"):
        authorization = app.authorize(wrong)
        mark = callbacks[web.client_id].mark()
        response = page.goto(authorization.url)
        assert response is not None and response.status == 400, response and response.status
        assert urlsplit(page.url)[:3] == urlsplit(authorization.url)[:3], page.url  # still at /oauth2/authorize
        assert "text/html" in response.headers["content-type"]
        assert web.client_id in page.content() or "redirect" in page.content().lower()
        assert callbacks[web.client_id].received[mark:] == [], "nothing may reach an unregistered URI"
    screenshot(page, "error-unregistered-redirect-uri")


def test_confidential_client_loopback_redirect_uri_on_another_port_gets_an_error_page(
    page: Page, issuer: str, stack_clients: dict[str, Client], callbacks: dict[str, CallbackServer]
) -> None:
    """demo-web registers http://127.0.0.1:8400/callback; the same URI on port 8499 is not
    its redirect URI (the any-port rule of RFC 8252 §7.3 is for native apps, public clients):
    the browser stays on the provider's HTML error page and nothing reaches either port."""
    web = stack_clients["demo-web"]
    assert web.redirect_uri == "http://127.0.0.1:8400/callback", web.redirect_uri
    other_port = web.redirect_uri.replace(":8400/", ":8499/")
    listener = CallbackServer(8499).start()
    try:
        app = AuthlibApp(issuer, web.client_id, web.secret)
        authorization = app.authorize(other_port)
        assert query(authorization.url)["redirect_uri"] == other_port
        mark = callbacks[web.client_id].mark()
        response = page.goto(authorization.url)
        assert response is not None and response.status == 400, response and response.status
        assert "text/html" in response.headers["content-type"]
        assert urlsplit(page.url)[:3] == urlsplit(authorization.url)[:3], page.url  # still at /oauth2/authorize
        assert "redirect" in page.content().lower()
        page.wait_for_timeout(500)
        assert listener.received == [], "nothing may reach the unregistered port"
        assert callbacks[web.client_id].received[mark:] == [], "nor the registered one"
    finally:
        listener.stop()
    screenshot(page, "error-confidential-loopback-other-port")


@pytest.mark.parametrize(
    "client_id",
    ["demo-spa", "demo-web"],
    ids=["public", "confidential"],
)
def test_authorization_without_pkce_is_sent_back_invalid_request(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    client_id: str,
) -> None:
    """No code_challenge: the error goes back to the registered redirect URI with state and
    iss, before any login page."""
    client = stack_clients[client_id]
    assert client.redirect_uri
    app = AuthlibApp(issuer, client.client_id, client.secret, client_kwargs={"code_challenge_method": None})
    authorization = app.authorize(client.redirect_uri)
    assert "code_challenge" not in query(authorization.url)
    mark = callbacks[client_id].mark()
    page.goto(authorization.url)
    returned = callbacks[client_id].wait(after=mark)
    answer = query(returned)
    assert answer["error"] == "invalid_request" and answer["state"] == authorization.state, answer
    assert answer["iss"] == issuer and "code" not in answer, answer
    with pytest.raises(OAuthError) as refused:
        app.finish(authorization, returned)
    assert refused.value.error == "invalid_request"


def test_plain_pkce_is_sent_back_invalid_request(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    node_rp: NodeRelyingParty,
) -> None:
    """code_challenge_method=plain (OAuth 2.1 keeps only S256 where S256 is possible),
    asked through openid-client: refused the same way."""
    spa = stack_clients["demo-spa"]
    node_rp.call("discover", client="spa", issuer=issuer, clientId=spa.client_id)
    started = node_rp.call(
        "authorize", client="spa", redirectUri=spa.redirect_uri, extra={"code_challenge_method": "plain"}
    )
    assert query(started["url"])["code_challenge_method"] == "plain"
    mark = callbacks[spa.client_id].mark()
    page.goto(started["url"])
    returned = callbacks[spa.client_id].wait(after=mark)
    assert query(returned)["error"] == "invalid_request", returned
    with pytest.raises(OpenIdClientError) as refused:
        node_rp.call("callback", client="spa", url=returned)
    assert refused.value.error == "invalid_request", refused.value.fields


def test_reused_authorization_code_is_invalid_grant_and_revokes_its_tokens(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
) -> None:
    web = stack_clients["demo-web"]
    assert web.redirect_uri
    app = AuthlibApp(issuer, web.client_id, web.secret)
    signed_in = sign_in_with_authlib(page, app, web.redirect_uri, callbacks[web.client_id], person)
    token = signed_in.token
    assert app.introspect(token["access_token"])["active"] is True

    with pytest.raises(OAuthError) as refused:
        app.redeem_again(signed_in.authorization, signed_in.callback)
    assert refused.value.error == "invalid_grant"
    assert app.introspect(token["access_token"])["active"] is False, "a replayed code revokes what it issued"
    with pytest.raises(OAuthError) as also_refused:
        app.refresh(token["refresh_token"])
    assert also_refused.value.error == "invalid_grant"


def test_reused_refresh_token_is_invalid_grant_and_revokes_the_rotated_one(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
) -> None:
    web = stack_clients["demo-web"]
    assert web.redirect_uri
    app = AuthlibApp(issuer, web.client_id, web.secret)
    first = sign_in_with_authlib(page, app, web.redirect_uri, callbacks[web.client_id], person).token
    rotated = app.refresh(first["refresh_token"])

    with pytest.raises(OAuthError) as reused:
        app.refresh(first["refresh_token"])
    assert reused.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as after_reuse:
        app.refresh(rotated["refresh_token"])
    assert after_reuse.value.error == "invalid_grant", "reuse ends the whole grant"
    assert app.introspect(rotated["access_token"])["active"] is False


def test_public_client_refresh_token_reuse_seen_by_openid_client(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
    node_rp: NodeRelyingParty,
) -> None:
    spa = stack_clients["demo-spa"]
    node_rp.call("discover", client="spa", issuer=issuer, clientId=spa.client_id)
    signed_in = sign_in_with_openid_client(page, node_rp, "spa", spa.redirect_uri, callbacks[spa.client_id], person)
    with pytest.raises(OpenIdClientError) as replayed:
        node_rp.call("callback", client="spa", url=signed_in.callback)
    assert replayed.value.error == "invalid_grant", replayed.value.fields

    node_rp.call("discover", client="spa2", issuer=issuer, clientId=spa.client_id)
    tokens = sign_in_with_openid_client(
        page, node_rp, "spa2", spa.redirect_uri, callbacks[spa.client_id], person
    ).tokens
    rotated = node_rp.call("refresh", client="spa2", refreshToken=tokens["refresh_token"])["tokens"]
    for refresh_token in (tokens["refresh_token"], rotated["refresh_token"]):
        with pytest.raises(OpenIdClientError) as refused:
            node_rp.call("refresh", client="spa2", refreshToken=refresh_token)
        assert refused.value.error == "invalid_grant", refused.value.fields
