"""Sign-up on the OpenID Provider's hosted pages with email verification off: the new account
is signed in at once (the browser-session cookie, amr pwd) and the authorization request goes
on to give the client its code. Here from prompt=create, as an application's "Sign up" button
starts it. Redis database 48."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from auth_http import PASSWORD
from hosted_http import FIRST_PARTY, ISSUER, REDIRECT_URI, add_clients, post_page
from oidc_http import Pkce, authorize_params, code_form, redirect_of
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 48
AUTH_SETTINGS: dict[str, Any] = {"requireEmailVerification": False, "cookies": {"secure": False}}
NEWCOMER = "bea@example.com"


@pytest.fixture
def clients(auth: AuthStack) -> AuthStack:
    add_clients(auth, {"shop": FIRST_PARTY})
    return auth


def test_sign_up_signs_in_at_once_and_the_client_gets_its_code(clients: AuthStack, http: httpx.Client, db: Any):
    pkce = Pkce.new()
    asked = authorize_params("shop", REDIRECT_URI, pkce, prompt="create")
    page, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert page == f"{ISSUER}/oauth2/ui/signup", query
    ar = query["ar"]

    answer = post_page(
        http, f"/oauth2/ui/signup?ar={ar}", {"ar": ar, "email": NEWCOMER, "password": PASSWORD, "name": "Bea Lima"}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/oauth2/authorize/continue?ar={ar}"
    cookies = {h.split("=", 1)[0]: h for h in answer.headers.get_list("set-cookie")}
    assert "sy_op" in cookies and "HttpOnly" in cookies["sy_op"], cookies
    assert db["users"].count_documents({"email": NEWCOMER}) == 1

    target, response = redirect_of(http.get(answer.headers["location"]))
    assert target == REDIRECT_URI, response
    assert response["state"] == asked["state"] and response["iss"] == ISSUER and response["code"]

    tokens = http.post("/oauth2/token", data=code_form(response["code"], REDIRECT_URI, pkce, client_id="shop"))
    assert tokens.status_code == 200, tokens.text
    claims = jwt.decode(tokens.json()["id_token"], options={"verify_signature": False})
    assert claims["email"] == NEWCOMER and claims["amr"] == ["pwd"] and claims["nonce"] == asked["nonce"]
    assert claims.get("name") == "Bea Lima", claims
