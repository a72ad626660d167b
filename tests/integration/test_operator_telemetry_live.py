"""The operator's telemetry against the real API server and collector: the operator process,
given only the standard OTEL_* environment, exports a `reconcile Stack` span per reconcile
and the reconcile metrics, with the outcome, and its JSON logs carry the span's trace id."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from stackyard_harness.otel import OtelCollector
from stackyard_harness.otlp import MetricPoint, Span

from .conftest import Namespace, SessionOperator, stack_manifest, wait_for

FAST_EXPORTS = {
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_METRIC_EXPORT_INTERVAL": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "100",
}


@pytest.fixture
def telemetry_operator(session_operator: SessionOperator, otel_collector: OtelCollector) -> Iterator[SessionOperator]:
    """The shared operator, restarted to export to the harness collector; stopped after the
    test, so that the next test that asks for `operator` gets it back without telemetry."""
    session_operator.stop()
    session_operator.start({**otel_collector.env(), **FAST_EXPORTS})
    yield session_operator
    session_operator.stop()


def reconcile_spans(collector: OtelCollector, namespace: str) -> list[Span]:
    """The `reconcile Stack` spans of `namespace`."""
    return [
        s
        for s in collector.spans()
        if s.name == "reconcile Stack" and s.attributes.get("k8s.namespace.name") == namespace
    ]


def metric_points(collector: OtelCollector, name: str, instance: str) -> list[MetricPoint]:
    """The data points of metric `name` exported by the process whose service.instance.id is
    `instance` (counters do not name a namespace; the process does)."""
    return [
        p for p in collector.metric_points() if p.name == name and p.resource.get("service.instance.id") == instance
    ]


def outcomes(spans: list[Span]) -> set[str]:
    return {s.attributes.get("stackyard.operator.outcome") for s in spans}


def test_reconciles_are_traced_and_counted_by_outcome(
    telemetry_operator: SessionOperator, otel_collector: OtelCollector, namespace: Namespace
) -> None:
    # Without its backends Secret the Stack is not ready ...
    namespace.apply(stack_manifest())
    wait_for(
        lambda: "not_ready" in outcomes(reconcile_spans(otel_collector, namespace.name)),
        timeout=30,
        what="a not_ready `reconcile Stack` span",
    )
    # ... and with it, it is.
    namespace.secret("backends", redis="redis://127.0.0.1:1/0", mongodb="mongodb://127.0.0.1:1/")
    wait_for(lambda: (namespace.condition("stack", "demo") or {}).get("status") == "True", what="Stack Ready")
    spans = wait_for(
        lambda: (found := reconcile_spans(otel_collector, namespace.name)) and "ready" in outcomes(found) and found,
        timeout=30,
        what="a ready `reconcile Stack` span",
    )

    ready = next(s for s in spans if s.attributes["stackyard.operator.outcome"] == "ready")
    assert ready.scope == "stackyard.operator"
    assert ready.kind == "INTERNAL"
    assert not ready.parent_id, "a reconcile is the root of its trace"
    assert ready.attributes == {
        "k8s.namespace.name": namespace.name,
        "stackyard.resource.kind": "Stack",
        "stackyard.resource.name": "demo",
        "stackyard.operator.outcome": "ready",
    }
    assert ready.resource["service.name"] == "stackyard-operator"
    assert ready.resource["service.namespace"] == "stackyard"

    # The reconcile metrics of this operator process, by kind and outcome.
    instance = ready.resource["service.instance.id"]
    for outcome in ("not_ready", "ready"):
        attributes = {"stackyard.resource.kind": "Stack", "stackyard.operator.outcome": outcome}
        counted = wait_for(
            lambda a=attributes: [
                p for p in metric_points(otel_collector, "stackyard.operator.reconciles", instance) if p.attributes == a
            ],
            timeout=15,
            what=f"stackyard.operator.reconciles {attributes}",
        )
        assert counted[-1].type == "sum" and counted[-1].unit == "{reconcile}" and counted[-1].value >= 1
        timed = wait_for(
            lambda a=attributes: [
                p
                for p in metric_points(otel_collector, "stackyard.operator.reconcile.duration", instance)
                if p.attributes == a
            ],
            timeout=15,
            what=f"stackyard.operator.reconcile.duration {attributes}",
        )
        assert timed[-1].type == "histogram" and timed[-1].unit == "s" and timed[-1].value >= 1
        assert list(timed[-1].bounds[:3]) == [0.005, 0.01, 0.025]

    # The operator's JSON log line of that reconcile carries the span's trace id.
    reconciled = [
        entry
        for line in telemetry_operator.log().splitlines()
        if line.startswith("{")
        and (entry := json.loads(line))["message"].startswith(f"reconciled Stack {namespace.name}/demo")
    ]
    assert ready.trace_id.lower() in {e.get("trace_id") for e in reconciled}
