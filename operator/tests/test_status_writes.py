"""Status writes: the operator patches only the status fields it owns, so that what the
worker records on a Schedule (its run times) survives every reconcile."""

from __future__ import annotations

import asyncio

from stackyard_operator.conditions import ConditionIntent
from stackyard_operator.handlers import generation_changed
from stackyard_operator.reconciler import Indices, StackReconciler, status_body
from stackyard_operator.render import StatusUpdate

READY = ConditionIntent("Ready", "True", "InForce", "in force in Stack demo")
WORKER_FIELDS = {
    "lastRunTime": "2026-11-25T03:00:00Z",
    "lastJobId": "job_01",
    "lastResult": "completed",
    "nextRunTime": "2026-11-26T03:00:00Z",
}


class RecordingKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, str, dict]] = []

    async def patch_status(self, kind: str, namespace: str, name: str, status: dict) -> None:
        self.patches.append((kind, namespace, name, status))


def schedule_body(status: dict) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "nightly", "namespace": "shop", "generation": 2},
        "spec": {},
        "status": status,
    }


def write(body: dict, update: StatusUpdate) -> list[tuple[str, str, str, dict]]:
    kube = RecordingKube()
    reconciler = StackReconciler(kube, Indices({}, {}, {}), clock=lambda: "T2")  # type: ignore[arg-type]
    asyncio.run(reconciler.write_status(body, update))
    return kube.patches


def test_status_patch_holds_only_what_the_operator_owns():
    existing = {"observedGeneration": 1, "conditions": [], **WORKER_FIELDS}
    patch = status_body(existing, StatusUpdate([READY], 2, {"configHash": "abc"}), "T1")
    assert set(patch) == {"observedGeneration", "conditions", "configHash"}
    assert patch["observedGeneration"] == 2 and patch["conditions"][0]["lastTransitionTime"] == "T1"


def test_a_new_generation_is_patched_without_the_worker_fields():
    current = status_body({}, StatusUpdate([READY], 1), "T1")
    body = schedule_body({**current, **WORKER_FIELDS})
    ((kind, namespace, name, status),) = write(body, StatusUpdate([READY], 2))
    assert (kind, namespace, name) == ("Schedule", "shop", "nightly")
    assert status["observedGeneration"] == 2
    assert not set(status) & set(WORKER_FIELDS), "a merge patch of an older snapshot would undo the worker's writes"
    assert status["conditions"][0]["lastTransitionTime"] == "T1", "Ready did not change status"


def test_worker_fields_alone_are_no_reason_to_write():
    current = status_body({}, StatusUpdate([READY], 2), "T1")
    assert write(schedule_body({**current, **WORKER_FIELDS}), StatusUpdate([READY], 2)) == []


def test_only_new_objects_new_generations_and_deletions_ask_for_a_reconcile():
    seen: dict[str, int] = {}
    assert generation_changed(seen, None, "u1", 1), "the first listing"
    assert not generation_changed(seen, "MODIFIED", "u1", 1), "a status write by the worker"
    assert generation_changed(seen, "MODIFIED", "u1", 2), "a spec change"
    assert generation_changed(seen, "DELETED", "u1", 2)
    assert seen == {}
    assert generation_changed(seen, "ADDED", "u2", 1), "created again (a new uid)"
