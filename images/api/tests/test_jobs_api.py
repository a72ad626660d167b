"""/v1/jobs, /v1/queues and /v1/events on the api with the real Redis: the answers a client
sees (status codes, problem+json, idempotency, dead-letter repair), with an in-process worker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from background_worker import BackgroundWorker
from fastapi.testclient import TestClient
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.jobs import FunctionRegistry, JobContext, NonRetryable
from stackyard.resources.jobs import JobQueueSpec
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard_api.app import create_app

SPEC = StackSpec.model_validate(
    {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
)

functions = FunctionRegistry()


@functions.register("api.echo")
async def echo(ctx: JobContext, payload: Any) -> Any:
    if payload == "fail":
        raise NonRetryable("asked to fail")
    if payload == "wait":
        return await ctx.wait_for_event("w", "api.go", timeout=30)
    return payload


class Api:
    def __init__(self, client: TestClient, config: RuntimeConfig, queue: str) -> None:
        self.client, self.config, self.queue = client, config, queue

    def job(self, job_id: str, *states: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.client.get(f"/v1/jobs/{job_id}").json()
            if not states or body["state"] in states:
                return body
            assert time.monotonic() < deadline, f"job {job_id} stayed {body['state']}"
            time.sleep(0.02)


@pytest.fixture
def api(tmp_path, redis_server):
    queue = f"api-{uuid.uuid4().hex[:8]}"
    config = RuntimeConfig(
        stack="demo",
        namespace="ns",
        generation=1,
        spec=SPEC,
        job_queues={
            queue: JobQueueSpec.model_validate(
                {"stackRef": {"name": "demo"}, "maxPayloadBytes": 1000, "retry": {"maxAttempts": 2}}
            )
        },
    )
    (tmp_path / "credentials.json").write_text(json.dumps({"stack.redis.url": redis_server.url}))
    (tmp_path / "config.json").write_text(config.canonical_json())
    live = LiveConfig()
    runtime = Runtime("stackyard-api", FileConfigSource(live, tmp_path, interval=0.02), live)
    with TestClient(create_app(runtime)) as client, BackgroundWorker(redis_server.url, config, functions):
        deadline = time.monotonic() + 5
        while client.get("/v1/config").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield Api(client, config, queue)


def test_enqueue_answers_201_with_the_job_and_its_location_then_it_completes(api):
    answer = api.client.post("/v1/jobs", json={"queue": api.queue, "function": "api.echo", "payload": {"a": 1}})
    assert answer.status_code == 201
    job = answer.json()
    assert answer.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["id"].startswith(api.queue + ".") and job["maxAttempts"] == 2 and job["function"] == "api.echo"
    done = api.job(job["id"], "completed")
    assert done["result"] == {"a": 1} and done["attempts"] == 1


def test_the_idempotency_key_header_returns_the_first_job_with_200(api):
    body = {"queue": api.queue, "function": "api.echo", "payload": 1, "delay": 60}
    first = api.client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    again = api.client.post("/v1/jobs", json=body | {"payload": 2}, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["payload"] == 1
    clash = api.client.post("/v1/jobs", json=body | {"idempotencyKey": "k-2"}, headers={"Idempotency-Key": "k-1"})
    assert clash.status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"function": "api.echo", "http": {"url": "http://x.example/"}}, 422, "exactly one of function and http"),
        ({"function": "api.echo", "priority": 10}, 422, "priority"),
        ({"function": "nope"}, 422, "no worker runs function 'nope'"),
        ({"function": "api.echo", "queue": "nowhere"}, 422, "no JobQueue 'nowhere'"),
        ({"function": "api.echo", "payload": "x" * 2000}, 413, "at most 1000"),
        ({"http": {"url": "http://x.example/"}}, 422, "takes no HTTP-target jobs"),
    ],
)
def test_bad_enqueues_are_problems_that_say_what_is_wrong(api, body, status, detail):
    answer = api.client.post("/v1/jobs", json={"queue": api.queue} | body)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert detail in json.dumps(answer.json())


def test_cancel_a_delayed_job_then_cancel_again_is_409(api):
    job = api.client.post("/v1/jobs", json={"queue": api.queue, "function": "api.echo", "delay": 60}).json()
    assert job["state"] == "scheduled"
    cancelled = api.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = api.client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert api.client.get(f"/v1/jobs/{api.queue}.00000000000000000000000000").status_code == 404
    assert api.client.get("/v1/jobs/not-an-id").status_code == 404


def test_dead_letters_are_listed_replayed_and_purged(api):
    ids = [
        api.client.post("/v1/jobs", json={"queue": api.queue, "function": "api.echo", "payload": "fail"}).json()["id"]
        for _ in range(3)
    ]
    for job_id in ids:
        assert api.job(job_id, "dead")["lastError"] == "NonRetryable: asked to fail"
    page = api.client.get(f"/v1/queues/{api.queue}/dead", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["nextCursor"]
    rest = api.client.get(f"/v1/queues/{api.queue}/dead", params={"cursor": page["nextCursor"]}).json()
    assert sorted(j["id"] for j in page["items"] + rest["items"]) == sorted(ids)

    replayed = api.client.post(f"/v1/queues/{api.queue}/dead/replay", json={"ids": [ids[0]]}).json()
    assert replayed == {"count": 1, "ids": [ids[0]]}
    assert api.job(ids[0], "dead")["attempts"] == 1  # it fails again: the payload still says so
    bad = api.client.post(f"/v1/queues/{api.queue}/dead/purge", json={"all": True, "function": "api.echo"})
    assert bad.status_code == 422
    purged = api.client.post(f"/v1/queues/{api.queue}/dead/purge", json={"all": True}).json()
    assert purged["count"] == 3
    info = api.client.get(f"/v1/queues/{api.queue}").json()
    assert info["counts"]["dead"] == 0 and info["counts"]["failed"] == 4
    assert any(q["name"] == api.queue for q in api.client.get("/v1/queues").json()["items"])
    assert api.client.get("/v1/queues/nowhere").status_code == 404


def test_an_event_resumes_the_waiting_step(api):
    job = api.client.post("/v1/jobs", json={"queue": api.queue, "function": "api.echo", "payload": "wait"}).json()
    api.job(job["id"], "scheduled")
    assert api.client.post("/v1/events", json={"name": "api.go", "data": {"ok": True}}).json() == {"delivered": 1}
    assert api.job(job["id"], "completed")["result"] == {"ok": True}


@pytest.fixture
def served(api, tmp_path):
    """Another api process' worth (own Runtime on the same config) on a real port, for
    programs that speak HTTP (the CLI)."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    live = LiveConfig()
    app = create_app(Runtime("stackyard-api", FileConfigSource(live, tmp_path, interval=0.02), live))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started or live.current is None:
        assert time.monotonic() < deadline, "the served api did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    program = str(Path(sys.executable).parent / "stackyard")
    return subprocess.run(
        [program, "--api", url, "-o", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_the_cli_enqueues_and_repairs_dead_letters_on_the_real_api(api, served):
    enqueued = cli(served, "jobs", "enqueue", "api.echo", "--queue", api.queue, "--payload", '"fail"')
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = json.loads(enqueued.stdout)["id"]
    assert api.job(job_id, "dead")["lastError"] == "NonRetryable: asked to fail"

    listed = cli(served, "jobs", "dead", "list", api.queue)
    assert [j["id"] for j in json.loads(listed.stdout)["items"]] == [job_id]
    shown = json.loads(cli(served, "jobs", "dead", "show", job_id).stdout)
    assert shown["errors"][0]["error"] == "NonRetryable: asked to fail"
    refused = cli(served, "jobs", "dead", "replay", api.queue, "--all")
    assert refused.returncode != 0, "replaying everything needs --yes when nobody can confirm"
    replayed = cli(served, "jobs", "dead", "replay", api.queue, "--all", "--yes")
    assert replayed.returncode == 0 and json.loads(replayed.stdout)["ids"] == [job_id]
    api.job(job_id, "dead")
    assert json.loads(cli(served, "jobs", "dead", "purge", api.queue, "--all", "--yes").stdout)["count"] == 1
    queues = json.loads(cli(served, "jobs", "queues").stdout)
    mine = next(q for q in queues["items"] if q["name"] == api.queue)
    assert mine["counts"]["dead"] == 0 and mine["counts"]["failed"] == 2
    missing = cli(served, "jobs", "get", f"{api.queue}.00000000000000000000000000")
    assert missing.returncode == 1 and "404" in missing.stderr
