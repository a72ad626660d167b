"""Reconcile telemetry: a span `reconcile <Kind>` around each reconcile, and the metrics
`stackyard.operator.reconciles` (counter) and `stackyard.operator.reconcile.duration`
(histogram, s), by kind and outcome (ready, not_ready, error).

Every member kind (EmailProvider, RateLimitPolicy, …) is reconciled as part of its Stack,
so there is one reconcile and one span per Stack; the kind stays an attribute so that a
kind reconciled on its own later needs no new names.

Each span is a root: a reconcile follows a watch event or a timer, never a traced request,
and without an explicit root a timer set inside one reconcile would make the next a child
of it (asyncio copies the context into callbacks and tasks).

The Kubernetes API calls inside go through kubernetes_asyncio, which uses aiohttp, not
httpx: they make no client spans (aiohttp's instrumentation is not a dependency); the JSON
logs written inside a reconcile carry its trace id instead.

Without an SDK configured (telemetry off) the tracer and instruments do nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from stackyard.telemetry import SECONDS_BUCKETS

SCOPE: Final = "stackyard.operator"
READY: Final = "ready"
NOT_READY: Final = "not_ready"
ERROR: Final = "error"


@dataclass
class ReconcileRecord:
    """What the code inside `ReconcileTelemetry.measure` reports: the outcome of a reconcile
    that returns (ready or not_ready; an exception makes it error)."""

    outcome: str = NOT_READY


class ReconcileTelemetry:
    def __init__(
        self,
        describe: Callable[[Exception], str],
        meter: Meter | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """`describe` turns an exception into a message safe for spans (no request or
        response bodies, no values of Secrets)."""
        self.describe = describe
        self.tracer = tracer or trace.get_tracer(SCOPE)
        meter = meter or metrics.get_meter(SCOPE)
        self.reconciles = meter.create_counter(
            "stackyard.operator.reconciles", unit="{reconcile}", description="Reconciles by kind and outcome."
        )
        self.duration = meter.create_histogram(
            "stackyard.operator.reconcile.duration",
            unit="s",
            description="Time a reconcile took, by kind and outcome.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )

    @contextmanager
    def measure(self, kind: str, namespace: str, name: str) -> Iterator[ReconcileRecord]:
        """Trace and count the reconcile of `kind` `namespace`/`name` run inside the block.

        An exception from the block is recorded (outcome error, span status ERROR with the
        described message) and raised again; a cancelled reconcile (the operator stopping)
        ends its span without an outcome and is not counted."""
        record = ReconcileRecord()
        attributes = {
            "k8s.namespace.name": namespace,
            "stackyard.resource.kind": kind,
            "stackyard.resource.name": name,
        }
        started = time.perf_counter()
        with self.tracer.start_as_current_span(
            f"reconcile {kind}",
            context=Context(),  # a root, see the module's docstring
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield record
            except Exception as exc:
                record.outcome = ERROR
                message = self.describe(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.add_event("exception", {"exception.type": type(exc).__qualname__, "exception.message": message})
                span.set_status(Status(StatusCode.ERROR, message))
                self._count(span, kind, record.outcome, started)
                raise
            else:
                self._count(span, kind, record.outcome, started)

    def _count(self, span: Span, kind: str, outcome: str, started: float) -> None:
        span.set_attribute("stackyard.operator.outcome", outcome)
        attributes = {"stackyard.resource.kind": kind, "stackyard.operator.outcome": outcome}
        self.reconciles.add(1, attributes)
        self.duration.record(time.perf_counter() - started, attributes)
