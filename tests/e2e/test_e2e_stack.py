"""The chart, its operator and the Stack's api and worker as pods on a real cluster.

The tests run in this file's order on one release (conftest.py): the Stack becomes Ready,
then it serves, then `helm test` and `helm upgrade`, and last the Stack is deleted.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import httpx
import pytest
from stackyard.jobs.http_target import verify as verify_signature

from .conftest import CHART, STACK, Cluster, Sink, wait_for

QUEUE = "e2e"
# The first test also waits for the release (helm install, pods started): more than the default 300 s may be needed.
pytestmark = pytest.mark.timeout(900)


def test_the_stack_becomes_ready_with_its_api_and_worker_running_as_pods(release: Cluster, stack: dict[str, Any]):
    assert stack["status"]["observedGeneration"] == stack["metadata"]["generation"]
    pods = release.items("pods", "-l", f"app.kubernetes.io/instance={STACK}")
    running = {
        p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods if p["status"]["phase"] == "Running"
    }
    assert {"api", "worker"} <= running, release.describe_pods()
    for name in (f"{STACK}-api", f"{STACK}-worker"):
        owners = release.get("deployment", name)["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"]) for o in owners] == [("Stack", STACK)]


def test_a_signup_sends_a_verification_mail_through_the_smtp_provider(release: Cluster, sink: Sink, api: httpx.Client):
    release.apply(
        {
            "apiVersion": "stackyard.dev/v1alpha1",
            "kind": "EmailProvider",
            "metadata": {"name": "e2e-smtp"},
            "spec": {
                "stackRef": {"name": STACK},
                "type": "smtp",
                "priority": 10,
                "smtp": {"host": sink.host, "port": 1025, "security": "none"},
            },
        }
    )
    wait_for(lambda: release.ready("emailprovider", "e2e-smtp"), timeout=60, what="EmailProvider e2e-smtp Ready")
    address = f"new-{secrets.token_hex(4)}@e2e.example.com"

    def signed_up() -> bool:
        response = api.post("/v1/auth/signup", json={"email": address, "password": "a long e2e passphrase 42!"})
        assert response.status_code in (202, 503), response.text
        return response.status_code == 202

    wait_for(signed_up, timeout=30, what="the signup accepted")
    mail = wait_for(lambda: sink.mails_to(address), timeout=60, what=f"the verification mail to {address}")[0]
    assert mail["sender"].endswith("@e2e.example.com")
    assert "verify" in mail["data"].lower()


def test_a_rate_limit_policy_applied_with_kubectl_turns_on_429s_within_2_s(release: Cluster, api: httpx.Client):
    path = f"/v1/e2e-{secrets.token_hex(3)}/items"
    assert api.get(path).status_code == 404
    release.apply(
        {
            "apiVersion": "stackyard.dev/v1alpha1",
            "kind": "RateLimitPolicy",
            "metadata": {"name": "e2e-items"},
            "spec": {
                "stackRef": {"name": STACK},
                "match": {"paths": [path]},
                "key": {"type": "global"},
                "algorithm": "fixedWindow",
                "limit": 1,
                "window": "1h",
            },
        }
    )
    applied = time.monotonic()
    wait_for(lambda: api.get(path).status_code == 429, timeout=10, interval=0.05, what="a 429")
    took = time.monotonic() - applied
    assert took < 2.0, f"the policy took {took:.2f} s from kubectl apply to a 429"
    refused = api.get(path)
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["RateLimit-Policy"] == '"e2e-items";q=1;w=3600'
    wait_for(lambda: release.ready("ratelimitpolicy", "e2e-items"), timeout=30, what="the policy Ready")


def job_queue(sink: Sink) -> dict[str, Any]:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "JobQueue",
        "metadata": {"name": QUEUE},
        "spec": {
            "stackRef": {"name": STACK},
            "concurrency": 2,
            "retry": {"maxAttempts": 5, "initialBackoff": "1s", "maxBackoff": "5s"},
            "timeout": "10s",
            "httpTarget": {
                "allowedUrls": [f"http://{sink.host}:8000/jobs/"],
                "signingSecretRef": {"name": "e2e-jobs", "key": "hmac"},
            },
        },
    }


def test_a_job_and_a_schedule_run(release: Cluster, sink: Sink, api: httpx.Client):
    release.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e2e-jobs"}, "stringData": {"hmac": "e2e-hmac"}},
        job_queue(sink),
        {
            "apiVersion": "stackyard.dev/v1alpha1",
            "kind": "Schedule",
            "metadata": {"name": "e2e-tick"},
            "spec": {
                "stackRef": {"name": STACK},
                "interval": "2s",
                "job": {"queue": QUEUE, "http": {"url": f"http://{sink.host}:8000/jobs/tick", "body": {"tick": True}}},
                "overlapPolicy": "skip",
            },
        },
    )
    for kind, name in (("jobqueue", QUEUE), ("schedule", "e2e-tick")):
        wait_for(lambda k=kind, n=name: release.ready(k, n), timeout=60, what=f"{kind} {name} Ready")
    marker = secrets.token_hex(4)

    def enqueued() -> dict[str, Any] | None:
        body = {"queue": QUEUE, "http": {"url": f"http://{sink.host}:8000/jobs/once-{marker}"}, "payload": {"n": 1}}
        response = api.post("/v1/jobs", json=body)
        assert response.status_code in (201, 422), response.text  # 422 until the api has the new queue
        return response.json() if response.status_code == 201 else None

    job = wait_for(enqueued, timeout=30, what="the job enqueued")
    delivered = wait_for(lambda: sink.requests_to(f"/jobs/once-{marker}"), timeout=60, what="the job's request")
    request = delivered[0]
    assert request["method"] == "POST" and json.loads(request["body"]) == {"n": 1}
    verify_signature("e2e-hmac", request["headers"], request["body"].encode())  # Standard Webhooks, the queue's secret
    wait_for(
        lambda: api.get(f"/v1/jobs/{job['id']}").json()["state"] == "completed", timeout=30, what="the job completed"
    )
    ticks = wait_for(lambda: len(sink.requests_to("/jobs/tick")) >= 2 and sink.requests_to("/jobs/tick"), timeout=60)
    assert ticks[0]["method"] == "POST"


def test_helm_test_passes(release: Cluster, stack: dict[str, Any]):
    # The test pod is deleted when it succeeds (its hook-delete-policy): helm's report is what stays.
    result = release.helm("test", "e2e", "--timeout", "5m")
    phases = re.findall(r"TEST SUITE:\s+(\S+)\s+Last Started:.*?\s+Phase:\s+(\S+)", result.stdout, re.S)
    assert phases and all(phase == "Succeeded" for _, phase in phases), result.stdout


def test_a_helm_upgrade_with_a_changed_value_rolls_out_without_losing_a_queued_job(
    release: Cluster, sink: Sink, api: httpx.Client
):
    worker = f"{STACK}-worker"
    before = release.get("deployment", worker)
    marker = secrets.token_hex(4)
    # Queued now, due after the rollout has begun: the old worker must leave it in Redis.
    body = {"queue": QUEUE, "http": {"url": f"http://{sink.host}:8000/jobs/queued-{marker}"}, "delay": 8}
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]

    release.helm(
        "upgrade",
        "e2e",
        str(CHART),
        "--reuse-values",
        "--set",
        "stack.spec.worker.resources.requests.memory=48Mi",
        "--wait",
        "--timeout",
        "5m",
    )
    wait_for(
        lambda: (
            (d := release.get("deployment", worker))
            and d["metadata"]["generation"] > before["metadata"]["generation"]
            and release.rolled_out(worker)
        ),
        timeout=180,
        what="the worker rolled out again",
    )
    pods = release.items("pods", "-l", "app.kubernetes.io/component=worker")
    requests = {c["resources"]["requests"]["memory"] for p in pods for c in p["spec"]["containers"]}
    assert "48Mi" in requests, requests
    wait_for(lambda: sink.requests_to(f"/jobs/queued-{marker}"), timeout=90, what="the queued job delivered")
    wait_for(lambda: api.get(f"/v1/jobs/{job_id}").json()["state"] == "completed", timeout=30, what="job completed")


def test_deleting_the_stack_removes_what_it_owns(release: Cluster, stack: dict[str, Any]):
    uid = stack["metadata"]["uid"]
    kinds = "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings"

    def owned() -> list[str]:
        found = []
        for obj in release.items(kinds):
            if any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences", [])):
                found.append(f"{obj['kind']}/{obj['metadata']['name']}")
        return found

    before = owned()
    assert {f"Deployment/{STACK}-api", f"Deployment/{STACK}-worker"} <= set(before), before
    release.kubectl("delete", "stack", STACK, "--wait=true", "--timeout=120s")
    wait_for(lambda: not owned(), timeout=120, what=f"the objects the Stack owned gone ({before})")
    wait_for(
        lambda: not release.items("pods", "-l", f"app.kubernetes.io/instance={STACK}"),
        timeout=120,
        what="the Stack's pods gone",
    )
