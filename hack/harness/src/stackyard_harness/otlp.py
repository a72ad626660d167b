"""OTLP/JSON, as the harness collector writes it, read as spans, metric points and log records.

The collector's file exporter writes every export request it receives as one line of
OTLP/JSON: ids in hex, 64-bit numbers as strings, enums as numbers, attributes as lists of
key/AnyValue pairs, each item nested under its resource and scope. Tests ask questions of the
flat form ("the spans of trace T", "the points of metric M from process P"), so every item
here carries its own resource (and a span its scope) with the values decoded. Pure
functions over `OtelCollector.records()` (or any list of such requests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
"""OTLP span status codes."""
METRIC_TYPES = ("histogram", "sum", "gauge", "exponentialHistogram")

Records = Iterable[Mapping[str, Any]]


def any_value(value: Mapping[str, Any]) -> Any:
    """The Python value of an OTLP/JSON AnyValue (intValue arrives as a string)."""
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
    """A list of OTLP key/AnyValue pairs as a plain dict."""
    return {item["key"]: any_value(item.get("value", {})) for item in items or []}


def span_kind(kind: Any) -> str:
    """INTERNAL, SERVER, ...: from the number OTLP/JSON writes, or the enum's name."""
    if isinstance(kind, str) and not kind.isdigit():
        return kind.removeprefix("SPAN_KIND_")
    return SPAN_KINDS.get(int(kind or 0), str(kind))


@dataclass(frozen=True)
class Event:
    name: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    """Empty for a root span."""
    name: str
    kind: str
    """INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER (or UNSPECIFIED)."""
    scope: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    start_ns: int
    status_code: int
    events: tuple[Event, ...]

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name"))

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

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
    bounds: tuple[float, ...] = ()
    """A histogram's explicit bucket boundaries."""


@dataclass(frozen=True)
class LogRecord:
    body: Any
    severity: str
    severity_number: int
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    time_ns: int


def _resource(item: Mapping[str, Any]) -> dict[str, Any]:
    return attributes(item.get("resource", {}).get("attributes"))


def spans(records: Records) -> list[Span]:
    """Every span of `records`, in the order they were exported."""
    return [
        Span(
            trace_id=span.get("traceId", ""),
            span_id=span.get("spanId", ""),
            parent_id=span.get("parentSpanId", ""),
            name=span.get("name", ""),
            kind=span_kind(span.get("kind", 0)),
            scope=scope_spans.get("scope", {}).get("name", ""),
            attributes=attributes(span.get("attributes")),
            resource=_resource(resource_spans),
            start_ns=int(span.get("startTimeUnixNano", 0)),
            status_code=int(span.get("status", {}).get("code", STATUS_UNSET)),
            events=tuple(Event(e.get("name", ""), attributes(e.get("attributes"))) for e in span.get("events", [])),
        )
        for record in records
        for resource_spans in record.get("resourceSpans", [])
        for scope_spans in resource_spans.get("scopeSpans", [])
        for span in scope_spans.get("spans", [])
    ]


def _point_value(point: Mapping[str, Any]) -> float:
    if "count" in point:
        return float(point["count"])
    return float(point.get("asDouble", point.get("asInt", 0)))


def metric_points(records: Records) -> list[MetricPoint]:
    """Every data point of every metric of `records`, in the order they were exported."""
    return [
        MetricPoint(
            name=metric.get("name", ""),
            unit=metric.get("unit", ""),
            type=type_,
            attributes=attributes(point.get("attributes")),
            resource=_resource(resource_metrics),
            time_ns=int(point.get("timeUnixNano", 0)),
            value=_point_value(point),
            bounds=tuple(float(b) for b in point.get("explicitBounds", [])),
        )
        for record in records
        for resource_metrics in record.get("resourceMetrics", [])
        for scope_metrics in resource_metrics.get("scopeMetrics", [])
        for metric in scope_metrics.get("metrics", [])
        for type_ in METRIC_TYPES
        for point in metric.get(type_, {}).get("dataPoints", [])
    ]


def log_records(records: Records) -> list[LogRecord]:
    """Every log record of `records`, in the order they were exported."""
    return [
        LogRecord(
            body=any_value(entry.get("body", {})),
            severity=entry.get("severityText", ""),
            severity_number=int(entry.get("severityNumber", 0)),
            trace_id=entry.get("traceId", ""),
            span_id=entry.get("spanId", ""),
            attributes=attributes(entry.get("attributes")),
            resource=_resource(resource_logs),
            time_ns=int(entry.get("timeUnixNano") or entry.get("observedTimeUnixNano") or 0),
        )
        for record in records
        for resource_logs in record.get("resourceLogs", [])
        for scope_logs in resource_logs.get("scopeLogs", [])
        for entry in scope_logs.get("logRecords", [])
    ]


async def until_exported(
    flush: Callable[[], Any], found: Callable[[], T | None], what: str, timeout: float = 15.0
) -> T:
    """`found()` once it is truthy, flushing the exporters (`flush`, e.g. Telemetry.flush)
    before each look: a deadline, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        await asyncio.to_thread(flush)
        if result := found():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not in the collector's output within {timeout:g}s: {what}")
        await asyncio.sleep(0.1)
