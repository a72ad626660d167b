"""The console's Jobs pages in a browser, against the make-up stack (whose worker runs
examples/functions: `reports.send` dead-letters a payload without userId at once).

The issue's journey: a dead job is found in the console, inspected, replayed (with the
payload it lacked) and seen to complete without reloading the page."""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from . import screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

QUEUE = "default"


def dead_job(api_url: str, payload: dict[str, Any]) -> str:
    """A `reports.send` job with this payload, once it is a dead letter."""
    with httpx.Client(base_url=api_url, timeout=10) as http:
        answer = http.post("/v1/jobs", json={"queue": QUEUE, "function": "reports.send", "payload": payload})
        assert answer.status_code == 201, answer.text
        job_id: str = answer.json()["id"]
        deadline = time.monotonic() + 60
        while (state := http.get(f"/v1/jobs/{job_id}").json()["state"]) != "dead":
            assert time.monotonic() < deadline, f"job {job_id} stayed {state}"
            time.sleep(0.1)
    return job_id


def test_replay_a_dead_job_and_see_it_complete(console: Page, api_url: str) -> None:
    from playwright.sync_api import expect

    job_id = dead_job(api_url, {"account": f"console-{uuid.uuid4().hex[:8]}"})

    console.get_by_role("navigation", name="Console").get_by_role("link", name="Jobs").click()
    expect(console.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    screenshot(console, "jobs-queues")
    console.get_by_role("link", name=QUEUE, exact=True).first.click()
    dead = console.locator("#dead-letters")
    row = dead.get_by_role("row").filter(has_text=job_id)
    expect(row).to_contain_text("NonRetryable: payload has no userId")
    screenshot(console, "jobs-queue")

    row.get_by_role("link", name=job_id).click()
    expect(console.get_by_role("heading", name=f"Job {job_id}")).to_be_visible()
    expect(console.locator(".job-state")).to_contain_text("dead")
    expect(console.locator(".attempt-errors")).to_contain_text("NonRetryable: payload has no userId")
    screenshot(console, "jobs-dead-letter")

    console.once("dialog", lambda dialog: dialog.accept())
    console.get_by_label("Replay with another payload (JSON)").fill('{"userId": "u_console"}')
    console.get_by_role("button", name="Replay with this payload").click()
    expect(console.get_by_role("status")).to_contain_text(f"Replayed {job_id} with the new payload")
    # The page is not reloaded: its live region follows the job until it completes.
    expect(console.locator(".job-state")).to_contain_text("completed")
    expect(console.locator(".job-result")).to_contain_text("u_console")
    screenshot(console, "jobs-replayed")


def test_purge_a_dead_job_after_confirming(console: Page, api_url: str) -> None:
    from playwright.sync_api import expect

    job_id = dead_job(api_url, {"account": f"console-{uuid.uuid4().hex[:8]}"})
    console.goto(f"/console/jobs/queues/{QUEUE}")
    row = console.locator("#dead-letters").get_by_role("row").filter(has_text=job_id)
    console.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Purge").click()
    expect(row).to_be_visible()  # dismissed: nothing sent
    console.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Purge").click()
    expect(console.get_by_role("status")).to_contain_text(f"Purged {job_id}.")
    expect(console.locator("#dead-letters")).not_to_contain_text(job_id)


def test_schedules_show_the_example_schedules_last_and_next_run(console: Page) -> None:
    from playwright.sync_api import expect

    console.goto("/console/jobs/schedules")
    expect(console.get_by_role("heading", name="Schedules")).to_be_visible()
    table = console.locator("#job-schedules")
    expect(table.get_by_role("row", name=re.compile("nightly-report"))).to_be_visible()  # examples/schedule.yaml
    expect(table.locator("tbody tr").first.locator("time").first).to_be_visible()
    screenshot(console, "jobs-schedules")
