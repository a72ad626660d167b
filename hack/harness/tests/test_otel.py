"""The harness's OpenTelemetry Collector receives OTLP from the SDK and writes it out, and
the harness's reader (otlp.py) flattens what it wrote."""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from stackyard_harness.otlp import STATUS_ERROR, Event, log_records, metric_points, spans


def _wait_for(collector, found, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found():
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

    def has_span():
        return any(span.name == "harness-span" for span in otel_collector.spans())

    def has_metric():
        return any(point.name == "harness.smoke.count" and point.value == 3 for point in otel_collector.metric_points())

    assert _wait_for(otel_collector, has_span), "span not in the collector's output"
    assert _wait_for(otel_collector, has_metric), "metric not in the collector's output"


RESOURCE = {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]}
EXPORTED = [
    {
        "resourceSpans": [
            {
                "resource": RESOURCE,
                "scopeSpans": [
                    {
                        "scope": {"name": "stackyard.jobs"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "process email",
                                "kind": 5,
                                "startTimeUnixNano": "1700000000000000000",
                                "attributes": [
                                    {"key": "attempt", "value": {"intValue": "2"}},
                                    {"key": "ratio", "value": {"doubleValue": 0.5}},
                                    {"key": "retried", "value": {"boolValue": True}},
                                    {
                                        "key": "queues",
                                        "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}},
                                    },
                                ],
                                "status": {"code": 2},
                                "events": [
                                    {
                                        "name": "exception",
                                        "attributes": [{"key": "exception.type", "value": {"stringValue": "E"}}],
                                    }
                                ],
                            },
                            {"traceId": "5b8e", "spanId": "01", "name": "root", "kind": "SPAN_KIND_SERVER"},
                        ],
                    }
                ],
            }
        ]
    },
    {
        "resourceMetrics": [
            {
                "resource": RESOURCE,
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "duration",
                                "unit": "s",
                                "histogram": {
                                    "dataPoints": [{"count": "3", "explicitBounds": [0.005, 0.01], "timeUnixNano": "7"}]
                                },
                            },
                            {"name": "sends", "unit": "{message}", "sum": {"dataPoints": [{"asInt": "4"}]}},
                            {"name": "state", "gauge": {"dataPoints": [{"asDouble": 0.25}]}},
                        ]
                    }
                ],
            }
        ],
        "resourceLogs": [
            {
                "resource": RESOURCE,
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "body": {"stringValue": "sent"},
                                "severityText": "WARN",
                                "severityNumber": 13,
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "observedTimeUnixNano": "9",
                            }
                        ]
                    }
                ],
            }
        ],
    },
]


def test_the_reader_flattens_spans_with_decoded_attributes_their_scope_and_resource():
    consumer, root = spans(EXPORTED)
    assert (consumer.trace_id, consumer.span_id, consumer.parent_id) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b173",
    )
    assert (consumer.name, consumer.kind, consumer.scope, consumer.service) == (
        "process email",
        "CONSUMER",
        "stackyard.jobs",
        "api",
    )
    assert consumer.attributes == {"attempt": 2, "ratio": 0.5, "retried": True, "queues": ["a", 1]}
    assert consumer.status_code == STATUS_ERROR and consumer.start_ns == 1_700_000_000_000_000_000
    assert consumer.events_named("exception") == [Event("exception", {"exception.type": "E"})]
    assert (root.kind, root.parent_id, root.status_code, root.events) == ("SERVER", "", 0, ())


def test_the_reader_gives_a_histogram_its_count_and_bounds_and_other_points_their_value():
    duration, sends, state = metric_points(EXPORTED)
    assert (duration.name, duration.type, duration.unit, duration.value, duration.bounds) == (
        "duration",
        "histogram",
        "s",
        3,
        (0.005, 0.01),
    )
    assert (duration.time_ns, duration.resource) == (7, {"service.name": "api"})
    assert (sends.type, sends.unit, sends.value) == ("sum", "{message}", 4)
    assert (state.type, state.value, state.bounds) == ("gauge", 0.25, ())


def test_the_reader_gives_log_records_their_body_ids_and_resource():
    (record,) = log_records(EXPORTED)
    assert (record.body, record.severity, record.severity_number) == ("sent", "WARN", 13)
    assert (record.trace_id, record.span_id) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert (record.time_ns, record.resource) == (9, {"service.name": "api"})
