"""The console's Notifications and Webhooks pages in a browser, against the make-up stack
(examples/notify.yaml: the workflow `welcome`, the Webhook `crm` whose example endpoint,
crm.example.com, never answers).

The journey: a triggered run found by its recipient and opened, its steps shown; the Webhook
`crm` sent a test event whose failed attempt shows without a reload, then replayed."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

import httpx

from . import screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page


def trigger_welcome(api_url: str, admin_key: str, recipient: str) -> None:
    body = {"workflow": "welcome", "recipients": [{"id": recipient, "email": f"{recipient}@example.com"}]}
    with httpx.Client(base_url=api_url, timeout=10) as http:
        answer = http.post("/v1/notify", json=body, headers={"Authorization": f"Bearer {admin_key}"})
        assert answer.status_code == 202, answer.text


def test_find_a_run_and_replay_a_webhook_delivery(console: Page, api_url: str, admin_key: str) -> None:
    from playwright.sync_api import expect

    recipient = f"console-{uuid.uuid4().hex[:8]}"
    trigger_welcome(api_url, admin_key, recipient)

    console.get_by_role("navigation", name="Console").get_by_role("link", name="Notifications").click()
    expect(console.get_by_role("heading", name="Notification runs")).to_be_visible()
    console.get_by_label("Recipient").fill(recipient)
    console.get_by_role("button", name="Filter").click()
    row = console.locator("#notify-runs").get_by_role("row").filter(has_text=recipient)
    expect(row).to_contain_text("welcome")
    screenshot(console, "notify-runs")

    row.get_by_role("link", name=re.compile(r"^nrun_")).click()
    expect(console.get_by_role("heading", name=re.compile(r"^Run nrun_"))).to_be_visible()
    steps = console.get_by_role("table").filter(has_text="Channel")
    expect(steps.get_by_role("row").filter(has_text="feed")).to_contain_text("done", timeout=30_000)
    screenshot(console, "notify-run")

    console.get_by_role("navigation", name="Notifications").get_by_role("link", name="Webhooks").click()
    expect(console.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    console.get_by_role("link", name="crm", exact=True).click()
    expect(console.get_by_role("heading", name="Webhook crm")).to_be_visible()
    screenshot(console, "notify-webhook")

    console.get_by_role("button", name="Send a test event").click()
    expect(console.get_by_role("status")).to_contain_text("Test event sent to crm")
    first = console.url.rsplit("/", 1)[1]
    expect(console.locator("tr.attempt").first).to_contain_text("crm.example.com", timeout=60_000)
    screenshot(console, "notify-delivery")

    console.once("dialog", lambda dialog: dialog.accept())
    console.get_by_role("button", name="Replay this delivery").click()
    expect(console.get_by_role("status")).to_contain_text(f"Delivery {first} replayed as")
    expect(console.get_by_role("link", name=first)).to_be_visible()
    screenshot(console, "notify-replayed")
