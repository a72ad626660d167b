"""The `stackyard` console script, run as a process against a real local server that follows
the jobs contract (jobs_api_fake): what it prints in each output format, and its exit codes
(1 an api error, 2 a usage error, 3 no api)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from jobs_api_fake import FakeJobsApi

STACKYARD = Path(sys.executable).with_name("stackyard")


@pytest.fixture(scope="module")
def running_api() -> Iterator[FakeJobsApi]:
    if not STACKYARD.exists():
        pytest.fail(f"no {STACKYARD.name} console script next to {sys.executable}: install core (make install)")
    with FakeJobsApi.running() as api:
        yield api


@pytest.fixture
def api(running_api: FakeJobsApi) -> FakeJobsApi:
    running_api.reset()
    return running_api


def run(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`stackyard ARGS` against `url`, stdin not a terminal (empty unless given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")} | {"STACKYARD_API_URL": url}
    return subprocess.run(
        [str(STACKYARD), *args],
        input=stdin or "",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_enqueue_prints_the_new_job_as_json(api: FakeJobsApi):
    options = ["--queue", "emails", "--priority", "3", "--delay", "30", "--max-attempts", "5"]
    out = ok(run(api.url, "-o", "json", "jobs", "enqueue", "reports.send", "--payload", '{"userId": "u_42"}', *options))
    job = json.loads(out)
    assert job["id"].startswith("emails.") and job["state"] == "scheduled"
    assert (job["payload"], job["priority"], job["maxAttempts"]) == ({"userId": "u_42"}, 3, 5)
    assert list(api.jobs) == [job["id"]]
    assert api.requests("POST", "/v1/jobs")[0].headers["idempotency-key"], "a key even when the caller gives none"


def test_enqueue_an_http_target_with_its_payload_from_stdin(api: FakeJobsApi):
    target = ["--http-url", "https://app.example.com/sync", "--http-method", "PUT", "--http-header", "X-Tenant: acme"]
    options = ["--payload-file", "-", "--idempotency-key", "sync-7", "--run-at", "2030-01-01T10:00:00+02:00"]
    job = json.loads(ok(run(api.url, "-o", "json", "jobs", "enqueue", *target, *options, stdin='{"account": 7}')))
    http = {"url": "https://app.example.com/sync", "method": "PUT", "headers": {"X-Tenant": "acme"}, "body": None}
    assert job["http"] == http
    assert datetime.fromisoformat(job["runAt"]) == datetime(2030, 1, 1, 8, tzinfo=UTC)
    assert job["payload"] == {"account": 7}
    assert job["idempotencyKey"] == "sync-7"


def test_get_waits_for_the_job_and_tells_its_progress_on_stderr(api: FakeJobsApi):
    job = api.add_job()
    api.script(job.id, "active", "active", "completed")
    result = run(api.url, "-o", "json", "jobs", "get", job.id, "--wait", "--poll", "0.05")
    assert json.loads(ok(result))["state"] == "completed"
    assert result.stderr.splitlines() == [
        f"{job.id}: active, attempt 1/3",
        f"{job.id}: active, attempt 2/3",
        f"{job.id}: completed, attempt 2/3",
    ], "a line for each change"


def test_get_prints_a_table_of_the_job(api: FakeJobsApi):
    job = api.add_job(payload={"userId": "u_42"})
    out = ok(run(api.url, "jobs", "get", job.id))
    rows = dict(line.split(None, 1) for line in out.splitlines() if line and not line.startswith(("RUN", "LAST")))
    assert rows["ID"] == job.id and rows["STATE"] == "queued" and rows["ATTEMPTS"] == "0/3"
    assert rows["PAYLOAD"] == '{"userId":"u_42"}'


def test_cancel(api: FakeJobsApi):
    job = api.add_job()
    assert "cancelled" in ok(run(api.url, "jobs", "cancel", job.id))
    assert api.jobs[job.id].state == "cancelled"


def test_queues_table_has_the_counts_and_mean_times(api: FakeJobsApi):
    api.queues["default"].mean_wait_ms, api.queues["default"].mean_run_ms = 12.0, 1520.0
    api.add_job(state="dead", errors=["boom"])
    api.add_job()
    header, *rows = ok(run(api.url, "jobs", "queues")).splitlines()
    columns = [
        "NAME",
        "PAUSED",
        "QUEUED",
        "SCHEDULED",
        "ACTIVE",
        "DEAD",
        "COMPLETED",
        "FAILED",
        "MEAN WAIT",
        "MEAN RUN",
    ]
    assert re.split(r"\s{2,}", header) == columns
    assert [row.split() for row in rows] == [
        ["default", "no", "1", "0", "0", "1", "0", "1", "12ms", "1.5s"],
        ["emails", "no", "0", "0", "0", "0", "0", "0", "-", "-"],
    ]


def test_yaml_output_is_the_wire_body(api: FakeJobsApi):
    listed = yaml.safe_load(ok(run(api.url, "--output", "yaml", "jobs", "queues")))
    assert [q["name"] for q in listed["items"]] == ["default", "emails"]
    assert set(listed["items"][0]["counts"]) >= {"queued", "meanWaitMs", "meanRunMs"}
    one = yaml.safe_load(ok(run(api.url, "-o", "yaml", "jobs", "queues", "emails")))
    assert one["name"] == "emails" and one["globalConcurrency"] is None


def test_dead_list_one_page_or_all(api: FakeJobsApi):
    dead = [api.add_job(state="dead", errors=[f"error {i}"]).id for i in range(5)]
    first = run(api.url, "jobs", "dead", "list", "default", "--limit", "2")
    ids = [line.split()[0] for line in ok(first).splitlines()[1:]]
    assert ids == dead[::-1][:2]
    assert f"--cursor {dead[-2]}" in first.stderr
    every = json.loads(ok(run(api.url, "-o", "json", "jobs", "dead", "list", "default", "--limit", "2", "--all")))
    assert [j["id"] for j in every["items"]] == dead[::-1] and every["nextCursor"] is None


def test_dead_show_lists_each_attempts_error(api: FakeJobsApi):
    job = api.add_job(state="dead", errors=["TimeoutError: took 60 s", "SMTPError: 554\nrejected"])
    out = ok(run(api.url, "jobs", "dead", "show", job.id))
    errors = out.split("ERRORS:\n")[1].splitlines()
    assert errors[0].split() == ["ATTEMPT", "AT", "WORKER", "ERROR"]
    assert errors[1].endswith("worker-1  TimeoutError: took 60 s")
    assert errors[2].endswith("worker-2  SMTPError: 554\\nrejected"), "one line per attempt"


def test_replay_all_without_yes_is_refused_when_nobody_can_confirm(api: FakeJobsApi):
    job = api.add_job(state="dead")
    refused = run(api.url, "jobs", "dead", "replay", "default", "--all")
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    assert api.requests("POST", "/v1/queues/default/dead/replay") == [] and api.jobs[job.id].state == "dead"
    assert run(api.url, "jobs", "dead", "purge", "default", "--all").returncode == 2
    assert ok(run(api.url, "jobs", "dead", "replay", "default", "--all", "--yes")).startswith(
        "replayed 1 dead letter of queue default"
    )
    assert api.jobs[job.id].state == "queued"


def test_purge_and_replay_by_ids_or_function(api: FakeJobsApi):
    a, b = api.add_job(state="dead").id, api.add_job(state="dead").id
    c = api.add_job(function="emails.send", state="dead").id
    purged = json.loads(ok(run(api.url, "-o", "json", "jobs", "dead", "purge", "default", "--id", a, "--id", b)))
    assert purged == {"count": 2, "ids": [a, b]} and set(api.jobs) == {c}
    out = ok(run(api.url, "jobs", "dead", "replay", "default", "--function", "emails.send"))
    assert out.splitlines() == ["replayed 1 dead letter of queue default", "ID", c]


def test_events_send(api: FakeJobsApi):
    api.waiting["order.paid"] = 3
    assert ok(run(api.url, "events", "send", "order.paid", "--data", '{"orderId": 7}')) == (
        "event order.paid resumed 3 waiting steps\n"
    )
    assert json.loads(api.requests("POST", "/v1/events")[0].body) == {"name": "order.paid", "data": {"orderId": 7}}


def test_an_api_error_exits_1_with_one_line(api: FakeJobsApi):
    missing = run(api.url, "jobs", "get", "default.nope")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "error: Not found: no job default.nope (HTTP 404)\n"
    done = api.add_job(state="completed")
    conflict = run(api.url, "jobs", "cancel", done.id)
    assert conflict.returncode == 1
    assert conflict.stderr == f"error: Conflict: job {done.id} has already finished (completed) (HTTP 409)\n"


def test_an_api_still_unavailable_after_the_retries_exits_1(api: FakeJobsApi):
    api.fail("/v1/queues", 503, retry_after="0", times=100)
    result = run(api.url, "jobs", "queues")
    assert result.returncode == 1
    assert result.stderr == "error: Service unavailable: the test made /v1/queues answer 503 (HTTP 503)\n"
    assert len(api.requests("GET", "/v1/queues")) > 1, "retried first"


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "enqueue"],
        ["jobs", "enqueue", "reports.send", "--http-url", "https://x.example"],
        ["jobs", "enqueue", "reports.send", "--payload", "{not json"],
        ["jobs", "enqueue", "reports.send", "--priority", "12"],
        ["jobs", "enqueue", "reports.send", "--run-at", "tomorrow"],
        ["jobs", "enqueue", "not a function name"],
        ["jobs", "dead", "replay", "default"],
        ["jobs", "dead", "purge", "default", "--all", "--function", "reports.send", "--yes"],
        ["-o", "xml", "jobs", "queues"],
        ["jobs", "nothing"],
    ],
)
def test_usage_errors_exit_2_without_calling_the_api(api: FakeJobsApi, args: list[str]):
    result = run(api.url, *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and api.seen == []


def test_no_api_exits_3(api: FakeJobsApi):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = run(url, "jobs", "queues")
    assert result.returncode == 3
    assert result.stderr.startswith(f"error: cannot reach the stackyard api at {url}: ")
    assert len(result.stderr.splitlines()) == 1
    assert run(api.url, "--api", url, "jobs", "get", "default.x").returncode == 3, "--api wins over the environment"
