"""The chart, its operator and the Stack's api and worker as pods on a real cluster.

The tests run in this file's order on one release (conftest.py): the Stack becomes Ready,
then it serves (mail, rate limits, jobs, search), then `helm test` and `helm upgrade`, and
last the Stack is deleted.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stackyard.jobs.http_target import verify as verify_signature

from .conftest import (
    ADMIN_KEY,
    CHART,
    SEARCH_STORAGE,
    STACK,
    Cluster,
    Sink,
    search_storage_class,
    unavailable,
    wait_for,
)

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


SEARCH_INDEX = "e2e-products"
SEARCH = f"{STACK}-search"
SEARCH_CLAIM = f"data-{SEARCH}-0"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PRODUCTS = [
    {"id": "e2e-machine", "title": "Espresso machine", "category": "kitchen", "price": 199},
    {"id": "e2e-cups", "title": "Espresso cups", "category": "kitchen", "price": 19},
    {"id": "e2e-grinder", "title": "Coffee grinder", "category": "kitchen", "price": 59},
    {"id": "e2e-book", "title": "Espresso, a history", "category": "books", "price": 12},
]


def _node_is_this_machine(cluster: Cluster) -> bool:
    """Whether a node's InternalIP is an address of this machine (a hostPath made here is on it)."""
    for node in cluster.items("nodes"):
        for address in node["status"].get("addresses", []):
            if address["type"] != "InternalIP":
                continue
            with socket.socket(socket.AF_INET6 if ":" in address["address"] else socket.AF_INET) as probe:
                try:
                    probe.bind((address["address"], 0))
                except OSError:
                    continue
                return True
    return False


@pytest.fixture
def search_volume(release: Cluster) -> Iterator[str]:
    """The StorageClass of the Stack's spec.search (no provisioner) and one hostPath volume of
    it in a temporary directory; removed afterwards with the SearchIndex's claim."""
    if not _node_is_this_machine(release):
        # Not a skip in CI: there the cluster is the one `make cluster` built on this machine.
        unavailable("the search volume is a hostPath made on this machine, which is not the cluster's node")
    storage_class = search_storage_class(release.namespace)
    directory = Path(tempfile.mkdtemp(prefix="stackyard-e2e-search-"))
    directory.chmod(0o777)  # the search pod runs as 10001; fsGroup does not apply to hostPath
    labels = {"app.kubernetes.io/part-of": "stackyard-e2e"}
    release.apply(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": storage_class, "labels": labels},
            "provisioner": "kubernetes.io/no-provisioner",
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": storage_class, "labels": labels},
            "spec": {
                "storageClassName": storage_class,
                "capacity": {"storage": SEARCH_STORAGE},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(directory), "type": "Directory"},
            },
        },
    )
    try:
        yield storage_class
    finally:
        if os.environ.get("E2E_KEEP") != "1":
            release.kubectl("delete", "searchindex", SEARCH_INDEX, "--ignore-not-found", "--wait=false", check=False)
            release.kubectl("delete", "pvc", SEARCH_CLAIM, "--ignore-not-found", "--wait=false", check=False)
            release.kubectl(
                "delete", "pv,storageclass", storage_class, "--ignore-not-found", "--wait=false", check=False
            )
            shutil.rmtree(directory, ignore_errors=True)


def _search_pod(release: Cluster, not_uid: str = "") -> dict[str, Any] | None:
    """The search pod when it is Ready (and is not the pod `not_uid`)."""
    pod = release.get("pod", f"{SEARCH}-0")
    if not pod or pod["metadata"]["uid"] == not_uid or pod["metadata"].get("deletionTimestamp"):
        return None
    conditions = pod["status"].get("conditions", [])
    return pod if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None


def _wait_for_search_pod(release: Cluster, what: str, not_uid: str = "") -> dict[str, Any]:
    try:
        return wait_for(lambda: _search_pod(release, not_uid), timeout=90, interval=0.5, what=what)
    except BaseException:
        # Why a claim stays Pending (the PV controller's events) or the pod does not start.
        print(release.kubectl("describe", "pvc", SEARCH_CLAIM, check=False).stdout)
        print(release.describe_pods())
        raise


def _search_ids(api: httpx.Client, query: dict[str, Any]) -> list[str]:
    """The ids found, in order; waits while the api answers 503 (the search pod restarting)."""

    def found() -> list[str] | None:
        response = api.post(f"/v1/indexes/{SEARCH_INDEX}/search", json=query, headers=ADMIN)
        assert response.status_code in (200, 503), response.text
        return [hit["id"] for hit in response.json()["hits"]] if response.status_code == 200 else None

    return wait_for(found, timeout=30, what=f"a search of {query}")


