"""Email telemetry read back from the real OpenTelemetry Collector: a send through a failing
provider and then a working one (the harness's fake Resend, its SMTP sink, a real Redis for
the breakers) gives a `send email` span per provider, an `smtp send` client span, sends by
outcome, a failover, and the breaker state gauge."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from stackyard.clients import redis_client
from stackyard.config import credential_key
from stackyard.email.delivery import Breakers, Providers, deliver
from stackyard.email.message import OutgoingEmail
from stackyard.resources.email import EmailProviderSpec
from stackyard.telemetry import Telemetry
from stackyard_harness.fake_email_providers import RESEND_API_KEY, FakeEmailProviders
from stackyard_harness.otlp import STATUS_ERROR, MetricPoint, Span, metric_points, until_exported
from stackyard_harness.smtp import SmtpSink

RECIPIENT, SUBJECT = "ada@example.test", "Your invoice"


@pytest.fixture(scope="module")
def telemetry(exporting_telemetry: Telemetry) -> Telemetry:
    return exporting_telemetry


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmailProviders]:
    with FakeEmailProviders() as running:
        yield running


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[Any]:
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def providers(fake: FakeEmailProviders, sink: SmtpSink) -> AsyncIterator[tuple[Providers, str, str]]:
    """Resend first (its breaker opens after 2 failures), the SMTP sink second; names unique
    to the test (breakers and metrics are keyed by them)."""
    fake.reset()
    sink.clear()
    suffix = uuid.uuid4().hex[:8]
    resend, smtp = f"resend-{suffix}", f"smtp-{suffix}"
    specs = {
        resend: EmailProviderSpec.model_validate(
            {
                "stackRef": {"name": "shop"},
                "type": "resend",
                "priority": 10,
                "timeout": "2s",
                "circuitBreaker": {"failureThreshold": 2, "openDuration": "60s"},
                "resend": {"apiKeySecretRef": {"name": "esp", "key": "resend"}, "baseUrl": fake.base_url("resend")},
            }
        ),
        smtp: EmailProviderSpec.model_validate(
            {
                "stackRef": {"name": "shop"},
                "type": "smtp",
                "priority": 50,
                "smtp": {"host": sink.host, "port": sink.port, "security": "none"},
            }
        ),
    }
    async with httpx.AsyncClient() as http:
        built = Providers(specs, {credential_key("EmailProvider", resend, "apiKey"): RESEND_API_KEY}, http)
        yield built, resend, smtp
        await built.aclose()


def message() -> OutgoingEmail:
    return OutgoingEmail(
        id=f"msg_{uuid.uuid4().hex}", sender="Acme <hello@acme.test>", to=(RECIPIENT,), subject=SUBJECT, text="Hi"
    )


# -- reading the collector ------------------------------------------------------------------


def trace_spans(collector: Any, trace_id: str) -> list[Span]:
    return [s for s in collector.spans() if s.trace_id == trace_id]


def latest_points(collector: Any, name: str) -> list[MetricPoint]:
    """The data points of metric `name` in the latest export that has it."""
    latest: list[MetricPoint] = []
    for record in collector.records():
        latest = [p for p in metric_points([record]) if p.name == name] or latest
    return latest


def values(collector: Any, name: str, provider: str) -> dict[tuple[tuple[str, Any], ...], float]:
    """Metric `name`'s latest values for `provider`, keyed by their other attributes."""
    out = {}
    for point in latest_points(collector, name):
        attrs = dict(point.attributes)
        if attrs.pop("stackyard.email.provider", None) == provider:
            out[tuple(sorted(attrs.items()))] = point.value
    return out


