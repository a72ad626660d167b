"""The api's telemetry against the real OpenTelemetry Collector: a SERVER span and the RED
metric per request with its route template (probes left out), problem+json answers that
carry their trace id, log records exported with it, rate-limit decisions and auth events as
metrics, a sampling ratio changed live, and a collector that cannot be reached costing the
requests nothing.

The Telemetry object is one per process (the SDK's providers are global): whatever another
module's app configured is replaced here by writing this module's config, telemetry on."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import httpx
import pytest
from auth_http import PASSWORD, problem, sign_up_and_log_in
from stackyard.config import RuntimeConfig
from stackyard.logs import JsonFormatter
from stackyard.resources.stack import TelemetrySettings
from stackyard.telemetry import Telemetry, current_trace_id
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack
from stackyard_harness.otlp import STATUS_ERROR, MetricPoint, Span
from stackyard_harness.process import free_port

REDIS_DATABASE = 3
AUTH_SETTINGS = {"requireEmailVerification": False}
LOG_ROUTE = "/v1/test-telemetry/log"
BOOM_ROUTE = "/v1/test-telemetry/boom"
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
log = logging.getLogger("stackyard.tests.telemetry")

# Short SDK intervals, for providers this process installs from here on (flush() does the rest).
for _name, _value in (("OTEL_BSP_SCHEDULE_DELAY", "100"), ("OTEL_METRIC_EXPORT_INTERVAL", "200")):
    os.environ.setdefault(_name, _value)
os.environ.setdefault("OTEL_BLRP_SCHEDULE_DELAY", "100")

T = TypeVar("T")


# -- the api, telemetry on -----------------------------------------------------------------


@pytest.fixture(scope="module")
def routes(running: AuthStack) -> AuthStack:
    """Two routes of the tests' own on the real app: one that logs, one that fails."""

    async def logs(marker: str) -> dict[str, str | None]:
        log.warning("telemetry test line %s", marker)
        return {"marker": marker}

    async def boom(marker: str) -> None:
        raise RuntimeError(f"boom {marker}")

    running.app.add_api_route(LOG_ROUTE, logs, methods=["GET"], include_in_schema=False)
    running.app.add_api_route(BOOM_ROUTE, boom, methods=["GET"], include_in_schema=False)
    return running


def configure_telemetry(auth: AuthStack, endpoint: str, **settings: Any) -> None:
    """Add spec.telemetry (camelCase `settings`) to the config in force, as a new generation."""
    path = auth.directory / "config.json"
    config = RuntimeConfig.model_validate_json(path.read_text())
    telemetry = TelemetrySettings.model_validate({"enabled": True, "endpoint": endpoint, "exportLogs": True} | settings)
    auth.generation += 1
    changed = config.model_copy(
        update={"generation": auth.generation, "spec": config.spec.model_copy(update={"telemetry": telemetry})}
    )
    path.write_text(changed.canonical_json())
    auth.wait_applied()


@pytest.fixture
def auth(request, routes: AuthStack, otel_collector) -> AuthStack:  # type: ignore[no-untyped-def]
    routes.reset()
    routes.configure(AUTH_SETTINGS, rate_limit_policies=getattr(request, "param", None))
    configure_telemetry(routes, otel_collector.otlp_http_endpoint)
    return routes


@pytest.fixture
def telemetry(auth: AuthStack) -> Telemetry:
    runtime_telemetry: Telemetry = auth.app.state.runtime.telemetry
    assert runtime_telemetry.enabled
    return runtime_telemetry


# -- reading the collector -----------------------------------------------------------------


def metric_points(collector: Any, name: str) -> list[MetricPoint]:
    """Every data point of the metric `name` so far."""
    return [point for point in collector.metric_points() if point.name == name]


def eventually(telemetry: Telemetry, find: Callable[[], T | None], what: str, timeout: float = 20) -> T:
    """Poll until `find` answers something, exporting what is buffered first each time."""
    deadline = time.monotonic() + timeout
    while True:
        telemetry.flush(2)
        if found := find():
            return found
        assert time.monotonic() < deadline, f"never arrived at the collector: {what}"
        time.sleep(0.1)


def server_span(collector: Any, *, trace_id: str | None = None, name: str | None = None) -> Span | None:
    for span in collector.spans():
        if span.kind == "SERVER" and trace_id in (None, span.trace_id) and name in (None, span.name):
            return span
    return None


# -- tests ---------------------------------------------------------------------------------


