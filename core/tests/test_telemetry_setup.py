"""Telemetry.apply against real receivers: the harness's collector for what arrives, and a
small recording HTTP server as the OTLP endpoint where the request headers matter (the
collector does not show them).

The process has one Telemetry (the SDK's providers are global), shared with every other test
in this process: each test applies its own settings first and turns telemetry off at the end,
and looks only for the span, metric and log names it made up."""

from __future__ import annotations

import http.server
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import metrics, trace
from stackyard.resources.stack import TelemetrySettings
from stackyard.telemetry import Telemetry
from stackyard.telemetry.resource import resource_attributes
from stackyard_harness.otlp import log_records, metric_points, spans
from stackyard_harness.process import free_port

log = logging.getLogger("stackyard.test.telemetry")


class OtlpRecorder:
    """An OTLP/HTTP endpoint that answers 200 to everything and keeps (path, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp recorder", daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self, path: str) -> list[bytes]:
        return [body for p, _, body in list(self.requests) if p == path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry.for_process("stackyard-test")
    yield telemetry
    telemetry.apply(TelemetrySettings(enabled=False))


@pytest.fixture
def recorder() -> Iterator[OtlpRecorder]:
    running = OtlpRecorder()
    yield running
    running.stop()


def until(telemetry: Telemetry, found: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """`found()` once it is truthy, flushing meanwhile; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        telemetry.flush()
        if result := found():
            return result
        assert time.monotonic() < deadline, f"not exported within {timeout:g}s: {what}"
        time.sleep(0.1)


def emit(name: str) -> None:
    """A span, a counter increment and a log record, each carrying `name`."""
    with trace.get_tracer("stackyard.test").start_as_current_span(name):
        log.warning("log %s", name)
    metrics.get_meter("stackyard.test").create_counter(name, unit="{thing}").add(1)


def exported(collector: Any, name: str) -> dict[str, dict[str, Any]]:
    """Resource attributes of the span, metric and log record named `name`, by signal."""
    records = collector.records()
    resources = {
        "span": [s.resource for s in spans(records) if s.name == name],
        "metric": [p.resource for p in metric_points(records) if p.name == name],
        "log": [r.resource for r in log_records(records) if name in str(r.body)],
    }
    return {signal: found[-1] for signal, found in resources.items() if found}


def test_apply_with_an_endpoint_exports_spans_metrics_and_logs_with_the_service_resource(telemetry, otel_collector):
    telemetry.apply(TelemetrySettings(endpoint=otel_collector.otlp_http_endpoint, sampling_ratio=1.0))
    name = f"stackyard.test.{uuid.uuid4().hex[:10]}"

    emit(name)

    found = until(telemetry, lambda: (f := exported(otel_collector, name)) and len(f) == 3 and f, "span, metric, log")
    expected = resource_attributes(telemetry.service, telemetry.version, telemetry.environ)
    del expected["service.instance.id"]  # one per process, made when the SDK was installed
    for signal, resource in found.items():
        assert resource | expected == resource, f"{signal}: {resource}"
        assert resource["service.namespace"] == "stackyard" and resource["service.instance.id"]


def test_headers_from_the_settings_reach_the_endpoint(telemetry, recorder):
    telemetry.apply(
        TelemetrySettings(endpoint=recorder.endpoint, sampling_ratio=1.0), headers={"x-vendor-key": "vendor-123"}
    )
    name = f"stackyard.test.{uuid.uuid4().hex[:10]}"

    emit(name)

    until(telemetry, lambda: any(name.encode() in b for b in recorder.bodies("/v1/traces")), "the span")
    for path in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        until(telemetry, lambda p=path: recorder.bodies(p), path)
    assert {p for p, h, _ in recorder.requests if h.get("x-vendor-key") == "vendor-123"} >= {
        "/v1/traces",
        "/v1/metrics",
        "/v1/logs",
    }
    assert all(h.get("x-vendor-key") == "vendor-123" for _, h, _ in recorder.requests)


def test_sampling_ratio_zero_exports_no_new_spans(telemetry, recorder):
    telemetry.apply(TelemetrySettings(endpoint=recorder.endpoint, sampling_ratio=0.0))
    unsampled = f"stackyard.test.{uuid.uuid4().hex[:10]}"
    with trace.get_tracer("stackyard.test").start_as_current_span(unsampled):
        pass
    telemetry.flush()

    # The same process at ratio 1 exports, so the span above was dropped by the ratio.
    telemetry.apply(TelemetrySettings(endpoint=recorder.endpoint, sampling_ratio=1.0))
    sampled = f"stackyard.test.{uuid.uuid4().hex[:10]}"
    with trace.get_tracer("stackyard.test").start_as_current_span(sampled):
        pass
    until(telemetry, lambda: any(sampled.encode() in b for b in recorder.bodies("/v1/traces")), "the sampled span")
    assert not any(unsampled.encode() in b for b in recorder.bodies("/v1/traces"))


def test_enabled_false_exports_nothing(telemetry, recorder):
    telemetry.apply(TelemetrySettings(endpoint=recorder.endpoint, sampling_ratio=1.0))
    telemetry.apply(TelemetrySettings(enabled=False, endpoint=recorder.endpoint, sampling_ratio=1.0))
    before = len(recorder.requests)
    off = f"stackyard.test.{uuid.uuid4().hex[:10]}"
    emit(off)
    telemetry.flush()
    assert len(recorder.requests) == before, "an export while telemetry is off"

    telemetry.apply(TelemetrySettings(endpoint=recorder.endpoint, sampling_ratio=1.0))
    on = f"stackyard.test.{uuid.uuid4().hex[:10]}"
    emit(on)
    for path in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        until(telemetry, lambda p=path: any(on.encode() in b for b in recorder.bodies(p)), f"{path} once on")
    # The span and the log record made while off were dropped, not kept for later. (A counter
    # is cumulative: what it counted while off is in its next sum, as a counter's total should be.)
    assert not any(off.encode() in body for body in recorder.bodies("/v1/traces") + recorder.bodies("/v1/logs"))


def test_shutdown_with_an_endpoint_that_refuses_returns_within_its_timeout(telemetry):
    telemetry.apply(TelemetrySettings(endpoint=f"http://127.0.0.1:{free_port()}", sampling_ratio=1.0))
    emit(f"stackyard.test.{uuid.uuid4().hex[:10]}")

    started = time.monotonic()
    telemetry.shutdown(1.0)

    assert time.monotonic() - started < 1.5


def test_a_client_call_outside_any_span_sends_no_traceparent_and_one_inside_a_span_does(telemetry, recorder):
    """An unsampled traceparent from a call made outside any span would make the service
    called drop its whole trace; such calls are neither sampled nor propagated."""
    telemetry.apply(TelemetrySettings(endpoint=recorder.endpoint, sampling_ratio=1.0))
    target = OtlpRecorder()
    try:
        httpx.post(f"{target.endpoint}/outside", content=b"")
        with trace.get_tracer("stackyard.test").start_as_current_span("caller") as span:
            httpx.post(f"{target.endpoint}/inside", content=b"")
        headers = {path: h for path, h, _ in target.requests}
        assert "traceparent" not in headers["/outside"]
        trace_id = trace.format_trace_id(span.get_span_context().trace_id)
        assert headers["/inside"]["traceparent"].split("-")[1] == trace_id
        assert int(headers["/inside"]["traceparent"].split("-")[3], 16) & 1, "the sampled flag"
    finally:
        target.stop()
