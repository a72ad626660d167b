"""Which traces are kept, and what is propagated.

`StackSampler`: parent-based sampling by trace id at the Stack's ratio, which can change
while the process runs (None samples nothing). Client spans without a parent (a worker
polling Redis, a health check's ping) are never sampled: every call worth seeing happens
inside a request, a job or a reconcile, and the rest would be one trace per poll. Such a
span is marked in its trace state, and `SkipOrphans` propagates nothing for it: a
`traceparent` with the sampled flag off would make the service called (our own api, in
tests and benchmarks) drop the whole request's trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator, default_getter, default_setter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

ORPHAN = ("stackyard", "orphan")
"""Trace state that marks the unsampled span of a client call made outside any span."""


class StackSampler(Sampler):
    def __init__(self) -> None:
        self._sampler: Sampler = ALWAYS_OFF
        self.ratio: float | None = None

    def set_ratio(self, ratio: float | None) -> None:
        if ratio != self.ratio:
            self.ratio = ratio
            self._sampler = ALWAYS_OFF if ratio is None else ParentBased(TraceIdRatioBased(ratio))

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP, trace_state=TraceState([ORPHAN]))
        return self._sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"stackyard({self._sampler.get_description()})"


class SkipOrphans(TextMapPropagator):
    """The global propagator, except that it injects nothing for a marked orphan client span:
    the service called then decides on sampling as for any request without a parent."""

    def __init__(self, inner: TextMapPropagator) -> None:
        self.inner = inner

    def extract(self, carrier: Any, context: Context | None = None, getter: Getter[Any] = default_getter) -> Context:
        return self.inner.extract(carrier, context, getter)

    def inject(self, carrier: Any, context: Context | None = None, setter: Setter[Any] = default_setter) -> None:
        state = trace.get_current_span(context).get_span_context().trace_state
        if state.get(ORPHAN[0]) != ORPHAN[1]:
            self.inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self.inner.fields
