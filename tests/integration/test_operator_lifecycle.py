"""The operator as a process that comes and goes: a restart changes nothing that is
already right, and of several replicas with leader election exactly one reconciles,
and another takes over when it dies."""

from __future__ import annotations

import pytest
from stackyard_harness.programs import start_operator

from .conftest import RESEND, stack_manifest, wait_for

OWNED = [
    ("serviceaccount", "demo-stackyard"),
    ("configmap", "demo-config"),
    ("secret", "demo-credentials"),
    ("deployment", "demo-api"),
    ("deployment", "demo-worker"),
    ("role", "demo-config-reader"),
    ("rolebinding", "demo-config-reader"),
    ("service", "demo-api"),
    ("stack", "demo"),
    ("emailprovider", "resend"),
]


def resource_versions(namespace):
    return {(kind, name): namespace.get(kind, name)["metadata"]["resourceVersion"] for kind, name in OWNED}


def ready(namespace, kind, name):
    return (namespace.condition(kind, name) or {}).get("status") == "True"


def test_operator_restart_updates_nothing_that_is_already_right(namespace, backends, operator):
    namespace.secret("resend", apiKey="re_restart")
    namespace.apply([stack_manifest(), RESEND])
    wait_for(lambda: ready(namespace, "emailprovider", "resend"), what="provider Ready")
    wait_for(lambda: ready(namespace, "stack", "demo"), what="Stack Ready")
    before = resource_versions(namespace)
    events_before = len(namespace.kubectl("get", "events", "-o", "name").stdout.split())

    operator.stop()
    operator.start()
    # The new process has seen this Stack and reconciled it once, from scratch.
    wait_for(
        lambda: f"reconciled Stack {namespace.name}/demo" in operator.log(), timeout=30, what="the restarted reconcile"
    )

    assert resource_versions(namespace) == before
    assert len(namespace.kubectl("get", "events", "-o", "name").stdout.split()) == events_before


@pytest.fixture
def replicas(namespace, without_shared_operator, cluster, harness):
    """start(lease_seconds) -> (leader, follower): two operator replicas under leader election."""
    started = []

    def start(lease_seconds: int):
        args = ("--namespace", namespace.name, "--leader-election", "--lease-seconds", str(lease_seconds))
        leader = start_operator(cluster, harness.run_dir, *args, name=f"replica-a-{namespace.name}")
        started.append(leader)
        wait_for(lambda: "leading" in leader.log_path.read_text(), what="the first replica to lead")
        follower = start_operator(
            cluster, harness.run_dir, *args, name=f"replica-b-{namespace.name}", ready_log="Lease"
        )
        started.append(follower)
        wait_for(lambda: "waiting to lead" in follower.log_path.read_text(), what="the second replica to wait")
        return leader, follower

    yield start
    for process in started:
        process.stop()


def test_one_leader_reconciles_and_a_follower_takes_over_when_it_dies(namespace, backends, replicas):
    first, second = replicas(lease_seconds=3)
    namespace.apply(stack_manifest())
    wait_for(lambda: ready(namespace, "stack", "demo"), what="Stack Ready")
    # The status is written before the reconcile's closing log line: wait for that line.
    wait_for(
        lambda: f"reconciled Stack {namespace.name}/demo" in first.log_path.read_text(), what="the leader's reconcile"
    )
    assert "reconciled Stack" not in second.log_path.read_text()

    first.kill()  # SIGKILL: no chance to release the Lease
    wait_for(lambda: "leading" in second.log_path.read_text(), timeout=15, what="the follower to take over")
    namespace.apply(stack_manifest(worker={"replicas": 3}))
    wait_for(
        lambda: namespace.get("deployment", "demo-worker")["spec"]["replicas"] == 3,
        what="the new leader to reconcile",
    )
    lease = namespace.get("lease", "stackyard-operator")
    assert lease["spec"]["leaseTransitions"] == 1


def test_a_stopped_leader_hands_over_at_once(replicas):
    first, second = replicas(lease_seconds=60)
    first.stop()  # SIGTERM: a clean stop releases the Lease
    assert "released Lease" in first.log_path.read_text()
    # Well inside the 60 s lease: a follower looks at the Lease every 2 s.
    wait_for(lambda: "leading" in second.log_path.read_text(), timeout=10, what="the follower to take over")
