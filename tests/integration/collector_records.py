"""What the harness collector wrote, read as spans, metric points and log records.

The collector's file exporter writes every OTLP export request it receives as one line of
OTLP/JSON (ids in hex, 64-bit numbers as strings, attributes as key/AnyValue lists). The
tests ask questions of the flattened form: "the spans of trace T", "the points of metric M
from the api of namespace N". `CollectorFile` reads the file incrementally, because every
process of a test exports metrics twice a second and polling would re-parse it all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS_ERROR = 2


def any_value(value: Mapping[str, Any]) -> Any:
    """The Python value of an OTLP/JSON AnyValue."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: any_value(item.get("value", {})) for item in items or []}


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    scope: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    start_ns: int
    status_code: int
    events: tuple[str, ...]

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name"))

    def describe(self) -> str:
        return (
            f"{self.service} {self.kind} {self.name!r} span={self.span_id} parent={self.parent_id or '-'} "
            f"scope={self.scope}"
        )


@dataclass(frozen=True)
class MetricPoint:
    name: str
    unit: str
    type: str
    """histogram, sum, gauge or exponentialHistogram."""
    attributes: dict[str, Any]
    resource: dict[str, Any]
    time_ns: int
    value: float
    """The count of a histogram point, else the value."""


@dataclass(frozen=True)
class LogRecord:
    body: Any
    severity: str
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    time_ns: int


def spans(records: Iterable[Mapping[str, Any]]) -> list[Span]:
    found = []
    for record in records:
        for resource_spans in record.get("resourceSpans", []):
            resource = attributes(resource_spans.get("resource", {}).get("attributes"))
            for scope_spans in resource_spans.get("scopeSpans", []):
                scope = scope_spans.get("scope", {}).get("name", "")
                for span in scope_spans.get("spans", []):
                    found.append(
                        Span(
                            trace_id=span.get("traceId", ""),
                            span_id=span.get("spanId", ""),
                            parent_id=span.get("parentSpanId", ""),
                            name=span.get("name", ""),
                            kind=SPAN_KINDS.get(span.get("kind", 0), str(span.get("kind"))),
                            scope=scope,
                            attributes=attributes(span.get("attributes")),
                            resource=resource,
                            start_ns=int(span.get("startTimeUnixNano", 0)),
                            status_code=int(span.get("status", {}).get("code", 0)),
                            events=tuple(e.get("name", "") for e in span.get("events", [])),
                        )
                    )
    return found


def metric_points(records: Iterable[Mapping[str, Any]]) -> list[MetricPoint]:
    found = []
    for record in records:
        for resource_metrics in record.get("resourceMetrics", []):
            resource = attributes(resource_metrics.get("resource", {}).get("attributes"))
            for scope_metrics in resource_metrics.get("scopeMetrics", []):
                for metric in scope_metrics.get("metrics", []):
                    for type_ in ("histogram", "sum", "gauge", "exponentialHistogram"):
                        for point in metric.get(type_, {}).get("dataPoints", []):
                            if "count" in point:
                                value = float(point["count"])
                            else:
                                value = float(point.get("asDouble", point.get("asInt", 0)))
                            found.append(
                                MetricPoint(
                                    name=metric.get("name", ""),
                                    unit=metric.get("unit", ""),
                                    type=type_,
                                    attributes=attributes(point.get("attributes")),
                                    resource=resource,
                                    time_ns=int(point.get("timeUnixNano", 0)),
                                    value=value,
                                )
                            )
    return found


def log_records(records: Iterable[Mapping[str, Any]]) -> list[LogRecord]:
    found = []
    for record in records:
        for resource_logs in record.get("resourceLogs", []):
            resource = attributes(resource_logs.get("resource", {}).get("attributes"))
            for scope_logs in resource_logs.get("scopeLogs", []):
                for entry in scope_logs.get("logRecords", []):
                    found.append(
                        LogRecord(
                            body=any_value(entry.get("body", {})),
                            severity=entry.get("severityText", ""),
                            trace_id=entry.get("traceId", ""),
                            span_id=entry.get("spanId", ""),
                            attributes=attributes(entry.get("attributes")),
                            resource=resource,
                            time_ns=int(entry.get("timeUnixNano") or entry.get("observedTimeUnixNano") or 0),
                        )
                    )
    return found


class CollectorFile:
    """The collector's JSON-lines output from a point on (`from_end`: what a test caused),
    read from where the last read stopped.

    The collector truncates its file when it starts again: `reopen()` after a restart (a
    file shorter than the offset is taken as a restart too). What was read stays: `lines`
    (raw text, for the secret grep) and the flattened spans, points and log records."""

    def __init__(self, path: Path, *, from_end: bool = True) -> None:
        self.path = path
        self.offset = path.stat().st_size if from_end and path.exists() else 0
        self.lines: list[str] = []
        self._spans: list[Span] = []
        self._points: list[MetricPoint] = []
        self._logs: list[LogRecord] = []

    def reopen(self) -> None:
        self.offset = 0

    def refresh(self) -> None:
        """Read the complete lines added since the last read."""
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            file.seek(0, 2)
            if file.tell() < self.offset:
                self.offset = 0
            file.seek(self.offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        new = [line for line in complete.decode(errors="replace").splitlines() if line.strip()]
        records = [json.loads(line) for line in new]
        self.lines += new
        self._spans += spans(records)
        self._points += metric_points(records)
        self._logs += log_records(records)

    def spans(self) -> list[Span]:
        self.refresh()
        return list(self._spans)

    def metric_points(self) -> list[MetricPoint]:
        self.refresh()
        return list(self._points)

    def log_records(self) -> list[LogRecord]:
        self.refresh()
        return list(self._logs)

    def text(self) -> str:
        """Every line read so far, as the collector wrote them."""
        self.refresh()
        return "\n".join(self.lines)
