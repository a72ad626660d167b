"""Fixtures shared by the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stackyard.resources.stack import TelemetrySettings
from stackyard.telemetry import Telemetry


@pytest.fixture(scope="module")
def exporting_telemetry(otel_collector: Any) -> Iterator[Telemetry]:
    """The process's Telemetry exporting every trace to the harness collector for a module,
    turned off afterwards (it is one per process, shared with the other tests)."""
    telemetry = Telemetry.for_process("test")
    telemetry.apply(TelemetrySettings(endpoint=otel_collector.otlp_http_endpoint, sampling_ratio=1.0))
    yield telemetry
    telemetry.flush()
    telemetry.apply(TelemetrySettings(enabled=False))
