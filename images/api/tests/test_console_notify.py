"""The console's Notifications and Webhooks pages through HTTP against the real api and a real
worker, with the webhook receiver as the endpoint: a workflow run listed and shown with its
steps, what they sent and its trigger data escaped; a run waiting in a delay cancelled; a
test event that fails shown with its attempt, replayed and delivered; the endpoint enabled;
no action without the session's CSRF token; no signing secret, header or URL credential in
any page. Redis database 36."""

from __future__ import annotations

import base64
import html
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from console_http import console_login, post_form
from stackyard.notify.webhooks import signing_secret_key
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack
from stackyard_harness.webhook_receiver import WebhookReceiver

REDIS_DATABASE = 36
RUN_WORKER = True
AUTH_SETTINGS = {"requireEmailVerification": False}
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
HEADER_SECRET = "hdr-" + os.urandom(8).hex()
URL_PASSWORD = "pw" + os.urandom(8).hex()
URL_TOKEN = "tok" + os.urandom(8).hex()
WORKFLOWS: dict[str, dict[str, Any]] = {
    "order": {
        "steps": [
            {"name": "in-app", "inApp": {"title": "Order {{ data.order }}"}},
            {"name": "crm", "webhook": {"webhook": "crm"}},
        ]
    },
    "later": {"steps": [{"name": "wait", "delay": {"duration": "1h"}}, {"name": "in-app", "inApp": {"title": "x"}}]},
}
ID = re.compile(r"(whd_[0-9A-Za-z]+)")


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def console(auth: AuthStack, receiver: WebhookReceiver) -> Iterator[httpx.Client]:
    receiver.reset()
    host = receiver.url.split("://", 1)[1]
    auth.configure(
        AUTH_SETTINGS,
        notification_workflows=WORKFLOWS,
        webhooks={
            "crm": {"url": receiver.url + "/crm", "events": ["user.created"], "maxAttempts": 1},
            "quiet": {
                "url": f"http://hook:{URL_PASSWORD}@{host}/quiet?token={URL_TOKEN}",
                "events": ["email.bounced"],
                "headers": {"X-Api-Key": HEADER_SECRET},
            },
        },
        extra_credentials={signing_secret_key("crm"): SECRET, signing_secret_key("quiet"): SECRET},
    )
    with httpx.Client(base_url=auth.url, timeout=10) as client:
        console_login(client)
        client.follow_redirects = True
        yield client


def trigger(client: httpx.Client, workflow: str, recipient: str, data: dict[str, Any]) -> str:
    """Trigger through /v1/notify; the run's id."""
    body = {"workflow": workflow, "recipients": [{"id": recipient, "email": f"{recipient}@example.com"}], "data": data}
    answer = client.post("/v1/notify", json=body, headers=ADMIN)
    assert answer.status_code == 202, answer.text
    runs = client.get("/v1/notify/runs", params={"trigger": answer.json()["id"]}, headers=ADMIN).json()["items"]
    return str(runs[0]["id"])