async def until(telemetry: Telemetry, found: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    return await until_exported(telemetry.flush, found, what, timeout)


# -- tests --------------------------------------------------------------------------------------


async def test_a_failover_shows_as_a_span_per_provider_sends_by_outcome_and_a_failover(
    providers: tuple[Providers, str, str],
    redis: Any,
    fake: FakeEmailProviders,
    telemetry: Telemetry,
    otel_collector: Any,
) -> None:
    pair, resend, smtp = providers
    fake.fail_next("resend", 500)
    with trace.get_tracer("test").start_as_current_span("email job") as parent:
        report = await deliver(message(), pair, Breakers(redis))
    assert report.outcome == "sent" and report.provider == smtp
    trace_id = trace.format_trace_id(parent.get_span_context().trace_id)
    parent_id = trace.format_span_id(parent.get_span_context().span_id)

    def sends() -> list[Span] | None:
        found = [s for s in trace_spans(otel_collector, trace_id) if s.name == "send email"]
        smtp_spans = [s for s in trace_spans(otel_collector, trace_id) if s.name == "smtp send"]
        return found if len(found) == 2 and smtp_spans else None

    found = await until(telemetry, sends, "two send email spans and an smtp send span")
    by_provider = {s.attributes["stackyard.email.provider"]: s for s in found}
    failed, sent = by_provider[resend], by_provider[smtp]
    assert {failed.parent_id, sent.parent_id} == {parent_id}
    assert failed.kind == sent.kind == "INTERNAL"
    assert failed.attributes == {
        "stackyard.email.provider": resend,
        "stackyard.email.provider.type": "resend",
        "stackyard.email.outcome": "failed",
        "error.type": "retryable",
    }
    assert failed.status_code == STATUS_ERROR
    assert sent.attributes == {
        "stackyard.email.provider": smtp,
        "stackyard.email.provider.type": "smtp",
        "stackyard.email.outcome": "sent",
    }
    assert sent.status_code != STATUS_ERROR
    [smtp_send] = [s for s in trace_spans(otel_collector, trace_id) if s.name == "smtp send"]
    assert smtp_send.kind == "CLIENT" and smtp_send.parent_id == sent.span_id
    assert smtp_send.attributes == {
        "server.address": pair[smtp].sender.host,  # type: ignore[attr-defined]
        "server.port": pair[smtp].sender.port,  # type: ignore[attr-defined]
        "network.protocol.name": "smtp",
    }
    everything = json.dumps([asdict(s) for s in trace_spans(otel_collector, trace_id)])
    assert RECIPIENT not in everything and SUBJECT not in everything and RESEND_API_KEY not in everything

    await until(
        telemetry,
        lambda: (
            values(otel_collector, "stackyard.email.failovers", resend)
            == {(("stackyard.email.provider.next", smtp),): 1}
        ),
        "one failover from resend to smtp",
    )
    failed_key = (
        ("error.type", "retryable"),
        ("stackyard.email.outcome", "failed"),
        ("stackyard.email.provider.type", "resend"),
    )
    sent_key = (("stackyard.email.outcome", "sent"), ("stackyard.email.provider.type", "smtp"))
    await until(
        telemetry, lambda: values(otel_collector, "stackyard.email.sends", resend) == {failed_key: 1}, "resend failed"
    )
    await until(telemetry, lambda: values(otel_collector, "stackyard.email.sends", smtp) == {sent_key: 1}, "smtp sent")
    await until(
        telemetry,
        lambda: values(otel_collector, "stackyard.email.send.duration", smtp) == {sent_key: 1},
        "one smtp send duration",
    )


async def test_the_breaker_state_gauge_follows_the_breaker_as_it_opens(
    providers: tuple[Providers, str, str],
    redis: Any,
    fake: FakeEmailProviders,
    telemetry: Telemetry,
    otel_collector: Any,
) -> None:
    pair, resend, smtp = providers
    breakers = Breakers(redis)
    assert (await deliver(message(), pair, breakers)).provider == resend
    await until(
        telemetry, lambda: values(otel_collector, "stackyard.email.breaker.state", resend) == {(): 0}, "closed: 0"
    )

    fake.fail_next("resend", 503, count=2)
    for _ in range(2):
        assert (await deliver(message(), pair, breakers)).provider == smtp
    assert (await breakers.of(pair[resend]).snapshot()).state == "open"
    await until(
        telemetry, lambda: values(otel_collector, "stackyard.email.breaker.state", resend) == {(): 2}, "open: 2"
    )

    skipped = await deliver(message(), pair, breakers)
    assert skipped.attempts[0].outcome == "skipped_breaker_open"
    await until(
        telemetry,
        lambda: (
            values(otel_collector, "stackyard.email.failovers", resend)
            == {(("stackyard.email.provider.next", smtp),): 3}
        ),
        "three failovers (two failures, one open breaker)",
    )
    # the skipped attempt asked nothing of resend: two failed sends, one sent, no more
    await until(
        telemetry,
        lambda: (
            {
                (dict(k)["stackyard.email.outcome"], dict(k).get("error.type")): v
                for k, v in values(otel_collector, "stackyard.email.sends", resend).items()
            }
            == {("failed", "retryable"): 2, ("sent", None): 1}
        ),
        "resend's sends by outcome",
    )
