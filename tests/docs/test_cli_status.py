"""`stackyard status`, `stackyard config` and `stackyard ratelimit`, run as processes against the
stack of `make up` (examples/*.yaml in namespace default), as a newcomer's terminal would after
`source .stackyard/stack.env`: the screen names Stack demo with its conditions and every member
of the examples; the json's config hash is the Stack's and the api's; resend's breaker opens
after failed sends; a Stack that does not exist, an api or a cluster that cannot be reached end
with one line. Rate-limit keys and email addresses are this file's own (`cli-status`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

# cli_process (run_cli, ok, one_line_error) is the CLI tests' helper of core/tests, which is on
# sys.path when pytest collects core/tests (rootdir-relative prepend); here it may not be.
CORE_TESTS = str(Path(__file__).resolve().parents[2] / "core" / "tests")
if CORE_TESTS not in sys.path:
    sys.path.insert(0, CORE_TESTS)
from cli_process import STACKYARD, ok, one_line_error, run_cli  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STACK = "demo"


@pytest.fixture(scope="module")
def env(stack_env: dict[str, str]) -> dict[str, str]:
    if not STACKYARD.exists():
        pytest.fail(f"no {STACKYARD.name} console script next to {sys.executable}: install core (make install)")
    return stack_env


def stackyard(env: dict[str, str], *args: str, **overrides: str) -> subprocess.CompletedProcess[bytes]:
    environment = env | overrides
    return run_cli(environment["STACKYARD_API_URL"], *args, environment=environment)


def kubectl(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["kubectl", *args], capture_output=True, env=os.environ | env, text=True, timeout=30, check=True
    )
    return done.stdout


def example_members() -> set[tuple[str, str]]:
    """(kind, name) of every stackyard resource of examples/*.yaml but the Stack."""
    members = set()
    for path in EXAMPLES.glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["apiVersion"].startswith("stackyard.dev/") and document["kind"] != "Stack":
                members.add((document["kind"], document["metadata"]["name"]))
    return members


def section(text: str, title: str) -> list[str]:
    """The lines of the plain table titled `title` (its header first)."""
    lines = text.splitlines()
    start = lines.index(f"{title}:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def status_json(env: dict[str, str]) -> dict[str, Any]:
    body = ok(stackyard(env, "-o", "json", "status", STACK))
    [stack] = body["stacks"]
    assert isinstance(stack, dict)
    return body


def test_status_table_shows_the_stack_its_conditions_members_and_queues(env: dict[str, str]):
    done = stackyard(env, "status")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b"", "progress is for terminals; piped, stderr stays empty"
    text = done.stdout.decode()
    assert f"STACK            {STACK} (namespace default)" in text
    conditions = section(text, "CONDITIONS")
    assert conditions[0].split() == ["TYPE", "STATUS", "REASON", "MESSAGE"]
    assert any(line.split()[:3] == ["Ready", "True", "ConfigApplied"] for line in conditions[1:]), conditions
    shown = {tuple(line.split()[:2]) for line in section(text, "MEMBERS")[1:]}
    assert example_members() <= shown, example_members() - shown
    providers = {line.split()[0] for line in section(text, "EMAIL PROVIDERS")[1:]}
    assert {"resend", "smtp-fallback"} <= providers
    queues = section(text, "QUEUES")
    assert queues[0].split() == ["NAME", "PAUSED", "QUEUED", "SCHEDULED", "ACTIVE", "DEAD"]
    assert any(line.split()[0] == "webhooks" for line in queues[1:])  # the example JobQueue


def test_status_json_config_hash_is_the_stacks_and_the_apis(env: dict[str, str]):
    deadline = time.monotonic() + 30  # a config another test changed is applied within a second or two
    while True:
        body = status_json(env)
        [stack] = body["stacks"]
        applied = kubectl(env, "get", "stack", STACK, "-n", "default", "-o", "jsonpath={.status.configHash}")
        if (stack["configHash"], body["api"]["configHash"]) == (applied, applied) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert stack["configHash"] == applied == body["api"]["configHash"] == stack["apiConfigHash"]
    assert stack["configInSync"] is True
    assert ok(stackyard(env, "-o", "json", "config"))["hash"] == applied
    ready = next(c for c in stack["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"]
    kinds = {m["kind"] for m in stack["members"]}
    assert {kind for kind, _ in example_members()} <= kinds
    articles = next(m for m in stack["members"] if (m["kind"], m["name"]) == ("SearchIndex", "articles"))
    assert articles["ready"] == "True" and isinstance(articles["columns"]["documents"], int)
    assert body["api"]["reachable"] is True and body["api"]["error"] is None
    webhooks = next(q for q in body["api"]["queues"] if q["name"] == "webhooks")
    assert all(isinstance(webhooks[k], int) for k in ("queued", "scheduled", "active", "dead"))
    assert yaml.safe_load(stackyard(env, "-o", "yaml", "status", STACK).stdout)["namespace"] == "default"


def test_resend_breaker_opens_after_failed_sends(env: dict[str, str]):
    # examples/email-provider.yaml: resend (priority 10, the default failureThreshold of 5)
    # never sends under make up, smtp-fallback always does; each email tries resend first
    # until its breaker opens. Another test may have opened it already: it stays open or
    # half-open (its probes fail too), never closed.
    for i in range(6):
        sent = stackyard(
            env, "-o", "json", "emails", "send", "--from", "hello@acme.dev",
            "--to", f"cli-status-{i}@example.com", "--subject", "breaker", "--text", "hello",
        )  # fmt: skip
        ok(sent)
    deadline = time.monotonic() + 90
    while True:
        providers = {p["name"]: p for p in status_json(env)["stacks"][0]["emailProviders"]}
        breaker = providers["resend"]["breaker"] or {}
        if breaker.get("timesOpened", 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert breaker["timesOpened"] >= 1 and breaker["state"] in ("open", "half_open"), providers["resend"]
    assert providers["resend"]["lastAttempt"]["outcome"] != "sent"
    assert (providers["smtp-fallback"]["breaker"] or {}).get("state", "closed") == "closed"
    rows = [line.split() for line in section(stackyard(env, "status").stdout.decode(), "EMAIL PROVIDERS")[1:]]
    [resend] = [row for row in rows if row[0] == "resend"]
    assert "open" in resend or "half_open" in resend, resend


ORPHAN = """
apiVersion: stackyard.dev/v1alpha1
kind: EmailTemplate
metadata: {name: cli-status-orphan}
spec:
  stackRef: {name: cli-status-nowhere}
  subject: Hello
  text: Hello
"""


def test_a_resource_of_no_stack_is_shown_as_an_orphan(env: dict[str, str]):
    subprocess.run(
        ["kubectl", "apply", "-n", "default", "-f", "-"], input=ORPHAN.encode(), env=os.environ | env, check=True
    )
    try:
        body = ok(stackyard(env, "-o", "json", "status"))
        orphans = {(o["kind"], o["name"]): o for o in body["orphans"]}
        assert orphans[("EmailTemplate", "cli-status-orphan")]["stackRef"] == "cli-status-nowhere"
        assert all(m["name"] != "cli-status-orphan" for m in body["stacks"][0]["members"])
        rows = section(stackyard(env, "status").stdout.decode(), "ORPHANS (OF NO STACK HERE)")
        assert any(row.split()[:3] == ["EmailTemplate", "cli-status-orphan", "cli-status-nowhere"] for row in rows)
        assert ok(stackyard(env, "-o", "json", "status", STACK))["orphans"] == []  # one Stack asked for
    finally:
        kubectl(env, "delete", "emailtemplate", "cli-status-orphan", "-n", "default", "--ignore-not-found")


def test_status_of_a_stack_that_does_not_exist_fails_with_one_line(env: dict[str, str]):
    line = one_line_error(stackyard(env, "status", "no-such-stack"), 1)
    assert line == "error: no Stack no-such-stack in namespace default"


def test_status_with_the_api_unreachable_prints_the_cluster_and_exits_3(env: dict[str, str]):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}"
    done = stackyard(env, "status", STACKYARD_API_URL=url)
    assert one_line_error(done, 3).startswith(f"error: cannot reach the stackyard api at {url}")
    text = done.stdout.decode()
    assert f"{STACK} (namespace default)" in text and "unreachable" in text
    body = json.loads(stackyard(env, "-o", "json", "status", STACKYARD_API_URL=url).stdout)
    assert body["stacks"][0]["configHash"] and body["api"]["reachable"] is False
    assert body["stacks"][0]["configInSync"] is None


def test_status_with_the_cluster_unreachable_fails_with_one_line(env: dict[str, str], tmp_path: Path):
    kubeconfig = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    for cluster in kubeconfig["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    done = stackyard(env, "status", KUBECONFIG=str(tmp_path / "kubeconfig"))
    assert one_line_error(done, 3).startswith("error: cannot reach the Kubernetes API")
    assert done.stdout == b""


def test_ratelimit_check_allowed_then_denied(env: dict[str, str]):
    # examples/rate-limit-policy.yaml: auth-per-ip, a token bucket with a burst of 20 that
    # refills 10 a minute. The denied checks cost the whole burst: a token refilled while a
    # slow machine starts the next CLI process must not turn them into allowed ones.
    key = f"cli-status-{uuid.uuid4().hex[:12]}"
    allowed = ok(stackyard(env, "-o", "json", "ratelimit", "check", "auth-per-ip", "--key", key, "--cost", "20"))
    assert allowed["allowed"] is True and allowed["remaining"] == 0 and allowed["key"] == key
    denied = stackyard(env, "-o", "json", "ratelimit", "check", "auth-per-ip", "--key", key, "--cost", "20")
    assert denied.returncode == 1 and denied.stderr == b""
    decision = json.loads(denied.stdout)
    assert decision["allowed"] is False and decision["retryAfter"] > 0
    table = stackyard(env, "ratelimit", "check", "auth-per-ip", "--key", key, "--cost", "20")
    assert table.returncode == 1 and table.stdout.decode().startswith("denied: retry after ")
    policies = ok(stackyard(env, "-o", "json", "ratelimit", "policies"))["policies"]
    assert policies["auth-per-ip"]["spec"]["burst"] == 20
    unknown = one_line_error(stackyard(env, "ratelimit", "check", "no-such-policy", "--key", key), 1)
    assert "no-such-policy" in unknown
