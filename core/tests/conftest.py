"""Fixtures shared by the core tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from oidc_core_support import clock, ctx, hasher, redis  # noqa: F401  (the OpenID Provider's fixtures)
from stackyard.clients import mongo_client
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


@pytest.fixture
async def db(mongo_server: Any, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A fresh database on the harness's MongoDB-wire server, dropped after the test."""
    module = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    client = mongo_client(mongo_server.url, f"test-{module}")
    database = client[f"{module[:20]}_{uuid.uuid4().hex[:12]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()
