"""The api's server telemetry: a SERVER span and the RED metrics (`http.server.request.duration`,
`http.server.active_requests`, with `http.route`) for every request but the probes, by the
OpenTelemetry FastAPI instrumentation with the stable HTTP semantic conventions.

The instrumentation wraps the whole middleware stack, so the 429s of RateLimitMiddleware,
the 401s and the 500s are measured, and every middleware and handler runs inside the span
(problem+json answers and log lines carry its trace id). It is installed when the app is
made, before telemetry may be on: it reaches the SDK through the OpenTelemetry API's proxy
tracer and meter, which do nothing until `stackyard.telemetry.Telemetry` installs the
providers.

What it costs while telemetry is off is mostly finding `http.route`, which it does for every
request before any span exists: the instrumentation tries each of the api's ~85 routes in
turn (measured 60-530 µs a request, the most on 404s and on routes declared late).
`RouteTemplates` finds the same template with one regular expression per method (5-35 µs on
the same loaded machine; the same answer for every route and method, checked). The rest
(request attributes, proxy spans and instruments that do nothing) is small beside a request.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, NoOpMeterProvider, Observation
from opentelemetry.trace import Status, StatusCode, TracerProvider
from opentelemetry.util.http import sanitize_method
from stackyard.ratelimit.middleware import PROBE_PATHS
from stackyard.telemetry import SECONDS_BUCKETS, use_stable_semantic_conventions
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXCLUDED_URLS = ",".join(rf"^[a-z]+://[^/]+{path}$" for path in PROBE_PATHS)
"""The probes, as the instrumentation's comma-separated regexes over the request URL (without
the query): kubelet's polling would otherwise be most of the spans and skew the RED metrics."""

_GROUP = re.compile(r"\(\?P<[^>]+>")


