"""A forgotten password on the hosted pages, against the real api and a worker sending the
mail to an SMTP sink: the login page links to it, the answer is the same for any address,
the mail's link opens the hosted reset page of the same request, the password policy applies,
and after the reset the old password fails, the new one signs in, and the link works once.
Every POST is CSRF-checked (test_hosted_security covers every hosted POST). Redis database 43."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from auth_http import EMAIL, PASSWORD, sign_up_and_log_in
from hosted_http import FIRST_PARTY, ISSUER, add_clients, post_page, waiting_request
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 43
RUN_WORKER = True
AUTH_SETTINGS: dict[str, Any] = {"requireEmailVerification": False, "cookies": {"secure": False}}
NEW_PASSWORD = "a new and even quieter river"


@pytest.fixture
def clients(auth: AuthStack) -> AuthStack:
    add_clients(auth, {"shop": FIRST_PARTY})
    return auth


def reset_link(auth: AuthStack) -> str:
    """The link of the reset mail to Ana, as a path on the api under test."""
    message = auth.mail_to(EMAIL, "password")
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else str(message)
    link = next(word for word in text.split() if word.startswith(f"{ISSUER}/oauth2/ui/password/reset?"))
    return link.removeprefix(ISSUER)


def test_a_forgotten_password_is_reset_on_the_hosted_pages(clients: AuthStack, http: httpx.Client):
    sign_up_and_log_in(http)
    ar = waiting_request(clients, login_hint=EMAIL)
    login = http.get(f"/oauth2/ui/login?ar={ar}")
    assert f'href="/oauth2/ui/password/forgot?ar={ar}"' in login.text
    asked = post_page(http, f"/oauth2/ui/password/forgot?ar={ar}", {"ar": ar, "email": EMAIL})
    assert asked.status_code == 200, asked.text
    assert f"If {EMAIL} has an account, a link to choose a new password is on its way" in asked.text
    link = reset_link(clients)
    assert f"ar={ar}" in link and "token=" in link
    page = http.get(link)
    assert page.status_code == 200 and 'autocomplete="new-password"' in page.text

    token = link.split("token=", 1)[1]
    weak = post_page(http, link, {"ar": ar, "token": token, "password": "short"}, url="/oauth2/ui/password/reset")
    assert weak.status_code == 422 and "at least 12 characters" in weak.text and 'role="alert"' in weak.text

    done = post_page(http, link, {"ar": ar, "token": token, "password": NEW_PASSWORD}, url="/oauth2/ui/password/reset")
    assert done.status_code == 200, done.text
    assert "Your password is changed" in done.text and 'role="status"' in done.text
    old = post_page(http, f"/oauth2/ui/login?ar={ar}", {"ar": ar, "email": EMAIL, "password": PASSWORD})
    assert old.status_code == 401
    new = post_page(http, f"/oauth2/ui/login?ar={ar}", {"ar": ar, "email": EMAIL, "password": NEW_PASSWORD})
    assert new.status_code == 303 and new.headers["location"] == f"/oauth2/authorize/continue?ar={ar}"

    again = post_page(
        http, link, {"ar": ar, "token": token, "password": "yet another long password"}, url="/oauth2/ui/password/reset"
    )
    assert again.status_code == 400 and "already used" in again.text


def test_the_answer_is_the_same_for_an_unknown_address(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients)
    asked = post_page(http, f"/oauth2/ui/password/forgot?ar={ar}", {"ar": ar, "email": "nobody@example.com"})
    assert asked.status_code == 200
    assert "If nobody@example.com has an account, a link to choose a new password is on its way" in asked.text


def test_after_the_request_expired_the_reset_says_to_go_back(clients: AuthStack, http: httpx.Client):
    sign_up_and_log_in(http)
    ar = waiting_request(clients)
    post_page(http, f"/oauth2/ui/password/forgot?ar={ar}", {"ar": ar, "email": EMAIL})
    link = reset_link(clients)
    token = link.split("token=", 1)[1]
    form = http.get(link)
    gone = "ar_expired000000000000000"
    done = post_page(
        http, link, {"ar": gone, "token": token, "password": NEW_PASSWORD}, url="/oauth2/ui/password/reset"
    )
    assert form.status_code == 200 and done.status_code == 200
    assert "Go back to the application and sign in with your new password" in done.text
