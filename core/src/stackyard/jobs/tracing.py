"""Job spans: a trace goes from whatever enqueued a job (a request, another job) into every
attempt that runs it, through the job's `trace` field.

- `sending(queue)`: the PRODUCER span `send <queue>` around an enqueue; the context stored
  with the job is taken inside it, so each attempt's CONSUMER span is its child. An enqueue
  outside any span (a schedule's tick) starts a trace of its own.
- `processing(job)`: the CONSUMER span `process <queue>` around one attempt, continuing the
  stored context (or a new trace for a job stored without one); `processed` gives it the
  attempt's outcome, and on a failure the exception and status ERROR.

Names and attributes are those of the messaging semantic conventions (telemetry contract).
Without an SDK installed the API's tracer is a no-op and so are these.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ..telemetry import extract_trace

if TYPE_CHECKING:
    from .store import Claimed

tracer = trace.get_tracer("stackyard.jobs")

SYSTEM = "stackyard"


@contextmanager
def sending(queue: str) -> Iterator[Span]:
    """The PRODUCER span of one enqueue (set `messaging.message.id` once the id is known)."""
    with tracer.start_as_current_span(
        f"send {queue}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.destination.name": queue,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
        },
    ) as span:
        yield span


@contextmanager
def processing(job: Claimed) -> Iterator[Span]:
    """The CONSUMER span of one attempt. Its parent is the context the job was enqueued in,
    never whatever the worker's task happened to run in (a job without one is a new trace).
    Exceptions that escape are recorded by the SDK; the attempt's own failure is given to
    `processed`, since the worker handles it inside."""
    with tracer.start_as_current_span(
        f"process {job.queue}",
        context=extract_trace(job.trace) or Context(),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.destination.name": job.queue,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.message.id": job.id,
            "stackyard.job.function": job.function,
            "stackyard.job.attempt": job.attempt,
        },
    ) as span:
        yield span


def processed(span: Span, outcome: str, failure: BaseException | None) -> None:
    """Record how an attempt ended: the outcome, and for a failure its exception event,
    `error.type` and status ERROR (described by the exception's type only: its message is in
    the event)."""
    if not span.is_recording():
        return
    span.set_attribute("stackyard.job.outcome", outcome)
    if failure is not None:
        kind = type(failure).__name__
        span.record_exception(failure)
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))
