"""The configs the chart renders, run by the real programs: the OpenTelemetry Collector
(the harness's build, the version values.yaml pins) and Debian's redis-server, with the
chart's probe commands."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from stack_chart import CHART, find
from stackyard_harness.process import ManagedProcess, free_port
from stackyard_harness.programs import wait_until
from stackyard_harness.pytest_plugin import unavailable
from stackyard_harness.tools import ToolMissing, Tools, pinned_versions


def tool(tools: Tools, name: str) -> Path:
    try:
        return tools.require(name)
    except ToolMissing as exc:
        unavailable(exc)
        raise


@pytest.fixture(scope="module")
def otelcol(tools: Tools) -> Path:
    return tool(tools, "otelcol")


@pytest.fixture(scope="module")
def redis_server(tools: Tools) -> Path:
    return tool(tools, "redis-server")


def collector_config(chart_helm, values: dict[str, Any] | None = None) -> dict[str, Any]:
    objects = chart_helm.template(values)
    return yaml.safe_load(find(objects, "ConfigMap", "demo-stack-otel-collector")["data"]["config.yaml"])


def test_collector_image_is_the_version_the_harness_tests_with():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["otelCollector"]["image"]["tag"] == pinned_versions()["OTELCOL_VERSION"]


@pytest.mark.parametrize(
    "values",
    [
        None,
        {"otelCollector": {"otlpExporter": {"endpoint": "otlp.example.com:4317"}}},
        {"otelCollector": {"otlpExporter": {"endpoint": "https://otlp.example.com", "protocol": "http"}}},
        {"otelCollector": {"otlpExporter": {"endpoint": "collector:4317", "insecure": True}}},
    ],
    ids=["debug", "otlp-grpc", "otlp-http", "otlp-insecure"],
)
def test_collector_accepts_the_rendered_config(chart_helm, otelcol, tmp_path, values):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(collector_config(chart_helm, values)))
    result = subprocess.run([otelcol, "validate", f"--config={config}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_collector_runs_the_rendered_config_and_takes_otlp(chart_helm, otelcol, tmp_path):
    config = collector_config(chart_helm)
    grpc, http, health = free_port(), free_port(), free_port()
    config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = f"127.0.0.1:{grpc}"
    config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = f"127.0.0.1:{http}"
    config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{health}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    process = ManagedProcess("chart-otelcol", [otelcol, f"--config={path}"], tmp_path / "otelcol.log").start()
    try:
        # What the chart's probes ask: GET / on the health_check port.
        process.wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{health}/", timeout=1).status_code == 200, 30, "healthy"
        )
        response = httpx.post(f"http://127.0.0.1:{http}/v1/traces", json={"resourceSpans": []}, timeout=5)
        assert response.status_code == 200, response.text
    finally:
        process.stop()


# -- Redis -----------------------------------------------------------------------------


def redis_objects(chart_helm, values: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    objects = chart_helm.template(values)
    config = find(objects, "ConfigMap", "demo-stack-redis")["data"]["redis.conf"]
    container = find(objects, "StatefulSet", "demo-stack-redis")["spec"]["template"]["spec"]["containers"][0]
    return config, container


def probe(container: dict[str, Any], kind: str, port: int, password: str) -> subprocess.CompletedProcess[str]:
    """Run the container's probe command here, against the local port, with the Secret's value in env."""
    command = [re.sub(r"-p 6379\b", f"-p {port}", part) for part in container[kind]["exec"]["command"]]
    env = {**os.environ, "REDISCLI_AUTH": password}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=10)


def test_redis_runs_the_rendered_config_with_aof_and_the_password(chart_helm, redis_server, tmp_path):
    config, container = redis_objects(chart_helm, {"redis": {"config": {"maxmemory": "64mb"}}})
    data = tmp_path / "data"
    data.mkdir()
    assert "dir /data" in config.splitlines()  # the PersistentVolumeClaim's mount; here a temporary directory
    (tmp_path / "redis.conf").write_text(config.replace("dir /data", f"dir {data}"))
    port, password = free_port(), "s3cret-from-the-secret"
    # The container's command and arguments, with the password expanded as the kubelet does,
    # on a free loopback port.
    assert container["command"] == ["redis-server"]
    args = [a.replace("/etc/redis/redis.conf", str(tmp_path / "redis.conf")) for a in container["args"]]
    args = [a.replace("$(REDIS_PASSWORD)", password) for a in args]
    argv = [redis_server, *args, "--port", str(port), "--bind", "127.0.0.1"]
    process = ManagedProcess("chart-redis", argv, tmp_path / "redis.log").start()
    try:
        wait_until(lambda: probe(container, "readinessProbe", port, password).returncode == 0, 15, "readiness probe")
        assert probe(container, "livenessProbe", port, password).returncode == 0
        assert probe(container, "startupProbe", port, password).returncode == 0
        assert probe(container, "readinessProbe", port, "wrong").returncode != 0

        def cli(*command: str, password: str | None = password) -> str:
            env = {**os.environ, **({"REDISCLI_AUTH": password} if password else {})}
            argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command]
            return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10).stdout.strip()

        assert cli("CONFIG", "GET", "appendonly").splitlines() == ["appendonly", "yes"]
        assert cli("CONFIG", "GET", "maxmemory-policy").splitlines() == ["maxmemory-policy", "noeviction"]
        assert cli("CONFIG", "GET", "maxmemory").splitlines() == ["maxmemory", str(64 * 1024 * 1024)]
        assert "NOAUTH" in cli("SET", "job", "1", password=None)
        assert cli("SET", "job", "1") == "OK"
        wait_until(lambda: any((data / "appendonlydir").glob("*.incr.aof")), 10, "the append-only file")
    finally:
        process.stop()