def test_a_request_has_a_server_span_with_its_route_and_counts_in_the_red_metric(
    auth: AuthStack, telemetry: Telemetry, otel_collector
):
    user_id = f"usr_{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=auth.url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        answer = http.get(f"/v1/auth/admin/users/{user_id}", headers=ADMIN)
    body = problem(answer, 404, "not-found")

    span = eventually(telemetry, lambda: server_span(otel_collector, trace_id=body["traceId"]), "the span")
    route = "/v1/auth/admin/users/{user_id}"
    expected = {"http.route": route, "http.response.status_code": 404, "http.request.method": "GET"}
    assert span.name == f"GET {route}", "named after the template, never the path"
    assert expected.items() <= span.attributes.items()
    point = eventually(
        telemetry,
        lambda: next(
            (
                p
                for p in metric_points(otel_collector, "http.server.request.duration")
                if expected.items() <= p.attributes.items()
            ),
            None,
        ),
        "http.server.request.duration of the request",
    )
    assert point.unit == "s" and point.value >= 1
    # The probe came first; its span would have been exported before the request's.
    assert not [s for s in otel_collector.spans() if "healthz" in s.name], "probes are not traced"
    assert not [
        p
        for p in metric_points(otel_collector, "http.server.request.duration")
        if "/healthz" in str(p.attributes.get("http.route"))
    ], "probes are not measured"
    applied = auth.app.state.runtime.live.hash
    eventually(
        telemetry,
        lambda: [
            p
            for p in metric_points(otel_collector, "stackyard.config.applied")
            if p.attributes.get("stackyard.config.hash") == applied
        ],
        "stackyard.config.applied with the hash in force",
    )


def test_a_problem_carries_the_trace_id_of_its_request(auth: AuthStack, telemetry: Telemetry, otel_collector):
    with httpx.Client(base_url=auth.url, timeout=10) as http:
        invalid = problem(http.post("/v1/auth/login", json={"email": 3}), 422, "validation")
        missing = problem(http.get("/v1/no-such-thing"), 404, "not-found")
    assert len(invalid["traceId"]) == 32 and invalid["traceId"] != missing["traceId"]

    span = eventually(telemetry, lambda: server_span(otel_collector, trace_id=invalid["traceId"]), "the 422's span")
    assert span.attributes["http.route"] == "/v1/auth/login"
    assert span.attributes["http.response.status_code"] == 422
    unrouted = eventually(telemetry, lambda: server_span(otel_collector, trace_id=missing["traceId"]), "the 404's span")
    assert unrouted.name == "GET" and "http.route" not in unrouted.attributes, "no route, no template"


def test_a_log_line_of_a_request_is_exported_with_its_trace_id(auth: AuthStack, telemetry: Telemetry, otel_collector):
    lines = io.StringIO()
    stderr = logging.StreamHandler(lines)
    stderr.setFormatter(JsonFormatter("stackyard-api"))
    log.addHandler(stderr)
    marker = uuid.uuid4().hex
    try:
        with httpx.Client(base_url=auth.url, timeout=10) as http:
            assert http.get(LOG_ROUTE, params={"marker": marker}).status_code == 200
    finally:
        log.removeHandler(stderr)

    record = eventually(
        telemetry,
        lambda: next((r for r in otel_collector.log_records() if marker in str(r.body)), None),
        "the log record",
    )
    assert len(record.trace_id) == 32 and record.severity_number == 13  # WARN
    span = eventually(telemetry, lambda: server_span(otel_collector, trace_id=record.trace_id), "the request's span")
    assert span.name == f"GET {LOG_ROUTE}"
    assert record.span_id == span.span_id, "the line was written inside the request's span"
    (line,) = [json.loads(text) for text in lines.getvalue().splitlines() if marker in text]
    assert (line["trace_id"], line["span_id"]) == (record.trace_id, record.span_id)


def test_an_unhandled_error_is_recorded_once_on_the_span_and_answers_with_its_trace_id(
    auth: AuthStack, telemetry: Telemetry, otel_collector, caplog
):
    marker = uuid.uuid4().hex[:8]
    with caplog.at_level(logging.ERROR, logger="stackyard_api.errors"), httpx.Client(base_url=auth.url) as http:
        failed = http.get(BOOM_ROUTE, params={"marker": marker})
    body = problem(failed, 500, "internal")

    span = eventually(telemetry, lambda: server_span(otel_collector, trace_id=body["traceId"]), "the 500's span")
    assert span.status_code == STATUS_ERROR, "status ERROR"
    exceptions = span.events_named("exception")
    assert len(exceptions) == 1 and exceptions[0].attributes["exception.type"] == "RuntimeError"
    assert span.attributes["http.route"] == BOOM_ROUTE and span.attributes["http.response.status_code"] == 500
    logged = [r for r in caplog.records if r.exc_info and f"boom {marker}" in str(r.exc_info[1])]
    assert len(logged) == 1, "logged once, with the exception"