def test_a_search_index_is_served_by_its_statefulset_and_keeps_its_documents_on_its_volume(
    release: Cluster, api: httpx.Client, search_volume: str
):
    api_generation = release.get("deployment", f"{STACK}-api")["metadata"]["generation"]
    release.apply(
        {
            "apiVersion": "stackyard.dev/v1alpha1",
            "kind": "SearchIndex",
            "metadata": {"name": SEARCH_INDEX},
            "spec": {
                "stackRef": {"name": STACK},
                "primaryKey": "id",
                "source": {"api": {}},
                "searchableAttributes": ["title"],
                "filterableAttributes": ["category", "price"],
                "sortableAttributes": ["price"],
            },
        }
    )
    wait_for(lambda: release.ready("searchindex", SEARCH_INDEX), timeout=60, what=f"SearchIndex {SEARCH_INDEX} Ready")
    pod = _wait_for_search_pod(release, f"the pod of StatefulSet {SEARCH} Ready")
    owners = release.get("statefulset", SEARCH)["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"]) for o in owners] == [("Stack", STACK)]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == SEARCH_CLAIM
    claim = release.get("pvc", SEARCH_CLAIM)
    assert claim["status"]["phase"] == "Bound" and claim["spec"]["volumeName"] == search_volume, claim["status"]
    # The api knew where search answers before the first index: it is not rolled out.
    assert release.get("deployment", f"{STACK}-api")["metadata"]["generation"] == api_generation

    def added() -> dict[str, Any] | None:
        response = api.post(f"/v1/indexes/{SEARCH_INDEX}/documents", json=PRODUCTS, headers=ADMIN)
        # 404 until the api (and the search component) have the index's config, 503 until the Service answers
        assert response.status_code in (202, 404, 503), response.text
        return response.json() if response.status_code == 202 else None

    task = wait_for(added, timeout=30, interval=0.5, what="the documents accepted")

    def finished() -> dict[str, Any] | None:
        state = api.get(f"/v1/search/tasks/{task['taskUid']}", headers=ADMIN).json()
        return state if state["status"] in ("succeeded", "failed") else None

    done = wait_for(finished, timeout=30, what=f"task {task['taskUid']} finished")
    assert done["status"] == "succeeded", done
    assert done["details"]["indexedDocuments"] == len(PRODUCTS), done

    # "expresso": one typo for "espresso"; the filter leaves the kitchen's under 100 of the three espresso products.
    typo_and_filter = {"q": "expresso", "filter": "category = kitchen AND price < 100"}
    sorted_by_price = {"q": "expresso", "filter": "price < 300", "sort": ["price:desc"]}
    assert _search_ids(api, typo_and_filter) == ["e2e-cups"]
    assert _search_ids(api, sorted_by_price) == ["e2e-machine", "e2e-cups", "e2e-book"]

    # The StatefulSet makes the pod again, on the same claim: the index is still there.
    release.kubectl("delete", "pod", f"{SEARCH}-0", "--wait=false")
    again = _wait_for_search_pod(release, f"a new pod of StatefulSet {SEARCH} Ready", not_uid=pod["metadata"]["uid"])
    assert {v["name"]: v for v in again["spec"]["volumes"]}["data"]["persistentVolumeClaim"][
        "claimName"
    ] == SEARCH_CLAIM
    assert _search_ids(api, typo_and_filter) == ["e2e-cups"]
    assert _search_ids(api, sorted_by_price) == ["e2e-machine", "e2e-cups", "e2e-book"]
    index = api.get(f"/v1/indexes/{SEARCH_INDEX}", headers=ADMIN)
    assert index.status_code == 200 and index.json()["numberOfDocuments"] == len(PRODUCTS), index.text

    # The last SearchIndex gone: so are the StatefulSet and its Service; the claim stays (Retain).
    release.kubectl("delete", "searchindex", SEARCH_INDEX)
    wait_for(
        lambda: release.get("statefulset", SEARCH) is None and release.get("service", SEARCH) is None,
        timeout=60,
        what=f"StatefulSet and Service {SEARCH} deleted",
    )
    claim = release.get("pvc", SEARCH_CLAIM)
    assert claim and claim["status"]["phase"] == "Bound", claim
    assert release.get("deployment", f"{STACK}-api")["metadata"]["generation"] == api_generation, "no api rollout"
    wait_for(
        lambda: api.get("/v1/indexes", headers=ADMIN).json()["total"] == 0, timeout=30, what="GET /v1/indexes empty"
    )


def test_the_console_in_the_api_pod_shows_the_stack_conditions_it_reads_itself(
    release: Cluster, stack: dict[str, Any], api: httpx.Client
):
    """The console's templates and static files are in the api image, and the pod's own
    ServiceAccount may read its Stack (the Role the operator renders): the overview shows the
    Stack's Ready condition as the cluster has it."""
    login = api.post("/console/login", data={"api_key": ADMIN_KEY, "next": "/console"})
    assert login.status_code == 303, login.text
    ready = next(c for c in release.get("stack", STACK)["status"]["conditions"] if c["type"] == "Ready")
    page = api.get("/console")
    assert page.status_code == 200, page.text
    stack_section = page.text.split('id="stack-status"', 1)[1].split("</section>", 1)[0]
    assert '<th scope="row">Ready</th>' in stack_section, stack_section
    assert ready["reason"] in stack_section, stack_section
    assert api.get("/console/static/console.css").status_code == 200


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
