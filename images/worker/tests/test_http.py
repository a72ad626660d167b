"""The worker answers the same probes and config endpoint as the api."""

from __future__ import annotations

from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard_worker.http import create_http_app
from starlette.testclient import TestClient


def test_probes_and_config(tmp_path):
    live = LiveConfig()
    runtime = Runtime("stackyard-worker", FileConfigSource(live, tmp_path), live)
    client = TestClient(create_http_app(runtime))
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503
    assert client.get("/v1/config").status_code == 503

    spec = StackSpec.model_validate(
        {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
    )
    config = RuntimeConfig(stack="demo", namespace="ns", generation=4, spec=spec)
    live.offer(config.canonical_json(), {"stack.redis.url": "redis://127.0.0.1:1"}, None)
    body = client.get("/v1/config").json()
    assert (body["hash"], body["generation"]) == (config.hash, 4)
