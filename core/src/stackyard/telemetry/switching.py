"""Exporters whose target can change while the process runs (the ratio: sampling.py).

The OpenTelemetry SDK fixes its providers, processors and readers when they are made;
a Stack's telemetry settings change at any time. So the providers are made once, around
these indirections, and `Telemetry.apply` swaps what is behind them: a new OTLP exporter
when the endpoint or protocol changes, nothing (data is dropped) when telemetry is off.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class _Slot:
    """The exporter in force; None drops. Swapping shuts the old one down in the background."""

    def __init__(self) -> None:
        self._target: Any = None
        self._lock = threading.Lock()

    @property
    def target(self) -> Any:
        return self._target

    def swap(self, target: Any) -> None:
        with self._lock:
            old, self._target = self._target, target
        if old is not None and old is not target:
            threading.Thread(target=old.shutdown, name="otel exporter shutdown", daemon=True).start()


class SwitchingSpanExporter(SpanExporter):
    def __init__(self) -> None:
        self.slot = _Slot()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        target = self.slot.target
        return target.export(spans) if target is not None else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.slot.swap(None)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self.slot.target
        return bool(target.force_flush(timeout_millis)) if target is not None else True


class SwitchingMetricExporter(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.slot = _Slot()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        target = self.slot.target
        if target is None:
            return MetricExportResult.SUCCESS
        return target.export(metrics_data, timeout_millis=timeout_millis, **kwargs)  # type: ignore[no-any-return]

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        target = self.slot.target
        return bool(target.force_flush(timeout_millis)) if target is not None else True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.slot.swap(None)


class SwitchingLogExporter(LogRecordExporter):
    def __init__(self) -> None:
        self.slot = _Slot()

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        target = self.slot.target
        return target.export(batch) if target is not None else LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        self.slot.swap(None)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self.slot.target
        return bool(target.force_flush(timeout_millis)) if target is not None else True
