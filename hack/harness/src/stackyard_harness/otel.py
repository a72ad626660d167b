"""An OpenTelemetry Collector (built with ocb) that receives OTLP over gRPC and HTTP
and writes everything it receives to a JSON-lines file that tests read: as export requests
(`records()`), or flattened by otlp.py (`spans()`, `metric_points()`, `log_records()`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import yaml

from . import otlp
from .process import ManagedProcess, free_port
from .tools import Tools


class OtelCollector:
    name = "otel-collector"

    def __init__(self, tools: Tools, run_dir: Path) -> None:
        self.binary = tools.require("otelcol")
        self.dir = run_dir / "otelcol"
        self.grpc_port, self.http_port, self.health_port = free_port(), free_port(), free_port()
        self.output = self.dir / "telemetry.jsonl"
        self.process: ManagedProcess | None = None

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def config(self) -> dict[str, Any]:
        pipeline = {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["file"]}
        return {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
                        "http": {"endpoint": f"127.0.0.1:{self.http_port}"},
                    }
                }
            },
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": {"file": {"path": str(self.output), "flush_interval": "100ms"}},
            "extensions": {"health_check": {"endpoint": f"127.0.0.1:{self.health_port}"}},
            "service": {
                "extensions": ["health_check"],
                "pipelines": {"traces": pipeline, "metrics": pipeline, "logs": pipeline},
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            },
        }

    def start(self) -> OtelCollector:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "config.yaml"
        config.write_text(yaml.safe_dump(self.config()))
        self.process = ManagedProcess(
            "otel-collector", [self.binary, "--config", config], self.dir.parent / "otel-collector.log"
        ).start()
        self.process.wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{self.health_port}/", timeout=1).status_code == 200,
            30,
            "healthy",
        )
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def records(self) -> list[dict[str, Any]]:
        """Every OTLP export request written so far, as parsed JSON objects."""
        if not self.output.exists():
            return []
        records = []
        for line in self.output.read_text().splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                break  # the line the collector is still writing; the next read has it whole
        return records

    def spans(self) -> list[otlp.Span]:
        """Every span received so far, each with its resource and scope (see otlp.py)."""
        return otlp.spans(self.records())

    def metric_points(self) -> list[otlp.MetricPoint]:
        return otlp.metric_points(self.records())

    def log_records(self) -> list[otlp.LogRecord]:
        return otlp.log_records(self.records())

    def env(self) -> dict[str, str]:
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_http_endpoint}

    def describe(self) -> str:
        return f"otel-collector  OTLP http {self.otlp_http_endpoint}  grpc {self.otlp_grpc_endpoint}  -> {self.output}"
