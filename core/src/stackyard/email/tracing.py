"""Email spans, and how a provider attempt reads in telemetry.

- `send email` (INTERNAL): one per provider `deliver` considers for a message, with the
  provider's name and type, the outcome (sent, rejected, failed) and `error.type`; status
  ERROR when that provider did not send it.
- `smtp send` (CLIENT): the SMTP transport's exchange with its relay (server.address,
  server.port, network.protocol.name=smtp).

No address, subject, key or provider reply goes into an attribute: failure texts can quote
a recipient (an SMTP 550 often does), so spans carry kinds of failure, never their words.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from .delivery import AttemptRecord

tracer = trace.get_tracer("stackyard.email")

CALLED = frozenset({"sent", "rejected", "retryable", "rate_limited", "misconfigured"})
"""Attempt outcomes that asked the provider (the others were settled before it: breaker,
send rate, ledger)."""

_ERROR_TYPES = {
    "skipped_breaker_open": "breaker_open",
    "skipped_rate_limit": "send_rate",
    "skipped_unknown": "cut_off",
}


def outcome(record: AttemptRecord) -> tuple[str, str | None]:
    """(stackyard.email.outcome, error.type) of an attempt: sent, rejected or failed, and for
    the last two a short kind (timeout, retryable, rate_limited, misconfigured, breaker_open,
    send_rate, cut_off, rejected, or an unexpected exception's type)."""
    if record.outcome in ("sent", "already_sent"):
        return "sent", None
    kind = record.error_type or _ERROR_TYPES.get(record.outcome, record.outcome)
    return ("rejected" if record.outcome == "rejected" else "failed"), kind


@contextmanager
def attempt_span(provider: str, provider_type: str) -> Iterator[Span]:
    with tracer.start_as_current_span(
        "send email",
        attributes={"stackyard.email.provider": provider, "stackyard.email.provider.type": provider_type},
    ) as span:
        yield span


def attempted(span: Span, record: AttemptRecord) -> None:
    if not span.is_recording():
        return
    result, error = outcome(record)
    span.set_attribute("stackyard.email.outcome", result)
    if error is not None:
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, error))


@contextmanager
def smtp_span(host: str, port: int) -> Iterator[Span]:
    """The CLIENT span of one SMTP send. A failure sets `error.type` (the `SendFailure` kind)
    and status ERROR, without the exception's text (it may quote a recipient)."""
    with tracer.start_as_current_span(
        "smtp send",
        kind=SpanKind.CLIENT,
        attributes={"server.address": host, "server.port": port, "network.protocol.name": "smtp"},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            if span.is_recording():
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
