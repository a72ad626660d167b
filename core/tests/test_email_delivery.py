"""Delivery with failover against the real servers: the harness's fake Resend and SendGrid,
its SMTP sink, and a real Redis for the circuit breakers and the send rates."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from stackyard.clients import redis_client
from stackyard.config import credential_key
from stackyard.email.delivery import (
    RATE_KEY_PREFIX,
    Breakers,
    MissingCredential,
    Providers,
    build_sender,
    deliver,
)
from stackyard.email.message import OutgoingEmail
from stackyard.ratelimit import RateLimiter
from stackyard.resources.email import EmailProviderSpec
from stackyard_harness.fake_email_providers import RESEND_API_KEY, SENDGRID_API_KEY, FakeEmailProviders
from stackyard_harness.smtp import SmtpSink


def message(sender: str = "Acme <hello@acme.test>") -> OutgoingEmail:
    return OutgoingEmail(
        id=f"msg_{uuid.uuid4().hex}", sender=sender, to=("ada@example.test",), subject="Hi", text="Hello Ada"
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmailProviders]:
    with FakeEmailProviders() as running:
        yield running


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture(autouse=True)
def clean(fake: FakeEmailProviders, sink: SmtpSink) -> None:
    fake.reset()
    sink.clear()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[Any]:
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def names() -> dict[str, str]:
    """Provider names unique to the test: breakers and send rates live in the shared Redis."""
    suffix = uuid.uuid4().hex[:8]
    return {kind: f"{kind}-{suffix}" for kind in ("resend", "sendgrid", "smtp")}


def resend_spec(fake: FakeEmailProviders, **spec: Any) -> EmailProviderSpec:
    body = {
        "stackRef": {"name": "shop"},
        "type": "resend",
        "priority": 10,
        "resend": {"apiKeySecretRef": {"name": "esp", "key": "resend"}, "baseUrl": fake.base_url("resend")},
    }
    return EmailProviderSpec.model_validate(body | spec)


def sendgrid_spec(fake: FakeEmailProviders, **spec: Any) -> EmailProviderSpec:
    body = {
        "stackRef": {"name": "shop"},
        "type": "sendgrid",
        "priority": 20,
        "sendgrid": {"apiKeySecretRef": {"name": "esp", "key": "sendgrid"}, "baseUrl": fake.base_url("sendgrid")},
    }
    return EmailProviderSpec.model_validate(body | spec)


def smtp_spec(sink: SmtpSink, **spec: Any) -> EmailProviderSpec:
    body = {
        "stackRef": {"name": "shop"},
        "type": "smtp",
        "priority": 50,
        "smtp": {"host": sink.host, "port": sink.port, "security": "none"},
    }
    return EmailProviderSpec.model_validate(body | spec)


def credentials(names: dict[str, str], resend_key: str = RESEND_API_KEY) -> dict[str, str]:
    return {
        credential_key("EmailProvider", names["resend"], "apiKey"): resend_key,
        credential_key("EmailProvider", names["sendgrid"], "apiKey"): SENDGRID_API_KEY,
    }


@pytest.fixture
async def pair(
    fake: FakeEmailProviders, sink: SmtpSink, http: httpx.AsyncClient, names: dict[str, str]
) -> AsyncIterator[Providers]:
    """Resend first (timeout 300 ms, breaker after 2 failures for 500 ms), the SMTP sink second."""
    specs = {
        names["resend"]: resend_spec(
            fake, timeout="300ms", circuitBreaker={"failureThreshold": 2, "openDuration": "500ms"}
        ),
        names["smtp"]: smtp_spec(sink),
    }
    providers = Providers(specs, credentials(names), http)
    yield providers
    await providers.aclose()


async def test_a_failing_primary_fails_over_to_the_secondary(pair, redis, fake, sink, names):
    fake.fail_next("resend", 500)
    report = await deliver(message(), pair, Breakers(redis))
    assert report.outcome == "sent" and report.provider == names["smtp"]
    assert report.provider_message_id
    assert [(a.provider, a.outcome, a.status) for a in report.attempts] == [
        (names["resend"], "retryable", 500),
        (names["smtp"], "sent", None),
    ]
    assert "HTTP 500" in (report.attempts[0].error or "")
    assert report.attempts[0].started_at <= report.attempts[1].started_at
    assert sink.wait_for(1)[0].message["Subject"] == "Hi"
    assert fake.received("resend") == []


async def test_a_healthy_primary_sends_alone(pair, redis, fake, sink, names):
    report = await deliver(message(), pair, Breakers(redis))
    assert report.outcome == "sent" and report.provider == names["resend"]
    assert report.provider_message_id == fake.received("resend")[0].id
    assert [a.outcome for a in report.attempts] == ["sent"]
    assert sink.messages == []


async def test_a_hanging_primary_fails_over_within_its_timeout(pair, redis, fake, sink, names):
    await deliver(message(), pair, Breakers(redis))  # connections warm, as in a running worker
    fake.hang_next("resend", 3)
    started = time.monotonic()
    report = await deliver(message(), pair, Breakers(redis))
    took = time.monotonic() - started
    assert report.outcome == "sent" and report.provider == names["smtp"]
    assert report.attempts[0].outcome == "retryable" and "0.3s" in (report.attempts[0].error or "")
    assert 0.3 <= report.attempts[0].duration < 0.4
    assert took < 0.3 + 0.1, f"failover took {took * 1000:.0f} ms"


async def test_a_rejected_message_does_not_fail_over(pair, redis, fake, sink, names):
    fake.fail_next("resend", 422, {"statusCode": 422, "name": "validation_error", "message": "Invalid `to` field."})
    report = await deliver(message(), pair, Breakers(redis))
    assert report.outcome == "rejected" and report.provider == names["resend"]
    assert "Invalid `to` field." in (report.reason or "")
    assert [a.outcome for a in report.attempts] == ["rejected"]
    assert report.retry_after is None
    assert sink.messages == []
    assert (await Breakers(redis).of(pair[names["resend"]]).snapshot()).consecutive_failures == 0


async def test_the_breaker_opens_then_a_probe_closes_it(pair, redis, fake, sink, names):
    breakers = Breakers(redis)
    fake.fail_next("resend", 503, count=2)
    for _ in range(2):
        assert (await deliver(message(), pair, breakers)).provider == names["smtp"]
    breaker = breakers.of(pair[names["resend"]])
    assert (await breaker.snapshot()).state == "open"

    started = time.monotonic()
    skipped = await deliver(message(), pair, breakers)
    assert time.monotonic() - started < 0.2
    assert skipped.provider == names["smtp"]
    first = skipped.attempts[0]
    assert first.outcome == "skipped_breaker_open" and 0 < (first.retry_after or 0) <= 0.5
    assert len(fake.received("resend")) == 0

    await asyncio.sleep(0.55)
    probed = await deliver(message(), pair, breakers)
    assert probed.provider == names["resend"] and [a.outcome for a in probed.attempts] == ["sent"]
    assert (await breaker.snapshot()).state == "closed"


async def test_every_provider_down_asks_for_a_retry_with_a_hint(fake, http, redis, names):
    specs = {names["resend"]: resend_spec(fake), names["sendgrid"]: sendgrid_spec(fake)}
    providers = Providers(specs, credentials(names), http)
    fake.fail_next("resend", 429, headers={"Retry-After": "7"})
    fake.fail_next("sendgrid", 429, headers={"Retry-After": "3"})
    report = await deliver(message(), providers, Breakers(redis))
    assert report.outcome == "retry" and report.provider is None
    assert [a.outcome for a in report.attempts] == ["rate_limited", "rate_limited"]
    assert report.retry_after == 3
    assert report.retry_at is not None and report.finished_at is not None
    assert (report.retry_at - report.finished_at).total_seconds() == pytest.approx(3)

    fake.fail_next("resend", 502)
    fake.fail_next("sendgrid", 500)
    report = await deliver(message(), providers, Breakers(redis))
    assert report.outcome == "retry" and report.retry_after == 0
    assert names["resend"] in (report.reason or "") and names["sendgrid"] in (report.reason or "")


async def test_disabled_providers_and_other_domains_are_skipped(fake, sink, http, redis, names):
    specs = {
        names["resend"]: resend_spec(fake, enabled=False),
        names["sendgrid"]: sendgrid_spec(fake, fromDomains=["other.test"]),
        names["smtp"]: smtp_spec(sink, fromDomains=["acme.test"]),
    }
    providers = Providers(specs, credentials(names), http)
    try:
        assert [p.name for p in providers.all] == [names["resend"], names["sendgrid"], names["smtp"]]
        report = await deliver(message("hello@ACME.test"), providers, Breakers(redis))
        assert report.outcome == "sent" and report.provider == names["smtp"]
        assert [a.provider for a in report.attempts] == [names["smtp"]]

        report = await deliver(message("hello@other.test"), providers, Breakers(redis))
        assert report.provider == names["sendgrid"]

        report = await deliver(message("hello@elsewhere.test"), providers, Breakers(redis))
        assert report.outcome == "retry" and report.attempts == ()
        assert "elsewhere.test" in (report.reason or "")
    finally:
        await providers.aclose()


async def test_a_misconfigured_primary_fails_over_without_showing_its_key(fake, sink, http, redis, names):
    wrong_key = "re_wrong_" + uuid.uuid4().hex
    specs = {names["resend"]: resend_spec(fake), names["smtp"]: smtp_spec(sink)}
    providers = Providers(specs, credentials(names, resend_key=wrong_key), http)
    try:
        report = await deliver(message(), providers, Breakers(redis))
        assert report.provider == names["smtp"]
        assert report.attempts[0].outcome == "misconfigured" and report.attempts[0].status == 403
        assert wrong_key not in repr(report)

        fake.fail_next("resend", 401)
        await providers.update(specs, credentials(names))
        report = await deliver(message(), providers, Breakers(redis))
        assert report.provider == names["smtp"]
        assert (report.attempts[0].outcome, report.attempts[0].status) == ("misconfigured", 401)
        assert RESEND_API_KEY not in repr(report)
    finally:
        await providers.aclose()


async def test_the_primary_send_rate_sends_the_rest_of_a_burst_through_the_secondary(fake, sink, http, redis, names):
    specs = {
        names["resend"]: resend_spec(fake, rateLimit={"messages": 2, "period": "1s"}),
        names["smtp"]: smtp_spec(sink),
    }
    providers = Providers(specs, credentials(names), http)
    limiter = RateLimiter(redis, key_prefix=RATE_KEY_PREFIX)
    try:
        reports = [await deliver(message(), providers, Breakers(redis), limiter) for _ in range(3)]
        assert [r.provider for r in reports] == [names["resend"], names["resend"], names["smtp"]]
        skipped = reports[2].attempts[0]
        assert skipped.outcome == "skipped_rate_limit" and 0 < (skipped.retry_after or 0) <= 0.5
        assert len(fake.received("resend")) == 2
    finally:
        await providers.aclose()


async def test_a_missing_credential_is_named_by_its_key(fake, http, names):
    key = credential_key("EmailProvider", names["resend"], "apiKey")
    with pytest.raises(MissingCredential, match=key):
        build_sender(names["resend"], resend_spec(fake), {}, http)
    providers = Providers({names["resend"]: resend_spec(fake)}, {}, http)
    assert len(providers) == 0 and key in providers.problems[names["resend"]]


async def test_smtp_needs_its_password_only_with_a_username(sink, http, names):
    name = names["smtp"]
    assert build_sender(name, smtp_spec(sink), {}, http).name == name
    with_auth = smtp_spec(
        sink,
        smtp={
            "host": sink.host,
            "port": sink.port,
            "username": "app",
            "passwordSecretRef": {"name": "esp", "key": "smtp"},
        },
    )
    with pytest.raises(MissingCredential, match=credential_key("EmailProvider", name, "password")):
        build_sender(name, with_auth, {}, http)


async def test_update_rebuilds_only_the_providers_that_changed(fake, sink, http, names):
    specs = {
        names["resend"]: resend_spec(fake),
        names["sendgrid"]: sendgrid_spec(fake),
        names["smtp"]: smtp_spec(sink),
    }
    providers = Providers(specs, credentials(names), http)
    try:
        before = {p.name: p.sender for p in providers.all}
        changed = dict(specs)
        changed[names["sendgrid"]] = sendgrid_spec(fake, priority=5)
        del changed[names["smtp"]]
        await providers.update(changed, credentials(names))
        after = {p.name: p.sender for p in providers.all}
        assert list(after) == [names["sendgrid"], names["resend"]], "priority, then name"
        assert after[names["sendgrid"]] is not before[names["sendgrid"]]
        assert after[names["resend"]] is before[names["resend"]]

        rotated = credentials(names, resend_key="re_rotated")
        await providers.update(changed, rotated)
        assert providers[names["resend"]].sender is not before[names["resend"]], "a rotated key rebuilds"
        assert providers[names["sendgrid"]].sender is after[names["sendgrid"]]
    finally:
        await providers.aclose()
