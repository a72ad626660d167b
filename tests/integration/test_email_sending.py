"""Email end to end on real servers: the api (in-process) accepts a message, a real
`stackyard-worker` process sends it through the SMTP sink (aiosmtpd) or the local provider
APIs, the delivery log (FerretDB) follows it, Redis holds the queue, the breakers and the
idempotency keys. Providers fail, hang and workers are SIGKILLed on purpose."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig, credential_key
from stackyard.resources.email import EmailProviderSpec, EmailTemplateSpec
from stackyard.resources.jobs import JobQueueSpec
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard_api.app import create_app
from stackyard_harness.fake_email_providers import RESEND_API_KEY, FakeEmailProviders
from stackyard_harness.process import ManagedProcess, free_port
from stackyard_harness.provider_webhooks import (
    SendGridSigner,
    SnsSigner,
    new_resend_secret,
    resend_event,
    resend_headers,
    sendgrid_event,
    ses_event,
)
from stackyard_harness.smtp import SmtpSink

WORKER = str(Path(sys.executable).parent / "stackyard-worker")
SENDER = "Acme <hello@acme.dev>"


def smtp_provider(sink: SmtpSink, priority: int, **extra: Any) -> dict[str, Any]:
    smtp = {"host": sink.host, "port": sink.port, "security": "none"}
    return {"type": "smtp", "priority": priority, "smtp": smtp} | extra


def resend_provider(fake: FakeEmailProviders, priority: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "resend",
        "priority": priority,
        "resend": {"apiKeySecretRef": {"name": "mail", "key": "resend"}, "baseUrl": fake.base_url("resend")},
    } | extra


class EmailStack:
    """A config directory (what the operator renders), worker processes reading it, and the
    api in this process reading it too."""

    def __init__(self, directory: Path, redis_url: str, mongo_url: str) -> None:
        self.directory = directory
        self.redis_url, self.mongo_url = redis_url, mongo_url
        self.database = f"email_{uuid.uuid4().hex[:8]}"
        self.generation = 0
        self.workers: list[ManagedProcess] = []
        self.api: TestClient | None = None

    def apply(
        self,
        providers: dict[str, dict[str, Any]],
        *,
        templates: dict[str, dict[str, Any]] | None = None,
        email_queue: dict[str, Any] | None = None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.generation += 1
        spec = StackSpec.model_validate(
            {
                "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}, "database": self.database},
            }
        )
        stack = {"stackRef": {"name": "demo"}}
        config = RuntimeConfig(
            stack="demo",
            namespace="ns",
            generation=self.generation,
            spec=spec,
            email_providers={n: EmailProviderSpec.model_validate(stack | p) for n, p in providers.items()},
            email_templates={n: EmailTemplateSpec.model_validate(stack | t) for n, t in (templates or {}).items()},
            job_queues={"email": JobQueueSpec.model_validate(stack | email_queue)} if email_queue else {},
        )
        credentials_ = credentials
        credentials = {"stack.redis.url": self.redis_url, "stack.mongodb.uri": self.mongo_url}
        for name, provider in providers.items():
            if provider["type"] == "resend":
                credentials[credential_key("EmailProvider", name, "apiKey")] = RESEND_API_KEY
        credentials |= {
            credential_key("EmailProvider", *name.split("/")): v for name, v in (credentials_ or {}).items()
        }
        (self.directory / "credentials.json").write_text(json.dumps(credentials))
        (self.directory / "config.json").write_text(config.canonical_json())
        if self.api is not None:
            self.wait_applied(self.api)

    def start_worker(self, name: str = "worker") -> ManagedProcess:
        port = free_port()
        env = {
            "STACKYARD_CONFIG_DIR": str(self.directory),
            "STACKYARD_PORT": str(port),
            "STACKYARD_HOST": "127.0.0.1",
            "STACKYARD_STACK": "",
        }
        process = ManagedProcess(name, [WORKER], self.directory / f"{name}-{len(self.workers)}.log", env=env)
        self.workers.append(process)
        process.start().wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 30, "ready"
        )
        return process

    def wait_applied(self, client: TestClient) -> None:
        deadline = time.monotonic() + 10
        while True:
            answer = client.get("/v1/config")
            if answer.status_code == 200 and answer.json()["generation"] == self.generation:
                return
            assert time.monotonic() < deadline, "the api did not take the config"
            time.sleep(0.02)

    def stop(self) -> None:
        for process in self.workers:
            process.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmailProviders]:
    with FakeEmailProviders() as running:
        yield running


@pytest.fixture
def stack(tmp_path, redis_server, mongo_server, sink, fake) -> Iterator[EmailStack]:  # type: ignore[no-untyped-def]
    sink.clear()
    fake.reset()
    # A Redis database of its own, emptied: email jobs that other tests queued without a
    # worker must not reach this test's worker (and its sink).
    redis_url = redis_server.url.rpartition("/")[0] + "/7"
    flushed = redis.Redis.from_url(redis_url)
    flushed.flushdb()
    flushed.close()
    built = EmailStack(tmp_path, redis_url, mongo_server.url)
    try:
        yield built
    finally:
        built.stop()


@pytest.fixture
def api(stack: EmailStack) -> Callable[[], TestClient]:
    """Start the api once the test has applied its first config."""
    clients: list[Any] = []

    def start() -> TestClient:
        live = LiveConfig()
        runtime = Runtime("stackyard-api", FileConfigSource(live, stack.directory, interval=0.02), live)
        context = TestClient(create_app(runtime))
        client = context.__enter__()
        clients.append(context)
        stack.api = client
        stack.wait_applied(client)
        return client

    yield start  # type: ignore[misc]
    for context in clients:
        context.__exit__(None, None, None)


def wait_status(client: TestClient, email_id: str, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v1/emails/{email_id}").json()
        if body.get("status") in statuses:
            return body
        assert time.monotonic() < deadline, f"email {email_id} stayed {body.get('status')}: {body.get('timeline')}"
        time.sleep(0.05)


def send(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"from": SENDER, "to": ["ana@example.com"], "subject": "Hello", "html": "<p>Hi <b>Ana</b></p>"} | fields
    answer = client.post("/v1/emails", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()


def attempts(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["provider"], e["outcome"]) for e in record["timeline"] if e["type"] == "attempt"]


def test_an_email_is_accepted_at_once_sent_by_a_worker_and_followed_in_the_log(stack, api, sink):
    stack.apply({"relay": smtp_provider(sink, 10)})
    stack.start_worker()
    client = api()
    accepted = send(client, cc=["Bo <bo@example.com>"], tags={"category": "welcome"}, metadata={"user": 42})
    assert accepted["status"] == "queued" and accepted["id"].startswith("em_")
    record = wait_status(client, accepted["id"], "sent")
    (received,) = sink.wait_for(1)
    assert set(received.recipients) == {"ana@example.com", "bo@example.com"}
    assert accepted["id"] in received.message["Message-ID"]
    assert "Hi Ana" in received.message.get_body(("plain",)).get_content()  # text derived from the html
    assert record["provider"] == "relay" and record["metadata"] == {"user": 42}
    assert [e["type"] for e in record["timeline"]] == ["queued", "attempt", "sent"]
    assert attempts(record) == [("relay", "sent")]
    page = client.get("/v1/emails", params={"status": "sent", "to": "BO@example.com", "tag": "category:welcome"})
    assert [item["id"] for item in page.json()["items"]] == [accepted["id"]]
    assert client.get("/v1/emails", params={"status": "failed"}).json()["items"] == []


def test_bad_input_is_refused_with_a_problem_and_nothing_is_queued(stack, api):
    stack.apply({})
    client = api()
    body = {"from": SENDER, "to": ["not-an-address"], "subject": "x", "text": "y"}
    bad_address = client.post("/v1/emails", json=body)
    assert bad_address.status_code == 422
    assert bad_address.headers["content-type"] == "application/problem+json"
    assert "to[0]" in bad_address.json()["detail"]
    too_big = client.post(
        "/v1/emails",
        json={
            "from": SENDER,
            "to": ["ana@example.com"],
            "subject": "x",
            "text": "y",
            "attachments": [{"filename": "big.bin", "content": "A" * (14 * 1024 * 1024)}],
        },
    )
    assert too_big.status_code == 413, too_big.text
    assert client.get("/v1/emails").json()["items"] == []


def test_the_idempotency_key_answers_the_first_message_and_refuses_another_body(stack, api, sink):
    stack.apply({"relay": smtp_provider(sink, 10)})
    stack.start_worker()
    client = api()
    body = {"from": SENDER, "to": ["ana@example.com"], "subject": "Receipt", "text": "Thanks"}
    key = {"Idempotency-Key": f"order-{uuid.uuid4().hex}"}  # keys live in the Redis every test shares
    first = client.post("/v1/emails", json=body, headers=key)
    again = client.post("/v1/emails", json=body, headers=key)
    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    other = client.post("/v1/emails", json=body | {"text": "Other"}, headers=key)
    assert other.status_code == 409
    wait_status(client, first.json()["id"], "sent")
    time.sleep(0.5)
    assert len(sink.messages) == 1


def test_a_suppressed_recipient_is_refused_with_the_reason_until_removed(stack, api, sink):
    stack.apply({"relay": smtp_provider(sink, 10)})
    stack.start_worker()
    client = api()
    added = client.post("/v1/suppressions", json={"address": "Ana@Example.com", "reason": "complaint"})
    assert added.status_code == 201 and added.json()["address"] == "ana@example.com"
    refused = client.post("/v1/emails", json={"from": SENDER, "to": ["ana@example.com"], "subject": "x", "text": "y"})
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["type"].endswith("/recipient-suppressed")
    assert problem["suppressed"] == [{"address": "ana@example.com", "reason": "complaint"}]
    assert client.get(f"/v1/emails/{problem['id']}").json()["status"] == "suppressed"
    assert client.delete("/v1/suppressions/ana@example.com").status_code == 204
    accepted = send(client)
    wait_status(client, accepted["id"], "sent")
    assert len(sink.messages) == 1


def test_primary_down_fails_over_then_the_breaker_opens_and_a_probe_closes_it(stack, api, sink, fake):
    breaker = {"failureThreshold": 2, "openDuration": "2s"}
    stack.apply({"primary": resend_provider(fake, 1, circuitBreaker=breaker), "backup": smtp_provider(sink, 2)})
    stack.start_worker()
    client = api()
    fake.fail_next("resend", 500, count=2)
    first, second = send(client), send(client)
    for accepted in (first, second):
        record = wait_status(client, accepted["id"], "sent")
        assert record["provider"] == "backup"
        assert attempts(record) == [("primary", "retryable"), ("backup", "sent")]
    skipped = wait_status(client, send(client)["id"], "sent")
    assert attempts(skipped) == [("primary", "skipped_breaker_open"), ("backup", "sent")]
    time.sleep(2.2)  # the breaker's openDuration: the next message is the half-open probe
    probe = wait_status(client, send(client)["id"], "sent")
    assert attempts(probe) == [("primary", "sent")]
    closed = wait_status(client, send(client)["id"], "sent")
    assert attempts(closed) == [("primary", "sent")] and len(fake.received("resend")) == 2
    assert len(sink.messages) == 3


def test_a_refusal_by_the_provider_fails_the_message_without_retry_or_failover(stack, api, sink, fake):
    stack.apply({"primary": resend_provider(fake, 1), "backup": smtp_provider(sink, 2)})
    stack.start_worker()
    client = api()
    fake.fail_next("resend", 422, {"statusCode": 422, "name": "validation_error", "message": "Invalid `to` field."})
    record = wait_status(client, send(client)["id"], "failed")
    assert attempts(record) == [("primary", "rejected")] and "Invalid `to` field" in record["lastError"]
    time.sleep(0.5)
    assert sink.messages == []


def test_after_the_last_attempt_the_message_is_dead_and_a_replay_sends_it(stack, api, sink):
    queue = {"retry": {"maxAttempts": 2, "initialBackoff": "100ms", "maxBackoff": "200ms"}}
    stack.apply({"relay": smtp_provider(sink, 10)}, email_queue=queue)
    stack.start_worker()
    client = api()
    sink.fail_next(451, "try again later", count=2)
    record = wait_status(client, send(client)["id"], "dead")
    assert [e["type"] for e in record["timeline"]].count("attempt") == 2 and "451" in record["lastError"]
    dead = client.get("/v1/queues/email/dead").json()["items"]
    assert [job["id"] for job in dead] == [record["jobId"]]
    assert client.post("/v1/queues/email/dead/replay", json={"ids": [record["jobId"]]}).status_code == 200
    wait_status(client, record["id"], "sent")
    assert len(sink.messages) == 1


def test_a_worker_killed_mid_send_the_message_is_delivered_and_never_twice_by_one_provider(stack, api, sink, fake):
    queue = {"visibilityTimeout": "2s", "retry": {"maxAttempts": 5, "initialBackoff": "100ms"}}
    providers = {"relay": smtp_provider(sink, 1, timeout="60s"), "resend": resend_provider(fake, 2)}
    stack.apply(providers, email_queue=queue)
    worker = stack.start_worker("doomed")
    client = api()
    sink.hang_next(3.0)  # the relay holds the end of DATA, then takes the message anyway
    accepted = send(client)
    wait_status(client, accepted["id"], "sending")
    time.sleep(0.3)
    worker.kill()
    stack.start_worker("survivor")
    record = wait_status(client, accepted["id"], "sent", timeout=30)
    assert record["provider"] == "resend"
    assert ("relay", "skipped_unknown") in attempts(record)
    time.sleep(3.0)
    by_relay = [m for m in sink.messages if accepted["id"] in m.message["Message-ID"]]
    assert len(by_relay) <= 1 and len(fake.received("resend")) == 1


def test_a_worker_killed_mid_send_on_resend_asks_it_again_with_the_same_idempotency_key(stack, api, fake):
    queue = {"visibilityTimeout": "2s", "retry": {"maxAttempts": 5, "initialBackoff": "100ms"}}
    stack.apply({"resend": resend_provider(fake, 1, timeout="60s")}, email_queue=queue)
    worker = stack.start_worker("doomed")
    client = api()
    fake.hang_next("resend", 3.0)
    accepted = send(client)
    wait_status(client, accepted["id"], "sending")
    time.sleep(0.3)
    worker.kill()
    stack.start_worker("survivor")
    record = wait_status(client, accepted["id"], "sent", timeout=30)
    assert record["provider"] == "resend"
    time.sleep(3.0)
    received = fake.received("resend")
    assert len(received) == 1 and received[0].headers["Idempotency-Key"] == accepted["id"]


def test_templates_render_on_send_and_in_preview_and_bad_variables_are_refused(stack, api, sink):
    template = {
        "subject": "Welcome, {{ name }}",
        "html": "<style>p { color: red }</style><p>Hello {{ name }}</p>",
        "variables": {"name": {}},
        "locales": {"fr": {"subject": "Bienvenue, {{ name }}", "html": "<p>Bonjour {{ name }}</p>"}},
    }
    stack.apply({"relay": smtp_provider(sink, 10)}, templates={"welcome": template})
    stack.start_worker()
    client = api()
    preview = client.post("/v1/email-templates/welcome/preview", json={"variables": {"name": "Ana"}})
    assert preview.status_code == 200
    assert preview.json()["subject"] == "Welcome, Ana" and 'style="color: red;"' in preview.json()["html"]
    accepted = send(
        client, subject=None, html=None, template={"name": "welcome", "variables": {"name": "Zoé"}, "locale": "fr-CA"}
    )
    record = wait_status(client, accepted["id"], "sent")
    assert record["subject"] == "Bienvenue, Zoé" and record["template"] == "welcome" and record["locale"] == "fr"
    assert sink.wait_for(1)[0].message["Subject"] == "Bienvenue, Zoé"
    missing = client.post(
        "/v1/emails", json={"from": SENDER, "to": ["ana@example.com"], "template": {"name": "welcome"}}
    )
    assert missing.status_code == 422 and missing.json()["missing"] == ["name"]
    unknown = client.post("/v1/emails", json={"from": SENDER, "to": ["a@example.com"], "template": {"name": "nope"}})
    assert unknown.status_code == 422 and "welcome" in unknown.json()["detail"]


def test_a_scheduled_email_waits_for_its_time_and_can_be_cancelled_before(stack, api, sink):
    stack.apply({"relay": smtp_provider(sink, 10)})
    stack.start_worker()
    client = api()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    waiting = send(client, sendAt=later)
    assert waiting["status"] == "scheduled"
    cancelled = client.post(f"/v1/emails/{waiting['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/v1/emails/{waiting['id']}/cancel").status_code == 409
    soon = send(client, sendAt=(datetime.now(UTC) + timedelta(seconds=1.5)).isoformat())
    assert client.get(f"/v1/emails/{soon['id']}").json()["status"] == "scheduled"
    wait_status(client, soon["id"], "sent")
    assert len(sink.messages) == 1


# -- provider webhooks ---------------------------------------------------------------------


def post_webhook(client: TestClient, provider: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(f"/v1/emails/webhooks/{provider}", content=raw, headers=headers)


def test_resend_events_move_the_log_a_bad_signature_is_401_and_a_hard_bounce_suppresses(stack, api, fake):
    secret = new_resend_secret()
    provider = resend_provider(fake, 1)
    provider["resend"]["webhookSecretRef"] = {"name": "mail", "key": "hook"}
    stack.apply({"primary": provider}, credentials={"primary/webhookSecret": secret})
    stack.start_worker()
    client = api()
    record = wait_status(client, send(client)["id"], "sent")
    delivered = json.dumps(
        resend_event("delivered", to="ana@example.com", email_id=record["providerMessageId"])
    ).encode()
    forged = post_webhook(client, "primary", delivered, resend_headers(new_resend_secret(), delivered))
    assert forged.status_code == 401 and forged.headers["content-type"] == "application/problem+json"
    assert secret not in forged.text
    assert client.get(f"/v1/emails/{record['id']}").json()["status"] == "sent"  # nothing changed
    answer = post_webhook(client, "primary", delivered, resend_headers(secret, delivered))
    assert answer.status_code == 200 and answer.json() == {"received": 1, "matched": 1}
    assert client.get(f"/v1/emails/{record['id']}").json()["status"] == "delivered"
    bounce = json.dumps(resend_event("hard_bounce", to="ana@example.com", stackyard_id=record["id"])).encode()
    assert post_webhook(client, "primary", bounce, resend_headers(secret, bounce)).status_code == 200
    bounced = client.get(f"/v1/emails/{record['id']}").json()
    assert bounced["status"] == "bounced" and "user unknown" in bounced["timeline"][-1]["detail"]
    (entry,) = client.get("/v1/suppressions", params={"reason": "bounce"}).json()["items"]
    assert entry["address"] == "ana@example.com" and entry["emailId"] == record["id"]
    assert (
        client.post(
            "/v1/emails", json={"from": SENDER, "to": ["ana@example.com"], "subject": "x", "text": "y"}
        ).status_code
        == 422
    )


def test_sendgrid_signed_complaints_and_ses_notifications_through_sns_update_the_log(stack, api, sink):
    signer = SendGridSigner()
    with SnsSigner() as sns:
        topic = "arn:aws:sns:eu-west-1:123456789012:ses-events"
        stack.apply(
            {
                "relay": smtp_provider(sink, 1),
                "grid": {
                    "type": "sendgrid",
                    "priority": 5,
                    "enabled": False,
                    "sendgrid": {
                        "apiKeySecretRef": {"name": "mail", "key": "sg"},
                        "webhookPublicKey": signer.public_key_b64,
                    },
                },
                "aws": {
                    "type": "ses",
                    "priority": 6,
                    "enabled": False,
                    "ses": {
                        "region": "eu-west-1",
                        "accessKeyIdSecretRef": {"name": "mail", "key": "id"},
                        "secretAccessKeySecretRef": {"name": "mail", "key": "secret"},
                        "webhookTopicArns": [topic],
                        "snsCertificateUrlPattern": sns.url_pattern,
                    },
                },
            },
            credentials={"grid/apiKey": "SG.x", "aws/accessKeyId": "AKIA", "aws/secretAccessKey": "s"},
        )
        stack.start_worker()
        client = api()
        first = wait_status(client, send(client, to=["bo@example.com"])["id"], "sent")
        complaint = json.dumps([sendgrid_event("complaint", to="bo@example.com", stackyard_id=first["id"])]).encode()
        assert post_webhook(client, "grid", complaint, {"X-Other": "unsigned"}).status_code == 401
        assert post_webhook(client, "grid", complaint, signer.headers(complaint)).status_code == 200
        assert client.get(f"/v1/emails/{first['id']}").json()["status"] == "complained"
        assert client.get("/v1/suppressions", params={"reason": "complaint"}).json()["items"][0]["address"] == (
            "bo@example.com"
        )

        second = wait_status(client, send(client, to=["cy@example.com"])["id"], "sent")
        confirm = post_webhook(client, "aws", sns.subscription_confirmation(topic), {})
        assert confirm.status_code == 200 and confirm.json()["confirmedSubscription"] == topic
        assert len(sns.gets("/?Action=ConfirmSubscription")) == 1
        event = ses_event("delivered", to="cy@example.com", stackyard_id=second["id"])
        answer = post_webhook(client, "aws", sns.notification(topic, event, signature_version="2"), {})
        assert answer.status_code == 200 and answer.json()["matched"] == 1
        assert client.get(f"/v1/emails/{second['id']}").json()["status"] == "delivered"
        forged = sns.notification(topic, event) | {"Message": json.dumps(ses_event("complaint", to="cy@example.com"))}
        assert post_webhook(client, "aws", forged, {}).status_code == 401
        assert client.get(f"/v1/emails/{second['id']}").json()["status"] == "delivered"