def wait_run(client: httpx.Client, run_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/v1/notify/runs/{run_id}", headers=ADMIN).json()
        if run["status"] in statuses:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def wait_delivery(client: httpx.Client, delivery_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = client.get(f"/v1/webhooks/deliveries/{delivery_id}", headers=ADMIN).json()
        if found["status"] == status:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_a_run_appears_with_its_steps_what_they_sent_and_its_data_escaped(
    console: httpx.Client, receiver: WebhookReceiver
) -> None:
    run_id = trigger(console, "order", "cust-1", {"order": "A-1", "note": "<script>alert(1)</script>"})
    run = wait_run(console, run_id, "completed", "failed")
    assert run["status"] == "completed", run

    listing = console.get("/console/notifications")
    assert listing.status_code == 200 and run_id in listing.text and 'data-live="5"' in listing.text
    assert run_id in console.get("/console/notifications", params={"workflow": "order", "status": "completed"}).text
    assert run_id not in console.get("/console/notifications", params={"recipient": "someone-else"}).text
    as_the_form_sends = console.get("/console/notifications", params={"workflow": "", "recipient": "", "status": ""})
    assert as_the_form_sends.status_code == 200 and run_id in as_the_form_sends.text
    assert console.get("/console/notify").url.path == "/console/notifications"

    page = console.get(f"/console/notifications/runs/{run_id}").text
    assert "cust-1" in page and "in-app" in page and "crm" in page and "A-1" in page
    assert "<script>alert(1)</script>" not in page and html.escape("<script>alert(1)</script>") in page
    [delivery_id] = run["steps"][1]["detail"]["deliveryIds"]
    assert f'href="/console/webhooks/deliveries/{delivery_id}"' in page
    assert "Cancel this run" not in page  # finished
    assert run_id in console.get("/console/notifications", params={"trigger": run["triggerId"]}).text
    assert run_id not in console.get("/console/notifications", params={"trigger": "ntr_other"}).text


def test_a_waiting_run_is_cancelled_only_with_the_csrf_token(console: httpx.Client) -> None:
    run_id = trigger(console, "later", "cust-2", {})
    wait_run(console, run_id, "waiting")
    url = f"/console/notifications/runs/{run_id}/cancel"
    assert "Cancel this run" in console.get(f"/console/notifications/runs/{run_id}").text

    refused = console.post(url, data={}, headers={"Origin": str(console.base_url).rstrip("/")})
    assert refused.status_code == 403
    assert wait_run(console, run_id, "waiting")["status"] == "waiting"

    done = post_form(console, url)
    assert done.status_code == 200 and done.url.path == f"/console/notifications/runs/{run_id}"
    assert "is cancelled" in done.text
    assert wait_run(console, run_id, "cancelled")["reason"]


def test_a_failed_delivery_shows_its_attempt_and_replay_redelivers_it(
    console: httpx.Client, receiver: WebhookReceiver
) -> None:
    receiver.answer("/crm", 500)
    sent = post_form(console, "/console/webhooks/crm/test")
    assert sent.status_code == 200 and "Test event sent to crm" in sent.text
    first = sent.url.path.rsplit("/", 1)[1]
    assert first.startswith("whd_")
    wait_delivery(console, first, "failed")

    page = console.get(f"/console/webhooks/deliveries/{first}").text
    assert "webhook.test" in page and "500" in page and "answered 500" in page and "Replay this delivery" in page
    assert "failed" in console.get("/console/webhooks").text
    failed_list = console.get("/console/webhooks/crm", params={"status": "failed"}).text
    assert first in failed_list
    assert first not in console.get("/console/webhooks/crm", params={"status": "succeeded"}).text
    assert first in console.get("/console/webhooks/crm", params={"status": ""}).text

    receiver.reset()
    receiver.answer("/crm", 204)
    before = console.get("/v1/webhooks/crm/deliveries", headers=ADMIN).json()["items"]
    refused = console.post(f"/console/webhooks/deliveries/{first}/replay", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert console.get("/v1/webhooks/crm/deliveries", headers=ADMIN).json()["items"] == before

    replayed = post_form(console, f"/console/webhooks/deliveries/{first}/replay")
    assert replayed.status_code == 200 and f"Delivery {first} replayed as" in replayed.text
    second = replayed.url.path.rsplit("/", 1)[1]
    assert second != first and f'href="/console/webhooks/deliveries/{first}"' in replayed.text
    [request] = receiver.wait_for(1, path="/crm")
    assert request.headers["webhook-id"] == second
    found = wait_delivery(console, second, "succeeded")
    assert found["replayOf"] == first
    assert "204" in console.get(f"/console/webhooks/deliveries/{second}").text


def test_enable_and_test_need_the_csrf_token(console: httpx.Client, receiver: WebhookReceiver) -> None:
    before = console.get("/v1/webhooks/quiet/deliveries", headers=ADMIN).json()["items"]
    for action in ("test", "enable"):
        refused = console.post(f"/console/webhooks/quiet/{action}", data={})
        assert refused.status_code == 403, action
    assert console.get("/v1/webhooks/quiet/deliveries", headers=ADMIN).json()["items"] == before
    enabled = post_form(console, "/console/webhooks/quiet/enable")
    assert enabled.status_code == 200 and "was not disabled" in enabled.text


def test_no_signing_secret_header_or_url_credential_in_any_page(
    console: httpx.Client, receiver: WebhookReceiver
) -> None:
    sent = post_form(console, "/console/webhooks/quiet/test")
    delivery_id = sent.url.path.rsplit("/", 1)[1]
    wait_delivery(console, delivery_id, "succeeded")
    [request] = receiver.wait_for(1, path="/quiet")
    assert request.headers["x-api-key"] == HEADER_SECRET  # it is sent, not shown
    pages = ["/console/webhooks", "/console/webhooks/quiet", "/console/webhooks/crm", sent.url.path]
    for path in pages:
        text = console.get(path).text
        for secret in (SECRET, SECRET.removeprefix("whsec_"), HEADER_SECRET, URL_PASSWORD, URL_TOKEN):
            assert secret not in text, (path, secret)
    assert "/quiet?token=…" in console.get("/console/webhooks").text


def test_unknown_ids_are_the_error_page(console: httpx.Client) -> None:
    for path in (
        "/console/notifications/runs/nrun_nope",
        "/console/webhooks/deliveries/whd_nope",
        "/console/webhooks/x",
    ):
        answer = console.get(path)
        assert answer.status_code == 404 and "text/html" in answer.headers["content-type"], path
