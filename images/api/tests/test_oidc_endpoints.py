"""The OpenID Provider's protocol endpoints over HTTP against the real api app, real Redis and
FerretDB: discovery, the authorization endpoint's refusals and decisions, the code flow from a
signed-in browser to tokens, userinfo, refresh with rotation, revocation and introspection,
client authentication (basic, post, the previous secret), client credentials, RP-initiated
logout, and CORS for single-page apps. Requests are written by hand here; tests/oidc drives
real client libraries through the hosted pages.

Redis database 50."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import jwt
import pytest
from auth_http import EMAIL, PASSWORD, sign_up_and_log_in
from oidc_http import (
    MACHINE_SECRET,
    SPA,
    SPA_CALLBACK,
    WEB_CALLBACK,
    WEB_LOGGED_OUT,
    WEB_PREVIOUS_SECRET,
    WEB_SECRET,
    Pkce,
    authorize_params,
    basic,
    code_for,
    code_form,
    configure_provider,
    query_of,
    redirect_of,
    sign_in_browser,
)
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 50
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@pytest.fixture
def auth(running: AuthStack) -> AuthStack:
    """The shared AuthStack with the provider's clients registered (spa, shop, reports)."""
    running.reset()
    configure_provider(running)
    return running


@pytest.fixture
def user(http: httpx.Client) -> dict[str, Any]:
    """A user with an account (the answer of their sign-up)."""
    return sign_up_and_log_in(http, profile={"name": "Ana"})


@pytest.fixture
def browser(auth: AuthStack, http: httpx.Client, user: dict[str, Any]) -> str:
    """`http` is a browser signed in to the provider (its sy_op cookie)."""
    return sign_in_browser(auth, http, EMAIL)


