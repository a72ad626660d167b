"""The chart's OpenTelemetry Collector: the config it renders for each choice of exporters
is one the real collector accepts (`otelcol validate`) and runs; exporter headers reach the
vendor from Secrets without ever being in the ConfigMap; the Prometheus endpoint is
published (Service port, scrape annotations, NetworkPolicy, ServiceMonitor) and serves
the contract's metrics with the resource labels the dashboards filter on."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from chart_collector import (
    COLLECTOR,
    LocalPorts,
    collector_objects,
    config_text,
    container_env,
    feed_contract_metrics,
    merge,
    parse_yaml,
    running,
    scrape,
    validate,
)
from stack_chart import CHART, find
from stackyard_harness.programs import wait_until
from stackyard_harness.pytest_plugin import unavailable
from stackyard_harness.tools import ToolMissing, Tools

HEADERS = [
    {"name": "x-honeycomb-team", "valueSecretRef": {"name": "honeycomb", "key": "api-key"}},
    {"name": "x-honeycomb-dataset", "valueSecretRef": {"name": "honeycomb", "key": "dataset"}},
]
EXPORTER_CHOICES: dict[str, dict[str, Any]] = {
    "debug (defaults)": {},
    "otlp over gRPC": {
        "debugExporter": {"enabled": False},
        "otlpExporter": {"endpoint": "otlp.example.com:4317", "protocol": "grpc"},
    },
    "otlphttp with headers from Secrets": {
        "debugExporter": {"enabled": False},
        "otlpExporter": {"endpoint": "https://api.honeycomb.io", "protocol": "http", "headers": HEADERS},
    },
    "prometheus": {"prometheusExporter": {"enabled": True}},
    "everything": {
        "debugExporter": {"verbosity": "detailed"},
        "otlpExporter": {"endpoint": "otlp.example.com:4317", "insecure": True, "headers": HEADERS[:1]},
        "prometheusExporter": {"enabled": True, "namespace": "stackyard", "resourceLabels": ["*"]},
    },
}


@pytest.fixture(scope="module")
def otelcol() -> Path:
    try:
        return Tools.locate().require("otelcol")
    except ToolMissing as exc:
        unavailable(exc)
        raise


def rendered(chart_helm, choice: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    return collector_objects(chart_helm, {"otelCollector": choice}, *args)


# -- the config, checked by the real collector -------------------------------------------


@pytest.mark.parametrize("choice", list(EXPORTER_CHOICES))
def test_rendered_config_passes_the_collectors_validate(chart_helm, otelcol, tmp_path, choice):
    objects = rendered(chart_helm, EXPORTER_CHOICES[choice])
    env = {item["name"]: "value-of-a-secret" for item in container_env(objects)}
    result = validate(otelcol, config_text(objects), tmp_path, env)
    assert result.returncode == 0, f"{choice}: otelcol validate refused the chart's config:\n{result.stderr}"


def test_validate_refuses_a_pipeline_with_an_unknown_exporter(chart_helm, otelcol, tmp_path):
    """The check above can fail: a config the collector cannot run is refused."""
    broken = {"configOverrides": {"service": {"pipelines": {"traces": {"exporters": ["otlp/nowhere"]}}}}}
    result = validate(otelcol, config_text(rendered(chart_helm, broken)), tmp_path)
    assert result.returncode != 0
    assert "otlp/nowhere" in result.stderr


@pytest.mark.parametrize("choice", list(EXPORTER_CHOICES))
def test_every_pipeline_limits_memory_then_batches(chart_helm, choice):
    pipelines = parse_yaml(config_text(rendered(chart_helm, EXPORTER_CHOICES[choice])))["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"] == ["otlp"], name
        assert pipeline["processors"] == ["memory_limiter", "batch"], name


def test_prometheus_exports_metrics_only(chart_helm):
    config = parse_yaml(config_text(rendered(chart_helm, EXPORTER_CHOICES["everything"])))
    pipelines = config["service"]["pipelines"]
    assert pipelines["metrics"]["exporters"] == ["debug", "otlp", "prometheus"]
    assert pipelines["traces"]["exporters"] == pipelines["logs"]["exporters"] == ["debug", "otlp"]
    assert config["exporters"]["prometheus"] == {
        "endpoint": "0.0.0.0:8889",
        "namespace": "stackyard",
        "resource_constant_labels": {"included": ["*"]},
        "translation_strategy": "UnderscoreEscapingWithSuffixes",
    }


def test_prometheus_alone_is_not_enough_for_traces_and_logs(chart_helm):
    values = {"otelCollector": {"debugExporter": {"enabled": False}, "prometheusExporter": {"enabled": True}}}
    result = chart_helm.try_template(values)
    assert result.returncode != 0
    assert "nothing to export to: traces and logs need" in result.stderr


# -- exporter headers from Secrets -------------------------------------------------------


def test_exporter_headers_are_env_references_to_secret_keys(chart_helm):
    objects = rendered(chart_helm, EXPORTER_CHOICES["otlphttp with headers from Secrets"])
    config = parse_yaml(config_text(objects))
    assert config["exporters"]["otlphttp"]["headers"] == {
        "x-honeycomb-team": "${env:OTLP_HEADER_0}",
        "x-honeycomb-dataset": "${env:OTLP_HEADER_1}",
    }
    assert container_env(objects) == [
        {"name": "OTLP_HEADER_0", "valueFrom": {"secretKeyRef": {"name": "honeycomb", "key": "api-key"}}},
        {"name": "OTLP_HEADER_1", "valueFrom": {"secretKeyRef": {"name": "honeycomb", "key": "dataset"}}},
    ]


def test_header_variables_come_before_extra_env_and_only_with_an_endpoint(chart_helm):
    extra = [{"name": "EXAMPLE", "value": "1"}]
    with_endpoint = {**EXPORTER_CHOICES["otlphttp with headers from Secrets"], "extraEnv": extra}
    assert [e["name"] for e in container_env(rendered(chart_helm, with_endpoint))] == [
        "OTLP_HEADER_0",
        "OTLP_HEADER_1",
        "EXAMPLE",
    ]
    without_endpoint = {"otlpExporter": {"headers": HEADERS}, "extraEnv": extra}
    assert container_env(rendered(chart_helm, without_endpoint)) == extra


class _CapturingReceiver(BaseHTTPRequestHandler):
    """A vendor's OTLP/HTTP endpoint that keeps the headers of every request."""

    received: list[dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def vendor() -> Iterator[tuple[str, list[dict[str, str]]]]:
    handler = type("Receiver", (_CapturingReceiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.received
    server.shutdown()
    server.server_close()


def test_the_collector_sends_header_values_from_its_environment_and_the_config_map_holds_none(
    chart_helm, otelcol, tmp_path, vendor
):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    endpoint, received = vendor
    secrets = {"OTLP_HEADER_0": "hcaik_team-key-4c1d2e", "OTLP_HEADER_1": "dataset-shop-prod-91"}
    ports = LocalPorts()
    choice = {"otlpExporter": {"endpoint": endpoint, "protocol": "http", "headers": HEADERS}}
    objects = collector_objects(chart_helm, merge(ports.values(), {"otelCollector": choice}))
    config = config_text(objects)
    for obj in objects:
        assert not [s for s in secrets.values() if s in json.dumps(obj)], f"{obj['kind']} holds a header value"

    with running(otelcol, config, ports, tmp_path, env=secrets):
        provider = TracerProvider(resource=Resource.create({"service.name": "stackyard-api"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{ports.otlp_http}/v1/traces")))
        with provider.get_tracer("stackyard.test").start_as_current_span("GET /v1/health"):
            pass
        provider.shutdown()
        deadline = time.monotonic() + 15
        while not [r for r in received if r[":path"] == "/v1/traces"] and time.monotonic() < deadline:
            time.sleep(0.1)

    traces = [r for r in received if r[":path"] == "/v1/traces"]
    assert traces, "the collector forwarded no traces to the vendor"
    assert traces[0]["x-honeycomb-team"] == secrets["OTLP_HEADER_0"]
    assert traces[0]["x-honeycomb-dataset"] == secrets["OTLP_HEADER_1"]


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ({"name": "x-api-key"}, "missing property 'valueSecretRef'"),
        ({"name": "x-api-key", "valueSecretRef": {"name": "vendor", "key": ""}}, "minLength"),
        ({"name": "x api key", "valueSecretRef": {"name": "vendor", "key": "k"}}, "does not match pattern"),
        (
            {"name": "x-api-key", "value": "plain", "valueSecretRef": {"name": "vendor", "key": "k"}},
            "'value' not allowed",
        ),
    ],
)
def test_a_header_without_a_secret_reference_is_refused(chart_helm, header, complaint):
    result = chart_helm.try_template(
        {"otelCollector": {"otlpExporter": {"endpoint": "otlp.example.com", "headers": [header]}}}
    )
    assert result.returncode != 0, f"{header} was accepted"
    assert "/otelCollector/otlpExporter/headers/0" in result.stderr and complaint in result.stderr, result.stderr


# -- the Prometheus endpoint -------------------------------------------------------------


def pod_template(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "Deployment", COLLECTOR)["spec"]["template"]  # type: ignore[no-any-return]


def test_prometheus_endpoint_is_published_for_scraping(chart_helm):
    objects = rendered(chart_helm, {"prometheusExporter": {"enabled": True, "port": 9464}})
    service_ports = {p["name"]: p for p in find(objects, "Service", COLLECTOR)["spec"]["ports"]}
    assert service_ports["metrics"] == {
        "name": "metrics",
        "port": 9464,
        "targetPort": "metrics",
        "protocol": "TCP",
        "appProtocol": "http",
    }
    template = pod_template(objects)
    (container,) = template["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container["ports"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9464"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_without_the_prometheus_exporter_nothing_is_published(chart_helm):
    objects = rendered(chart_helm, {})
    assert "metrics" not in {p["name"] for p in find(objects, "Service", COLLECTOR)["spec"]["ports"]}
    assert not any(key.startswith("prometheus.io/") for key in pod_template(objects)["metadata"]["annotations"])
    assert "prometheus" not in parse_yaml(config_text(objects))["exporters"]
    (rule,) = find(objects, "NetworkPolicy", COLLECTOR)["spec"]["ingress"]
    assert {p["port"] for p in rule["ports"]} == {"otlp-grpc", "otlp-http"}


def test_scrape_annotations_can_be_left_out(chart_helm):
    objects = rendered(chart_helm, {"prometheusExporter": {"enabled": True, "scrapeAnnotations": False}})
    assert not any(key.startswith("prometheus.io/") for key in pod_template(objects)["metadata"]["annotations"])


def test_network_policy_admits_scrapes_from_every_namespace_or_the_given_peers(chart_helm):
    def metrics_rule(extra: dict[str, Any]) -> dict[str, Any]:
        objects = rendered(chart_helm, {"prometheusExporter": {"enabled": True, **extra}})
        otlp, metrics = find(objects, "NetworkPolicy", COLLECTOR)["spec"]["ingress"]
        assert {p["port"] for p in otlp["ports"]} == {"otlp-grpc", "otlp-http"}
        return metrics

    assert metrics_rule({}) == {"from": [{"namespaceSelector": {}}], "ports": [{"port": "metrics", "protocol": "TCP"}]}
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert metrics_rule({"scrapeFrom": monitoring})["from"] == monitoring


def test_service_monitor_only_where_the_prometheus_operator_api_exists(chart_helm):
    choice = {
        "prometheusExporter": {
            "enabled": True,
            "serviceMonitor": {"enabled": True, "interval": "30s", "labels": {"release": "kube-prometheus-stack"}},
        }
    }
    assert not [o for o in rendered(chart_helm, choice) if o["kind"] == "ServiceMonitor"]

    objects = rendered(chart_helm, choice, "--api-versions", "monitoring.coreos.com/v1")
    monitor = find(objects, "ServiceMonitor", COLLECTOR)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = find(objects, "Service", COLLECTOR)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["apps"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "honorLabels": True, "interval": "30s"}
    ]


def test_everything_on_passes_helm_lint_strict(chart_helm):
    # Every option but a metric name prefix, which the dashboards refuse.
    collector = EXPORTER_CHOICES["everything"] | {"prometheusExporter": {"enabled": True, "resourceLabels": ["*"]}}
    values = {"otelCollector": collector, "dashboards": {"enabled": True, "namespace": "grafana"}}
    result = chart_helm.run("lint", "--strict", str(CHART), *chart_helm.values_file(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_the_real_collector_serves_contract_metrics_with_job_and_resource_labels(chart_helm, otelcol, tmp_path):
    ports = LocalPorts()
    values = merge(ports.values(), {"otelCollector": {"prometheusExporter": {"enabled": True}}})
    with running(otelcol, config_text(collector_objects(chart_helm, values)), ports, tmp_path):
        feed_contract_metrics(ports.otlp_http)
        deadline = time.monotonic() + 20
        while "http_server_request_duration_seconds_bucket" not in (served := scrape(ports.prometheus)):
            assert time.monotonic() < deadline, f"not served in time; served: {sorted(served)}"
            time.sleep(0.2)

    (series, *_) = served["http_server_request_duration_seconds_count"]
    assert series["job"] == "stackyard/stackyard-api"  # service.namespace/service.name
    assert series["instance"] == "stackyard-api-7d9f-x2k4q"  # service.instance.id: the pod
    assert series["k8s_namespace_name"] == "shop-prod"
    assert series["stackyard_stack"] == "shop"
    assert series["http_route"] == "/v1/jobs/{queue}"
    assert "k8s_pod_name" not in series, "only the resource attributes of resourceLabels become labels"
    assert any(s.get("k8s_pod_name") == "stackyard-api-7d9f-x2k4q" for s in served["target_info"])


@pytest.mark.slow
def test_install_with_prometheus_headers_and_dashboards_is_admitted(cluster_helm, chart_namespace):
    """Into a namespace that enforces the restricted standard, on a cluster without the
    prometheus-operator: no ServiceMonitor, no error; the sidecar finds the dashboards by label."""
    chart_namespace.kubectl(
        "create", "secret", "generic", "honeycomb", "--from-literal=api-key=k", "--from-literal=dataset=d"
    )
    values = {
        "otelCollector": {
            "otlpExporter": {"endpoint": "https://api.honeycomb.io", "protocol": "http", "headers": HEADERS},
            "prometheusExporter": {"enabled": True, "serviceMonitor": {"enabled": True}},
        },
        "dashboards": {"enabled": True},
    }
    namespace = chart_namespace.name
    result = cluster_helm.run(
        "install", "obs", str(CHART), "--namespace", namespace, "--wait=false", *cluster_helm.values_file(values)
    )
    assert "PodSecurity" not in result.stderr, result.stderr
    manifest = cluster_helm.run("get", "manifest", "obs", "--namespace", namespace).stdout
    assert "kind: ServiceMonitor" not in manifest

    listed = json.loads(chart_namespace.kubectl("get", "configmaps", "-l", "grafana_dashboard=1", "-o", "json").stdout)
    assert sorted(c["metadata"]["name"] for c in listed["items"]) == [
        f"obs-stack-dashboard-{area}" for area in ("api", "email", "jobs", "ratelimit")
    ]
    selector = "app.kubernetes.io/instance=obs,app.kubernetes.io/component=otel-collector"
    wait_until(
        lambda: bool(json.loads(chart_namespace.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"]),
        60,
        "a collector pod created by its ReplicaSet (admitted under the restricted standard)",
    )
