"""The console's Emails pages through HTTP against the real api (an AuthStack: uvicorn, Redis,
FerretDB) with a worker process sending to an SMTP sink: the delivery log lists a sent email
and its filters narrow it, a message's timeline shows a failed provider's attempt, the
failover and the relay's send in order, a scheduled email is cancelled, the suppression list
takes and loses an address, and no action happens without the session's CSRF token.
Redis database 34."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from console_http import console_login, csrf_token, post_form
from pymongo import AsyncMongoClient
from stackyard.config import RuntimeConfig
from stackyard.email.log import DeliveryLog
from stackyard.email.suppressions import SuppressionList
from stackyard.email.webhooks import ProviderEvent
from stackyard.resources.email import EmailProviderSpec
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack
from stackyard_harness.process import free_port

REDIS_DATABASE = 34
RUN_WORKER = True
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
SENDER = "Acme <hello@acme.dev>"


def add_broken_provider(auth: AuthStack) -> None:
    """An SMTP provider before the relay (priority 1) on a port nobody listens on: every
    message fails there first and fails over to the relay."""
    path = auth.directory / "config.json"
    config = RuntimeConfig.model_validate_json(path.read_text())
    broken = EmailProviderSpec.model_validate(
        {
            "stackRef": {"name": "demo"},
            "type": "smtp",
            "priority": 1,
            "smtp": {"host": "127.0.0.1", "port": free_port(), "security": "none"},
        }
    )
    auth.generation += 1
    changed = config.model_copy(
        update={"generation": auth.generation, "email_providers": {**config.email_providers, "broken": broken}}
    )
    path.write_text(changed.canonical_json())
    auth.wait_applied()


@pytest.fixture
def console(auth: AuthStack) -> Iterator[httpx.Client]:
    add_broken_provider(auth)
    with httpx.Client(base_url=auth.url, timeout=10) as client:
        console_login(client)
        client.follow_redirects = True
        yield client


def send(client: httpx.Client, **fields: Any) -> str:
    body = {"from": SENDER, "to": ["ana@example.com"], "subject": "Hello", "html": "<p>Hi <b>Ana</b></p>"} | fields
    answer = client.post("/v1/emails", json=body, headers=ADMIN)
    assert answer.status_code == 202, answer.text
    email_id: str = answer.json()["id"]
    return email_id


def wait_status(client: httpx.Client, email_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/emails/{email_id}", headers=ADMIN).json()
        if body.get("status") in statuses:
            return body
        assert time.monotonic() < deadline, f"email {email_id} stayed {body.get('status')}: {body.get('timeline')}"
        time.sleep(0.1)


def region(page: str, name: str) -> str:
    match = re.search(rf'<div id="{name}"[^>]*>(.*?)\n\s*</div>', page, re.S)
    assert match, f"no region {name}"
    return match.group(1)


def text(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)))


def log_ids(client: httpx.Client, **params: Any) -> list[str]:
    answer = client.get("/console/emails", params=params)
    assert answer.status_code == 200, answer.text
    return re.findall(r'href="/console/emails/(em_[^"]+)"', region(answer.text, "email-log"))


def test_unauthenticated_pages_lead_to_the_login_and_show_nothing(auth: AuthStack) -> None:
    with httpx.Client(base_url=auth.url, timeout=10) as anonymous:
        email_id = send(anonymous, subject="Secret plans")
        for path in ("/console/emails", f"/console/emails/{email_id}", "/console/suppressions"):
            answer = anonymous.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login?next=")
            assert "Secret plans" not in answer.text
        for path in (f"/console/emails/{email_id}/cancel", "/console/suppressions", "/console/suppressions/remove"):
            answer = anonymous.post(path, data={"address": "x@example.com"})
            assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


def test_the_log_lists_a_sent_email_and_its_filters_narrow_it(console: httpx.Client, auth: AuthStack) -> None:
    welcome = send(console, to=["Ana <ana@example.com>"], subject="Welcome <Ana>", tags={"category": "welcome"})
    receipt = send(console, to=["bo@example.com"], subject="Your receipt", tags={"category": "receipt"})
    wait_status(console, welcome, "sent")
    wait_status(console, receipt, "sent")

    page = console.get("/console/emails")
    assert page.status_code == 200
    rows = region(page.text, "email-log")
    assert "Welcome &lt;Ana&gt;" in rows and "<Ana>" not in rows  # escaped
    newest_first = sorted([welcome, receipt], reverse=True)
    assert log_ids(console) == newest_first
    assert log_ids(console, to="ANA@example.com") == [welcome]
    assert log_ids(console, tag="category:receipt") == [receipt]
    assert log_ids(console, status="sent", provider="relay") == newest_first
    assert log_ids(console, status="failed") == []
    assert "No email matches." in console.get("/console/emails", params={"status": "dead"}).text
    assert log_ids(console, provider="broken") == []  # the provider that sent it, not one that failed
    today = datetime.now(UTC).date()
    assert log_ids(console, since=today.isoformat(), until=today.isoformat()) == newest_first
    assert log_ids(console, until=(today - timedelta(days=1)).isoformat()) == []
    bad = console.get("/console/emails", params={"tag": "category", "since": "yesterday"})
    assert bad.status_code == 200 and "write it as name:value" in bad.text and "write a date" in bad.text


def test_the_log_is_paginated(console: httpx.Client) -> None:
    ids = [send(console, subject=f"Batch {n}", tags={"batch": "paged"}) for n in range(27)]
    first = console.get("/console/emails", params={"tag": "batch:paged"})
    on_first = re.findall(r'href="/console/emails/(em_[^"]+)"', first.text)
    assert on_first == sorted(ids, reverse=True)[:25]
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert older
    second = console.get(html.unescape(older.group(1)))
    on_second = re.findall(r'href="/console/emails/(em_[^"]+)"', second.text)
    assert on_second == sorted(ids, reverse=True)[25:] and "← Newest" in second.text


def test_the_timeline_shows_the_failed_attempt_the_failover_and_the_send_in_order(
    console: httpx.Client, auth: AuthStack
) -> None:
    email_id = send(console, cc=["bo@example.com"], subject="Failover", tags={"category": "welcome"})
    record = wait_status(console, email_id, "sent")
    auth.mail_to("ana@example.com", "Failover")

    page = console.get(f"/console/emails/{email_id}")
    assert page.status_code == 200
    detail = region(page.text, "email-detail")
    envelope = text(detail.split('<section aria-labelledby="timeline-heading">')[0])
    for fact in ("From Acme <hello@acme.dev>", "To ana@example.com", "Cc bo@example.com", "Subject Failover"):
        assert fact in envelope
    assert "category:welcome" in envelope and "Provider relay" in envelope
    assert f'href="/console/jobs/{record["jobId"]}"' in detail  # the job that carried it

    rows = re.findall(r'<tr class="event-(\w+)">(.*?)</tr>', detail, re.S)
    kinds = [kind for kind, _ in rows]
    assert kinds == ["queued", "attempt", "attempt", "sent"], kinds
    failed, relay = text(rows[1][1]), text(rows[2][1])
    assert "broken" in failed and ("failed" in failed or "skipped" in failed) and "failed over to relay" in failed
    assert "relay" in relay and "sent" in relay
    assert [e["type"] for e in record["timeline"]] == kinds  # the log's order, as /v1/emails gives it

    # The HTML body in a sandboxed frame (no allowance) and as escaped source; the text part.
    assert '<iframe class="email-preview" title="The HTML body, rendered without scripts" sandbox=""' in page.text
    assert 'srcdoc="&lt;p&gt;Hi &lt;b&gt;Ana&lt;/b&gt;&lt;/p&gt;"' in page.text
    assert '<pre class="email-html">&lt;p&gt;Hi &lt;b&gt;Ana&lt;/b&gt;&lt;/p&gt;</pre>' in page.text
    assert "Hi Ana" in page.text
    assert "Cancel this email" not in page.text  # sent: too late

    assert console.get("/console/emails/em_nope").status_code == 404


def test_a_providers_bounce_shows_in_the_timeline_and_suppresses_the_recipient(
    console: httpx.Client, auth: AuthStack
) -> None:
    email_id = send(console, to=["zoe@example.com"], subject="Bouncing")
    wait_status(console, email_id, "sent")
    bounce = ProviderEvent(
        type="bounced",
        recipient="zoe@example.com",
        at=datetime.now(UTC),
        provider_message_id=None,
        email_id=email_id,
        detail="550 5.1.1 <zoe@example.com>: user unknown",
        permanent=True,
        raw_type="email.bounced",
    )

    async def deliver_webhook() -> None:  # what POST /v1/emails/webhooks/{provider} does once verified
        client: AsyncMongoClient[Any] = AsyncMongoClient(auth.mongo_url)
        try:
            database = client[auth.database]
            log, suppressions = DeliveryLog(database), SuppressionList(database)
            assert await log.apply_provider_event("relay", bounce) == email_id
            await suppressions.add(
                "zoe@example.com", "bounce", detail=bounce.detail, provider="relay", email_id=email_id
            )
        finally:
            await client.close()

    asyncio.run(deliver_webhook())
    page = console.get(f"/console/emails/{email_id}").text
    rows = re.findall(r'<tr class="event-(\w+)">(.*?)</tr>', region(page, "email-detail"), re.S)
    assert [kind for kind, _ in rows][-2:] == ["sent", "bounced"]
    assert "zoe@example.com: 550 5.1.1 <zoe@example.com>: user unknown" in text(rows[-1][1])
    assert 'class="badge badge-bounced">bounced' in page
    assert 'data-live="3"' not in page  # a bounce is final: no more refreshes
    assert log_ids(console, status="bounced") == [email_id]
    listed = console.get("/console/suppressions", params={"reason": "bounce"}).text
    assert "zoe@example.com" in listed and f'href="/console/emails/{email_id}"' in listed


def test_a_script_in_a_body_never_runs_in_the_console(console: httpx.Client) -> None:
    email_id = send(console, html='<p>x</p><script>alert("pwned")</script><img src=x onerror="alert(1)">')
    page = console.get(f"/console/emails/{email_id}").text
    assert "<script>alert" not in page and 'onerror="alert' not in page
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page or "&lt;script&gt;alert(&quot;pwned" in page


def test_a_scheduled_email_is_cancelled_with_the_csrf_token_only(console: httpx.Client) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    email_id = send(console, subject="Later", sendAt=later)
    page = console.get(f"/console/emails/{email_id}").text
    assert "Cancel this email" in page and 'data-confirm="Cancel this scheduled email?' in page

    refused = console.post(f"/console/emails/{email_id}/cancel", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert wait_status(console, email_id, "scheduled")["status"] == "scheduled"
    token = csrf_token(console)
    other_site = console.post(
        f"/console/emails/{email_id}/cancel", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert other_site.status_code == 403
    assert wait_status(console, email_id, "scheduled")["status"] == "scheduled"

    done = post_form(console, f"/console/emails/{email_id}/cancel")
    assert done.status_code == 200 and str(done.url).endswith(f"/console/emails/{email_id}")
    assert f"Email {email_id} cancelled" in done.text
    assert wait_status(console, email_id, "cancelled")["timeline"][-1]["type"] == "cancelled"
    again = post_form(console, f"/console/emails/{email_id}/cancel")
    assert "Not cancelled: only a scheduled email can be cancelled; this one is cancelled" in text(again.text)


def test_the_suppression_list_takes_and_loses_an_address_with_the_csrf_token_only(console: httpx.Client) -> None:
    def listed(**params: Any) -> list[str]:
        page = console.get("/console/suppressions", params=params)
        assert page.status_code == 200
        return re.findall(r'<th scope="row">([^<]+)</th>', region(page.text, "suppression-list"))

    assert listed() == []
    refused = console.post("/console/suppressions", data={"csrf_token": "nope", "address": "eve@example.com"})
    assert refused.status_code == 403 and listed() == []

    added = post_form(
        console, "/console/suppressions", {"address": "Eve@Example.com", "reason": "manual", "detail": "asked <us>"}
    )
    assert "eve@example.com is suppressed (manual)" in added.text
    post_form(console, "/console/suppressions", {"address": "bo@example.com", "reason": "unsubscribe"})
    assert listed() == ["bo@example.com", "eve@example.com"]
    assert listed(reason="unsubscribe") == ["bo@example.com"]
    page = console.get("/console/suppressions").text
    assert "asked &lt;us&gt;" in page and 'data-confirm="Remove eve@example.com' in page

    mail = {"from": SENDER, "to": ["eve@example.com"], "subject": "x", "text": "y"}
    blocked = console.post("/v1/emails", headers=ADMIN, json=mail)
    assert blocked.status_code == 422  # the list the console shows is the one sending checks

    invalid = post_form(console, "/console/suppressions", {"address": "not an address"})
    assert "Not added:" in invalid.text and listed() == ["bo@example.com", "eve@example.com"]

    token = csrf_token(console)
    no_token = console.post("/console/suppressions/remove", data={"address": "eve@example.com"})
    other_site = console.post(
        "/console/suppressions/remove",
        data={"csrf_token": token, "address": "eve@example.com"},
        headers={"Origin": "https://evil.example"},
    )
    assert no_token.status_code == 403 and other_site.status_code == 403
    assert listed() == ["bo@example.com", "eve@example.com"]

    removed = post_form(console, "/console/suppressions/remove", {"address": "eve@example.com"})
    assert "eve@example.com was removed from the suppression list." in removed.text
    assert listed() == ["bo@example.com"]
    missing = post_form(console, "/console/suppressions/remove", {"address": "eve@example.com"})
    assert "eve@example.com is not on the suppression list." in missing.text


def test_no_provider_credential_is_rendered(console: httpx.Client, auth: AuthStack) -> None:
    email_id = send(console)
    wait_status(console, email_id, "sent")
    pages = [console.get(p).text for p in ("/console/emails", f"/console/emails/{email_id}", "/console/suppressions")]
    for page in pages:
        for name, secret in auth.credentials.items():
            assert secret not in page, name