def oauth_error(answer: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """An RFC 6749 §5.2 error: JSON (not problem+json), never cached."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    assert {k: answer.headers.get(k) for k in NO_STORE} == NO_STORE
    body: dict[str, Any] = answer.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    return body


def web_tokens(http: httpx.Client, code: str, pkce: Pkce, **form: str) -> httpx.Response:
    return http.post(
        "/oauth2/token", data=code_form(code, WEB_CALLBACK, pkce) | form, headers=basic("shop", WEB_SECRET)
    )


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# -- discovery ------------------------------------------------------------------------------


def test_discovery_names_every_endpoint_under_the_issuer(auth: AuthStack, http: httpx.Client):
    answer = http.get("/.well-known/openid-configuration")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "public, max-age=300"
    document = answer.json()
    issuer = auth.url
    assert document["issuer"] == issuer
    assert {k: document[k] for k in document if k.endswith(("_endpoint", "_uri"))} == {
        "authorization_endpoint": f"{issuer}/oauth2/authorize",
        "token_endpoint": f"{issuer}/oauth2/token",
        "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "end_session_endpoint": f"{issuer}/oauth2/logout",
    }
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert document["id_token_signing_alg_values_supported"] == ["EdDSA"]
    # The standard scopes, then the registered clients' own.
    assert document["scopes_supported"][:4] == ["openid", "profile", "email", "offline_access"]
    assert {"reports:read", "reports:write"} <= set(document["scopes_supported"])
    assert document["authorization_response_iss_parameter_supported"] is True
    assert {"sub", "email", "email_verified", "name", "nonce", "auth_time", "sid"} <= set(document["claims_supported"])
    # The keys it names are served.
    assert http.get("/.well-known/jwks.json").json()["keys"][0]["alg"] == "EdDSA"


def test_the_openapi_document_describes_the_protocol_endpoints(auth: AuthStack, http: httpx.Client):
    paths = http.get("/openapi.json").json()["paths"]
    expected = {
        "/.well-known/openid-configuration": {"get"},
        "/oauth2/authorize": {"get", "post"},
        "/oauth2/authorize/continue": {"get"},
        "/oauth2/token": {"post"},
        "/oauth2/userinfo": {"get", "post"},
        "/oauth2/revoke": {"post"},
        "/oauth2/introspect": {"post"},
        "/oauth2/logout": {"get", "post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
        for operation in paths[path].values():
            assert operation["summary"] and len(operation["description"]) > 40, (path, operation)
    token = paths["/oauth2/token"]["post"]
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    assert not any(p.startswith("/oauth2/ui") for p in paths), "the hosted pages are not API"


# -- authorization endpoint: refusals -------------------------------------------------------


def test_an_unknown_client_gets_an_error_page_and_no_redirect(auth: AuthStack, http: httpx.Client):
    answer = http.get("/oauth2/authorize", params=authorize_params("nobody", SPA_CALLBACK, Pkce.new()))
    assert answer.status_code == 400 and "location" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    assert "not registered" in answer.text


def test_an_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(auth: AuthStack, http: httpx.Client):
    for uri in (f"{SPA}/callback/../evil", f"{SPA}/callback?x=1", "https://evil.example.net/callback", f"{SPA}/"):
        answer = http.get("/oauth2/authorize", params=authorize_params("spa", uri, Pkce.new()))
        assert answer.status_code == 400 and "location" not in answer.headers, uri
        assert answer.headers["content-type"].startswith("text/html")
        assert "redirect_uri" in answer.text


def test_a_client_id_sent_twice_gets_an_error_page(auth: AuthStack, http: httpx.Client):
    params = [*authorize_params("spa", SPA_CALLBACK, Pkce.new()).items(), ("client_id", "shop")]
    answer = http.get("/oauth2/authorize", params=params)
    assert answer.status_code == 400 and "location" not in answer.headers


def test_a_public_client_without_pkce_is_sent_back_invalid_request_with_state_and_iss(
    auth: AuthStack, http: httpx.Client
):
    asked = authorize_params("spa", SPA_CALLBACK, None, state="keep-me")
    target, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert target == SPA_CALLBACK
    assert query["error"] == "invalid_request" and "PKCE" in query["error_description"]
    assert query["state"] == "keep-me" and query["iss"] == auth.url
    # plain is refused too.
    plain = asked | {"code_challenge": "x" * 43, "code_challenge_method": "plain"}
    _, query = redirect_of(http.get("/oauth2/authorize", params=plain))
    assert query["error"] == "invalid_request" and "S256" in query["error_description"]


def test_a_scope_outside_the_clients_is_invalid_scope(auth: AuthStack, http: httpx.Client):
    asked = authorize_params("spa", SPA_CALLBACK, Pkce.new(), scope="openid reports:read")
    target, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert target == SPA_CALLBACK and query["error"] == "invalid_scope" and query["state"] == asked["state"]
    assert "reports:read" in query["error_description"]


def test_only_the_code_response_type_is_supported(auth: AuthStack, http: httpx.Client):
    asked = authorize_params("spa", SPA_CALLBACK, Pkce.new(), response_type="token")
    _, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert query["error"] == "unsupported_response_type" and query["iss"] == auth.url


def test_prompt_none_without_a_session_is_login_required(auth: AuthStack, http: httpx.Client):
    asked = authorize_params("spa", SPA_CALLBACK, Pkce.new(), prompt="none")
    target, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert target == SPA_CALLBACK
    assert query["error"] == "login_required" and query["state"] == asked["state"] and query["iss"] == auth.url


# -- authorization endpoint: decisions ------------------------------------------------------


def test_without_a_session_the_browser_goes_to_the_hosted_login_and_comes_back_with_a_code(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any]
):
    asked = authorize_params("spa", SPA_CALLBACK, Pkce.new())
    login_page, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert login_page == f"{auth.url}/oauth2/ui/login" and query["ar"].startswith("ar_")
    # Before signing in, continuing goes back to the login page.
    again, _ = redirect_of(http.get("/oauth2/authorize/continue", params={"ar": query["ar"]}))
    assert again == login_page
    sign_in_browser(auth, http, EMAIL)
    target, response = redirect_of(http.get("/oauth2/authorize/continue", params={"ar": query["ar"]}))
    assert target == SPA_CALLBACK and response["state"] == asked["state"] and response["iss"] == auth.url
    assert response["code"]
    # The request is finished: its id does not work twice.
    finished = http.get("/oauth2/authorize/continue", params={"ar": query["ar"]})
    assert finished.status_code == 400 and finished.headers["content-type"].startswith("text/html")


def test_an_unknown_request_to_continue_gets_an_error_page(auth: AuthStack, http: httpx.Client):
    for ar in ("ar_unknown", "not-an-id", ""):
        answer = http.get("/oauth2/authorize/continue", params={"ar": ar})
        assert answer.status_code == 400 and "location" not in answer.headers


def test_the_post_form_of_authorize_and_the_form_post_response_mode(auth: AuthStack, http: httpx.Client, browser: str):
    asked = authorize_params("spa", SPA_CALLBACK, Pkce.new(), response_mode="form_post")
    answer = http.post("/oauth2/authorize", data=asked)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert f'action="{SPA_CALLBACK}"' in answer.text and f'value="{asked["state"]}"' in answer.text
    assert "form-action https://spa.example.com" in answer.headers["content-security-policy"]


# -- the code flow ------------------------------------------------------------------------


def test_the_code_flow_gives_tokens_userinfo_refresh_and_revocation(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    pkce = Pkce.new()
    code = code_for(http, "shop", WEB_CALLBACK, pkce, scope="openid email profile", nonce="nonce-1")
    answer = web_tokens(http, code, pkce)
    assert answer.status_code == 200, answer.text
    assert {k: answer.headers.get(k) for k in NO_STORE} == NO_STORE
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    assert set(tokens["scope"].split()) == {"openid", "email", "profile"}
    assert tokens["refresh_token"] and tokens["access_token"] and tokens["id_token"]
    # The ID token, verified with the published keys as a client library does.
    jwks = jwt.PyJWKSet.from_dict(http.get("/.well-known/jwks.json").json())
    header = jwt.get_unverified_header(tokens["id_token"])
    claims = jwt.decode(
        tokens["id_token"], jwks[header["kid"]].key, algorithms=["EdDSA"], audience="shop", issuer=auth.url
    )
    assert claims["sub"] == unverified(user["accessToken"])["sub"] and claims["nonce"] == "nonce-1"
    assert claims["azp"] == "shop" and claims["email"] == EMAIL and claims["name"] == "Ana"
    assert claims["amr"] == ["pwd"] and claims["auth_time"] <= claims["iat"]
    digest = hashlib.sha512(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:32]).rstrip(b"=").decode()
    access = unverified(tokens["access_token"])
    assert access["client_id"] == "shop" and access["sub"] == claims["sub"] and access["sid"]
    # userinfo, GET with the header and POST with the form field.
    info = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 200, info.text
    assert info.json() == {"sub": claims["sub"], "email": EMAIL, "email_verified": False, "name": "Ana"} | {
        k: v for k, v in info.json().items() if k == "updated_at"
    }
    posted = http.post("/oauth2/userinfo", data={"access_token": tokens["access_token"]})
    assert posted.status_code == 200 and posted.json()["sub"] == claims["sub"]
    # Refresh: new tokens, the refresh token rotated.
    refreshed = http.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic("shop", WEB_SECRET),
    )
    assert refreshed.status_code == 200, refreshed.text
    renewed = refreshed.json()
    assert renewed["refresh_token"] != tokens["refresh_token"] and renewed["access_token"] != tokens["access_token"]
    assert unverified(renewed["id_token"])["sub"] == claims["sub"]
    # Introspection: active while the grant lives.
    active = http.post("/oauth2/introspect", data={"token": renewed["access_token"]}, headers=basic("shop", WEB_SECRET))
    assert active.status_code == 200 and active.json()["active"] is True, active.text
    assert active.json()["client_id"] == "shop" and active.json()["sub"] == claims["sub"]
    # Revocation of the refresh token ends the grant: the access token is inactive, userinfo refuses it.
    revoked = http.post(
        "/oauth2/revoke",
        data={"token": renewed["refresh_token"], "token_type_hint": "refresh_token"},
        headers=basic("shop", WEB_SECRET),
    )
    assert revoked.status_code == 200 and revoked.json() == {}
    inactive = http.post(
        "/oauth2/introspect", data={"token": renewed["access_token"]}, headers=basic("shop", WEB_SECRET)
    )
    assert inactive.json() == {"active": False}
    refused = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {renewed['access_token']}"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    oauth_error(
        http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"]},
            headers=basic("shop", WEB_SECRET),
        ),
        400,
        "invalid_grant",
    )


def test_a_reused_refresh_token_is_refused_and_ends_the_grant(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    pkce = Pkce.new()
    tokens = web_tokens(http, code_for(http, "shop", WEB_CALLBACK, pkce), pkce).json()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    first = http.post("/oauth2/token", data=form, headers=basic("shop", WEB_SECRET))
    assert first.status_code == 200, first.text
    body = oauth_error(http.post("/oauth2/token", data=form, headers=basic("shop", WEB_SECRET)), 400, "invalid_grant")
    assert "already used" in body["error_description"]
    # The grant is over: the newest refresh token and access token are refused too.
    newest = {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]}
    oauth_error(http.post("/oauth2/token", data=newest, headers=basic("shop", WEB_SECRET)), 400, "invalid_grant")
    userinfo = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {first.json()['access_token']}"})
    assert userinfo.status_code == 401


def test_a_reused_code_is_refused_and_revokes_its_tokens(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    pkce = Pkce.new()
    code = code_for(http, "shop", WEB_CALLBACK, pkce)
    tokens = web_tokens(http, code, pkce)
    assert tokens.status_code == 200, tokens.text
    body = oauth_error(web_tokens(http, code, pkce), 400, "invalid_grant")
    assert "already used" in body["error_description"]
    userinfo = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
    assert userinfo.status_code == 401


def test_the_code_is_bound_to_its_verifier_and_redirect_uri(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    pkce = Pkce.new()
    wrong_verifier = web_tokens(http, code_for(http, "shop", WEB_CALLBACK, pkce), Pkce.new())
    assert "code_verifier" in oauth_error(wrong_verifier, 400, "invalid_grant")["error_description"]
    other_uri = web_tokens(http, code_for(http, "shop", WEB_CALLBACK, pkce), pkce, redirect_uri=f"{WEB_CALLBACK}x")
    assert "redirect_uri" in oauth_error(other_uri, 400, "invalid_grant")["error_description"]


def test_a_public_client_redeems_its_code_with_pkce_and_no_secret(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    pkce = Pkce.new()
    code = code_for(http, "spa", SPA_CALLBACK, pkce, scope="openid")
    form = code_form(code, SPA_CALLBACK, pkce, client_id="spa")
    answer = http.post("/oauth2/token", data=form)
    assert answer.status_code == 200, answer.text
    assert unverified(answer.json()["id_token"])["aud"] == "spa"
    # Introspection is for clients with a secret.
    oauth_error(http.post("/oauth2/introspect", data={"token": "x", "client_id": "spa"}), 400, "invalid_client")


# -- client authentication -------------------------------------------------------------------


def test_client_secret_basic_and_post_and_the_previous_secret(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    for how in ("basic", "post", "previous"):
        pkce = Pkce.new()
        code = code_for(http, "shop", WEB_CALLBACK, pkce)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": WEB_CALLBACK}
        form["code_verifier"] = pkce.verifier
        if how == "basic":
            answer = http.post("/oauth2/token", data=form, headers=basic("shop", WEB_SECRET))
        elif how == "post":
            answer = http.post("/oauth2/token", data=form | {"client_id": "shop", "client_secret": WEB_SECRET})
        else:
            answer = http.post("/oauth2/token", data=form, headers=basic("shop", WEB_PREVIOUS_SECRET))
        assert answer.status_code == 200, (how, answer.text)


def test_a_wrong_client_secret_is_invalid_client(auth: AuthStack, http: httpx.Client):
    form = {"grant_type": "client_credentials"}
    by_basic = http.post("/oauth2/token", data=form, headers=basic("reports", "not-the-secret"))
    oauth_error(by_basic, 401, "invalid_client")
    assert by_basic.headers["www-authenticate"].startswith("Basic realm=")
    by_post = http.post("/oauth2/token", data=form | {"client_id": "reports", "client_secret": "not-the-secret"})
    oauth_error(by_post, 400, "invalid_client")
    assert "www-authenticate" not in by_post.headers
    oauth_error(http.post("/oauth2/token", data=form), 400, "invalid_client")
    unknown = http.post("/oauth2/token", data=form, headers=basic("nobody", MACHINE_SECRET))
    oauth_error(unknown, 401, "invalid_client")


def test_a_secret_no_longer_in_force_is_refused(auth: AuthStack, http: httpx.Client):
    configure_provider(auth, secrets_={"oidcclient.shop.clientSecret": "a-new-secret-" + "n" * 30})
    form = {"grant_type": "refresh_token", "refresh_token": "rt_x.y"}
    oauth_error(
        http.post("/oauth2/token", data=form, headers=basic("shop", WEB_PREVIOUS_SECRET)), 401, "invalid_client"
    )
    oauth_error(http.post("/oauth2/token", data=form, headers=basic("shop", WEB_SECRET)), 401, "invalid_client")


def test_the_token_endpoint_wants_a_form_with_each_parameter_once(auth: AuthStack, http: httpx.Client):
    as_json = http.post(
        "/oauth2/token", json={"grant_type": "client_credentials"}, headers=basic("reports", MACHINE_SECRET)
    )
    oauth_error(as_json, 400, "invalid_request")
    twice = http.post(
        "/oauth2/token",
        content="grant_type=client_credentials&scope=reports:read&scope=reports:write",
        headers=basic("reports", MACHINE_SECRET) | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "scope" in oauth_error(twice, 400, "invalid_request")["error_description"]
    unsupported = http.post("/oauth2/token", data={"grant_type": "password"}, headers=basic("reports", MACHINE_SECRET))
    oauth_error(unsupported, 400, "unsupported_grant_type")


# -- client credentials ----------------------------------------------------------------------


def test_a_machine_client_gets_a_token_with_client_credentials(auth: AuthStack, http: httpx.Client):
    answer = http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "reports:read"},
        headers=basic("reports", MACHINE_SECRET),
    )
    assert answer.status_code == 200, answer.text
    assert {k: answer.headers.get(k) for k in NO_STORE} == NO_STORE
    body = answer.json()
    assert body["scope"] == "reports:read" and "refresh_token" not in body and "id_token" not in body
    claims = unverified(body["access_token"])
    assert (
        claims["sub"] == "reports" and claims["client_id"] == "reports" and claims["aud"] == "https://reports.acme.dev"
    )
    introspected = http.post(
        "/oauth2/introspect", data={"token": body["access_token"]}, headers=basic("reports", MACHINE_SECRET)
    )
    assert introspected.json()["active"] is True and introspected.json()["scope"] == "reports:read"
    # Another client learns nothing about it.
    other = http.post("/oauth2/introspect", data={"token": body["access_token"]}, headers=basic("shop", WEB_SECRET))
    assert other.json() == {"active": False}
    # A scope it was not given is refused.
    wider = http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        headers=basic("reports", MACHINE_SECRET),
    )
    oauth_error(wider, 400, "invalid_scope")


def test_client_credentials_are_refused_to_other_clients(auth: AuthStack, http: httpx.Client):
    answer = http.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic("shop", WEB_SECRET))
    oauth_error(answer, 400, "unauthorized_client")
    public = http.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": "spa"})
    oauth_error(public, 400, "unauthorized_client")
    # And a machine client has no authorization code flow.
    asked = authorize_params("reports", "https://reports.acme.dev/cb", Pkce.new())
    assert http.get("/oauth2/authorize", params=asked).status_code == 400


# -- userinfo, revocation --------------------------------------------------------------------


def test_userinfo_refuses_with_www_authenticate(auth: AuthStack, http: httpx.Client, user: dict[str, Any]):
    missing = http.get("/oauth2/userinfo")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == f'Bearer realm="{auth.url}"'
    assert missing.json()["error"] == "invalid_token"
    garbage = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer not.a.token"})
    assert garbage.status_code == 401 and 'error="invalid_token"' in garbage.headers["www-authenticate"]
    # A first-party access token (the api's own login) is not an OIDC client's.
    first_party = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {user['accessToken']}"})
    assert first_party.status_code == 401


def test_userinfo_needs_the_openid_scope(auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str):
    pkce = Pkce.new()
    tokens = web_tokens(http, code_for(http, "shop", WEB_CALLBACK, pkce, scope="email"), pkce).json()
    assert "id_token" not in tokens
    answer = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert answer.status_code == 403 and 'error="insufficient_scope"' in answer.headers["www-authenticate"]


def test_revocation_answers_200_for_unknown_tokens_and_needs_a_token(auth: AuthStack, http: httpx.Client):
    for token in ("rt_unknown.secret", "not-a-token", "a.b.c"):
        answer = http.post("/oauth2/revoke", data={"token": token}, headers=basic("shop", WEB_SECRET))
        assert answer.status_code == 200 and answer.json() == {}, token
    oauth_error(http.post("/oauth2/revoke", data={}, headers=basic("shop", WEB_SECRET)), 400, "invalid_request")
    oauth_error(http.post("/oauth2/revoke", data={"token": "x"}, headers=basic("shop", "wrong")), 401, "invalid_client")


def test_a_client_cannot_revoke_another_clients_token(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    pkce = Pkce.new()
    tokens = web_tokens(http, code_for(http, "shop", WEB_CALLBACK, pkce), pkce).json()
    answer = http.post("/oauth2/revoke", data={"token": tokens["refresh_token"], "client_id": "spa"})
    assert answer.status_code == 200
    userinfo = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200, "the shop's grant still lives"


# -- logout -----------------------------------------------------------------------------------


def test_logout_with_an_id_token_hint_ends_the_session_and_returns_with_state(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    pkce = Pkce.new()
    tokens = web_tokens(http, code_for(http, "shop", WEB_CALLBACK, pkce, scope="openid"), pkce).json()
    params = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": WEB_LOGGED_OUT, "state": "bye-1"}
    answer = http.get("/oauth2/logout", params=params)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{WEB_LOGGED_OUT}?state=bye-1"
    assert 'sy_op=""' in answer.headers["set-cookie"] or "Max-Age=0" in answer.headers["set-cookie"]
    # The browser session is over (prompt=none: login_required) and so is the grant tied to it.
    _, query = redirect_of(
        http.get("/oauth2/authorize", params=authorize_params("shop", WEB_CALLBACK, Pkce.new(), prompt="none"))
    )
    assert query["error"] == "login_required"
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    oauth_error(http.post("/oauth2/token", data=form, headers=basic("shop", WEB_SECRET)), 400, "invalid_grant")


def test_logout_refuses_an_unregistered_post_logout_uri_with_a_page(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    for uri in (f"{WEB_LOGGED_OUT}/", "https://evil.example.net/bye", f"{WEB_LOGGED_OUT}?next=x"):
        answer = http.post("/oauth2/logout", data={"client_id": "shop", "post_logout_redirect_uri": uri})
        assert answer.status_code == 400 and "location" not in answer.headers, uri
        assert answer.headers["content-type"].startswith("text/html")
    # Still signed in.
    assert code_for(http, "shop", WEB_CALLBACK, Pkce.new())


def test_logout_without_a_hint_asks_for_confirmation(auth: AuthStack, http: httpx.Client, browser: str):
    page, query = redirect_of(http.get("/oauth2/logout", params={"client_id": "shop"}))
    assert page == f"{auth.url}/oauth2/ui/logout" and query["lr"]
    assert code_for(http, "shop", WEB_CALLBACK, Pkce.new()), "nothing ended before the user confirms"


def test_logout_without_a_session_goes_to_the_logged_out_page(auth: AuthStack, http: httpx.Client):
    target, _ = redirect_of(http.get("/oauth2/logout"))
    assert target == f"{auth.url}/oauth2/ui/logged-out"


# -- CORS for single-page apps -------------------------------------------------------------------


def preflight(http: httpx.Client, path: str, origin: str) -> httpx.Response:
    return http.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_single_page_apps_may_call_the_token_userinfo_revocation_and_discovery_endpoints(
    auth: AuthStack, http: httpx.Client
):
    for path in ("/oauth2/token", "/oauth2/userinfo", "/oauth2/revoke", "/.well-known/openid-configuration"):
        answer = preflight(http, path, SPA)
        assert answer.status_code == 204, (path, answer.text)
        assert answer.headers["access-control-allow-origin"] == SPA
        assert "access-control-allow-credentials" not in answer.headers
    simple = http.get("/.well-known/jwks.json", headers={"Origin": SPA})
    assert simple.headers["access-control-allow-origin"] == SPA
    refused = http.get("/oauth2/userinfo", headers={"Origin": SPA})
    assert refused.headers["access-control-allow-origin"] == SPA
    assert "WWW-Authenticate" in refused.headers["access-control-expose-headers"]
    # Other origins are not allowed there, and the rest of the api keeps the Stack's rules (none here).
    assert preflight(http, "/oauth2/token", "https://evil.example.net").status_code == 403
    assert (
        "access-control-allow-origin"
        not in http.get("/.well-known/jwks.json", headers={"Origin": "https://evil.example.net"}).headers
    )
    assert (
        "access-control-allow-origin"
        not in http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}, headers={"Origin": SPA}).headers
    )
    assert "access-control-allow-origin" not in preflight(http, "/oauth2/introspect", SPA).headers


def test_a_client_removed_from_the_config_loses_its_origin(auth: AuthStack, http: httpx.Client):
    assert preflight(http, "/oauth2/token", SPA).status_code == 204
    configure_provider(auth, clients={})
    assert "access-control-allow-origin" not in preflight(http, "/oauth2/token", SPA).headers


def test_the_token_endpoint_answers_a_browser_of_the_spa(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any], browser: str
):
    pkce = Pkce.new()
    code = code_for(http, "spa", SPA_CALLBACK, pkce, scope="openid")
    form = code_form(code, SPA_CALLBACK, pkce, client_id="spa")
    answer = http.post("/oauth2/token", data=form, headers={"Origin": SPA})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == SPA
    assert json.loads(answer.text)["token_type"] == "Bearer"
    assert query_of(f"?{answer.request.content.decode()}")["client_id"] == "spa"


# -- an OIDC client's access tokens at the stackyard api ---------------------------------------


def test_a_first_party_clients_token_calls_the_api_but_a_third_party_clients_does_not(
    auth: AuthStack, http: httpx.Client, db: Any, user: dict[str, Any]
):
    from oidc_http import CLIENTS, SECRETS

    buddy = {"type": "confidential", "thirdParty": True, "redirectUris": ["https://buddy.example.org/cb"]}
    configure_provider(
        auth,
        clients=CLIENTS | {"buddy": buddy},
        secrets_=SECRETS | {"oidcclient.buddy.clientSecret": WEB_SECRET},
        fresh_database=False,
    )
    sign_in_browser(auth, http, EMAIL)
    user_id = unverified(user["accessToken"])["sub"]
    # The user consented to buddy's scopes before (as the hosted consent page records it).
    db["oidc_consents"].insert_one(
        {"_id": f"{user_id}:buddy", "userId": user_id, "clientId": "buddy", "scopes": ["openid", "email"]}
    )
    tokens = {}
    for client_id, uri in (("shop", WEB_CALLBACK), ("buddy", "https://buddy.example.org/cb")):
        pkce = Pkce.new()
        code = code_for(http, client_id, uri, pkce, scope="openid email")
        form = code_form(code, uri, pkce)
        answer = http.post("/oauth2/token", data=form, headers=basic(client_id, WEB_SECRET))
        assert answer.status_code == 200, answer.text
        tokens[client_id] = answer.json()["access_token"]
    mine = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['shop']}"})
    assert mine.status_code == 200 and mine.json()["id"] == user_id, mine.text
    theirs = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['buddy']}"})
    assert theirs.status_code == 401 and "third-party" in theirs.json()["detail"]
    # Nor through the feed stream's ?token= (EventSource sends no headers).
    stream = http.get("/v1/feed/stream", params={"token": tokens["buddy"]})
    assert stream.status_code == 401 and "third-party" in stream.json()["detail"]
    # Both are good at the provider's own userinfo.
    for token in tokens.values():
        assert http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_oidc_cors_rules_add_the_clients_origins_to_the_stacks(auth: AuthStack):
    from stackyard.config import RuntimeConfig
    from stackyard.resources.stack import CorsSettings
    from stackyard_api.cors import oidc_cors, web_origin

    config = RuntimeConfig.model_validate_json((auth.directory / "config.json").read_text())
    stack_cors = CorsSettings(allowed_origins=["https://admin.acme.dev"], allowed_headers=["X-Request-Id"])
    api = config.spec.api.model_copy(update={"cors": stack_cors})
    rules = oidc_cors(config.model_copy(update={"spec": config.spec.model_copy(update={"api": api})}))
    assert rules.allowed_origins == ["https://admin.acme.dev", "https://shop.example.com", SPA]
    assert rules.allowed_headers == ["Authorization", "Content-Type", "X-Request-Id"]
    assert rules.allow_credentials is False and "WWW-Authenticate" in rules.exposed_headers
    assert web_origin("https://SPA.example.com:443/cb?x=1") == SPA
    assert web_origin("http://localhost:5173/cb") == "http://localhost:5173"
    assert web_origin("com.example.app:/callback") is None


def test_a_form_post_without_the_session_cookie_is_repeated_as_a_get(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any]
):
    """SameSite=Lax: a browser leaves the provider's cookie out of a POST from the client's site;
    the GET the 303 asks for carries it."""
    asked = authorize_params("spa", SPA_CALLBACK, Pkce.new(), scope="openid")
    again = http.post("/oauth2/authorize", data=asked)
    target, query = redirect_of(again)
    assert target == f"{auth.url}/oauth2/authorize" and query == asked
    sign_in_browser(auth, http, EMAIL)
    _, response = redirect_of(http.get(again.headers["location"]))
    assert response["state"] == asked["state"] and response["code"]
    # Logout too: the POST without the cookie becomes a GET, which ends the session.
    http.cookies.clear()
    logout = http.post("/oauth2/logout", data={"client_id": "shop", "state": "s1"})
    target, query = redirect_of(logout)
    assert target == f"{auth.url}/oauth2/logout" and query == {"client_id": "shop", "state": "s1"}


def test_a_third_party_client_asks_consent_and_prompt_none_says_consent_required(
    auth: AuthStack, http: httpx.Client, user: dict[str, Any]
):
    from oidc_http import CLIENTS, SECRETS

    buddy = {"type": "confidential", "thirdParty": True, "redirectUris": ["https://buddy.example.org/cb"]}
    configure_provider(auth, clients=CLIENTS | {"buddy": buddy}, secrets_=SECRETS, fresh_database=False)
    sign_in_browser(auth, http, EMAIL)
    asked = authorize_params("buddy", "https://buddy.example.org/cb", Pkce.new(), scope="openid email")
    page, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert page == f"{auth.url}/oauth2/ui/consent" and query["ar"].startswith("ar_")
    target, query = redirect_of(http.get("/oauth2/authorize", params=asked | {"prompt": "none"}))
    assert target == "https://buddy.example.org/cb"
    assert query["error"] == "consent_required" and query["state"] == asked["state"]
    # A first-party client asks nothing.
    assert code_for(http, "shop", WEB_CALLBACK, Pkce.new(), prompt="none")


def test_a_disabled_client_is_refused_everywhere(auth: AuthStack, http: httpx.Client, browser: str):
    from oidc_http import CLIENTS

    disabled = {name: spec | {"enabled": False} for name, spec in CLIENTS.items()}
    configure_provider(auth, clients=disabled, fresh_database=False)
    page = http.get("/oauth2/authorize", params=authorize_params("shop", WEB_CALLBACK, Pkce.new()))
    assert page.status_code == 400 and "location" not in page.headers
    token = http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic("reports", MACHINE_SECRET)
    )
    oauth_error(token, 401, "invalid_client")
    assert "access-control-allow-origin" not in preflight(http, "/oauth2/token", SPA).headers
    assert "reports:read" not in http.get("/.well-known/openid-configuration").json()["scopes_supported"]
