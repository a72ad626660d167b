"""The chart's collector config, run by the real collector that `make tools` builds (the
same components as the chart's image): `validate` it, serve it, scrape its Prometheus
endpoint. The tests change only ports (free ones) and the collector's own telemetry port,
so that several can run on one machine."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from stack_chart import Helm, find
from stackyard_harness.process import ManagedProcess, free_port

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

COLLECTOR = "demo-stack-otel-collector"
# The collector serves its own metrics on :8888 unless told otherwise: off, so that
# collectors started side by side do not fight over that port.
QUIET_SELF_TELEMETRY = {"service": {"telemetry": {"metrics": {"level": "none"}}}}
SERIES = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})?\s+\S+")
LABEL = re.compile(r'(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` deep-merged over a copy of `base` (as helm merges values files)."""
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def collector_objects(helm: Helm, values: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    """The collector's objects (ConfigMap, Service, Deployment, NetworkPolicy, ServiceMonitor)."""
    return [o for o in helm.template(values, *args) if o["metadata"]["name"] == COLLECTOR]


def config_text(objects: list[dict[str, Any]]) -> str:
    """config.yaml of the collector's ConfigMap, as the chart rendered it."""
    return find(objects, "ConfigMap", COLLECTOR)["data"]["config.yaml"]  # type: ignore[no-any-return]


def container_env(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (container,) = find(objects, "Deployment", COLLECTOR)["spec"]["template"]["spec"]["containers"]
    return container.get("env", [])  # type: ignore[no-any-return]


def validate(
    binary: Path, config: str, work_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`otelcol validate`: the config parses, every component exists and accepts its settings,
    every pipeline is complete."""
    path = work_dir / f"config-{free_port()}.yaml"
    path.write_text(config)
    return subprocess.run(
        [str(binary), "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


class LocalPorts:
    """Free ports for the chart's collector values, and the values that set them."""

    def __init__(self) -> None:
        self.grpc, self.http, self.health, self.metrics = free_port(), free_port(), free_port(), free_port()

    def values(self) -> dict[str, Any]:
        return {
            "otelCollector": {
                "service": {"grpcPort": self.grpc, "httpPort": self.http},
                "healthPort": self.health,
                "prometheusExporter": {"port": self.metrics},
                "configOverrides": QUIET_SELF_TELEMETRY,
            }
        }

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.metrics}/metrics"


@contextmanager
def running(
    binary: Path, config: str, ports: LocalPorts, work_dir: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    """The collector serving `config` until the block ends (ready: health_check answers)."""
    path = work_dir / f"config-{ports.health}.yaml"
    path.write_text(config)
    process = ManagedProcess(
        "chart-collector", [binary, "--config", path], work_dir / f"collector-{ports.health}.log", env=env
    )
    process.start()
    try:
        process.wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{ports.health}/", timeout=1).status_code == 200, 30, "healthy"
        )
        yield
    finally:
        process.stop()


def scrape(url: str) -> dict[str, list[dict[str, str]]]:
    """Series of a Prometheus text exposition: metric name -> the label sets of its samples."""
    found: dict[str, list[dict[str, str]]] = {}
    for line in httpx.get(url, timeout=5).raise_for_status().text.splitlines():
        match = SERIES.match(line)
        if match:
            labels = {m["name"]: m[0].split("=", 1)[1].strip('"') for m in LABEL.finditer(match["labels"] or "")}
            found.setdefault(match["name"], []).append(labels)
    return found


def parse_yaml(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)  # type: ignore[no-any-return]


# -- the contract's metrics, made by the code that owns them -------------------------------

API, WORKER, OPERATOR = "stackyard-api", "stackyard-worker", "stackyard-operator"
# The resource of every service, as stackyard.telemetry.service_resource makes it in a pod.
NAMESPACE, STACK = "shop-prod", "shop"

# (service, meter, OTel name, unit, attributes) of the observable gauges copied here by hand.
# Only `stackyard.config.applied`: Runtime.__init__ (core/src/stackyard/runtime.py) registers it
# on the global meter and makes the process's Telemetry, so it cannot be fed a MeterProvider of
# the test; a rename there is not caught by the dashboard test. Every other contract metric is
# made below by the class that owns it, so a renamed instrument is.
COPIED_GAUGES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    (
        API,
        "stackyard.config",
        "stackyard.config.applied",
        "{config}",
        {"stackyard.config.hash": "3f2a9c", "stackyard.stack": STACK, "stackyard.stack.generation": 4},
    ),
]


def feed_api(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> None:
    """A request to a parametrised route of an app instrumented by the api's own `instrument`
    (http.server.*), a rate limit decision and an auth event."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from stackyard.auth.metrics import AuthMetrics
    from stackyard.ratelimit.decision import Decision
    from stackyard.ratelimit.metrics import RateLimitMetrics
    from stackyard_api.telemetry import instrument

    app = FastAPI()

    @app.post("/v1/jobs/{queue}", status_code=202)
    async def enqueue(queue: str) -> dict[str, str]:
        return {"queue": queue}

    instrument(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
    with TestClient(app) as client:
        assert client.post("/v1/jobs/email").status_code == 202

    refused = Decision(
        policy="login",
        key="ip:203.0.113.7",
        allowed=False,
        limit=5,
        remaining=0,
        reset_after=60.0,
        retry_after=12.0,
        window=60.0,
        mode="enforce",
        source="redis",
    )
    RateLimitMetrics(meter_provider.get_meter("stackyard.ratelimit")).decided(refused)
    AuthMetrics(meter_provider.get_meter("stackyard.auth")).recorded("login.failed")


def feed_worker(meter_provider: MeterProvider) -> None:
    """A job taken, finished and counted; an email sent, one failed, a failover, a breaker."""
    from stackyard.email.metrics import EmailMetrics
    from stackyard.jobs.contract import QueueCounts
    from stackyard.jobs.metrics import JobMetrics

    jobs = JobMetrics(meter_provider.get_meter("stackyard.jobs"))
    jobs.taken("email", 1)
    jobs.finished("email", "send_welcome", "dead", 0.2, error="SMTPError")
    counts = dict.fromkeys(QueueCounts.model_fields, 0)
    jobs.sizes("email", QueueCounts(**(counts | {"queued": 3, "dead": 1, "mean_wait_ms": None, "mean_run_ms": None})))

    email = EmailMetrics(meter_provider.get_meter("stackyard.email"))
    email.sent("ses", "ses", "failed", 0.042, error="timeout")
    email.sent("smtp", "smtp", "sent", 0.042)
    email.failover("ses", "smtp")
    email.breaker("ses", "open")


def feed_operator(meter_provider: MeterProvider, tracer_provider: TracerProvider) -> None:
    """One reconcile of a Stack that ends ready."""
    from stackyard_operator.metrics import READY, SCOPE, ReconcileTelemetry

    reconciles = ReconcileTelemetry(
        lambda exc: type(exc).__name__, meter_provider.get_meter(SCOPE), tracer_provider.get_tracer(SCOPE)
    )
    with reconciles.measure("Stack", NAMESPACE, STACK) as record:
        record.outcome = READY


def feed_copied_gauges(service: str, meter_provider: MeterProvider) -> None:
    from opentelemetry.metrics import Observation

    for owner, meter_name, name, unit, attributes in COPIED_GAUGES:
        if owner == service:
            meter_provider.get_meter(meter_name).create_observable_gauge(
                name, unit=unit, callbacks=[lambda _options, a=attributes: [Observation(1, a)]]
            )


def feed_contract_metrics(otlp_http: str) -> None:
    """Export one sample of every contract metric over OTLP/HTTP, from api, worker and
    operator resources, and return when the SDK has sent them. The samples come from the
    code that owns each metric (given the test's providers, not the global ones), so the
    names the collector serves are the code's."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from stackyard.telemetry import service_resource

    environ = {"STACKYARD_NAMESPACE": NAMESPACE, "STACKYARD_STACK": STACK}
    for service in (API, WORKER, OPERATOR):
        resource = service_resource(service, "0.1.0", environ | {"STACKYARD_POD_NAME": f"{service}-7d9f-x2k4q"})
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{otlp_http}/v1/metrics"), export_interval_millis=60_000
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        tracer_provider = TracerProvider(resource=resource)  # no processor: the spans go nowhere
        if service == API:
            feed_api(meter_provider, tracer_provider)
        elif service == WORKER:
            feed_worker(meter_provider)
        else:
            feed_operator(meter_provider, tracer_provider)
        feed_copied_gauges(service, meter_provider)
        tracer_provider.shutdown()
        meter_provider.shutdown()  # collects and exports once more, then stops
