"""`stackyard notify` and `stackyard webhooks`, run as processes against the real api (in-thread),
a real worker, Redis and FerretDB: trigger (and --wait), runs with filters, one run with its
steps, cancel, preferences of oneself and of a user with --set; webhooks list, test,
deliveries, delivery, replay, enable. The json and yaml outputs parse; a failure exits
non-zero with one line on stderr. Exit codes: 0 done, 1 the api refused, 2 usage.

Redis database 20, as test_client_notify (one module after the other, never both at once)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from cli_process import STACKYARD, ok, one_line_error, run_cli
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink

REDIS_DATABASE = 20
PASSWORD = "a long and quiet river"

WORKFLOWS: dict[str, dict[str, Any]] = {
    "welcome": {"steps": [{"name": "hello", "inApp": {"title": "Welcome, {{ data.name }}"}}]},
    "later": {"steps": [{"name": "wait", "delay": {"duration": "1h"}}, {"name": "note", "inApp": {"title": "Later"}}]},
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, mongo_server: Any) -> Iterator[AuthStack]:
    if not STACKYARD.exists():
        pytest.fail(f"no {STACKYARD.name} console script next to {sys.executable}: install core (make install)")
    with SmtpSink() as sink:
        redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
        stack = AuthStack(tmp_path_factory.mktemp("cli-notify"), redis_url, mongo_server.url, sink, run_worker=True)
        yield from stack.serve()


@pytest.fixture
def stack(running: AuthStack) -> AuthStack:
    running.reset()
    running.configure({"requireEmailVerification": False}, notification_workflows=WORKFLOWS)
    return running


def run(
    stack: AuthStack, *args: str, token: str | None = None, admin: bool = True
) -> subprocess.CompletedProcess[bytes]:
    environment = {"STACKYARD_API_TOKEN": token} if token else {}
    if admin:
        environment["STACKYARD_ADMIN_KEY"] = ADMIN_API_KEY
    return run_cli(stack.url, *args, environment=environment, timeout=60)


def sign_up(stack: AuthStack, email: str) -> tuple[str, str]:
    answer = httpx.post(f"{stack.url}/v1/auth/signup", json={"email": email, "password": PASSWORD}, timeout=10)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["accessToken"]
    me = httpx.get(f"{stack.url}/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return me.json()["id"], token


def test_trigger_wait_list_and_show_a_run_with_its_steps(stack: AuthStack):
    ana_id, _ = sign_up(stack, "ana@example.com")
    waited = ok(
        run(stack, "-o", "json", "notify", "trigger", "welcome", "--to", ana_id, "--data", '{"name": "Ana"}', "--wait")
    )
    assert waited["trigger"]["id"].startswith("ntr_") and waited["trigger"]["recipients"] == 1
    (only,) = waited["runs"]
    assert only["status"] == "completed" and only["recipient"] == ana_id

    bob_id, _ = sign_up(stack, "bob@example.com")
    accepted = ok(run(stack, "-o", "json", "notify", "trigger", "welcome", "--to", ana_id, "--to", bob_id))
    assert accepted["recipients"] == 2 and accepted["status"] == "accepted"

    listed = yaml.safe_load(run(stack, "-o", "yaml", "notify", "runs", "--recipient", ana_id, "--all").stdout)
    assert only["id"] in {r["id"] for r in listed["items"]} and all(r["recipient"] == ana_id for r in listed["items"])
    deadline = time.monotonic() + 20  # two recipients: their runs are made by a fan-out job
    while len(ok(run(stack, "-o", "json", "notify", "runs", "--trigger", accepted["id"]))["items"]) < 2:
        assert time.monotonic() < deadline, "the fan-out made no runs"
        time.sleep(0.2)

    shown = ok(run(stack, "-o", "json", "notify", "run", only["id"]))
    assert [(s["name"], s["status"]) for s in shown["steps"]] == [("hello", "done")]
    table = run(stack, "notify", "run", only["id"]).stdout.decode()
    assert "STEPS:" in table and "hello" in table and "in_app" in table and "done" in table


def test_cancel_a_waiting_run_and_the_status_filter(stack: AuthStack):
    accepted = ok(run(stack, "-o", "json", "notify", "trigger", "later", "--to", '{"id": "ext-1"}'))
    deadline = time.monotonic() + 20
    while not (waiting := ok(run(stack, "-o", "json", "notify", "runs", "--status", "waiting"))["items"]):
        assert time.monotonic() < deadline, "the run never waited"
        time.sleep(0.2)
    assert waiting[0]["triggerId"] == accepted["id"]
    cancelled = ok(run(stack, "-o", "json", "notify", "cancel", waiting[0]["id"]))
    assert cancelled["status"] == "cancelled"
    assert ok(run(stack, "-o", "json", "notify", "runs", "--status", "waiting"))["items"] == []


def test_preferences_of_oneself_and_of_a_user_with_set(stack: AuthStack):
    ana_id, token = sign_up(stack, "ana@example.com")
    mine = ok(run(stack, "-o", "json", "notify", "preferences", "--set", "email=off", token=token, admin=False))
    assert mine["channels"]["email"] is False
    theirs = ok(
        run(
            stack,
            "-o",
            "json",
            "notify",
            "preferences",
            ana_id,
            "--set",
            "workflow.welcome.inApp=off",
            "--set",
            "category.news.push=on",
        )
    )
    assert theirs["channels"]["email"] is False
    assert theirs["workflows"]["welcome"]["channels"]["inApp"] is False
    assert theirs["categories"]["news"]["channels"]["push"] is True
    table = run(stack, "notify", "preferences", ana_id).stdout.decode()
    assert "workflow" in table and "welcome" in table and "inApp=off" in table


def test_failures_exit_non_zero_with_one_line(stack: AuthStack):
    unknown = one_line_error(run(stack, "notify", "trigger", "no-such-workflow", "--to", "u-1"), 1)
    assert "(HTTP 404)" in unknown
    missing = one_line_error(run(stack, "notify", "run", "nrun_00000000000000000000000000"), 1)
    assert "(HTTP 404)" in missing
    no_key = one_line_error(run(stack, "notify", "runs", admin=False), 2)
    assert "admin API key" in no_key
    wrong = run(stack, "notify", "--admin-key", "wrong", "runs", admin=False)
    assert "(HTTP 401)" in one_line_error(wrong, 1)
    bad_json = run(stack, "notify", "trigger", "welcome", "--to", "u-1", "--data", "{nope")
    assert bad_json.returncode == 2 and "not JSON" in bad_json.stderr.decode()
    bad_switch = run(stack, "notify", "preferences", "u-1", "--set", "fax=off")
    assert bad_switch.returncode == 2 and "channel" in bad_switch.stderr.decode()
    down = subprocess.run(
        [str(STACKYARD), "--api", "http://127.0.0.1:9", "notify", "--admin-key", "k", "runs"],
        capture_output=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")},
    )
    assert "cannot reach" in one_line_error(down, 3)


def test_webhooks_list_test_deliveries_replay_and_enable(stack: AuthStack):
    stack.configure(
        {"requireEmailVerification": False},
        notification_workflows=WORKFLOWS,
        webhooks={"crm": {"url": "http://127.0.0.1:9/hooks", "events": ["user.created"], "maxAttempts": 1}},
        extra_credentials={"webhook.crm.signingSecret": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="},
    )
    listed = ok(run(stack, "-o", "json", "webhooks", "list"))
    assert [w["name"] for w in listed["items"]] == ["crm"]
    sent = ok(run(stack, "-o", "json", "webhooks", "test", "crm"))
    assert sent["id"].startswith("whd_") and sent["eventType"] == "webhook.test"
    deadline = time.monotonic() + 20
    while (found := ok(run(stack, "-o", "json", "webhooks", "delivery", sent["id"])))["status"] == "pending":
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    assert found["status"] == "failed" and found["attempts"], found  # nothing listens on port 9
    page = ok(run(stack, "-o", "json", "webhooks", "deliveries", "crm"))
    assert [d["id"] for d in page["items"]] == [sent["id"]]
    again = ok(run(stack, "-o", "json", "webhooks", "replay", sent["id"]))
    assert again["replayOf"] == sent["id"]
    assert ok(run(stack, "-o", "json", "webhooks", "enable", "crm"))["enabled"] is True
    assert "(HTTP 404)" in one_line_error(run(stack, "webhooks", "test", "nope"), 1)
