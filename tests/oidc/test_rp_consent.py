"""A third-party client (partner-app) through Authlib: the hosted consent page asks the person
once; a denial goes back as access_denied; an approval is remembered, so the next request
returns at once, while prompt=none before any consent is consent_required."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import query, screenshot, submit_login
from .authlib_rp import AuthlibApp, sign_in_with_authlib

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .callbacks import CallbackServer
    from .conftest import Client, Person

ALLOW = re.compile(r"^\s*(allow|approve|accept|continue|yes)\b", re.I)
DENY = re.compile(r"^\s*(deny|decline|cancel|don.t allow|no)\b", re.I)


def test_third_party_client_asks_consent_once(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
) -> None:
    partner = stack_clients["partner-app"]
    assert partner.redirect_uri
    app = AuthlibApp(issuer, partner.client_id, partner.secret)
    callback = callbacks[partner.client_id]

    # Signed in, but no consent yet: a silent request cannot ask.
    first = app.authorize(partner.redirect_uri, scope="openid email")
    mark = callback.mark()
    page.goto(first.url)
    assert urlsplit(page.url).path == "/oauth2/ui/login", page.url
    submit_login(page, email=person.email, password=person.password)
    page.wait_for_url(re.compile(r"/oauth2/ui/consent"))
    screenshot(page, "consent")
    page.get_by_role("button", name=DENY).first.click()
    denied = query(callback.wait(after=mark))
    assert denied["error"] == "access_denied" and denied["state"] == first.state and denied["iss"] == issuer

    silent = app.authorize(partner.redirect_uri, scope="openid email", prompt="none")
    mark = callback.mark()
    page.goto(silent.url)
    assert query(callback.wait(after=mark))["error"] == "consent_required"

    second = app.authorize(partner.redirect_uri, scope="openid email")
    mark = callback.mark()
    page.goto(second.url)
    page.wait_for_url(re.compile(r"/oauth2/ui/consent"))
    page.get_by_role("button", name=ALLOW).first.click()
    token = app.finish(second, callback.wait(after=mark))
    assert token["userinfo"]["email"] == person.email

    # Remembered: the next request for the same scopes goes straight back with a code.
    third = sign_in_with_authlib(page, app, partner.redirect_uri, callback, person, scope="openid email")
    assert "code" in query(third.callback), third.callback
    assert third.token["userinfo"]["sub"] == token["userinfo"]["sub"]
