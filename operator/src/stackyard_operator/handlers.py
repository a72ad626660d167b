"""kopf handlers: keep indices of stackyard resources and ask for Stack reconciles.

Every handler is a few lines; the decisions are in render.py, the mechanics in
reconciler.py. Nothing here is edge-triggered: any event on a Stack, a member
resource, a referenced Secret or an owned Deployment or StatefulSet leads to the same
reconcile of the whole Stack, except a Schedule's, a Bucket's or a Webhook's status writes
by the worker and a SearchIndex's by the search component, which change nothing the
operator renders. (A Database's do: the migration version the worker reports there
decides whether a migration Job is wanted.) (No kopf timers: they would put finalizers
on users' Stacks; the reconciler runs its own periodic resync.)
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from stackyard.resources import GROUP, VERSION

from .manifests import MANAGER
from .reconciler import Indices, StackReconciler
from .render import MEMBER_KINDS, referenced_secrets
from .settings import configure

log = logging.getLogger(__name__)

MEMBER_PLURALS = {
    "EmailProvider": "emailproviders",
    "EmailTemplate": "emailtemplates",
    "RateLimitPolicy": "ratelimitpolicies",
    "JobQueue": "jobqueues",
    "Schedule": "schedules",
    "IdentityProvider": "identityproviders",
    "Database": "databases",
    "Bucket": "buckets",
    "NotificationWorkflow": "notificationworkflows",
    "Webhook": "webhooks",
    "SearchIndex": "searchindexes",
    "OIDCClient": "oidcclients",
}
assert set(MEMBER_PLURALS) == set(MEMBER_KINDS), "every member kind needs a plural here"


def snapshot(body: kopf.Body) -> dict[str, Any]:
    """A plain copy of a body as it is now (kopf bodies are live views)."""
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body.metadata),
        "spec": dict(body.spec),
        "status": dict(body.status),
    }


def stack_ref(body: kopf.Body) -> str:
    return str(body.spec.get("stackRef", {}).get("name", ""))


# -- startup -------------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings, explicit_namespaces=bool(memo.get("namespaces")))


# -- indices -------------------------------------------------------------------------


@kopf.index(GROUP, VERSION, "stacks")
def stacks(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): snapshot(body)}


@kopf.index(GROUP, VERSION, "emailproviders")
def emailproviders(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "emailtemplates")
def emailtemplates(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "ratelimitpolicies")
def ratelimitpolicies(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "jobqueues")
def jobqueues(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "schedules")
def schedules(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "identityproviders")
def identityproviders(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "databases")
def databases(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "buckets")
def buckets(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "notificationworkflows")
def notificationworkflows(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "webhooks")
def webhooks(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "searchindexes")
def searchindexes(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index(GROUP, VERSION, "oidcclients")
def oidcclients(namespace: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, stack_ref(body)): snapshot(body)}


@kopf.index("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGER})
def workloads(namespace: str, labels: kopf.Labels, status: kopf.Status, **_: Any) -> dict[Any, Any]:
    return {
        (namespace, labels.get("app.kubernetes.io/instance")): {
            "component": labels.get("app.kubernetes.io/component"),
            "status": dict(status),
        }
    }


@kopf.index("apps", "v1", "statefulsets", labels={"app.kubernetes.io/managed-by": MANAGER})
def statefulsets(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """The search component's StatefulSet: its status, uid and volume claim template."""
    return {
        (namespace, labels.get("app.kubernetes.io/instance")): {
            "component": labels.get("app.kubernetes.io/component"),
            "status": dict(body.status),
            "body": {
                "metadata": {"uid": body.metadata.uid},
                "spec": {"volumeClaimTemplates": list(body.spec.get("volumeClaimTemplates") or [])},
                "status": dict(body.status),
            },
        }
    }


