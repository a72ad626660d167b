"""The operator's own telemetry: settings from the standard OTEL_* environment, the reconcile
span and metrics, and the pod environment that gives the api's and worker's telemetry its
k8s.* resource attributes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from stackyard.telemetry import SECONDS_BUCKETS
from stackyard.telemetry.resource import resource_attributes
from stackyard_operator.conditions import not_ready, ready
from stackyard_operator.main import settings_from_environment
from stackyard_operator.metrics import ReconcileTelemetry
from stackyard_operator.reconciler import Indices, StackReconciler, outcome
from stackyard_operator.render import Observed, StatusUpdate, render

COLLECTOR = "http://collector.obs.svc:4318"
STACK = {
    "apiVersion": "stackyard.dev/v1alpha1",
    "kind": "Stack",
    "metadata": {"name": "demo", "namespace": "shop", "uid": "u-1", "generation": 3},
    "spec": {
        "redis": {"urlSecretRef": {"name": "backends", "key": "redis"}},
        "mongodb": {"uriSecretRef": {"name": "backends", "key": "mongodb"}},
    },
}
BACKENDS = {"redis": "redis://:pw@redis:6379/0", "mongodb": "mongodb://mongo/"}

# -- settings from the environment ----------------------------------------------------


def test_without_an_endpoint_the_operator_exports_nothing():
    assert not settings_from_environment({}).enabled
    assert not settings_from_environment({"OTEL_TRACES_SAMPLER_ARG": "0.5"}).enabled


def test_an_endpoint_turns_telemetry_on_with_the_standard_defaults():
    settings = settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR})
    assert settings.enabled and settings.endpoint == COLLECTOR
    assert (settings.protocol, settings.sampling_ratio, settings.export_logs) == ("http/protobuf", 1.0, True)
    assert settings.headers == [] and settings.sentry is None


def test_protocol_ratio_and_logs_follow_their_variables():
    settings = settings_from_environment(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.obs.svc:4317",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_LOGS_EXPORTER": "none",
        }
    )
    assert (settings.enabled, settings.protocol, settings.sampling_ratio, settings.export_logs) == (
        True,
        "grpc",
        0.25,
        False,
    )


@pytest.mark.parametrize("value", ["true", "TRUE", " True "])
def test_otel_sdk_disabled_turns_telemetry_off_even_with_an_endpoint(value):
    settings = settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR, "OTEL_SDK_DISABLED": value})
    assert not settings.enabled


def test_otel_sdk_disabled_other_than_true_leaves_it_on():
    assert settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR, "OTEL_SDK_DISABLED": "false"}).enabled


@pytest.mark.parametrize(
    ("variable", "value", "field", "default"),
    [
        ("OTEL_TRACES_SAMPLER_ARG", "half", "sampling_ratio", 1.0),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5", "sampling_ratio", 1.0),
        ("OTEL_TRACES_SAMPLER_ARG", "-0.1", "sampling_ratio", 1.0),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "protocol", "http/protobuf"),
    ],
)
def test_unusable_values_are_ignored_with_a_warning(variable, value, field, default, caplog):
    settings = settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR, variable: value})
    assert settings.enabled and getattr(settings, field) == default
    assert variable in caplog.text


def test_an_endpoint_that_is_no_url_leaves_telemetry_off(caplog):
    assert not settings_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}).enabled
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in caplog.text


# -- the reconcile span and metrics ---------------------------------------------------


class Recorded:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = ReconcileTelemetry(
            lambda exc: f"described {type(exc).__name__}",
            meter=meter_provider.get_meter("stackyard.operator"),
            tracer=tracer_provider.get_tracer("stackyard.operator"),
        )

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:  # nothing recorded at all
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


def test_a_reconcile_is_one_root_span_with_its_outcome_and_counted():
    recorded = Recorded()
    with (
        recorded.telemetry.tracer.start_as_current_span("a handler"),
        recorded.telemetry.measure("Stack", "shop", "demo") as record,
    ):
        record.outcome = "ready"
    span = next(s for s in recorded.spans.get_finished_spans() if s.name == "reconcile Stack")
    assert span.parent is None, "a reconcile starts its own trace"
    assert dict(span.attributes or {}) == {
        "k8s.namespace.name": "shop",
        "stackyard.resource.kind": "Stack",
        "stackyard.resource.name": "demo",
        "stackyard.operator.outcome": "ready",
    }
    attributes = {"stackyard.resource.kind": "Stack", "stackyard.operator.outcome": "ready"}
    (count,) = recorded.points("stackyard.operator.reconciles")
    assert (dict(count.attributes), count.value) == (attributes, 1)
    (duration,) = recorded.points("stackyard.operator.reconcile.duration")
    assert dict(duration.attributes) == attributes and duration.count == 1
    assert tuple(duration.explicit_bounds) == SECONDS_BUCKETS


def test_a_failed_reconcile_is_an_error_with_the_described_message_only():
    recorded = Recorded()
    with pytest.raises(RuntimeError), recorded.telemetry.measure("Stack", "shop", "demo"):
        raise RuntimeError("password=hunter2 in a response body")
    (span,) = recorded.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["stackyard.operator.outcome"] == "error"
    assert span.attributes["error.type"] == "RuntimeError"
    assert [e.attributes["exception.message"] for e in span.events] == ["described RuntimeError"]
    assert "hunter2" not in span.to_json()
    (count,) = recorded.points("stackyard.operator.reconciles")
    assert count.attributes["stackyard.operator.outcome"] == "error"


def test_a_cancelled_reconcile_is_not_counted():
    recorded = Recorded()
    with pytest.raises(asyncio.CancelledError), recorded.telemetry.measure("Stack", "shop", "demo"):
        raise asyncio.CancelledError
    (span,) = recorded.spans.get_finished_spans()
    assert "stackyard.operator.outcome" not in (span.attributes or {})
    assert recorded.points("stackyard.operator.reconciles") == []


def test_the_outcome_is_the_stacks_ready_condition():
    assert outcome(StatusUpdate([ready("InForce", "")], 1)) == "ready"
    assert outcome(StatusUpdate([not_ready("SecretMissing", "")], 1)) == "not_ready"
    assert outcome(StatusUpdate([], 1)) == "not_ready"


def test_a_stack_reconciled_from_a_secretless_state_is_not_ready():
    desired = render(Observed(STACK, [], {}))
    assert outcome(desired.stack_status) == "not_ready"
    assert outcome(render(Observed(STACK, [], {"backends": BACKENDS})).stack_status) == "ready"


def test_the_reconciler_traces_a_reconcile_of_a_stack_that_is_gone():
    recorded = Recorded()
    reconciler = StackReconciler(None, Indices({}, {}, {}), telemetry=recorded.telemetry)  # type: ignore[arg-type]
    asyncio.run(reconciler.reconcile(("shop", "gone")))
    (span,) = recorded.spans.get_finished_spans()
    assert span.name == "reconcile Stack"
    assert span.attributes["stackyard.resource.name"] == "gone"
    assert span.attributes["stackyard.operator.outcome"] == "not_ready"


POD = {"metadata.namespace": "shop", "metadata.name": "demo-api-7f9c-x2", "metadata.uid": "u-1", "spec.nodeName": "n1"}


def pod_environment(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet makes it for the pod POD."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {
        e["name"]: e["value"] if "value" in e else POD[e["valueFrom"]["fieldRef"]["fieldPath"]]
        for e in container["env"]
    }


@pytest.mark.parametrize("component", ["api", "worker"])
def test_api_and_worker_pods_give_their_telemetry_every_k8s_attribute(component):
    desired = render(Observed(STACK, [], {"backends": BACKENDS}))
    deployment = next(
        o for o in desired.objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith(component)
    )
    attributes = resource_attributes(f"stackyard-{component}", "1.0", pod_environment(deployment))
    assert {k: v for k, v in attributes.items() if k.startswith(("k8s.", "stackyard."))} == {
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "demo-api-7f9c-x2",
        "k8s.pod.uid": "u-1",
        "k8s.node.name": "n1",
        "k8s.deployment.name": f"demo-{component}",
        "stackyard.stack": "demo",
    }
    assert attributes["service.instance.id"] == "demo-api-7f9c-x2"