class RouteTemplates:
    """`http.route` of a request: the path template of the first route whose path and method
    match, else of the last whose path matches (a 405, or a 404 of a route with that path
    parameter), else none (a 404), as the instrumentation's own search answers, from one
    alternation per method."""

    def __init__(self, routes: Iterable[Any]) -> None:
        self.templates: list[str] = []
        by_method: dict[str | None, list[str]] = {None: []}
        for route in iter_route_contexts(list(routes)):
            regex, path = getattr(route, "path_regex", None), route.path
            if regex is None or path is None:
                continue
            branch = (
                f"(?P<r{len(self.templates)}>{_GROUP.sub('(?:', regex.pattern.removeprefix('^').removesuffix('$'))})"
            )
            self.templates.append(path)
            methods = route.methods
            for method in methods if methods else ("*",):
                by_method.setdefault(method, []).append(branch)
            by_method[None].append(branch)
        wildcard = by_method.pop("*", [])
        # No route of the method: the instrumentation keeps the *last* route whose path
        # matches (it overwrites on each partial match), so the branches go in reverse.
        self._any = self._compile(by_method.pop(None)[::-1])
        self._by_method = {method: self._compile(branches + wildcard) for method, branches in by_method.items()}

    @staticmethod
    def _compile(branches: list[str]) -> re.Pattern[str] | None:
        return re.compile("^(?:" + "|".join(branches) + ")$") if branches else None

    def route(self, method: str, path: str) -> str | None:
        for pattern in (self._by_method.get(method), self._any):
            if pattern is not None and (found := pattern.match(path)) and found.lastgroup:
                return self.templates[int(found.lastgroup[1:])]
        return None

    def span_details(self, scope: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """What the instrumentation's `_get_default_span_details` answers, for HTTP scopes."""
        method = sanitize_method(scope.get("method", "").strip())
        if method == "_OTHER":
            method = "HTTP"
        route = self.route(scope.get("method", ""), scope.get("path", ""))
        if route is None:
            return method, {}
        return f"{method} {route}", {"http.route": route}


def instrument(
    app: FastAPI, *, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Trace and measure `app`'s requests (outermost, around every middleware). The `http
    send`/`http receive` child spans are left out: one span per request is what is read.
    The providers are the global ones unless given (tests give theirs).

    The instrumentation's own metrics are turned off (a no-op meter) and `ServerMetrics`
    measures instead, just inside its span: one SDK measurement a request instead of five
    (the active-requests counter up and down and two body-size histograms besides the
    duration), which was most of what telemetry cost a request (bench/telemetry.py)."""
    use_stable_semantic_conventions()
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
        tracer_provider=tracer_provider,
        meter_provider=NoOpMeterProvider(),
    )
    build_instrumented = app.build_middleware_stack
    templates = LiveRouteTemplates(app)
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("stackyard.api")
    server_metrics = ServerMetrics(meter, templates)

    def build_middleware_stack() -> Any:
        # The instrumentation returns ServerErrorMiddleware(OpenTelemetryMiddleware(...)); if
        # that shape ever changes, its own (slower, equivalent) route search stays in place
        # and the requests are not measured (a test fails).
        stack = build_instrumented()
        if isinstance(otel := getattr(stack, "app", None), OpenTelemetryMiddleware):
            otel.default_span_details = templates.span_details
            otel.app = server_metrics.wrap(otel.app)
        return stack

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]


class ServerMetrics:
    """The RED metrics of the HTTP semantic conventions, measured inside the request's span
    (so that histogram exemplars point at sampled traces):

    - `http.server.request.duration` (s): by `http.request.method`, `http.route` (absent for
      a 404), `http.response.status_code`, `url.scheme`, `network.protocol.version`, and
      `error.type` (the status code) for a 5xx;
    - `http.server.active_requests`: counted here in plain integers and observed by the SDK
      at export time, so it costs a request nothing.

    An unsampled request also runs with instrumentation suppressed: the Redis, PyMongo and
    httpx instrumentations would make a span for every call only to drop it (a quarter of
    telemetry's cost a request at samplingRatio 0.1). The cost is that an unsampled request
    sends no `traceparent` to the HTTP services it calls, which then decide by themselves;
    jobs it enqueues still carry its (unsampled) context.
    """

    def __init__(self, meter: Meter, templates: LiveRouteTemplates) -> None:
        self.templates = templates
        self.duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.active: Counter[tuple[str, str]] = Counter()
        meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )

    def _observe_active(self, options: CallbackOptions) -> list[Observation]:
        return [
            Observation(count, {"http.request.method": method, "url.scheme": scheme})
            for (method, scheme), count in list(self.active.items())
        ]

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
                await app(scope, receive, send)
                return
            await self.measure(app, scope, receive, send)

        return measured

    async def measure(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method = sanitize_method(scope["method"])
        key = (method, scope.get("scheme", "http"))
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.active[key] += 1
        span = trace.get_current_span()
        # Unsampled (a valid context that does not record); with the SDK not installed the
        # span is invalid and there is nothing to suppress.
        unsampled = span.get_span_context().is_valid and not span.is_recording()
        quiet = suppress_instrumentation() if unsampled else None
        try:
            if quiet is None:
                await app(scope, receive, sending)
            else:
                with quiet:
                    await app(scope, receive, sending)
        finally:
            self.active[key] -= 1
            attributes: dict[str, str | int] = {
                "http.request.method": method,
                "url.scheme": key[1],
                "http.response.status_code": status,
                "network.protocol.version": scope.get("http_version", "1.1"),
            }
            if route := self._route(scope, method):
                attributes["http.route"] = route
            if status >= 500:
                attributes["error.type"] = str(status)
            self.duration.record(time.perf_counter() - started, attributes)

    def _route(self, scope: Scope, method: str) -> str | None:
        """The template FastAPI's router matched (it leaves the route in the scope), else the
        one a 405 would name, by the same search as the span's."""
        route = scope.get("route")
        if route is not None and isinstance(path := getattr(route, "path", None), str):
            return path
        return self.templates.route(method, scope["path"])


class LiveRouteTemplates:
    """RouteTemplates of an app's routes, made again when routes are added after the first
    request (tests add theirs; a count is all it takes to notice)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._count = -1
        self._templates: RouteTemplates | None = None

    @property
    def current(self) -> RouteTemplates:
        routes = self.app.routes
        if self._templates is None or len(routes) != self._count:
            self._templates, self._count = RouteTemplates(routes), len(routes)
        return self._templates

    def span_details(self, scope: dict[str, Any]) -> tuple[str, dict[str, str]]:
        return self.current.span_details(scope)

    def route(self, method: str, path: str) -> str | None:
        return self.current.route(method, path)


def record_unexpected(exc: BaseException) -> None:
    """Put an unhandled exception on the request's span (an exception event, status ERROR)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
