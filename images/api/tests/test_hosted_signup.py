"""Sign-up on the OpenID Provider's hosted pages with email verification on (the default),
against the real api and a worker sending the mails to an SMTP sink: the login page links to
it, the form asks name, email and a new password, the answer is the same whether or not the
address has an account (its owner gets a notice instead), the mail's link opens the hosted
confirmation page of the same request (a GET spends nothing), confirming it shows the login
page with the address filled in, and the link works once. prompt=create starts there, even
with a browser session. Every POST is CSRF-checked (test_hosted_security covers every hosted
POST). Verification off: test_hosted_signup_instant; sign-up closed: test_hosted_signup_closed.
Redis database 47."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import redis
from auth_http import EMAIL, PASSWORD, sign_up_and_verify
from hosted_http import FIRST_PARTY, ISSUER, REDIRECT_URI, add_clients, post_page, query_of, waiting_request
from oidc_http import Pkce, authorize_params, redirect_of
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 47
RUN_WORKER = True
AUTH_SETTINGS: dict[str, Any] = {
    "requireEmailVerification": True,
    "verificationTokenLifetime": "2h",
    "cookies": {"secure": False},
    "hostedPages": {"appName": "Acme"},
}
NEWCOMER = "bea@example.com"
CONFIRM_SUBJECT = "Confirm your email address"
ALREADY_SUBJECT = "You already have an account"
INVALID_LINK = "This link is invalid, has expired or was already used."


@pytest.fixture
def clients(auth: AuthStack) -> AuthStack:
    add_clients(auth, {"shop": FIRST_PARTY})
    return auth


def signup_url(ar: str) -> str:
    return f"/oauth2/ui/signup?ar={ar}"


def sign_up(
    http: httpx.Client, ar: str, email: str = NEWCOMER, password: str = PASSWORD, **fields: str
) -> httpx.Response:
    return post_page(http, signup_url(ar), {"ar": ar, "email": email, "password": password} | fields)


def check_your_email(email: str) -> str:
    return f"If {email} can be used for a new account, a link to confirm it is on its way. It works once, for 2 hours."


def form_posting_to(html: str, action: str) -> str:
    """The one <form> of the page that posts to `action`, tags and all."""
    every: list[str] = re.findall(r"<form\b.*?</form>", html, re.S)
    forms = [f for f in every if f'action="{action}"' in f.split(">", 1)[0]]
    assert len(forms) == 1, (action, forms)
    assert re.match(r'<form\b[^>]*method="post"', forms[0]), forms[0]
    return forms[0]


def input_named(html: str, name: str) -> str:
    """The <input> tag of the field `name` (there must be one)."""
    tags: list[str] = [t for t in re.findall(r"<input\b[^>]*>", html) if f'name="{name}"' in t]
    assert len(tags) == 1, (name, tags)
    return tags[0]


def page_without(answer: httpx.Response, email: str) -> str:
    """The page but the address it names and its CSRF token, to compare two answers."""
    return re.sub(r'name="csrf_token" value="[^"]+"', "", answer.text).replace(email, "{email}")


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return str(body.get_content()) if body is not None else str(message)


def verify_link(auth: AuthStack, email: str = NEWCOMER) -> str:
    """The link of the confirmation mail to `email`, as a path on the api under test."""
    text = text_of(auth.mail_to(email, CONFIRM_SUBJECT))
    link = next((w for w in text.split() if w.startswith(f"{ISSUER}/oauth2/ui/verify-email?")), None)
    assert link is not None, f"no hosted verify-email link in the mail: {text[:500]}"
    return link.removeprefix(ISSUER)


def confirm(http: httpx.Client, link: str, ar: str | None = None) -> httpx.Response:
    """The confirmation page of `link`, then its button (the form's ar: the link's unless given)."""
    query = query_of(link)
    data = {"ar": query["ar"] if ar is None else ar, "token": query["token"]}
    return post_page(http, link, data, url="/oauth2/ui/verify-email")


def api_login(http: httpx.Client, email: str, password: str) -> httpx.Response:
    return http.post("/v1/auth/login", json={"email": email, "password": password})


def test_a_new_account_is_made_and_confirmed_on_the_hosted_pages(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients)
    login = http.get(f"/oauth2/ui/login?ar={ar}")
    assert login.status_code == 200
    assert re.search(rf'<a\b[^>]*href="/oauth2/ui/signup\?ar={ar}"[^>]*>\s*Create an account\s*</a>', login.text)

    page = http.get(signup_url(ar))
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Create your account</h1>" in html and html.count("<h1") == 1
    form = form_posting_to(html, signup_url(ar))
    assert 'autocomplete="name"' in input_named(form, "name")
    assert 'autocomplete="email"' in input_named(form, "email")
    password_field = input_named(form, "password")
    assert 'autocomplete="new-password"' in password_field and 'type="password"' in password_field
    hidden = input_named(form, "ar")
    assert 'type="hidden"' in hidden and f'value="{ar}"' in hidden
    assert 'type="hidden"' in input_named(form, "csrf_token")
    assert re.search(rf'<a\b[^>]*href="/oauth2/ui/login\?ar={ar}"[^>]*>\s*Sign in\s*</a>', html)

    answer = sign_up(http, ar, name="Bea Lima")
    assert answer.status_code == 200, answer.text
    assert "Check your email" in answer.text and 'role="status"' in answer.text
    assert check_your_email(NEWCOMER) in answer.text
    # The account exists, waiting for its address: a password login is refused until then.
    waiting = post_page(http, f"/oauth2/ui/login?ar={ar}", {"ar": ar, "email": NEWCOMER, "password": PASSWORD})
    assert waiting.status_code == 403 and "Confirm your email address first" in waiting.text

    link = verify_link(clients)
    assert link.startswith("/oauth2/ui/verify-email?")
    query = query_of(link)
    assert query["ar"] == ar and query["token"]
    # Opening the link (as a mail scanner does) spends nothing: it shows a button, twice.
    for _ in range(2):
        shown = http.get(link)
        assert shown.status_code == 200, shown.text
        assert re.search(r"<button\b[^>]*>\s*Confirm my email address\s*</button>", shown.text), shown.text

    confirmed = confirm(http, link)
    assert confirmed.status_code == 200, confirmed.text
    assert "<h1>Sign in to Acme Shop</h1>" in confirmed.text
    assert re.search(
        r'role="status"[^>]*>\s*(<[^>]+>\s*)*Your email address is confirmed\. Sign in with your password\.',
        confirmed.text,
    ), confirmed.text
    login_form = form_posting_to(confirmed.text, f"/oauth2/ui/login?ar={ar}")
    assert f'value="{NEWCOMER}"' in input_named(login_form, "email")

    signed_in = post_page(http, f"/oauth2/ui/login?ar={ar}", {"ar": ar, "email": NEWCOMER, "password": PASSWORD})
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == f"/oauth2/authorize/continue?ar={ar}"
    session = api_login(http, NEWCOMER, PASSWORD)
    assert session.status_code == 200, session.text
    account = http.get("/v1/auth/user", headers={"Authorization": f"Bearer {session.json()['accessToken']}"}).json()
    assert account["emailVerified"] is True and account["profile"].get("name") == "Bea Lima", account

    again = confirm(http, link)
    assert again.status_code == 400 and INVALID_LINK in again.text


def test_an_address_with_an_account_gets_the_same_answer_and_its_owner_a_notice(
    clients: AuthStack, http: httpx.Client, db: Any
):
    sign_up_and_verify(clients, http)
    ar = waiting_request(clients)
    newcomer = sign_up(http, ar)
    taken = sign_up(http, ar, email=EMAIL, password="another long and quiet river")
    assert newcomer.status_code == taken.status_code == 200, taken.text
    assert check_your_email(NEWCOMER) in newcomer.text and check_your_email(EMAIL) in taken.text
    assert page_without(newcomer, NEWCOMER) == page_without(taken, EMAIL)

    assert "already has an account" in text_of(clients.mail_to(EMAIL, ALREADY_SUBJECT))
    verify_link(clients, NEWCOMER)  # the newcomer's mail went out (the worker sends in order)
    confirmations = [m for m in clients.mails_to(EMAIL) if CONFIRM_SUBJECT in str(m["Subject"])]
    assert len(confirmations) == 1, "only the confirmation of the first sign-up"
    assert db["users"].count_documents({}) == 2
    assert api_login(http, EMAIL, PASSWORD).status_code == 200
    assert api_login(http, EMAIL, "another long and quiet river").status_code == 401


def test_a_weak_password_or_a_missing_field_stays_on_the_page(clients: AuthStack, http: httpx.Client, db: Any):
    ar = waiting_request(clients)
    weak = sign_up(http, ar, password="tiny-pw")
    assert weak.status_code == 422, weak.text
    assert "at least 12 characters" in weak.text and 'role="alert"' in weak.text
    assert weak.headers["content-type"].startswith("text/html")
    for missing in ("email", "password"):
        data = {"ar": ar, "email": NEWCOMER, "password": PASSWORD, "name": "Bea"}
        del data[missing]
        answer = post_page(http, signup_url(ar), data)
        assert answer.status_code == 422, (missing, answer.text)
        assert answer.headers["content-type"].startswith("text/html"), missing
        assert 'role="alert"' in answer.text, missing
    assert db["users"].count_documents({}) == 0
    time.sleep(1)
    assert clients.mails_to(NEWCOMER) == []


def test_after_the_request_expired_the_confirmation_says_to_go_back(clients: AuthStack, http: httpx.Client):
    ar = waiting_request(clients)
    assert sign_up(http, ar).status_code == 200
    link = verify_link(clients)
    assert http.get(link).status_code == 200
    with redis.Redis.from_url(clients.redis_url) as client:
        assert client.delete(f"sy:auth:{{ns/demo}}:oidc-ar:{ar}") == 1
    done = confirm(http, link)
    assert done.status_code == 200, done.text
    assert "Your email address is confirmed. Go back to the application and sign in." in done.text
    assert api_login(http, NEWCOMER, PASSWORD).status_code == 200
    assert confirm(http, link).status_code == 400


# -- prompt=create ---------------------------------------------------------------------------


def test_prompt_create_starts_at_the_sign_up_page(clients: AuthStack, http: httpx.Client):
    asked = authorize_params("shop", REDIRECT_URI, Pkce.new(), prompt="create")
    page, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert page == f"{ISSUER}/oauth2/ui/signup" and query["ar"].startswith("ar_")
    shown = http.get(signup_url(query["ar"]))
    assert shown.status_code == 200 and "<h1>Create your account</h1>" in shown.text


def test_prompt_create_shows_the_sign_up_page_even_to_a_signed_in_browser(clients: AuthStack, http: httpx.Client):
    sign_up_and_verify(clients, http)
    ar = waiting_request(clients)
    signed_in = post_page(http, f"/oauth2/ui/login?ar={ar}", {"ar": ar, "email": EMAIL, "password": PASSWORD})
    assert signed_in.status_code == 303 and http.cookies.get("sy_op")
    time.sleep(1.1)  # auth_time is in seconds: the request comes after the login
    plain = authorize_params("shop", REDIRECT_URI, Pkce.new())
    target, query = redirect_of(http.get("/oauth2/authorize", params=plain))
    assert target == REDIRECT_URI and "code" in query, "the browser session signs in without prompt=create"
    asked = authorize_params("shop", REDIRECT_URI, Pkce.new(), prompt="create")
    page, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert page == f"{ISSUER}/oauth2/ui/signup" and query["ar"].startswith("ar_")


def test_prompt_create_with_none_is_invalid_request(clients: AuthStack, http: httpx.Client):
    asked = authorize_params("shop", REDIRECT_URI, Pkce.new(), prompt="create none", state="keep-me")
    target, query = redirect_of(http.get("/oauth2/authorize", params=asked))
    assert target == REDIRECT_URI
    assert query["error"] == "invalid_request" and query["error_description"]
    assert query["state"] == "keep-me" and query["iss"] == ISSUER and "code" not in query


def test_discovery_lists_prompt_create(clients: AuthStack, http: httpx.Client):
    document = http.get("/.well-known/openid-configuration").json()
    assert document["prompt_values_supported"] == ["none", "login", "consent", "select_account", "create"]
