"""Errors to Sentry: the api with spec.telemetry.sentry sends an unhandled error, once, to a
local Sentry (the harness's fake, which follows Sentry's ingestion contract), tagged with the
request's OpenTelemetry trace id and without the request's secrets; the DSN stays out of
every log; dropping the setting stops sending without a restart; a Sentry that refuses or
hangs costs the requests nothing."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from fastapi.testclient import TestClient
from stackyard.config import TELEMETRY_SENTRY_DSN, FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard_api.app import create_app
from stackyard_harness.auth_stack import flushed_redis_url
from stackyard_harness.process import free_port

REDIS_DATABASE = 5
BOOM = "/v1/test-sentry/boom"
BEARER = "bearer-secret-5f1e0c9b"
COOKIE = "cookie-secret-8d2a7e41"


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    directory: Path
    redis_url: str
    otel_endpoint: str
    generation: int = 0

    def configure(self, sentry_dsn: str | None, environment: str = "test") -> None:
        """Write the config (telemetry on, Sentry when `sentry_dsn`) and wait until it is in force."""
        self.generation += 1
        telemetry: dict[str, Any] = {"enabled": True, "endpoint": self.otel_endpoint}
        credentials = {"stack.redis.url": self.redis_url, "stack.mongodb.uri": "mongodb://127.0.0.1:1/x"}
        if sentry_dsn is not None:
            telemetry["sentry"] = {"dsnSecretRef": {"name": "obs", "key": "sentry-dsn"}, "environment": environment}
            credentials[TELEMETRY_SENTRY_DSN] = sentry_dsn
        spec = StackSpec.model_validate(
            {
                "redis": {"urlSecretRef": {"name": "b", "key": "redis"}},
                "mongodb": {"uriSecretRef": {"name": "b", "key": "mongodb"}},
                "telemetry": telemetry,
            }
        )
        config = RuntimeConfig(stack="demo", namespace="ns", generation=self.generation, spec=spec)
        (self.directory / "credentials.json").write_text(json.dumps(credentials))
        (self.directory / "config.json").write_text(config.canonical_json())
        deadline = time.monotonic() + 10
        while self.client.get("/v1/config").json().get("generation") != self.generation:
            assert time.monotonic() < deadline, f"generation {self.generation} was not applied"
            time.sleep(0.02)

    def boom(self, message: str) -> tuple[Any, float]:
        """Request the route that raises RuntimeError(message): (the answer, seconds it took)."""
        started = time.monotonic()
        answer = self.client.get(
            BOOM,
            params={"message": message},
            headers={"Authorization": f"Bearer {BEARER}", "Cookie": f"session={COOKIE}"},
        )
        return answer, time.monotonic() - started


@pytest.fixture
def api(tmp_path, redis_server, otel_collector) -> Iterator[Api]:  # type: ignore[no-untyped-def]
    live = LiveConfig()
    runtime = Runtime("stackyard-api", FileConfigSource(live, tmp_path, interval=0.02), live)
    app = create_app(runtime)

    @app.get(BOOM, include_in_schema=False)
    async def boom(message: str) -> None:
        raise RuntimeError(message)

    redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, runtime, tmp_path, redis_url, otel_collector.otlp_http_endpoint)


def server_span_trace_ids(collector, route: str) -> set[str]:  # type: ignore[no-untyped-def]
    """Trace ids of the collector's SERVER spans for `route` so far."""
    return {span.trace_id for span in collector.spans() if span.name == f"GET {route}"}


