"""OIDC client authentication, exact redirect URI matching and the discovery document."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from oidc_core_support import ISSUER, SECRETS, SPA_REDIRECT, basic, spec
from stackyard.auth.context import AuthContext
from stackyard.auth.oidc.authorize import ClientResponse
from stackyard.auth.oidc.clients import (
    authenticate_client,
    post_logout_uri_registered,
    redirect_uri_registered,
    uri_registered,
)
from stackyard.auth.oidc.discovery import metadata
from stackyard.auth.oidc.errors import OAuthError
from stackyard.auth.oidc.grants import s256, verifier_matches

WEB_SECRET, WEB_PREVIOUS = SECRETS["webapp"]


def test_basic_authentication_with_the_current_or_the_previous_secret(ctx: AuthContext) -> None:
    for secret in (WEB_SECRET, WEB_PREVIOUS):
        client = authenticate_client(ctx, authorization=basic("webapp", secret), form={})
        assert (client.client_id, client.method) == ("webapp", "client_secret_basic")


def test_a_wrong_basic_secret_is_401_invalid_client_with_a_basic_challenge(ctx: AuthContext) -> None:
    with pytest.raises(OAuthError) as refused:
        authenticate_client(ctx, authorization=basic("webapp", WEB_SECRET + "x"), form={})
    assert refused.value.error == "invalid_client" and refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic ")
    assert WEB_SECRET not in str(refused.value.body())


def test_basic_credentials_are_form_url_decoded(ctx: AuthContext) -> None:
    ctx.oidc_client_secrets["webapp"] = ["a:b%c+d é/" + "k" * 40]
    client = authenticate_client(ctx, authorization=basic("webapp", "a:b%c+d é/" + "k" * 40), form={})
    assert client.client_id == "webapp"
    # Not encoded: the '%c+' decodes to something else and fails.
    raw = base64.b64encode(("webapp:" + "a:b%c+d é/" + "k" * 40).encode()).decode()
    with pytest.raises(OAuthError, match="invalid_client"):
        authenticate_client(ctx, authorization="Basic " + raw, form={})


def test_client_secret_post_and_its_failures(ctx: AuthContext) -> None:
    client = authenticate_client(ctx, authorization=None, form={"client_id": "webapp", "client_secret": WEB_PREVIOUS})
    assert client.method == "client_secret_post"
    with pytest.raises(OAuthError) as wrong:
        authenticate_client(ctx, authorization=None, form={"client_id": "webapp", "client_secret": "nope"})
    assert (wrong.value.error, wrong.value.status) == ("invalid_client", 400)
    with pytest.raises(OAuthError, match="must authenticate"):
        authenticate_client(ctx, authorization=None, form={"client_id": "webapp"})


def test_two_methods_at_once_are_refused(ctx: AuthContext) -> None:
    with pytest.raises(OAuthError) as refused:
        authenticate_client(
            ctx, authorization=basic("webapp", WEB_SECRET), form={"client_id": "webapp", "client_secret": WEB_SECRET}
        )
    assert refused.value.error == "invalid_request"


def test_public_clients_use_none_and_may_not_send_a_secret(ctx: AuthContext) -> None:
    assert authenticate_client(ctx, authorization=None, form={"client_id": "spa"}).method == "none"
    with pytest.raises(OAuthError, match="invalid_client"):
        authenticate_client(ctx, authorization=None, form={"client_id": "spa", "client_secret": "anything"})


def test_unknown_and_disabled_clients_cannot_authenticate(ctx: AuthContext) -> None:
    for client_id in ("nobody", "old-app"):
        secret = SECRETS.get(client_id, ["s" * 43])[0]
        with pytest.raises(OAuthError, match="invalid_client"):
            authenticate_client(ctx, authorization=basic(client_id, secret), form={})


def test_redirect_uris_match_exactly(ctx: AuthContext) -> None:
    web = ctx.oidc_clients["webapp"]
    assert redirect_uri_registered(web, "https://app.acme.dev/callback")
    for other in (
        "https://app.acme.dev/callback/",
        "https://app.acme.dev/callback?x=1",
        "https://app.acme.dev/Callback",
        "https://app.acme.dev:443/callback",
        "https://app.acme.dev/callback#frag",
        "http://app.acme.dev/callback",
        "https://evil.example/?https://app.acme.dev/callback",
        "",
    ):
        assert not redirect_uri_registered(web, other), other


def test_loopback_redirect_uris_of_public_clients_accept_any_port_and_nothing_else() -> None:
    registered = ["http://127.0.0.1:8400/cb", "http://[::1]/cb"]

    def public(uri: str) -> bool:
        return uri_registered(registered, uri, loopback_any_port=True)

    assert public("http://127.0.0.1:51234/cb")
    assert public("http://127.0.0.1/cb")
    assert public("http://[::1]:6000/cb")
    assert not public("http://127.0.0.1:51234/cb2")
    assert not public("http://127.0.0.2:8400/cb")
    assert not public("http://localhost:8400/cb")
    assert not public("https://127.0.0.1:8400/cb")
    assert not public("http://user@127.0.0.1:8400/cb")
    assert not public("http://127.0.0.1:notaport/cb")
    assert not uri_registered(["https://app.acme.dev/cb"], "https://app.acme.dev:8443/cb", loopback_any_port=True)


def test_loopback_redirect_uris_match_exactly_without_the_public_client_relaxation() -> None:
    registered = ["http://127.0.0.1:8400/cb", "http://[::1]/cb"]
    assert uri_registered(registered, "http://127.0.0.1:8400/cb")
    assert uri_registered(registered, "http://[::1]/cb")
    for other in ("http://127.0.0.1:8499/cb", "http://127.0.0.1/cb", "http://[::1]:6000/cb", "http://[::1]:80/cb"):
        assert not uri_registered(registered, other), other


def test_only_a_public_client_gets_any_port_on_its_loopback_redirect_uri() -> None:
    uris = {"redirectUris": [SPA_REDIRECT], "postLogoutRedirectUris": ["http://127.0.0.1:8400/bye"]}
    public = spec(type="public", **uris)
    confidential = spec(type="confidential", **uris)
    for client in (public, confidential):
        assert redirect_uri_registered(client, SPA_REDIRECT)
        assert post_logout_uri_registered(client, "http://127.0.0.1:8400/bye")
    assert redirect_uri_registered(public, "http://127.0.0.1:8499/cb")
    assert post_logout_uri_registered(public, "http://127.0.0.1:8499/bye")
    assert not redirect_uri_registered(confidential, "http://127.0.0.1:8499/cb")
    assert not redirect_uri_registered(confidential, "http://127.0.0.1/cb")
    assert not post_logout_uri_registered(confidential, "http://127.0.0.1:8499/bye")


def test_discovery_names_the_endpoints_under_the_issuer_and_what_is_supported(ctx: AuthContext) -> None:
    doc = metadata(ctx)
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == ISSUER + "/oauth2/authorize"
    assert doc["token_endpoint"] == ISSUER + "/oauth2/token"
    assert doc["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert doc["end_session_endpoint"] == ISSUER + "/oauth2/logout"
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert {"openid", "offline_access", "reports:read", "reports:write"} <= set(doc["scopes_supported"])
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post", "none"]


@given(st.text(max_size=40))
def test_no_other_string_matches_a_registered_https_uri(extra: str) -> None:
    registered = ["https://app.acme.dev/callback"]
    for candidate in (registered[0] + extra, extra + registered[0], extra):
        assert uri_registered(registered, candidate) == (candidate == registered[0])


@given(st.integers(min_value=1, max_value=65535), st.sampled_from(["/cb", "/cb/", "/other", "/cb?x=1"]))
def test_a_loopback_uri_matches_on_any_port_only_with_the_same_path(port: int, path: str) -> None:
    uri = f"http://127.0.0.1:{port}{path}"
    assert uri_registered(["http://127.0.0.1/cb"], uri, loopback_any_port=True) == (path == "/cb")
    assert not uri_registered(["http://127.0.0.1/cb"], uri)


@given(st.text(alphabet=string.ascii_letters + string.digits + "-._~", min_size=0, max_size=140))
def test_a_pkce_verifier_matches_only_its_own_s256_challenge(verifier: str) -> None:
    challenge = s256("a" * 43)
    expected = verifier == "a" * 43
    assert verifier_matches(verifier, challenge) == expected
    assert verifier_matches(verifier, s256(verifier)) == (43 <= len(verifier) <= 128)
    assert verifier_matches(None, challenge) is False
    assert verifier_matches(verifier, None) is False  # no challenge: a verifier is a downgrade attempt
    assert verifier_matches(None, None) is True


def test_the_rfc_7636_example_verifier() -> None:
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_response_keeps_the_redirect_uris_own_query() -> None:
    response = ClientResponse("https://app.acme.dev/cb?tenant=a b", {"code": "c&d", "state": "s"})
    assert response.url() == "https://app.acme.dev/cb?tenant=a b&code=c%26d&state=s"
