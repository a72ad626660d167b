"""The console's Users pages in a browser, against the make-up stack.

The issue's journey: a user made through the admin API, with two live sessions, is found by
their address, opened, and their sessions revoked after a confirmation; the tokens stop
working. Disable and enable, and a deletion with the address typed again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from . import screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

PASSWORD = "a long and quiet river in the console"


@pytest.fixture
def http(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=10, headers={"User-Agent": "console-journey/1.0"}) as client:
        yield client


def new_user(http: httpx.Client, admin_key: str) -> dict[str, Any]:
    email = f"console-user-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "emailVerified": True, "profile": {"name": "Console Journey"}}
    answer = http.post("/v1/auth/admin/users", json=body, headers={"Authorization": f"Bearer {admin_key}"})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def log_in(http: httpx.Client, email: str) -> dict[str, Any]:
    answer = http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_find_a_user_and_revoke_their_sessions(console: Page, http: httpx.Client, admin_key: str) -> None:
    from playwright.sync_api import expect

    user = new_user(http, admin_key)
    sessions = [log_in(http, user["email"]) for _ in range(2)]

    console.get_by_role("navigation", name="Console").get_by_role("link", name="Users").click()
    expect(console.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    console.get_by_label("Email address").fill(user["email"])
    console.get_by_role("button", name="Search").click()
    rows = console.locator("#user-list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Console Journey")
    screenshot(console, "users-search")

    rows.first.get_by_role("link", name=user["email"]).click()
    expect(console.get_by_role("heading", name=user["email"])).to_be_visible()
    expect(console.get_by_role("heading", name="Sessions (2)")).to_be_visible()
    expect(console.locator("table.sessions")).to_contain_text("console-journey/1.0")
    screenshot(console, "users-profile")

    console.once("dialog", lambda dialog: dialog.dismiss())
    console.get_by_role("button", name="Revoke all sessions").click()
    expect(console.get_by_role("heading", name="Sessions (2)")).to_be_visible()  # dismissed: nothing sent
    console.once("dialog", lambda dialog: dialog.accept())
    console.get_by_role("button", name="Revoke all sessions").click()
    expect(console.get_by_role("status")).to_contain_text("2 sessions ended.")
    expect(console.get_by_role("heading", name="Sessions (0)")).to_be_visible()
    screenshot(console, "users-sessions-revoked")
    for session in sessions:
        answer = http.post("/v1/auth/token/refresh", json={"refreshToken": session["refreshToken"]})
        assert answer.status_code == 401, answer.text


def test_disable_enable_and_delete_a_user(console: Page, http: httpx.Client, admin_key: str) -> None:
    from playwright.sync_api import expect

    user = new_user(http, admin_key)
    console.goto(f"/console/users/{user['id']}")
    console.once("dialog", lambda dialog: dialog.accept())
    console.get_by_role("button", name=f"Disable {user['email']}").click()
    expect(console.get_by_role("status")).to_contain_text("is disabled")
    refused = http.post("/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert refused.status_code == 403, refused.text
    screenshot(console, "users-disabled")
    console.get_by_role("button", name=f"Enable {user['email']}").click()
    expect(console.get_by_role("status")).to_contain_text("is enabled again")
    log_in(http, user["email"])

    console.get_by_label("Type the address to delete this user").fill(user["email"])
    console.once("dialog", lambda dialog: dialog.accept())
    console.get_by_role("button", name="Delete user").click()
    expect(console.get_by_role("status")).to_contain_text(f"{user['email']} was deleted")
    expect(console.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    expect(console.locator("#user-list")).not_to_contain_text(user["email"])
