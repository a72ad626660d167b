"""Sign-up closed on the OpenID Provider's hosted pages: with allowSignup false, or with the
hosted pages offering no password, the login page has no link to it, the sign-up page and its
POST are a 404 error page that creates nothing, and prompt=create shows the login page.
Redis database 49."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from auth_http import PASSWORD
from hosted_http import FIRST_PARTY, ISSUER, REDIRECT_URI, add_clients, post_page, waiting_request
from oidc_http import Pkce, authorize_params, redirect_of
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 49
AUTH_SETTINGS: dict[str, Any] = {"requireEmailVerification": False, "cookies": {"secure": False}}
CLOSED: dict[str, dict[str, Any]] = {
    "allowSignup false": {"allowSignup": False},
    "no password on the hosted pages": {"allowSignup": True, "hostedPages": {"password": False}},
}
NEWCOMER = "bea@example.com"


@pytest.fixture(params=sorted(CLOSED))
def clients(request, auth: AuthStack) -> AuthStack:  # type: ignore[no-untyped-def]
    auth.configure(AUTH_SETTINGS | CLOSED[request.param])
    add_clients(auth, {"shop": FIRST_PARTY})
    return auth


def test_the_login_page_has_no_sign_up_link(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients)
    login = http.get(f"/oauth2/ui/login?ar={ar}")
    assert login.status_code == 200, login.text
    assert "/oauth2/ui/signup" not in login.text and "Create an account" not in login.text


def test_the_sign_up_page_and_its_post_are_not_found(clients: AuthStack, http: httpx.Client, db: Any):
    ar = waiting_request(clients)
    page = http.get(f"/oauth2/ui/signup?ar={ar}")
    assert page.status_code == 404, page.text
    assert page.headers["content-type"].startswith("text/html") and "Sign-up is not open here" in page.text
    data = {"ar": ar, "email": NEWCOMER, "password": PASSWORD, "name": "Bea"}
    posted = post_page(http, f"/oauth2/ui/login?ar={ar}", data, url=f"/oauth2/ui/signup?ar={ar}")
    assert posted.status_code == 404, posted.text
    assert "Sign-up is not open here" in posted.text
    assert not any(c.startswith("sy_op=") for c in posted.headers.get_list("set-cookie"))
    assert db["users"].count_documents({}) == 0


def test_prompt_create_shows_the_login_page(clients: AuthStack, http: httpx.Client):
    asked = authorize_params("shop", REDIRECT_URI, Pkce.new(), prompt="create")
    page, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert page == f"{ISSUER}/oauth2/ui/login" and query["ar"].startswith("ar_")
