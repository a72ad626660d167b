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
from typing import Any

import httpx
import yaml
from stack_chart import Helm, find
from stackyard_harness.process import ManagedProcess, free_port

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


# -- the contract's metrics, fed by the OpenTelemetry SDK ---------------------------------

# (service, meter, OTel name, instrument, unit, attributes): one sample of every metric of the
# telemetry contract (issue 10) not made here by the code that owns it (JobMetrics, below).
API, WORKER, OPERATOR = "stackyard-api", "stackyard-worker", "stackyard-operator"
CONTRACT_METRICS: list[tuple[str, str, str, str, str, dict[str, Any]]] = [
    (
        API,
        "opentelemetry.instrumentation.fastapi",
        "http.server.request.duration",
        "histogram",
        "s",
        {"http.request.method": "POST", "http.route": "/v1/jobs/{queue}", "http.response.status_code": 202},
    ),
    (
        API,
        "opentelemetry.instrumentation.fastapi",
        "http.server.active_requests",
        "updown",
        "{request}",
        {"http.request.method": "POST", "url.scheme": "http"},
    ),
    (
        WORKER,
        "stackyard.email",
        "stackyard.email.sends",
        "counter",
        "{message}",
        {
            "stackyard.email.provider": "ses",
            "stackyard.email.provider.type": "ses",
            "stackyard.email.outcome": "failed",
            "error.type": "timeout",
        },
    ),
    (
        WORKER,
        "stackyard.email",
        "stackyard.email.send.duration",
        "histogram",
        "s",
        {"stackyard.email.provider": "ses", "stackyard.email.provider.type": "ses", "stackyard.email.outcome": "sent"},
    ),
    (
        WORKER,
        "stackyard.email",
        "stackyard.email.failovers",
        "counter",
        "{failover}",
        {"stackyard.email.provider": "ses", "stackyard.email.provider.next": "smtp"},
    ),
    (WORKER, "stackyard.email", "stackyard.email.breaker.state", "gauge", "1", {"stackyard.email.provider": "ses"}),
    (
        API,
        "stackyard.ratelimit",
        "stackyard.ratelimit.decisions",
        "counter",
        "{decision}",
        {"stackyard.ratelimit.policy": "login", "stackyard.ratelimit.outcome": "denied"},
    ),
    (
        API,
        "stackyard.auth",
        "stackyard.auth.events",
        "counter",
        "{event}",
        {"stackyard.auth.event": "login", "stackyard.auth.outcome": "success"},
    ),
    (
        OPERATOR,
        "stackyard.operator",
        "stackyard.operator.reconciles",
        "counter",
        "{reconcile}",
        {"stackyard.resource.kind": "Stack", "stackyard.operator.outcome": "ready"},
    ),
    (
        OPERATOR,
        "stackyard.operator",
        "stackyard.operator.reconcile.duration",
        "histogram",
        "s",
        {"stackyard.resource.kind": "Stack", "stackyard.operator.outcome": "ready"},
    ),
    (
        API,
        "stackyard.config",
        "stackyard.config.applied",
        "gauge",
        "{config}",
        {"stackyard.config.hash": "3f2a9c", "stackyard.stack": "shop", "stackyard.stack.generation": 4},
    ),
]
# The resource of every service, as stackyard.telemetry.service_resource makes it in a pod.
NAMESPACE, STACK = "shop-prod", "shop"


def feed_contract_metrics(otlp_http: str) -> None:
    """Export one sample of every contract metric over OTLP/HTTP, from api, worker and
    operator resources, and return when the SDK has sent them."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from stackyard.jobs.contract import QueueCounts
    from stackyard.jobs.metrics import JobMetrics
    from stackyard.telemetry import SECONDS_BUCKETS, service_resource

    environ = {"STACKYARD_NAMESPACE": NAMESPACE, "STACKYARD_STACK": STACK}
    for service in (API, WORKER, OPERATOR):
        environ_of_pod = environ | {"STACKYARD_POD_NAME": f"{service}-7d9f-x2k4q"}
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{otlp_http}/v1/metrics"), export_interval_millis=60_000
        )
        provider = MeterProvider(resource=service_resource(service, "0.1.0", environ_of_pod), metric_readers=[reader])
        for owner, meter_name, name, kind, unit, attributes in CONTRACT_METRICS:
            if owner != service:
                continue
            meter = provider.get_meter(meter_name)
            if kind == "histogram":
                meter.create_histogram(name, unit=unit, explicit_bucket_boundaries_advisory=SECONDS_BUCKETS).record(
                    0.042, attributes
                )
            elif kind == "counter":
                meter.create_counter(name, unit=unit).add(1, attributes)
            elif kind == "updown":
                meter.create_up_down_counter(name, unit=unit).add(1, attributes)
            else:
                meter.create_observable_gauge(
                    name, unit=unit, callbacks=[lambda _options, a=attributes: [Observation(1, a)]]
                )
        if service == WORKER:
            jobs = JobMetrics(provider.get_meter("stackyard.jobs"))
            jobs.taken("email", 1)
            jobs.finished("email", "send_welcome", "dead", 0.2, error="SMTPError")
            counts = dict.fromkeys(QueueCounts.model_fields, 0)
            jobs.sizes(
                "email", QueueCounts(**(counts | {"queued": 3, "dead": 1, "mean_wait_ms": None, "mean_run_ms": None}))
            )
        provider.shutdown()  # collects and exports once more, then stops
