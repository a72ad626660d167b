"""The api's own surface: probes, /v1/config, OpenAPI, and problem+json errors."""

from __future__ import annotations

import json
import time

import pytest
from auth_http import without_trace_id
from fastapi.testclient import TestClient
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard_api.app import create_app

SPEC = StackSpec.model_validate(
    {
        "redis": {"urlSecretRef": {"name": "b", "key": "redis"}},
        "mongodb": {"uriSecretRef": {"name": "b", "key": "mongodb"}},
    }
)


@pytest.fixture
def config_dir(tmp_path):
    return tmp_path


@pytest.fixture
def client(config_dir):
    live = LiveConfig()
    runtime = Runtime("stackyard-api", FileConfigSource(live, config_dir, interval=0.05), live)
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def write_config(directory, generation=1, redis_url="redis://127.0.0.1:1/0"):
    config = RuntimeConfig(stack="demo", namespace="ns", generation=generation, spec=SPEC)
    (directory / "credentials.json").write_text(json.dumps({"stack.redis.url": redis_url, "stack.mongodb.uri": "x"}))
    (directory / "config.json").write_text(config.canonical_json())
    return config


def wait_for_hash(client, expected):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = client.get("/v1/config")
        if response.status_code == 200 and response.json()["hash"] == expected:
            return response.json()
        time.sleep(0.05)
    raise AssertionError(f"config {expected} never applied")


def test_not_ready_and_config_is_a_problem_before_any_config(client):
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["config"].startswith("not loaded")
    config = client.get("/v1/config")
    assert config.status_code == 503
    assert config.headers["content-type"] == "application/problem+json"
    assert config.json()["type"] == "https://stackyard.dev/problems/not-configured"


def test_config_from_files_is_applied_and_reported_without_secrets(client, config_dir):
    config = write_config(config_dir, redis_url="redis://:hunter2@127.0.0.1:1/0")
    body = wait_for_hash(client, config.hash)
    assert body["generation"] == 1 and body["stack"] == "demo"
    assert "hunter2" not in json.dumps(body)
    # A Redis that does not answer keeps the api not ready, and says why.
    ready = client.get("/readyz").json()
    assert ready["checks"]["redis"].startswith("unreachable")

    newer = write_config(config_dir, generation=2)
    assert wait_for_hash(client, newer.hash)["generation"] == 2


def test_unknown_route_is_problem_json(client):
    response = client.get("/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert without_trace_id(response.json()) == {
        "type": "https://stackyard.dev/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "Not Found",
        "instance": "/v1/nope",
    }


def test_openapi_and_swagger_ui_are_served(client):
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "stackyard"
    assert "/v1/config" in spec["paths"]
    assert "application/problem+json" in spec["paths"]["/v1/config"]["get"]["responses"]["503"]["content"]
    assert "swagger-ui" in client.get("/docs").text