def reconciler(memo: kopf.Memo, indices: dict[str, Any]) -> StackReconciler:
    """The one reconciler of this operator, made on first use from kopf's live indices.

    kopf hands each resource object its own shallow copy of the memo, so the reconciler
    lives in `memo.shared`, a dict that every copy shares (made in main.py)."""
    shared: dict[str, StackReconciler] = memo["shared"]
    if "reconciler" not in shared:
        live = Indices(
            stacks=indices["stacks"],
            members={kind: indices[plural] for kind, plural in MEMBER_PLURALS.items()},
            workloads=indices["workloads"],
            statefulsets=indices["statefulsets"],
        )
        shared["reconciler"] = StackReconciler(memo["kube"], live)
        shared["reconciler"].start_resync()
    return shared["reconciler"]


def _indices(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in ("stacks", "workloads", "statefulsets", *MEMBER_PLURALS.values())}


# -- events --------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, "stacks")
async def stack_event(namespace: str, name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    reconciler(memo, _indices(kwargs)).request(namespace, name)


@kopf.on.event(GROUP, VERSION, "emailproviders")
@kopf.on.event(GROUP, VERSION, "emailtemplates")
@kopf.on.event(GROUP, VERSION, "ratelimitpolicies")
@kopf.on.event(GROUP, VERSION, "jobqueues")
@kopf.on.event(GROUP, VERSION, "identityproviders")
@kopf.on.event(GROUP, VERSION, "databases")
@kopf.on.event(GROUP, VERSION, "notificationworkflows")
@kopf.on.event(GROUP, VERSION, "oidcclients")
async def member_event(namespace: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    # Ask for the Stack named now; one it named before (if stackRef changed) is
    # reconciled by its own next resync.
    reconciler(memo, _indices(kwargs)).request(namespace, stack_ref(body))


@kopf.on.event(GROUP, VERSION, "schedules")
@kopf.on.event(GROUP, VERSION, "buckets")
@kopf.on.event(GROUP, VERSION, "webhooks")
@kopf.on.event(GROUP, VERSION, "searchindexes")
async def schedule_event(namespace: str, body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    # The worker records every run in the Schedule's status, a Bucket's reachability and
    # retention sweeps in the Bucket's and a Webhook's deliveries (Enabled, failingSince) in
    # the Webhook's, the search component its documents, sync and lag in the SearchIndex's;
    # those writes change nothing the operator renders, so only a new generation (or a new
    # or deleted object) asks for a reconcile, not every tick.
    seen: dict[str, int] = memo["shared"].setdefault("schedule_generations", {})
    if generation_changed(seen, type, body.metadata.get("uid", ""), int(body.metadata.get("generation") or 0)):
        reconciler(memo, _indices(kwargs)).request(namespace, stack_ref(body))


def generation_changed(seen: dict[str, int], event_type: str | None, uid: str, generation: int) -> bool:
    """Whether an event on an object is more than a status write: it is new, deleted,
    or has a generation not seen before. Keeps `seen` (uid -> generation) up to date."""
    if event_type == "DELETED":
        seen.pop(uid, None)
        return True
    changed = seen.get(uid) != generation
    seen[uid] = generation
    return changed


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGER})
@kopf.on.event("apps", "v1", "statefulsets", labels={"app.kubernetes.io/managed-by": MANAGER})
async def workload_event(namespace: str, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any) -> None:
    stack = labels.get("app.kubernetes.io/instance")
    if stack:
        reconciler(memo, _indices(kwargs)).request(namespace, stack)


@kopf.on.event("", "v1", "secrets")
async def secret_event(namespace: str, name: str, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any) -> None:
    """A Secret changed: reconcile every Stack whose resources refer to it, and the Stack
    that owns it (its credentials or auth keys, edited or deleted by hand, are put back)."""
    indices = _indices(kwargs)
    owner = labels.get("app.kubernetes.io/instance")
    if owner and labels.get("app.kubernetes.io/managed-by") == MANAGER:
        reconciler(memo, indices).request(namespace, owner)
    for (stack_namespace, stack_name), store in indices["stacks"].items():
        if stack_namespace != namespace:
            continue
        bodies = [*store, *(b for p in MEMBER_PLURALS.values() for b in indices[p].get((namespace, stack_name), []))]
        if any(name in referenced_secrets(b) for b in bodies):
            reconciler(memo, indices).request(namespace, stack_name)
