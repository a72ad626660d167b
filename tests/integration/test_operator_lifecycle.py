"""The operator as a process that comes and goes: a restart changes nothing that is
already right, and of several replicas with leader election exactly one reconciles,
and another takes over when it dies."""

from __future__ import annotations

from stackyard_harness.programs import start_operator

from .conftest import stack_manifest, wait_for

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

RESEND = {
    "apiVersion": "stackyard.dev/v1alpha1",
    "kind": "EmailProvider",
    "metadata": {"name": "resend"},
    "spec": {
        "stackRef": {"name": "demo"},
        "type": "resend",
        "resend": {"apiKeySecretRef": {"name": "resend", "key": "apiKey"}},
    },
}


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


def test_one_leader_reconciles_and_a_follower_takes_over_when_it_dies(
    namespace, backends, without_shared_operator, cluster, harness
):
    args = ("--namespace", namespace.name, "--leader-election", "--lease-seconds", "3")
    first = start_operator(cluster, harness.run_dir, *args, name=f"leader-a-{namespace.name}")
    wait_for(lambda: "leading" in first.log_path.read_text(), what="the first replica to lead")
    second = start_operator(cluster, harness.run_dir, *args, name=f"leader-b-{namespace.name}", ready_log="Lease")
    try:
        wait_for(lambda: "waiting to lead" in second.log_path.read_text(), what="the second replica to wait")
        namespace.apply(stack_manifest())
        wait_for(lambda: ready(namespace, "stack", "demo"), what="Stack Ready")
        assert f"reconciled Stack {namespace.name}/demo" in first.log_path.read_text()
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
    finally:
        first.stop()
        second.stop()


def test_a_stopped_leader_hands_over_at_once(namespace, without_shared_operator, cluster, harness):
    args = ("--namespace", namespace.name, "--leader-election", "--lease-seconds", "60")
    first = start_operator(cluster, harness.run_dir, *args, name=f"handover-a-{namespace.name}")
    wait_for(lambda: "leading" in first.log_path.read_text(), what="the first replica to lead")
    second = start_operator(cluster, harness.run_dir, *args, name=f"handover-b-{namespace.name}", ready_log="Lease")
    try:
        wait_for(lambda: "waiting to lead" in second.log_path.read_text(), what="the second replica to wait")
        first.stop()  # SIGTERM: a clean stop releases the Lease
        assert "released Lease" in first.log_path.read_text()
        # Well inside the 60 s lease: a follower looks at the Lease every 2 s.
        wait_for(lambda: "leading" in second.log_path.read_text(), timeout=10, what="the follower to take over")
    finally:
        first.stop()
        second.stop()
