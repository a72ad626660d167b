"""node's openid-client (v6) as the public SPA demo-spa (PKCE, no secret) and as the confidential
web app demo-web (client_secret_post): discovery, login through the hosted pages, the code
grant with state, nonce and iss checked by the library, userinfo, refresh and logout."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from stackyard_harness.local_stack import LocalStack

from . import jose_header, log_out_in_browser, query, signing_algorithm
from .node_rp import NodeRelyingParty, OpenIdClientError, sign_in_with_openid_client

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .callbacks import CallbackServer
    from .conftest import Client, Person


def audience(claims: dict[str, object]) -> list[object]:
    aud = claims["aud"]
    return aud if isinstance(aud, list) else [aud]


def test_openid_client_spa_signs_in_with_pkce_refreshes_and_logs_out(
    page: Page,
    make_up: LocalStack,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
    node_rp: NodeRelyingParty,
) -> None:
    spa = stack_clients["demo-spa"]
    assert spa.type == "public" and spa.secret is None and spa.redirect_uri and spa.post_logout_redirect_uri
    discovered = node_rp.call("discover", client="spa", issuer=issuer, clientId=spa.client_id)
    assert discovered["serverMetadata"]["issuer"] == issuer
    assert "none" in discovered["serverMetadata"]["token_endpoint_auth_methods_supported"]

    # openid-client checks state, iss (RFC 9207), the ID token's signature, iss, aud, nonce and exp.
    signed_in = sign_in_with_openid_client(
        page,
        node_rp,
        "spa",
        spa.redirect_uri,
        callbacks[spa.client_id],
        person,
        shot="login-spa",
        scope="openid email profile",
    )
    started, tokens, claims = signed_in.started, signed_in.tokens, signed_in.claims
    sent = query(started["url"])
    assert sent["client_id"] == spa.client_id and sent["code_challenge_method"] == "S256", sent
    assert claims["nonce"] == started["nonce"] and audience(claims) == [spa.client_id], claims
    assert claims["email"] == person.email and claims["iss"] == issuer
    assert jose_header(tokens["id_token"])["alg"] == signing_algorithm(make_up)
    assert tokens["refresh_token"] and tokens["token_type"].lower() == "bearer"

    userinfo = node_rp.call("userinfo", client="spa", accessToken=tokens["access_token"], sub=claims["sub"])
    assert userinfo["email"] == person.email and userinfo.get("name") == person.name, userinfo

    refreshed = node_rp.call("refresh", client="spa", refreshToken=tokens["refresh_token"])["tokens"]
    assert refreshed["refresh_token"] != tokens["refresh_token"] and refreshed["access_token"] != tokens["access_token"]
    assert node_rp.call("userinfo", client="spa", accessToken=refreshed["access_token"], sub=claims["sub"])

    end = node_rp.call(
        "endSessionUrl",
        client="spa",
        idTokenHint=tokens["id_token"],
        postLogoutRedirectUri=spa.post_logout_redirect_uri,
        state="spa-signed-out",
    )
    returned = log_out_in_browser(
        page, end["url"], callbacks[spa.client_id], urlsplit(spa.post_logout_redirect_uri).path, "logout-confirm-spa"
    )
    assert query(returned).get("state") == "spa-signed-out", returned
    with pytest.raises(OpenIdClientError) as refused:
        node_rp.call("refresh", client="spa", refreshToken=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant", refused.value.fields


def test_openid_client_confidential_web_app_signs_in_with_client_secret_post(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
    node_rp: NodeRelyingParty,
) -> None:
    web = stack_clients["demo-web"]
    assert web.secret and web.redirect_uri
    discovered = node_rp.call(
        "discover", client="web", issuer=issuer, clientId=web.client_id, clientSecret=web.secret, auth="post"
    )
    assert {"client_secret_basic", "client_secret_post"} <= set(
        discovered["serverMetadata"]["token_endpoint_auth_methods_supported"]
    )
    signed_in = sign_in_with_openid_client(
        page, node_rp, "web", web.redirect_uri, callbacks[web.client_id], person, scope="openid email"
    )
    claims = signed_in.claims
    assert audience(claims) == [web.client_id] and claims["email"] == person.email
    assert "name" not in claims, "no profile scope, no profile claims"
    userinfo = node_rp.call("userinfo", client="web", accessToken=signed_in.tokens["access_token"], sub=claims["sub"])
    assert userinfo["sub"] == claims["sub"] and userinfo["email"] == person.email

    # The web app may introspect its own access token; a wrong secret is refused as invalid_client.
    assert node_rp.call("introspect", client="web", token=signed_in.tokens["access_token"])["active"] is True
    node_rp.call("discover", client="forged", issuer=issuer, clientId=web.client_id, clientSecret="not-the-secret")
    with pytest.raises(OpenIdClientError) as refused:
        node_rp.call("introspect", client="forged", token=signed_in.tokens["access_token"])
    assert refused.value.error == "invalid_client", refused.value.fields
