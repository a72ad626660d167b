"""The harness's OpenTelemetry Collector receives OTLP from the SDK and writes it out."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


def _wait_for(collector, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(record) for record in collector.records()):
            return True
        time.sleep(0.1)
    return False


def test_span_and_metric_arrive_in_collector_output(otel_collector):
    resource = Resource.create({"service.name": "harness-smoke"})
    endpoint = otel_collector.otlp_http_endpoint

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    with tracer_provider.get_tracer("smoke").start_as_current_span("harness-span"):
        pass
    tracer_provider.shutdown()

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter_provider.get_meter("smoke").create_counter("harness.smoke.count").add(3)
    meter_provider.shutdown()

    def has_span(record):
        return any(
            span["name"] == "harness-span"
            for rs in record.get("resourceSpans", [])
            for ss in rs.get("scopeSpans", [])
            for span in ss.get("spans", [])
        )

    def has_metric(record):
        return any(
            metric["name"] == "harness.smoke.count" and metric["sum"]["dataPoints"][0]["asInt"] == "3"
            for rm in record.get("resourceMetrics", [])
            for sm in rm.get("scopeMetrics", [])
            for metric in sm.get("metrics", [])
        )

    assert _wait_for(otel_collector, has_span), "span not in the collector's output"
    assert _wait_for(otel_collector, has_metric), "metric not in the collector's output"
