"""One process's telemetry: OpenTelemetry traces, metrics and logs exported over OTLP, and
errors to Sentry, configured from the Stack's `spec.telemetry` and re-pointed live.

Nothing is installed while telemetry is off: a process whose Stack never turns it on pays
nothing. The first enabled setting installs the SDK providers (around switching exporters,
switching.py, and the Stack's sampler, sampling.py) and the Redis, PyMongo and httpx
instrumentations; later settings only swap the exporters, the headers and the ratio.
Turning telemetry off again samples nothing and drops what is still buffered.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ..config import TELEMETRY_SENTRY_DSN, AppliedConfig, telemetry_header_key
from ..resources.stack import TelemetrySettings
from .resource import service_resource
from .sampling import SkipOrphans, StackSampler
from .sentry import SentryLink
from .switching import SwitchingLogExporter, SwitchingMetricExporter, SwitchingSpanExporter

log = logging.getLogger(__name__)

EXPORT_TIMEOUT = 5.0
"""Seconds one export may take; exports run on the SDK's own threads, never in a request."""

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""Histogram boundaries for durations in seconds (the HTTP semantic conventions' advice);
pass as `explicit_bucket_boundaries_advisory` to `create_histogram`."""


def use_stable_semantic_conventions() -> None:
    """Ask the instrumentations for the stable HTTP and database names
    (`http.server.request.duration` in seconds, `http.request.method`, `db.namespace`,
    `db.collection.name`, …); call before instrumenting anything."""
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")


def package_version() -> str:
    try:
        return version("stackyard")
    except PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True)
class Target:
    """Where telemetry goes, as `apply` compares it: a change makes new exporters."""

    endpoint: str | None
    protocol: str
    headers: tuple[tuple[str, str], ...]


def _exporters(target: Target) -> tuple[Any, Any, Any]:
    """New OTLP span, metric and log exporters for `target` (the endpoint is not None)."""
    headers = dict(target.headers)
    endpoint = (target.endpoint or "").rstrip("/")
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        insecure = endpoint.startswith("http://")
        return (
            GrpcSpans(endpoint=endpoint, insecure=insecure, headers=headers, timeout=EXPORT_TIMEOUT),
            GrpcMetrics(endpoint=endpoint, insecure=insecure, headers=headers, timeout=EXPORT_TIMEOUT),
            GrpcLogs(endpoint=endpoint, insecure=insecure, headers=headers, timeout=EXPORT_TIMEOUT),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (
        OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers, timeout=EXPORT_TIMEOUT),
        OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", headers=headers, timeout=EXPORT_TIMEOUT),
        OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", headers=headers, timeout=EXPORT_TIMEOUT),
    )


class _NotOwnLogs(logging.Filter):
    """The exporters' own complaints (collector down) stay on stderr: exporting them would loop."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(("opentelemetry", "urllib3", "grpc"))


class Telemetry:
    """The telemetry of one process (`service`: stackyard-api, stackyard-worker, stackyard-operator)."""

    _process: Telemetry | None = None
    _install_lock = threading.Lock()

    def __init__(self, service: str, environ: Mapping[str, str] | None = None) -> None:
        self.service = service
        self.environ = os.environ if environ is None else environ
        self.version = package_version()
        self.spans = SwitchingSpanExporter()
        self.metrics = SwitchingMetricExporter()
        self.logs = SwitchingLogExporter()
        self.sampler = StackSampler()
        self.sentry = SentryLink(release=f"stackyard@{self.version}")
        self.installed = False
        self.enabled = False
        self._target: Target | None = None
        self._export_logs = False
        self._warned_no_endpoint = False
        self._providers: tuple[TracerProvider, MeterProvider, LoggerProvider] | None = None

    @classmethod
    def for_process(cls, service: str) -> Telemetry:
        """The process's one Telemetry (the SDK's providers are global): made by the first
        caller; later callers (several apps in one test process) share it."""
        with cls._install_lock:
            if cls._process is None:
                cls._process = cls(service)
            return cls._process

    # -- configuration ------------------------------------------------------------------

    def apply_config(self, applied: AppliedConfig) -> None:
        """A LiveConfig listener: the Stack's telemetry settings and their secrets."""
        settings = applied.config.spec.telemetry
        headers = {h.name: applied.credentials.get(telemetry_header_key(h.name), "") for h in settings.headers}
        self.apply(
            settings,
            headers=headers,
            sentry_dsn=applied.credentials.get(TELEMETRY_SENTRY_DSN),
            sentry_environment=(settings.sentry.environment if settings.sentry else None) or applied.config.namespace,
        )

    def apply(
        self,
        settings: TelemetrySettings,
        *,
        headers: Mapping[str, str] | None = None,
        sentry_dsn: str | None = None,
        sentry_environment: str = "default",
    ) -> None:
        """Make `settings` the ones in force (idempotent: unchanged settings change nothing)."""
        self.sentry.apply(
            sentry_dsn if settings.sentry else None,
            sentry_environment,
            settings.sentry.sample_rate if settings.sentry else 1.0,
        )
        endpoint = settings.endpoint or self.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
        if not settings.enabled or endpoint is None:
            if settings.enabled and not self._warned_no_endpoint:
                log.warning("telemetry is on but has no endpoint: set spec.telemetry.endpoint; nothing is exported")
                self._warned_no_endpoint = True
            if self.enabled:
                log.info("telemetry turned off")
            self.enabled = False
            self.sampler.set_ratio(None)
            self._point(None, export_logs=False)
            return
        self._install()
        self.enabled = True
        self.sampler.set_ratio(settings.sampling_ratio)
        self._point(
            Target(endpoint, settings.protocol, tuple(sorted((headers or {}).items()))),
            export_logs=settings.export_logs,
        )

    def _point(self, target: Target | None, *, export_logs: bool) -> None:
        if target != self._target:
            made: tuple[Any, Any, Any] = (None, None, None)
            if target is not None:
                made = _exporters(target)
                log.info("telemetry exports to %s over %s", target.endpoint, target.protocol)
            self.spans.slot.swap(made[0])
            self.metrics.slot.swap(made[1])
            self.logs.slot.swap(made[2])
            self._target = target
        self._export_logs = export_logs

    # -- installation -------------------------------------------------------------------

    def _install(self) -> None:
        if self.installed:
            return
        with Telemetry._install_lock:
            use_stable_semantic_conventions()
            resource = service_resource(self.service, self.version, self.environ)
            tracer_provider = TracerProvider(sampler=self.sampler, resource=resource)
            tracer_provider.add_span_processor(BatchSpanProcessor(self.spans))
            meter_provider = MeterProvider(
                resource=resource, metric_readers=[PeriodicExportingMetricReader(self.metrics)]
            )
            logger_provider = LoggerProvider(resource=resource)
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(self.logs))
            propagate.set_global_textmap(SkipOrphans(propagate.get_global_textmap()))
            trace.set_tracer_provider(tracer_provider)
            metrics.set_meter_provider(meter_provider)
            set_logger_provider(logger_provider)
            handler = LoggingHandler(logger_provider=logger_provider)
            handler.exports_otlp = True  # type: ignore[attr-defined]  # kept by logs.configure_logging
            handler.addFilter(_NotOwnLogs())
            handler.addFilter(lambda record: self._export_logs)
            logging.getLogger().addHandler(handler)
            _instrument_libraries()
            self._providers = (tracer_provider, meter_provider, logger_provider)
            self.installed = True
            log.info("telemetry installed for %s %s", self.service, self.version)

    def flush(self, timeout: float = EXPORT_TIMEOUT) -> None:
        """Export what is buffered now (tests, and before a process ends)."""
        if self._providers is None:
            return
        millis = int(timeout * 1000)
        tracer_provider, meter_provider, logger_provider = self._providers
        tracer_provider.force_flush(millis)
        meter_provider.force_flush(millis)
        logger_provider.force_flush(millis)

    def shutdown(self, timeout: float = EXPORT_TIMEOUT) -> None:
        """Flush within `timeout` (a collector that is down costs at most that), then stop."""
        if self._providers is not None:
            flusher = threading.Thread(target=self.flush, args=(timeout,), daemon=True)
            flusher.start()
            flusher.join(timeout)
        self._point(None, export_logs=False)
        self.sentry.close()


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    for instrumentor in (RedisInstrumentor(), PymongoInstrumentor(), HTTPXClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
