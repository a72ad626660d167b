"""Sign-in links by email on the OpenID Provider's hosted pages, against the real api app, a
real worker sending the mails to an SMTP sink, real Redis and FerretDB: the link in the mail
comes back to the hosted pages, opening it spends nothing, its button signs in (the MFA step
first when the account has one) and the authorization request goes on to a code; a used link
is refused; the answer is the same whether or not the address can sign in, and the hourly
mail budget holds."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pyotp
import pytest
from auth_http import bearer, sign_up_and_log_in
from hosted_methods_support import (
    Authorization,
    authorize,
    code_at_client,
    configure,
    csrf_of,
    login_page,
    origin,
    signed_in,
    token_claims,
)
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 44
RUN_WORKER = True
EMAIL = "mila@example.com"
SENT = "Check your email"
SPENT = "invalid, has expired or was already used"


@pytest.fixture
def auth(running: AuthStack) -> AuthStack:
    running.reset()
    configure(running, {"requireEmailVerification": False})
    return running


def ask_for_link(auth: AuthStack, http: httpx.Client, authorization: Authorization, email: str) -> httpx.Response:
    page = login_page(http, authorization)
    assert 'action="/oauth2/ui/magic-link"' in page.text
    return http.post(
        "/oauth2/ui/magic-link",
        data={"csrf_token": csrf_of(page), "ar": authorization.ar, "email": email},
        headers=origin(auth),
    )


def link_in_mail(auth: AuthStack, email: str) -> str:
    message = auth.mail_to(email, "sign-in link")
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else str(message)
    found = re.search(r"(\S+/oauth2/ui/magic-link/callback\?\S+)", text)
    assert found, text
    return found.group(1)


def open_link(http: httpx.Client, link: str) -> httpx.Response:
    page = http.get(link)
    assert page.status_code == 200, page.text
    return page


def press_continue(auth: AuthStack, http: httpx.Client, page: httpx.Response) -> httpx.Response:
    """The button of the page the link opened (its hidden fields and CSRF token)."""
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    assert {"csrf_token", "ar", "token"} <= set(fields), page.text
    return http.post("/oauth2/ui/magic-link/callback", data=fields, headers=origin(auth))


def test_a_link_by_email_signs_in_and_the_authorization_goes_on(auth: AuthStack, http: httpx.Client) -> None:
    authorization = authorize(http)
    sent = ask_for_link(auth, http, authorization, EMAIL)
    assert sent.status_code == 200 and SENT in sent.text and EMAIL in sent.text
    link = link_in_mail(auth, EMAIL)
    assert link.startswith(f"{auth.url}/oauth2/ui/magic-link/callback?ar={authorization.ar}&token=")

    page = open_link(http, link)
    assert f"Continue as {EMAIL}" in page.text
    assert open_link(http, link).status_code == 200  # opening (a mail scanner's GET) spends nothing
    signed_in(press_continue(auth, http, page), authorization)
    code = code_at_client(http, authorization)
    claims = token_claims(http, authorization, code)
    assert claims["email"] == EMAIL and claims["email_verified"] is True


def test_the_link_points_at_the_hosted_pages_not_the_apps_link(auth: AuthStack, http: httpx.Client) -> None:
    configure(auth, {"requireEmailVerification": False, "links": {"magicLink": "https://app.acme.dev/m?t={token}"}})
    authorization = authorize(http)
    ask_for_link(auth, http, authorization, EMAIL)
    assert link_in_mail(auth, EMAIL).startswith(f"{auth.url}/oauth2/ui/magic-link/callback?")


def test_a_used_link_is_refused(auth: AuthStack, http: httpx.Client) -> None:
    authorization = authorize(http)
    ask_for_link(auth, http, authorization, EMAIL)
    link = link_in_mail(auth, EMAIL)
    page = open_link(http, link)
    signed_in(press_continue(auth, http, page), authorization)

    again = press_continue(auth, http, page)
    assert again.status_code == 400 and SPENT in again.text
    assert "sy_op=" not in again.headers.get("set-cookie", "")
    reopened = http.get(link)
    assert reopened.status_code == 400 and SPENT in reopened.text


def test_the_answer_is_the_same_whether_or_not_the_address_can_sign_in(auth: AuthStack, http: httpx.Client) -> None:
    sign_up_and_log_in(http, EMAIL)
    configure(auth, {"requireEmailVerification": False, "allowSignup": False}, fresh_database=False)
    stranger = "nobody@example.com"
    authorization = authorize(http)
    unknown = ask_for_link(auth, http, authorization, stranger)
    known = ask_for_link(auth, http, authorization, EMAIL)
    assert unknown.status_code == known.status_code == 200
    assert notice(known).replace(EMAIL, "@") == notice(unknown).replace(stranger, "@")
    link_in_mail(auth, EMAIL)
    time.sleep(1.0)
    assert auth.mails_to(stranger) == []


def notice(page: httpx.Response) -> str:
    found = re.search(r'<div class="notice"[^>]*>(.*?)</div>', page.text, re.S)
    assert found, page.text
    return found.group(1)


def test_the_hourly_mail_budget_of_an_address_holds(auth: AuthStack, http: httpx.Client) -> None:
    configure(auth, {"requireEmailVerification": False, "lockout": {"mailsPerAddress": 1, "ipMaxAttempts": 100000}})
    authorization = authorize(http)
    assert SENT in ask_for_link(auth, http, authorization, EMAIL).text
    link_in_mail(auth, EMAIL)
    assert SENT in ask_for_link(auth, http, authorization, EMAIL).text
    time.sleep(1.5)
    assert len(auth.mails_to(EMAIL)) == 1


def test_a_request_without_the_csrf_token_sends_nothing(auth: AuthStack, http: httpx.Client) -> None:
    authorization = authorize(http)
    login_page(http, authorization)
    answer = http.post("/oauth2/ui/magic-link", data={"ar": authorization.ar, "email": EMAIL}, headers=origin(auth))
    assert answer.status_code == 403
    time.sleep(1.0)
    assert auth.mails_to(EMAIL) == []


def test_an_account_with_totp_is_asked_for_its_code_first(auth: AuthStack, http: httpx.Client) -> None:
    session = sign_up_and_log_in(http, EMAIL)
    secret = turn_on_totp(http, session)
    authorization = authorize(http)
    ask_for_link(auth, http, authorization, EMAIL)
    answer = press_continue(auth, http, open_link(http, link_in_mail(auth, EMAIL)))
    assert answer.status_code == 303 and answer.headers["location"] == f"/oauth2/ui/mfa?ar={authorization.ar}"
    assert "sy_op=" not in answer.headers.get("set-cookie", "")
    page = http.get(answer.headers["location"])
    assert page.status_code == 200, page.text
    step = http.post(
        f"/oauth2/ui/mfa?ar={authorization.ar}",
        data={"csrf_token": csrf_of(page), "ar": authorization.ar, "code": pyotp.TOTP(secret).at(time.time() + 30)},
        headers=origin(auth),
    )
    signed_in(step, authorization)


def turn_on_totp(http: httpx.Client, session: dict[str, Any]) -> str:
    enrolled = http.post("/v1/auth/mfa/totp/enroll", headers=bearer(session))
    assert enrolled.status_code == 200, enrolled.text
    secret: str = enrolled.json()["secret"]
    confirmed = http.post("/v1/auth/mfa/totp/confirm", headers=bearer(session), json={"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200, confirmed.text
    return secret
