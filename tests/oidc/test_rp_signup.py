"""Sign-up on the hosted pages, started by a relying party with prompt=create ("Initiating User
Registration via OpenID Connect 1.0"): Authlib as demo-web sends the person to the hosted
sign-up page, they create an account with a password, confirm their address with the hosted
link the stack mailed (a page with a button, since mail scanners open links), sign in on the
login page it leads to, and the app gets an ID token for the new, verified address."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import query, screenshot, submit_login
from .authlib_rp import AuthlibApp
from .conftest import PASSWORD, mailed_link

if TYPE_CHECKING:
    from playwright.sync_api import Page
    from stackyard_harness.local_stack import LocalStack

    from .callbacks import CallbackServer
    from .conftest import Client

CREATE = re.compile(r"^\s*create the account\s*$", re.I)
"""The hosted sign-up page's submit button."""
CONFIRM = re.compile(r"^\s*confirm my email address\s*$", re.I)


def test_prompt_create_signs_up_confirms_the_address_and_signs_in(
    page: Page,
    make_up: LocalStack,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
) -> None:
    web = stack_clients["demo-web"]
    assert web.redirect_uri and web.secret
    app = AuthlibApp(issuer, web.client_id, web.secret)
    callback = callbacks[web.client_id]
    assert "create" in app.metadata["prompt_values_supported"], app.metadata["prompt_values_supported"]
    address, name = f"oidc-{uuid.uuid4().hex[:8]}@example.com", "Grace Hopper"

    authorization = app.authorize(web.redirect_uri, scope="openid email profile", prompt="create")
    assert query(authorization.url)["prompt"] == "create"
    page.goto(authorization.url)
    assert urlsplit(page.url).path == "/oauth2/ui/signup", page.url
    ar = query(page.url)["ar"]
    assert page.get_by_role("heading", level=1).inner_text().strip() == "Create your account"
    assert page.get_by_role("link", name=re.compile(r"^\s*sign in\s*$", re.I)).get_attribute("href") == (
        f"/oauth2/ui/login?ar={ar}"
    )

    page.get_by_label(re.compile(r"^\s*name\b", re.I)).fill(name)
    page.get_by_label(re.compile(r"^\s*email", re.I)).first.fill(address)
    page.get_by_label(re.compile(r"^\s*password\s*$", re.I)).fill(PASSWORD)
    screenshot(page, "signup")
    page.get_by_role("button", name=CREATE).click()
    page.get_by_text("Check your email").first.wait_for()
    status = page.get_by_role("status").filter(has_text=address).inner_text()
    assert f"If {address} can be used for a new account, a link to confirm it is on its way." in status, status
    assert "It works once, for " in status, status
    screenshot(page, "signup-check-email")

    link = mailed_link(make_up.maildir, address, "/oauth2/ui/verify-email")
    assert link.startswith(f"{issuer}/oauth2/ui/verify-email?"), link
    sent = query(link)
    assert sent["ar"] == ar and sent["token"], link

    page.goto(link)
    assert urlsplit(page.url).path == "/oauth2/ui/verify-email", page.url
    screenshot(page, "signup-verify-email")
    page.get_by_role("button", name=CONFIRM).click()
    notice = page.get_by_role("status").filter(has_text="confirmed").inner_text()  # the request's login page
    assert page.get_by_role("heading", level=1).inner_text().startswith("Sign in to"), page.url
    assert page.locator("input[name=ar]").first.input_value() == ar
    assert "Your email address is confirmed. Sign in with your password." in notice, notice
    assert page.get_by_label(re.compile(r"^\s*email", re.I)).first.input_value() == address
    screenshot(page, "signup-confirmed")

    mark = callback.mark()
    submit_login(page, email=address, password=PASSWORD)
    returned = callback.wait(after=mark)
    back = query(returned)
    assert back["state"] == authorization.state and back["iss"] == issuer, back

    token = app.finish(authorization, returned)  # the ID token, validated by Authlib (nonce included)
    claims = token["userinfo"]
    assert claims["email"] == address and claims["nonce"] == authorization.nonce, claims
    assert claims.get("name") == name, claims
    userinfo = app.get_userinfo(token)
    assert userinfo["sub"] == claims["sub"] and userinfo["email"] == address, userinfo
    assert userinfo["email_verified"] is True, userinfo
