"""JobQueues and Schedules applied with kubectl: the API server rejects what a CEL rule
can say, the operator reports Ready and folds them into the Stack's config, an invalid
cron expression or time zone gives Ready=False with the reason, and the run times the
worker records in a Schedule's status survive the operator's own status writes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from stackyard_harness.programs import service_account_kubeconfig

from .conftest import stack_manifest, wait_for

pytestmark = pytest.mark.usefixtures("operator")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def job_queue(name: str = "webhooks", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": name},
        "spec": {"stackRef": {"name": "demo"}} | spec,
    }


def schedule(name: str = "nightly", **spec):
    clock = {} if "interval" in spec or "cron" in spec else {"cron": "0 3 * * *"}
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": {"stackRef": {"name": "demo"}, "job": {"function": "reports.nightly"}} | clock | spec,
    }


def ready(namespace, kind, name, status="True"):
    obj = namespace.get(kind, name) or {}
    condition = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
    if condition and condition["status"] == status and condition["observedGeneration"] == obj["metadata"]["generation"]:
        return obj
    return None


def config(namespace):
    return json.loads(namespace.get("configmap", "demo-config")["data"]["config.json"])


def test_queues_and_schedules_applied_with_kubectl_are_ready_and_in_the_config(namespace, backends, services):
    namespace.secret("jobs-signing", hmac="whsec_live_5f4e3d2c1b")
    namespace.apply(
        [
            stack_manifest(),
            job_queue(
                concurrency=4,
                retry={"maxAttempts": 3},
                httpTarget={
                    "allowedUrls": ["https://app.example.com/jobs/"],
                    "signingSecretRef": {"name": "jobs-signing", "key": "hmac"},
                },
            ),
            schedule(timeZone="Europe/Paris", job={"function": "reports.nightly", "payload": ["any", {"json": 1}]}),
            schedule(
                "sync",
                interval="15m",
                job={"queue": "webhooks", "http": {"url": "https://app.example.com/jobs/sync", "body": "now"}},
            ),
        ]
    )
    for kind, name in [("jobqueue", "webhooks"), ("schedule", "nightly"), ("schedule", "sync")]:
        obj = wait_for(lambda k=kind, n=name: ready(namespace, k, n), what=f"{kind} {name} Ready")
        assert obj["status"]["conditions"][0]["reason"] == "InForce"

    applied = config(namespace)
    queue = applied["jobQueues"]["webhooks"]
    assert (queue["concurrency"], queue["retry"]["maxAttempts"], queue["retry"]["maxBackoff"]) == (4, 3, "1h")
    assert applied["schedules"]["nightly"]["timeZone"] == "Europe/Paris"
    assert applied["schedules"]["nightly"]["job"]["payload"] == ["any", {"json": 1}], "any JSON is kept"
    assert applied["schedules"]["sync"]["job"]["http"] == {
        "url": "https://app.example.com/jobs/sync",
        "method": "POST",
        "headers": {},
        "body": "now",
    }
    credentials = namespace.get("secret", "demo-credentials")["data"]
    assert base64.b64decode(credentials["jobqueue.webhooks.signingSecret"]).decode() == "whsec_live_5f4e3d2c1b"
    assert "whsec_live_5f4e3d2c1b" not in json.dumps(namespace.get("configmap", "demo-config"))
    members = wait_for(
        lambda: (m := (namespace.get("stack", "demo") or {}).get("status", {}).get("members")) and m["Schedule"] and m,
        what="the Stack's member counts",
    )
    assert (members["JobQueue"], members["Schedule"]) == (1, 2)

    listing = namespace.kubectl("get", "sched", "nightly").stdout.split("\n")
    assert listing[0].split()[:3] == ["NAME", "SCHEDULE", "INTERVAL"]
    assert "0 3 * * *" in listing[1]

    worker = services("worker", namespace)
    described = wait_for(
        lambda: (body := httpx.get(f"{worker.url}/v1/config").json()).get("schedules") and body,
        what="the worker's /v1/config",
    )
    assert (described["jobQueues"], described["schedules"]) == (["webhooks"], ["nightly", "sync"])


def test_the_api_server_rejects_what_the_cel_rules_say(namespace):
    rejected = {
        "exactly one of cron and interval must be set": schedule(cron="@daily", interval="1h"),
        "interval must be at least 1s": schedule(interval="500ms"),
        "exactly one of job.function and job.http must be set": schedule(
            job={"function": "reports.nightly", "http": {"url": "https://app.example.com/jobs/x"}}
        ),
        "maxBackoff must be at least initialBackoff": job_queue(retry={"initialBackoff": "10m", "maxBackoff": "1m"}),
        "visibilityTimeout must be between 1s and 1h": job_queue(visibilityTimeout="2h"),
        "timeout must be between 1s and 24h": job_queue(timeout="500ms"),
        "interval must be at least 1ms": job_queue(rateLimit={"limit": 10, "interval": "0s"}),
    }
    for message, manifest in rejected.items():
        result = namespace.try_apply(manifest)
        assert result.returncode != 0 and message in result.stderr, (message, result.stderr)
    no_clock = schedule()
    del no_clock["spec"]["cron"]
    result = namespace.try_apply(no_clock)
    assert "exactly one of cron and interval must be set" in result.stderr
    assert namespace.get("schedule", "nightly") is None and namespace.get("jobqueue", "webhooks") is None


def test_invalid_cron_or_time_zone_gives_ready_false_and_the_last_good_version_stays(namespace, backends):
    namespace.apply([stack_manifest(), schedule(), job_queue()])
    wait_for(lambda: ready(namespace, "schedule", "nightly"), what="the schedule Ready")

    namespace.apply([schedule(cron="0 25 * * *"), schedule("elsewhere", timeZone="Mars/Olympus_Mons")])
    broken = wait_for(lambda: ready(namespace, "schedule", "nightly", "False"), what="the broken edit Ready=False")
    condition = broken["status"]["conditions"][0]
    assert condition["reason"] == "Invalid"
    assert condition["message"] == (
        "spec.cron: invalid cron expression '0 25 * * *'; the last good version stays in force"
    )
    unknown = wait_for(lambda: ready(namespace, "schedule", "elsewhere", "False"), what="unknown zone Ready=False")
    assert unknown["status"]["conditions"][0]["message"].startswith(
        "spec.timeZone: unknown time zone 'Mars/Olympus_Mons'"
    )

    applied = config(namespace)
    assert applied["schedules"]["nightly"]["cron"] == "0 3 * * *", "the last good version, not the broken one"
    assert "elsewhere" not in applied["schedules"] and "webhooks" in applied["jobQueues"]
    members_ready = namespace.condition("stack", "demo", "MembersReady")
    assert members_ready["status"] == "False" and "Schedule elsewhere: Invalid" in members_ready["message"]
    assert namespace.condition("stack", "demo")["status"] == "True"

    namespace.apply(schedule(cron="@hourly"))
    wait_for(lambda: ready(namespace, "schedule", "nightly"), what="the fixed schedule Ready")
    assert config(namespace)["schedules"]["nightly"]["cron"] == "@hourly"


def test_run_times_the_worker_records_survive_the_operators_status_writes(namespace, backends, cluster):
    namespace.apply([stack_manifest(), schedule(), job_queue()])
    wait_for(lambda: ready(namespace, "schedule", "nightly"), what="the schedule Ready")

    # What the worker does, with the rights of the Stack's own ServiceAccount.
    kubeconfig = service_account_kubeconfig(cluster, namespace.name, "demo-stackyard")
    runs = {
        "lastRunTime": "2026-11-25T02:00:00Z",
        "lastJobId": "job_01",
        "lastResult": "completed",
        "nextRunTime": "2026-11-26T02:00:00Z",
    }
    patch = json.dumps({"status": runs})
    as_worker = ("-n", namespace.name, "--type=merge", "--subresource=status", "-p", patch)
    recorded = cluster.kubectl("patch", "schedule", "nightly", *as_worker, kubeconfig=kubeconfig, check=False)
    assert recorded.returncode == 0, recorded.stderr
    refused = cluster.kubectl("patch", "jobqueue", "webhooks", *as_worker, kubeconfig=kubeconfig, check=False)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()

    # A spec change makes the operator write the status again (a new observedGeneration, Paused).
    namespace.apply(schedule(paused=True))
    paused = wait_for(
        lambda: (o := ready(namespace, "schedule", "nightly")) and o["status"]["observedGeneration"] == 2 and o,
        what="the paused schedule reconciled",
    )
    assert paused["status"]["conditions"][0]["reason"] == "Paused"
    assert {k: paused["status"].get(k) for k in runs} == runs, "the operator must keep what the worker recorded"
    listing = namespace.kubectl("get", "schedule", "nightly").stdout
    assert "2026-11-26T02:00:00Z" in listing


def test_the_examples_apply_and_become_ready(namespace, backends):
    for example in ("stack.yaml", "job-queue.yaml", "schedule.yaml"):
        namespace.kubectl("apply", "-f", str(EXAMPLES / example))
    wait_for(lambda: ready(namespace, "jobqueue", "webhooks"), what="the example JobQueue Ready")
    wait_for(lambda: ready(namespace, "schedule", "nightly-report"), what="the example Schedule Ready")
    applied = config(namespace)
    assert "webhooks" in applied["jobQueues"] and "nightly-report" in applied["schedules"]


def test_the_worker_records_each_run_in_the_schedule_status(namespace, backends, services):
    namespace.apply(
        [
            stack_manifest(),
            schedule(
                "every-second",
                interval="1s",
                job={"function": "tests.record", "payload": {"key": "live-schedule-runs"}},
            ),
        ]
    )
    wait_for(lambda: ready(namespace, "schedule", "every-second"), what="the Schedule Ready")
    services(
        "worker",
        namespace,
        env={"STACKYARD_JOB_MODULES": "tests.integration.jobfns", "PYTHONPATH": str(EXAMPLES.parent)},
    )

    def recorded():
        status = (namespace.get("schedule", "every-second") or {}).get("status", {})
        return status if status.get("lastJobId") and status.get("lastResult") == "completed" else None

    status = wait_for(recorded, timeout=30, what="a run, after a completed one, in the Schedule's status")
    assert status["lastJobId"].startswith("default.")
    assert status["nextRunTime"] > status["lastRunTime"]
    assert ready(namespace, "schedule", "every-second"), "the worker's writes leave the operator's conditions alone"
