"""The EmailProvider status that workers write: probes and noted attempts against the
harness's fake HTTP services, its SMTP sink (TLS and AUTH) and a real Redis for the breakers,
with a `patch` that records what would be written."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from stackyard.clients import redis_client
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig, credential_key
from stackyard.email.delivery import AttemptRecord, Breakers, Providers, deliver
from stackyard.email.message import OutgoingEmail
from stackyard.resources.email import EmailProviderSpec, EmailProviderStatus
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard.status_reports import status_patch
from stackyard_harness.fake_email_providers import (
    POSTMARK_SERVER_TOKEN,
    RESEND_API_KEY,
    SENDGRID_API_KEY,
    SES_ACCESS_KEY_ID,
    SES_SECRET_ACCESS_KEY,
    FakeEmailProviders,
)
from stackyard_harness.smtp import SmtpSink
from stackyard_worker.email_status import ProviderStatusReporter

SMTP_PASSWORD = "smtp-pass-7d1c9e2b4a"
WRONG_KEY = "re_wrong_0a1b2c3d4e5f6a7b"
WRONG_PASSWORD = "smtp-wrong-5e6f7a8b9c"


# --- the servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmailProviders]:
    with FakeEmailProviders() as running:
        yield running


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(tls="starttls", auth={"app": SMTP_PASSWORD}) as running:
        yield running


@pytest.fixture(autouse=True)
def clean(fake: FakeEmailProviders, sink: SmtpSink) -> None:
    fake.reset()
    sink.clear()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


@pytest.fixture
async def breakers(redis_server: Any) -> AsyncIterator[Breakers]:
    redis = redis_client(redis_server.url)
    yield Breakers(redis)
    await redis.aclose()


# --- the providers ----------------------------------------------------------------------------


def name(kind: str) -> str:
    """Unique per test: breakers live in the shared Redis."""
    return f"{kind}-{uuid.uuid4().hex[:8]}"


def http_spec(fake: FakeEmailProviders, kind: str, **spec: Any) -> EmailProviderSpec:
    body = {
        "stackRef": {"name": "shop"},
        "type": kind,
        kind: {"apiKeySecretRef": {"name": "esp", "key": kind}, "baseUrl": fake.base_url(kind)},
    }
    return EmailProviderSpec.model_validate(body | spec)


def smtp_spec(sink: SmtpSink, **spec: Any) -> EmailProviderSpec:
    body = {
        "stackRef": {"name": "shop"},
        "type": "smtp",
        "smtp": {
            "host": "localhost",  # the sink's certificate names localhost
            "port": sink.port,
            "security": "starttls",
            "username": "app",
            "passwordSecretRef": {"name": "esp", "key": "smtp"},
        },
    }
    return EmailProviderSpec.model_validate(body | spec)


def runtime_with(credentials: dict[str, str], tmp_path: Any) -> Runtime:
    """A Runtime whose config holds `credentials` (the reporter scrubs them from any text)."""
    live = LiveConfig()
    spec = StackSpec.model_validate(
        {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
    )
    config = RuntimeConfig(stack="shop", namespace="ns", generation=1, spec=spec)
    live.offer(config.canonical_json(), {"stack.redis.url": "redis://127.0.0.1:1", **credentials}, None)
    return Runtime("stackyard-worker", FileConfigSource(live, tmp_path), live)


class Recorder:
    """A `patch` that keeps every write, in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.fail: int = 0

    async def __call__(self, provider: str, status: dict[str, Any]) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the API server is away")
        EmailProviderStatus.model_validate(status)  # what the CRD takes
        self.writes.append((provider, copy.deepcopy(status)))

    def of(self, provider: str) -> list[dict[str, Any]]:
        return [s for p, s in self.writes if p == provider]

    def last(self, provider: str) -> dict[str, Any] | None:
        mine = self.of(provider)
        return mine[-1] if mine else None

    async def until(self, check: Callable[[], bool], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not written in {timeout}s; writes: {self.writes}")
            await asyncio.sleep(0.02)


def reachable(status: dict[str, Any] | None) -> dict[str, Any] | None:
    if status is None:
        return None
    return next((c for c in status.get("conditions", []) if c["type"] == "Reachable"), None)


def reason_is(recorder: Recorder, provider: str, status: str, reason: str) -> Callable[[], bool]:
    def check() -> bool:
        condition = reachable(recorder.last(provider))
        return condition is not None and (condition["status"], condition["reason"]) == (status, reason)

    return check


class Running:
    """A reporter running in the background over these providers."""

    def __init__(self, reporter: ProviderStatusReporter) -> None:
        self.reporter = reporter
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(reporter.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def start(
    http: httpx.AsyncClient, breakers: Breakers, sink: SmtpSink, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Any]]:
    monkeypatch.setenv("SSL_CERT_FILE", str(sink.ca_file))  # an EmailProvider trusts the system's CAs
    made: list[tuple[Running, Providers]] = []

    async def make(
        specs: dict[str, EmailProviderSpec], credentials: dict[str, str], **options: Any
    ) -> tuple[Running, Providers, Recorder]:
        providers = Providers(specs, credentials, http)
        recorder = Recorder()
        options.setdefault("write_interval", 0.05)
        reporter = ProviderStatusReporter(
            runtime_with(credentials, tmp_path), lambda: providers, lambda: breakers, patch=recorder, **options
        )
        running = Running(reporter)
        made.append((running, providers))
        return running, providers, recorder

    yield make
    for running, providers in made:
        await running.close()
        await providers.aclose()


def resend_credentials(provider: str, key: str = RESEND_API_KEY) -> dict[str, str]:
    return {credential_key("EmailProvider", provider, "apiKey"): key}


def smtp_credentials(provider: str, password: str = SMTP_PASSWORD) -> dict[str, str]:
    return {credential_key("EmailProvider", provider, "password"): password}


def message() -> OutgoingEmail:
    return OutgoingEmail(
        id=f"msg_{uuid.uuid4().hex}", sender="hello@acme.test", to=("ada@example.test",), subject="Hi", text="Hi"
    )


# --- probes -----------------------------------------------------------------------------------


async def test_probe_on_start_writes_reachable_true_with_the_breaker(fake, sink, start):
    resend, smtp = name("resend"), name("smtp")
    _, _, recorder = await start(
        {resend: http_spec(fake, "resend"), smtp: smtp_spec(sink)},
        resend_credentials(resend) | smtp_credentials(smtp),
    )
    for provider in (resend, smtp):
        await recorder.until(reason_is(recorder, provider, "True", "Answered"))
        await recorder.until(lambda p=provider: "breaker" in (recorder.last(p) or {}))
        status = recorder.last(provider)
        assert status is not None
        assert status["breaker"] == {"state": "closed", "consecutiveFailures": 0, "timesOpened": 0, "openedAt": None}
        assert status["lastAttempt"]["kind"] == "probe" and status["lastAttempt"]["outcome"] == "ok"
        assert status["lastAttempt"]["error"] is None
    assert fake.probed("resend") == 1 and fake.received("resend") == []
    assert sink.messages == []


async def test_probe_with_wrong_credentials_writes_invalid_credentials_and_no_secret(fake, sink, start):
    resend, smtp = name("resend"), name("smtp")
    _, _, recorder = await start(
        {resend: http_spec(fake, "resend"), smtp: smtp_spec(sink)},
        resend_credentials(resend, WRONG_KEY) | smtp_credentials(smtp, WRONG_PASSWORD),
    )
    for provider in (resend, smtp):
        await recorder.until(reason_is(recorder, provider, "False", "InvalidCredentials"))
        status = recorder.last(provider)
        assert status is not None and status["lastAttempt"]["outcome"] == "misconfigured"
    written = json.dumps(recorder.writes)
    for secret in (WRONG_KEY, WRONG_PASSWORD, RESEND_API_KEY, SMTP_PASSWORD):
        assert secret not in written


async def test_probe_failures_say_why_in_the_reason(fake, sink, start):
    limited, slow, failing, down = name("sendgrid"), name("postmark"), name("ses"), name("smtp")
    fake.fail_next("sendgrid", 429, headers={"Retry-After": "30"})
    fake.hang_next("postmark", 3)
    fake.fail_next("ses", 503)
    closed = SmtpSink()
    closed.start()
    closed_port = closed.port
    closed.stop()
    ses = EmailProviderSpec.model_validate(
        {
            "stackRef": {"name": "shop"},
            "type": "ses",
            "ses": {
                "region": "eu-west-1",
                "accessKeyIdSecretRef": {"name": "esp", "key": "id"},
                "secretAccessKeySecretRef": {"name": "esp", "key": "secret"},
                "baseUrl": fake.base_url("ses"),
            },
        }
    )
    credentials = {
        credential_key("EmailProvider", limited, "apiKey"): SENDGRID_API_KEY,
        credential_key("EmailProvider", slow, "apiKey"): POSTMARK_SERVER_TOKEN,
        credential_key("EmailProvider", failing, "accessKeyId"): SES_ACCESS_KEY_ID,
        credential_key("EmailProvider", failing, "secretAccessKey"): SES_SECRET_ACCESS_KEY,
        **smtp_credentials(down),
    }
    specs = {
        limited: http_spec(fake, "sendgrid"),
        slow: http_spec(fake, "postmark", timeout="300ms"),
        failing: ses,
        down: EmailProviderSpec.model_validate(
            smtp_spec(sink).model_dump(by_alias=True, exclude_none=True)
            | {"smtp": {"host": "127.0.0.1", "port": closed_port, "security": "none"}}
        ),
    }
    _, _, recorder = await start(specs, credentials)
    await recorder.until(reason_is(recorder, limited, "False", "RateLimited"))
    await recorder.until(reason_is(recorder, slow, "False", "Timeout"))
    await recorder.until(reason_is(recorder, failing, "False", "Unreachable"))
    await recorder.until(reason_is(recorder, down, "False", "Unreachable"))
    written = json.dumps(recorder.writes)
    assert SES_SECRET_ACCESS_KEY not in written and POSTMARK_SERVER_TOKEN not in written


async def test_probes_again_when_credentials_change_and_every_interval(fake, start):
    resend = name("resend")
    specs = {resend: http_spec(fake, "resend")}
    _, providers, recorder = await start(specs, resend_credentials(resend, WRONG_KEY), probe_interval=0.5)
    await recorder.until(reason_is(recorder, resend, "False", "InvalidCredentials"))
    failed = reachable(recorder.last(resend))

    await providers.update(specs, resend_credentials(resend))  # the Secret was fixed
    await recorder.until(reason_is(recorder, resend, "True", "Answered"))
    fixed = reachable(recorder.last(resend))
    assert failed is not None and fixed is not None
    assert fixed["lastTransitionTime"] >= failed["lastTransitionTime"]

    await recorder.until(lambda: fake.probed("resend") >= 3)  # and again, every probe_interval


async def test_a_disabled_provider_is_not_probed(fake, start):
    resend = name("resend")
    _, _, recorder = await start({resend: http_spec(fake, "resend", enabled=False)}, resend_credentials(resend))
    await asyncio.sleep(0.5)
    assert fake.probed("resend") == 0
    assert all(reachable(status) is None for status in recorder.of(resend))  # the breaker alone


# --- noted attempts ---------------------------------------------------------------------------


async def test_noted_sends_update_last_attempt_reachable_and_the_breaker(fake, start, breakers):
    resend = name("resend")
    specs = {resend: http_spec(fake, "resend", circuitBreaker={"failureThreshold": 2, "openDuration": "60s"})}
    running, providers, recorder = await start(specs, resend_credentials(resend), probe_interval=3600)
    await recorder.until(reason_is(recorder, resend, "True", "Answered"))

    fake.fail_next("resend", 503, count=2)
    for _ in range(2):
        report = await deliver(message(), providers, breakers)
        for attempt in report.attempts:
            running.reporter.note(attempt)

    def breaker_opened() -> bool:
        status = recorder.last(resend) or {}
        return status.get("breaker", {}).get("state") == "open"

    await recorder.until(breaker_opened)
    status = recorder.last(resend)
    assert status is not None
    assert status["breaker"]["timesOpened"] == 1 and status["breaker"]["consecutiveFailures"] == 2
    assert status["breaker"]["openedAt"] is not None
    assert status["lastAttempt"]["kind"] == "send" and status["lastAttempt"]["outcome"] == "retryable"
    assert "503" in status["lastAttempt"]["error"]
    condition = reachable(status)
    assert condition is not None and (condition["status"], condition["reason"]) == ("False", "Unreachable")

    # the breaker now skips it: a skipped attempt never reached it, so lastAttempt stays
    report = await deliver(message(), providers, breakers)
    assert report.attempts[0].outcome == "skipped_breaker_open"
    writes = len(recorder.of(resend))
    running.reporter.note(report.attempts[0])
    await asyncio.sleep(0.3)
    assert recorder.last(resend) == status and len(recorder.of(resend)) == writes


async def test_a_rejected_message_keeps_reachable_true(fake, start):
    resend = name("resend")
    running, _, recorder = await start({resend: http_spec(fake, "resend")}, resend_credentials(resend))
    await recorder.until(reason_is(recorder, resend, "True", "Answered"))
    since = reachable(recorder.last(resend))["lastTransitionTime"]  # type: ignore[index]
    running.reporter.note(
        AttemptRecord(resend, datetime.now(UTC), 0.05, "rejected", "resend: HTTP 422 validation_error: bad to", 422)
    )
    await recorder.until(lambda: (recorder.last(resend) or {})["lastAttempt"]["outcome"] == "rejected")
    condition = reachable(recorder.last(resend))
    assert condition is not None and (condition["status"], condition["reason"]) == ("True", "Answered")
    assert condition["lastTransitionTime"] == since  # the status did not change


async def test_writes_are_coalesced_and_skipped_when_nothing_changed(fake, start):
    resend = name("resend")
    running, _, recorder = await start(
        {resend: http_spec(fake, "resend")}, resend_credentials(resend), write_interval=1.0, probe_interval=3600
    )
    await recorder.until(reason_is(recorder, resend, "True", "Answered"))
    await recorder.until(lambda: "breaker" in (recorder.last(resend) or {}))
    await asyncio.sleep(1.1)
    before = len(recorder.of(resend))

    # a burst of attempts: the first goes out at once, the rest as one write a second later
    at = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    for i in range(20):
        running.reporter.note(AttemptRecord(resend, at, float(i), "retryable", f"resend: HTTP 503: try {i}", 503))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert len(recorder.of(resend)) <= before + 1
    await recorder.until(lambda: (recorder.last(resend) or {})["lastAttempt"]["error"] == "resend: HTTP 503: try 19")
    assert len(recorder.of(resend)) <= before + 2
    condition = reachable(recorder.last(resend))
    assert condition is not None and condition["status"] == "False"
    transition = condition["lastTransitionTime"]

    # the same attempt again: nothing changed, nothing written
    settled = len(recorder.of(resend))
    running.reporter.note(AttemptRecord(resend, at, 19.0, "retryable", "resend: HTTP 503: try 19", 503))
    await asyncio.sleep(1.5)
    assert len(recorder.of(resend)) == settled

    # another failure of the same kind keeps the condition's lastTransitionTime
    running.reporter.note(AttemptRecord(resend, at, 30.0, "retryable", "resend: HTTP 502: again", 502))
    await recorder.until(lambda: len(recorder.of(resend)) > settled)
    assert reachable(recorder.last(resend))["lastTransitionTime"] == transition  # type: ignore[index]


async def test_a_failed_write_is_tried_again_on_the_next_change(fake, start):
    resend = name("resend")
    running, _, recorder = await start({resend: http_spec(fake, "resend")}, resend_credentials(resend))
    recorder.fail = 10**6  # the API server is away
    await asyncio.sleep(0.5)
    assert recorder.of(resend) == []
    recorder.fail = 0
    running.reporter.note(AttemptRecord(resend, datetime.now(UTC), 0.1, "sent"))
    await recorder.until(lambda: (recorder.last(resend) or {}).get("lastAttempt", {}).get("kind") == "send")


async def test_without_a_cluster_the_default_patch_writes_nothing(fake, http, breakers, tmp_path, monkeypatch):
    monkeypatch.delenv("STACKYARD_STACK", raising=False)
    resend = name("resend")
    providers = Providers({resend: http_spec(fake, "resend")}, resend_credentials(resend), http)
    reporter = ProviderStatusReporter(
        runtime_with(resend_credentials(resend), tmp_path), lambda: providers, lambda: breakers
    )
    stop = asyncio.Event()
    task = asyncio.create_task(reporter.run(stop))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(task, 10)
    await providers.aclose()
    assert fake.probed("resend") == 1


# --- the default patch's body -----------------------------------------------------------------


def test_status_patch_keeps_the_operators_conditions_and_the_transition_time():
    ready = {"type": "Ready", "status": "True", "reason": "InForce", "lastTransitionTime": "2030-01-01T00:00:00Z"}
    creds = {"type": "CredentialsResolved", "status": "True", "reason": "SecretsFound", "lastTransitionTime": "x"}
    old = {"type": "Reachable", "status": "True", "reason": "Answered", "lastTransitionTime": "2030-01-01T00:00:01Z"}
    current = {"conditions": [ready, old, creds], "observedGeneration": 3}
    answered = old | {"lastTransitionTime": "2030-02-02T00:00:00Z"}
    breaker = {"state": "closed", "consecutiveFailures": 0, "timesOpened": 0, "openedAt": None}

    patch = status_patch(current, {"conditions": [answered], "breaker": breaker})
    kept = answered | {"lastTransitionTime": old["lastTransitionTime"]}
    assert patch == {"conditions": [ready, kept, creds], "breaker": breaker}

    down = answered | {"status": "False", "reason": "Timeout"}
    assert status_patch(current, {"conditions": [down]})["conditions"] == [ready, down, creds]
    assert status_patch({"conditions": [ready]}, {"conditions": [down]})["conditions"] == [ready, down]
    assert status_patch(current, {"breaker": breaker}) == {"breaker": breaker}  # the conditions untouched
