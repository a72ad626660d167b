"""The console's Jobs pages through HTTP against the real api and Redis, with a worker (its
own event loop in a thread, as a worker process would run beside the api) and a scheduler:
queue depths, running and delayed jobs, a dead letter inspected, replayed (as it is, or with
another payload) until it completes, purged; schedules with their last and next run; and no
action without the session's CSRF token. Redis database 35."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from background_worker import BackgroundWorker
from console_http import console_login, csrf_token, post_form
from fastapi.testclient import TestClient
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.jobs import FunctionRegistry, JobContext, NonRetryable
from stackyard.resources.jobs import JobQueueSpec, ScheduleSpec
from stackyard.resources.stack import StackSpec
from stackyard_api.app import create_app
from stackyard_harness.auth_stack import ADMIN_API_KEY, flushed_redis_url, signing_keys

REDIS_DATABASE = 35
QUEUE = "console"

functions = FunctionRegistry()
failed_once: set[str] = set()
release = threading.Event()


@functions.register("console.flaky")
async def flaky(ctx: JobContext, payload: Any) -> Any:
    """Fails for good the first time it runs a job, then does what the payload says."""
    if ctx.job_id not in failed_once:
        failed_once.add(ctx.job_id)
        raise NonRetryable(f"first run of {payload.get('name')} <b>refused</b>")
    return {"done": payload.get("name")}


@functions.register("console.needs")
async def needs(ctx: JobContext, payload: Any) -> Any:
    if "userId" not in payload:
        raise NonRetryable("payload has no userId")
    return {"sentTo": payload["userId"]}


@functions.register("console.hold")
async def hold(ctx: JobContext, payload: Any) -> Any:
    await asyncio.to_thread(release.wait, 30)
    return "released"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_server) -> Iterator[tuple[TestClient, str]]:
    directory: Path = tmp_path_factory.mktemp("console_jobs")
    redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
    spec = StackSpec.model_validate(
        {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
    )
    ref = {"stackRef": {"name": "demo"}}
    config = RuntimeConfig(
        stack="demo",
        namespace="ns",
        generation=1,
        spec=spec,
        job_queues={QUEUE: JobQueueSpec.model_validate(ref | {"maxPayloadBytes": 2000, "retry": {"maxAttempts": 1}})},
        schedules={
            "tick": ScheduleSpec.model_validate(
                ref
                | {"interval": "1s", "job": {"queue": QUEUE, "function": "console.needs", "payload": {"userId": "s"}}}
            ),
            "nightly": ScheduleSpec.model_validate(
                ref
                | {
                    "cron": "0 3 * * *",
                    "timeZone": "Europe/Paris",
                    "job": {"queue": QUEUE, "function": "console.needs"},
                }
            ),
        },
    )
    credentials = {
        "stack.redis.url": redis_url,
        "stack.auth.signingKeys": signing_keys(),
        "stack.auth.encryptionKey": base64.b64encode(os.urandom(32)).decode(),
        "stack.auth.adminApiKey": ADMIN_API_KEY,
    }
    (directory / "credentials.json").write_text(json.dumps(credentials))
    (directory / "config.json").write_text(config.canonical_json())
    live = LiveConfig()
    from stackyard.runtime import Runtime

    runtime = Runtime("stackyard-api", FileConfigSource(live, directory, interval=0.02), live)
    with (
        TestClient(create_app(runtime)) as client,
        BackgroundWorker(redis_url, config, functions, name="console-worker", schedules=True, before_stop=release.set),
    ):
        deadline = time.monotonic() + 5
        while client.get("/v1/config").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield client, redis_url


@pytest.fixture
def console(stack) -> Iterator[TestClient]:
    client, _ = stack
    client.cookies.clear()
    client.follow_redirects = False  # the login answers 303, which console_login checks
    console_login(client)
    client.follow_redirects = True
    yield client
    client.cookies.clear()


def enqueue(client: httpx.Client, function: str, payload: Any = None, **fields: Any) -> str:
    answer = client.post("/v1/jobs", json={"queue": QUEUE, "function": function, "payload": payload} | fields)
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def wait(client: httpx.Client, job_id: str, *states: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if body.get("state") in states:
            return body
        assert time.monotonic() < deadline, f"job {job_id} stayed {body.get('state')}"
        time.sleep(0.02)


def section(page: str, region: str) -> str:
    """The live region `region` of a page."""
    match = re.search(rf'<div id="{region}"[^>]*>(.*?)\n  </div>\n</section>', page, re.S)
    assert match, f"no region {region}"
    return match.group(1)


def text(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)))


def test_unauthenticated_pages_lead_to_the_login_and_show_nothing(stack):
    client, _ = stack
    client.cookies.clear()
    for path in (
        "/console/jobs",
        f"/console/jobs/queues/{QUEUE}",
        "/console/jobs/schedules",
        f"/console/jobs/{QUEUE}.x",
    ):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login?next=")
    answer = client.post(f"/console/jobs/queues/{QUEUE}/dead/purge", data={}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


def test_the_queues_page_shows_each_queues_depths(console):
    before = console.get(f"/v1/queues/{QUEUE}").json()["counts"]
    ids = [enqueue(console, "console.needs", {"userId": "u"}, delay=600) for _ in range(3)]
    page = console.get("/console/jobs")
    assert page.status_code == 200
    row = re.search(
        rf'<th scope="row"><a href="/console/jobs/queues/{QUEUE}">{QUEUE}</a></th>(.*?)</tr>', page.text, re.S
    )
    assert row, page.text
    cells = [text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
    assert cells[0] == "running" and int(cells[2]) == before["scheduled"] + 3  # state, queued, scheduled
    for name in ("default", "email", "notify", "webhooks"):
        assert f'href="/console/jobs/queues/{name}"' in page.text
    assert console.get(f"/console/jobs?queue={QUEUE}", follow_redirects=False).headers["location"] == (
        f"/console/jobs/queues/{QUEUE}"
    )
    for job_id in ids:
        console.post(f"/v1/jobs/{job_id}/cancel")


def test_a_delayed_job_is_listed_under_delayed_and_a_running_one_under_running(console):
    release.clear()
    delayed = enqueue(console, "console.needs", {"userId": "later"}, delay=600)
    running = enqueue(console, "console.hold")
    wait(console, running, "active")
    page = console.get(f"/console/jobs/queues/{QUEUE}").text
    under_delayed, under_running = section(page, "delayed-jobs"), section(page, "running-jobs")
    assert delayed in under_delayed and delayed not in under_running
    assert running in under_running and "console.hold" in under_running and "1 of 1" in under_running
    assert len(re.findall(r"<time ", under_running)) == 2  # started, lease until
    release.set()
    wait(console, running, "completed")
    assert running not in section(console.get(f"/console/jobs/queues/{QUEUE}").text, "running-jobs")
    console.post(f"/v1/jobs/{delayed}/cancel")


def test_lists_are_paginated(console):
    ids = [enqueue(console, "console.needs", {"userId": str(i)}, delay=600 + i) for i in range(27)]
    first = console.get(f"/console/jobs/queues/{QUEUE}").text
    listed = section(first, "delayed-jobs")
    shown = [i for i in ids if i in listed]
    assert len(shown) == 25 and shown == ids[:25]
    link = re.search(r'<a rel="next" href="([^"]+)"', listed)
    assert link, "no next page"
    rest = section(console.get(html.unescape(link.group(1))).text, "delayed-jobs")
    assert [i for i in ids if i in rest] == ids[25:]
    for job_id in ids:
        console.post(f"/v1/jobs/{job_id}/cancel")


def test_a_dead_job_is_inspected_with_its_error_then_replayed_and_it_completes(console):
    job_id = enqueue(console, "console.flaky", {"name": "<script>x</script>"})
    wait(console, job_id, "dead")
    queue_page = console.get(f"/console/jobs/queues/{QUEUE}").text
    dead = section(queue_page, "dead-letters")
    assert job_id in dead and "NonRetryable: first run of &lt;script&gt;x&lt;/script&gt; &lt;b&gt;refused" in dead

    page = console.get(f"/console/jobs/{job_id}")
    assert page.status_code == 200
    assert "<script>x</script>" not in page.text  # the payload is escaped
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text
    assert "NonRetryable: first run of &lt;script&gt;" in page.text and "console-worker" in page.text
    assert 'class="badge badge-dead"' in page.text and 'data-live="2"' not in page.text  # finished: not live

    answer = post_form(console, f"/console/jobs/queues/{QUEUE}/dead/replay", {"id": job_id}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/console/jobs/{job_id}"
    after = console.get(answer.headers["location"]).text
    assert f"Replayed {job_id}" in after
    done = wait(console, job_id, "completed")
    assert done["result"] == {"done": "<script>x</script>"} and len(done["errors"]) == 1
    finished = console.get(f"/console/jobs/{job_id}").text
    assert "badge-completed" in finished and "&lt;script&gt;x&lt;/script&gt;" in finished
    assert job_id not in section(console.get(f"/console/jobs/queues/{QUEUE}").text, "dead-letters")


def test_a_running_job_page_is_live(console):
    release.clear()
    job_id = enqueue(console, "console.hold")
    wait(console, job_id, "active")
    page = console.get(f"/console/jobs/{job_id}").text
    assert 'id="job-detail" data-live="2"' in page and "badge-active" in page
    release.set()
    wait(console, job_id, "completed")


def test_a_dead_job_replayed_with_another_payload_completes(console):
    job_id = enqueue(console, "console.needs", {"account": 7})
    wait(console, job_id, "dead")
    assert 'name="payload"' in console.get(f"/console/jobs/{job_id}").text
    bad = post_form(console, f"/console/jobs/{job_id}/replay-changed", {"payload": "{not json"})
    assert "is not JSON" in bad.text and wait(console, job_id, "dead")["attempts"] == 1
    big = post_form(console, f"/console/jobs/{job_id}/replay-changed", {"payload": json.dumps({"x": "y" * 3000})})
    assert "takes at most 2000" in big.text
    answer = post_form(console, f"/console/jobs/{job_id}/replay-changed", {"payload": '{"userId": "u_42"}'})
    assert f"Replayed {job_id} with the new payload" in answer.text
    done = wait(console, job_id, "completed")
    assert done["result"] == {"sentTo": "u_42"} and done["payload"] == {"userId": "u_42"}


def test_purge_one_then_all(console):
    ids = [enqueue(console, "console.needs", {}) for _ in range(3)]
    for job_id in ids:
        wait(console, job_id, "dead")
    one = post_form(console, f"/console/jobs/queues/{QUEUE}/dead/purge", {"id": ids[0]})
    assert f"Purged {ids[0]}." in one.text
    assert console.get(f"/v1/jobs/{ids[0]}").status_code == 404
    again = post_form(console, f"/console/jobs/queues/{QUEUE}/dead/purge", {"id": ids[0]})
    assert "is not a dead letter" in again.text
    everything = post_form(console, f"/console/jobs/queues/{QUEUE}/dead/purge")
    assert re.search(r"Purged \d+ dead letters of console", everything.text)
    assert console.get(f"/v1/queues/{QUEUE}").json()["counts"]["dead"] == 0
    assert "No dead letter." in everything.text


def test_replay_all_sends_every_dead_letter_back(console):
    ids = [enqueue(console, "console.flaky", {"name": str(i)}) for i in range(2)]
    for job_id in ids:
        wait(console, job_id, "dead")
    answer = post_form(console, f"/console/jobs/queues/{QUEUE}/dead/replay")
    assert re.search(r"Replayed \d+ dead letters of console", answer.text)
    assert [wait(console, job_id, "completed")["result"] for job_id in ids] == [{"done": "0"}, {"done": "1"}]


def test_actions_without_the_csrf_token_are_refused_and_change_nothing(console):
    job_id = enqueue(console, "console.needs", {})
    wait(console, job_id, "dead")
    origin = {"Origin": str(console.base_url).rstrip("/")}
    attempts = [
        (f"/console/jobs/queues/{QUEUE}/dead/replay", {"id": job_id}),
        (f"/console/jobs/queues/{QUEUE}/dead/purge", {"id": job_id}),
        (f"/console/jobs/queues/{QUEUE}/dead/purge", {}),
        (f"/console/jobs/{job_id}/replay-changed", {"payload": '{"userId": "u"}'}),
    ]
    for url, data in attempts:
        assert console.post(url, data=data, headers=origin).status_code == 403
        wrong = console.post(url, data=data | {"csrf_token": "x" * 43}, headers=origin)
        assert wrong.status_code == 403
        token = csrf_token(console)
        elsewhere = console.post(url, data=data | {"csrf_token": token}, headers={"Origin": "https://evil.example"})
        assert elsewhere.status_code == 403
    time.sleep(0.2)
    job = console.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "dead" and job["attempts"] == 1 and job["payload"] == {}
    post_form(console, f"/console/jobs/queues/{QUEUE}/dead/purge", {"id": job_id})


def test_schedules_show_their_spec_last_run_last_job_and_next_run(console, stack):
    deadline = time.monotonic() + 10
    while True:
        page = console.get("/console/jobs/schedules").text
        row = re.search(r'<th scope="row">tick.*?</tr>', page, re.S)
        assert row
        if "not yet" not in row.group(0):
            break
        assert time.monotonic() < deadline, "the schedule never ran"
        time.sleep(0.1)
    tick = row.group(0)
    assert "every 1s" in tick and "console.needs" in tick and f'href="/console/jobs/queues/{QUEUE}"' in tick
    last_job = re.search(r'href="/console/jobs/(console\.[^"]+)"', tick)
    assert last_job and console.get(f"/console/jobs/{last_job.group(1)}").status_code == 200
    assert len(re.findall(r"<time ", tick)) == 2  # last run, next run
    nightly = re.search(r'<th scope="row">nightly.*?</tr>', page, re.S)
    assert nightly and "0 3 * * * (Europe/Paris)" in nightly.group(0) and "not yet" in nightly.group(0)
    assert re.search(r'<time datetime="[^"]+T0[12]:00:00', nightly.group(0))  # 03:00 Paris is 01:00 or 02:00 UTC


def test_an_unknown_queue_or_job_is_a_404_page(console):
    assert console.get("/console/jobs/queues/nowhere").status_code == 404
    assert console.get(f"/console/jobs/{QUEUE}.00000000000000000000000000").status_code == 404
    assert console.get("/console/jobs/not-a-job").status_code == 404
