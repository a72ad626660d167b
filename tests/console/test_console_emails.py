"""The console's Emails pages in a browser, against the make-up stack, whose emails fail over
from the EmailProvider resend (a placeholder key, which Resend refuses) to smtp-fallback (the
local SMTP sink).

The issue's journey: an email sent through the API is found in the delivery log by a filter,
and its timeline shows resend's failure, then smtp-fallback's send; the suppression list
takes and loses an address."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from . import screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

SENDER = "Acme <hello@acme.dev>"


def sent_email(api_url: str, admin_key: str, **fields: Any) -> dict[str, Any]:
    """An email sent through POST /v1/emails, once the delivery log says it was sent."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=api_url, timeout=10, headers=headers) as http:
        body = {"from": SENDER, "subject": "Console check", "html": "<h1>Hello</h1><p>From the console test.</p>"}
        answer = http.post("/v1/emails", json=body | fields)
        assert answer.status_code == 202, answer.text
        email_id = answer.json()["id"]
        deadline = time.monotonic() + 60
        while (record := http.get(f"/v1/emails/{email_id}").json())["status"] not in ("sent", "delivered"):
            assert record["status"] not in ("failed", "dead"), record
            assert time.monotonic() < deadline, f"email {email_id} stayed {record['status']}"
            time.sleep(0.2)
    return record  # type: ignore[no-any-return]


def test_find_an_email_and_see_its_failover_in_the_timeline(console: Page, api_url: str, admin_key: str) -> None:
    from playwright.sync_api import expect

    recipient = f"console-{uuid.uuid4().hex[:8]}@example.com"
    record = sent_email(api_url, admin_key, to=[recipient], tags={"journey": "console"})
    assert record["provider"] == "smtp-fallback"

    console.get_by_role("navigation", name="Console").get_by_role("link", name="Emails").click()
    expect(console.get_by_role("heading", name="Delivery log")).to_be_visible()
    console.get_by_label("Recipient").fill(recipient)
    console.get_by_label("Status").select_option("sent")
    console.get_by_role("button", name="Filter").click()
    rows = console.locator("#email-log tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(recipient)
    expect(rows.first).to_contain_text("smtp-fallback")
    screenshot(console, "emails-log")

    rows.first.get_by_role("link", name="Console check").click()
    expect(console.get_by_role("heading", name="Console check")).to_be_visible()
    expect(console.locator(".email-status")).to_contain_text("sent")
    events = console.locator("table.timeline tbody tr")
    attempts = console.locator("table.timeline tbody tr.event-attempt")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("resend")
    expect(attempts.nth(0)).to_contain_text("failed over to smtp-fallback")
    expect(attempts.nth(1)).to_contain_text("smtp-fallback")
    expect(attempts.nth(1)).to_contain_text("sent")
    expect(events.first).to_contain_text("queued")
    expect(events.last).to_contain_text("sent")
    expect(console.get_by_role("link", name=record["jobId"])).to_be_visible()
    # The HTML body is drawn in a sandboxed frame: no script, an opaque origin.
    frame = console.frame_locator("iframe.email-preview")
    expect(frame.get_by_role("heading", name="Hello")).to_be_visible()
    page_text = console.content()
    assert "re_placeholder_for_local_runs" not in page_text and "placeholder-password" not in page_text
    screenshot(console, "emails-timeline")


def test_suppress_an_address_and_remove_it(console: Page) -> None:
    from playwright.sync_api import expect

    address = f"console-{uuid.uuid4().hex[:8]}@example.com"
    console.goto("/console/suppressions")
    console.get_by_role("textbox", name="Address", exact=True).fill(address)
    console.get_by_role("textbox", name="Note", exact=True).fill("asked by phone")
    console.get_by_role("button", name="Suppress").click()
    expect(console.get_by_role("status")).to_contain_text(f"{address} is suppressed (manual)")
    row = console.locator("#suppression-list tbody tr").filter(has_text=address)
    expect(row).to_contain_text("asked by phone")
    screenshot(console, "emails-suppressions")

    console.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name=f"Remove {address}").click()
    expect(row).to_be_visible()  # dismissed: nothing sent
    console.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Remove {address}").click()
    expect(console.get_by_role("status")).to_contain_text(f"{address} was removed from the suppression list.")
    expect(console.locator("#suppression-list")).not_to_contain_text(address)
