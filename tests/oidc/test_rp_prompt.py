"""prompt and max_age as a relying party sends them (OpenID Connect Core §3.1.2.1), through
openid-client: a browser that is signed in comes straight back, prompt=login and an exceeded
max_age show the login page again and give a later auth_time, prompt=none answers at once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import query
from .node_rp import NodeRelyingParty, sign_in_with_openid_client

if TYPE_CHECKING:
    from playwright.sync_api import Frame, Page

    from .callbacks import CallbackServer
    from .conftest import Client, Person


def test_prompt_login_and_max_age_ask_again_and_prompt_none_does_not(
    page: Page,
    issuer: str,
    stack_clients: dict[str, Client],
    callbacks: dict[str, CallbackServer],
    person: Person,
    node_rp: NodeRelyingParty,
) -> None:
    spa = stack_clients["demo-spa"]
    callback = callbacks[spa.client_id]
    node_rp.call("discover", client="spa", issuer=issuer, clientId=spa.client_id)

    def sign_in(extra: dict[str, str] | None = None) -> tuple[dict[str, object], bool]:
        """(the ID token's claims, whether the login page was shown)."""
        shown: list[str] = []

        def seen(frame: Frame) -> None:
            shown.append(urlsplit(frame.url).path)

        page.on("framenavigated", seen)
        try:
            signed_in = sign_in_with_openid_client(
                page, node_rp, "spa", spa.redirect_uri, callback, person, extra=extra or {}
            )
        finally:
            page.remove_listener("framenavigated", seen)
        return signed_in.claims, "/oauth2/ui/login" in shown

    first, asked = sign_in()
    assert asked
    again, asked = sign_in()
    assert not asked and again["auth_time"] == first["auth_time"], "a signed-in browser comes straight back"

    time.sleep(1.1)  # auth_time has whole seconds
    forced, asked = sign_in({"prompt": "login"})
    assert asked and forced["auth_time"] > first["auth_time"], (first, forced)

    time.sleep(2.1)
    aged, asked = sign_in({"max_age": "1"})
    assert asked and aged["auth_time"] > forced["auth_time"], (forced, aged)

    silent = node_rp.call("authorize", client="spa", redirectUri=spa.redirect_uri, extra={"prompt": "none"})
    mark = callback.mark()
    page.goto(silent["url"])
    answer = query(callback.wait(after=mark))
    assert "code" in answer and answer["state"] == silent["state"], answer