def sent(fake_sentry, message: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The events of the error raised with `message`."""
    return [e for e in fake_sentry.events() if e.get("exception", {}).get("values", [{}])[-1].get("value") == message]


def test_an_unhandled_error_goes_to_sentry_once_with_the_trace_id_and_without_secrets(
    api, fake_sentry, otel_collector, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    api.configure(fake_sentry.dsn)
    message = f"the boom of {uuid.uuid4().hex[:8]}"

    answer, _ = api.boom(message)

    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "https://stackyard.dev/problems/internal"
    fake_sentry.wait_for_events(1)
    sentry_sdk.flush(5)  # whatever else the SDK queued has been sent now
    events = sent(fake_sentry, message)
    assert len(events) == 1, "one error, one event (not a second from the server's log)"
    event = events[0]
    error = event["exception"]["values"][-1]
    assert (error["type"], error["value"]) == ("RuntimeError", message)
    assert event["environment"] == "test" and event["level"] == "error"
    # The OpenTelemetry trace id: the problem's, and that of the request's span at the collector.
    assert event["tags"]["trace_id"] == problem["traceId"]
    assert event["contexts"]["trace"]["trace_id"] == problem["traceId"]
    api.runtime.telemetry.flush()
    deadline = time.monotonic() + 10
    while problem["traceId"] not in server_span_trace_ids(otel_collector, BOOM):
        assert time.monotonic() < deadline, "the request's span did not reach the collector"
        time.sleep(0.1)
    # Nothing of the request's credentials, no request data, no local variables.
    raw = json.dumps(event)
    assert BEARER not in raw and COOKIE not in raw
    assert "cookies" not in event.get("request", {}) and "headers" not in event.get("request", {})
    assert "user" not in event
    assert all("vars" not in frame for frame in error["stacktrace"]["frames"])
    # The DSN's key in no log line: not in the records, not on stdout or stderr.
    output = capfd.readouterr()
    assert fake_sentry.public_key not in caplog.text
    assert fake_sentry.public_key not in output.out + output.err
    assert any("errors also go to Sentry" in r.getMessage() for r in caplog.records)


def test_removing_sentry_from_the_config_stops_sending_without_restart(api, fake_sentry):
    api.configure(fake_sentry.dsn)
    api.boom("before")
    fake_sentry.wait_for_events(1)

    api.configure(None)
    answer, _ = api.boom("while off")
    assert answer.status_code == 500

    # Back on: the next error arrives, and the one in between never does (the SDK sends in order).
    api.configure(fake_sentry.dsn, environment="again")
    api.boom("after")
    deadline = time.monotonic() + 10
    while not sent(fake_sentry, "after"):
        assert time.monotonic() < deadline, "the error after re-enabling did not arrive"
        time.sleep(0.02)
    sentry_sdk.flush(5)
    assert sent(fake_sentry, "while off") == []
    assert [e["environment"] for e in sent(fake_sentry, "before") + sent(fake_sentry, "after")] == ["test", "again"]


@pytest.mark.parametrize("sentry", ["rate-limiting", "hanging", "down"])
def test_a_sentry_that_refuses_hangs_or_is_down_does_not_slow_requests(api, fake_sentry, sentry):
    dsn = fake_sentry.dsn
    if sentry == "rate-limiting":
        fake_sentry.rate_limit(retry_after=60)
    elif sentry == "hanging":
        fake_sentry.hang_next(4.0)
    else:
        dsn = f"http://{fake_sentry.public_key}@127.0.0.1:{free_port()}/{fake_sentry.project_id}"
    api.configure(dsn)

    for number in range(5):
        answer, seconds = api.boom(f"{sentry} {number}")
        assert answer.status_code == 500
        assert seconds < 1.5, f"request {number} took {seconds:.1f}s with a {sentry} Sentry"

    if sentry == "rate-limiting":
        sentry_sdk.flush(5)
        # The SDK obeyed the 429: one request refused, then nothing until Retry-After.
        assert [r.status for r in fake_sentry.requests] == [429]
        assert fake_sentry.events() == []
    elif sentry == "hanging":
        # Queued, not lost: all five arrive once Sentry answers again.
        deadline = time.monotonic() + 15
        while not all(sent(fake_sentry, f"{sentry} {number}") for number in range(5)):
            assert time.monotonic() < deadline, "the errors queued while Sentry hung did not arrive"
            time.sleep(0.05)
