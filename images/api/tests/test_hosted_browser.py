"""The hosted login in a real browser (Debian's chromium through Playwright) against the real
api: with JavaScript off, signing in with the keyboard alone (Tab to the fields, Enter to
submit) reaches the client with a code; a wrong password leaves focus on the announced error
summary; the theme's stylesheet applies (the button has the Stack's primary colour and the
contrasting text). The issuer is the api's own URL here, so the browser's Origin is the
issuer's. Redis database 42."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from auth_http import EMAIL, PASSWORD, sign_up_and_log_in
from hosted_http import FIRST_PARTY, REDIRECT_URI, add_clients, query_of
from stackyard_harness.auth_stack import AuthStack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REDIS_DATABASE = 42
TIMEOUT_MS = 15_000


@pytest.fixture
def served(auth: AuthStack) -> AuthStack:
    auth.configure(
        {
            "issuer": auth.url,
            "requireEmailVerification": False,
            "cookies": {"secure": False},
            "hostedPages": {"appName": "Acme", "primaryColor": "#ffdd00", "magicLink": False, "passkeys": False},
        }
    )
    add_clients(auth, {"shop": FIRST_PARTY})
    return auth


def without_script(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from without_script(browser)


def start(served: AuthStack, page: Page, http: httpx.Client) -> None:
    """Signs Ana up and opens an authorization request of the shop in the page."""
    sign_up_and_log_in(http)
    params = {
        "client_id": "shop",
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email",
        "state": "st-browser",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    page.goto(str(httpx.URL(f"{served.url}/oauth2/authorize", params=params)))
    assert "/oauth2/ui/login?ar=" in page.url


def test_keyboard_alone_signs_in_without_javascript(served: AuthStack, page: Page, http: httpx.Client):
    start(served, page, http)
    assert page.title() == "Sign in to Acme Shop · Acme"
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    # The client is not running: the request the browser makes to it is all there is to see.
    with page.expect_request(lambda r: r.url.startswith(REDIRECT_URI)) as at_client:
        page.keyboard.press("Enter")
    query = query_of(at_client.value.url)
    assert query["state"] == "st-browser" and query["code"] and query["iss"] == served.url


def test_a_wrong_password_focuses_the_announced_error(served: AuthStack, page: Page, http: httpx.Client):
    start(served, page, http)
    page.fill("#email", EMAIL)
    page.fill("#password", "not it at all")
    page.click("button.primary")
    summary = page.locator("#error-summary")
    assert summary.get_attribute("role") == "alert"
    assert "The email address or the password is not right." in summary.inner_text()
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert page.locator("#password").get_attribute("aria-invalid") == "true"


def test_the_theme_applies_with_contrasting_text(served: AuthStack, page: Page, http: httpx.Client):
    start(served, page, http)
    button = page.locator("button.primary")
    colours = button.evaluate("b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color]")
    assert colours == ["rgb(255, 221, 0)", "rgb(17, 24, 39)"]
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