@pytest.mark.parametrize(
    "auth",
    [
        {
            "me-limit": {
                "match": {"paths": ["/v1/auth/me"]},
                "algorithm": "fixedWindow",
                "limit": 1,
                "window": "1m",
                "timeout": "2s",
            }
        }
    ],
    indirect=True,
)
def test_a_rate_limited_request_counts_as_denied_and_its_429_in_the_red_metric(
    auth: AuthStack, telemetry: Telemetry, otel_collector
):
    with httpx.Client(base_url=auth.url, timeout=10) as http:
        assert http.get("/v1/auth/me").status_code == 401
        limited = problem(http.get("/v1/auth/me"), 429, "too-many-requests")
    assert len(limited["traceId"]) == 32

    def decisions() -> dict[str, float] | None:
        found = {
            p.attributes["stackyard.ratelimit.outcome"]: p.value
            for p in metric_points(otel_collector, "stackyard.ratelimit.decisions")
            if p.attributes.get("stackyard.ratelimit.policy") == "me-limit"
        }
        return found if {"allowed", "denied"} <= found.keys() else None

    counted = eventually(telemetry, decisions, "stackyard.ratelimit.decisions of me-limit")
    assert counted["allowed"] >= 1 and counted["denied"] >= 1

    def statuses() -> set[int] | None:
        found = {
            p.attributes["http.response.status_code"]
            for p in metric_points(otel_collector, "http.server.request.duration")
            if p.attributes.get("http.route") == "/v1/auth/me"
        }
        return found if {401, 429} <= found else None

    eventually(telemetry, statuses, "the 401 and the 429 of /v1/auth/me in http.server.request.duration")
    span = eventually(telemetry, lambda: server_span(otel_collector, trace_id=limited["traceId"]), "the 429's span")
    assert span.attributes["http.route"] == "/v1/auth/me"


def test_logins_count_in_auth_events_by_type_and_outcome_only(auth: AuthStack, telemetry: Telemetry, otel_collector):
    email = f"ana-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=auth.url, timeout=10) as http:
        sign_up_and_log_in(http, email)
        assert http.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
        problem(
            http.post("/v1/auth/login", json={"email": email, "password": "not it at all"}), 401, "invalid-credentials"
        )

    def events() -> dict[tuple[str, str | None], float] | None:
        points = metric_points(otel_collector, "stackyard.auth.events")
        found = {
            (p.attributes["stackyard.auth.event"], p.attributes.get("stackyard.auth.outcome")): p.value for p in points
        }
        wanted = {("login.succeeded", "success"), ("login.failed", "failure"), ("user.created", None)}
        return found if wanted <= found.keys() else None

    counted = eventually(telemetry, events, "stackyard.auth.events of the logins")
    assert counted[("login.succeeded", "success")] >= 1
    for point in metric_points(otel_collector, "stackyard.auth.events"):
        assert set(point.attributes) <= {"stackyard.auth.event", "stackyard.auth.outcome"}, point
        assert email not in json.dumps(asdict(point))


def test_a_sampling_ratio_of_zero_stops_new_spans_while_requests_still_answer(
    auth: AuthStack, telemetry: Telemetry, otel_collector
):
    configure_telemetry(auth, otel_collector.otlp_http_endpoint, samplingRatio=0)
    with httpx.Client(base_url=auth.url, timeout=10) as http:
        unsampled = [problem(http.get("/v1/no-such-thing"), 404, "not-found")["traceId"] for _ in range(5)]
        configure_telemetry(auth, otel_collector.otlp_http_endpoint, samplingRatio=1)
        sampled = problem(http.get("/v1/no-such-thing"), 404, "not-found")["traceId"]

    eventually(
        telemetry, lambda: server_span(otel_collector, trace_id=sampled), "the span after the ratio went back to 1"
    )
    exported = {span.trace_id for span in otel_collector.spans()}
    assert not exported & set(unsampled), "no span was exported at ratio 0"


def test_an_unreachable_collector_costs_the_requests_nothing(auth: AuthStack, telemetry: Telemetry):
    configure_telemetry(auth, f"http://127.0.0.1:{free_port()}")
    timings = []
    with httpx.Client(base_url=auth.url, timeout=10) as http:
        for index in range(30):
            started = time.monotonic()
            answer = http.get(LOG_ROUTE, params={"marker": f"unreachable-{index}"})
            timings.append(time.monotonic() - started)
            assert answer.status_code == 200
    # Exports run on the SDK's threads (each may wait up to its timeout): no request does.
    assert max(timings) < 1.0, timings
    assert current_trace_id() is None, "the test itself is outside any span"


def test_route_templates_answer_as_the_instrumentation_for_every_route_and_method(tmp_path):
    from fastapi.routing import iter_route_contexts
    from opentelemetry.instrumentation.fastapi import _get_default_span_details
    from stackyard.config import FileConfigSource, LiveConfig
    from stackyard.runtime import Runtime
    from stackyard_api.app import create_app
    from stackyard_api.telemetry import RouteTemplates

    live = LiveConfig()
    app = create_app(Runtime("stackyard-api", FileConfigSource(live, tmp_path), live))
    templates = RouteTemplates(app.routes)
    paths = {re.sub(r"\{[^}]+\}", "x1", route.path) for route in iter_route_contexts(app.routes)}
    paths |= {"/", "/v1/no-such-thing", "/v1/jobs/a/b/c/d", "/healthz/x"}
    checked = 0
    for path in sorted(paths):
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW"):
            scope = {"type": "http", "method": method, "path": path, "root_path": "", "app": app, "headers": []}
            assert templates.span_details(scope) == _get_default_span_details(scope), (method, path)
            checked += 1
    assert checked > 500
