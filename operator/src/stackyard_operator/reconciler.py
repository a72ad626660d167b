"""One reconcile per Stack at a time, coalescing bursts of events.

Handlers only call `request(namespace, stack)`. A Stack that is requested while it is
being reconciled is reconciled once more afterwards (never twice at once, never lost),
so that a burst of changes (a Secret and three policies applied together) costs one or
two reconciles, each from the whole current state.

A reconcile that leaves a change due later (the next step of a signing-key rotation)
sets a timer for that Stack, replaced by the next reconcile's, so that the change
happens on time without an event.

Each reconcile is traced and counted (metrics.py): a span `reconcile Stack` and its
outcome, ready or not_ready as the Stack's Ready condition says, or error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError
from stackyard.config import (
    CONFIG_KEY,
    CREDENTIALS_REVISION_ANNOTATION,
    RuntimeConfig,
    config_map_name,
    credentials_secret_name,
)

from .auth_keys import AuthKeysObserved, auth_keys_secret_name
from .conditions import FALSE, TRUE, merge_conditions, not_ready, transitions
from .kube import Kube
from .metrics import NOT_READY, READY, ReconcileTelemetry
from .notify import NotifyFresh, missing_generated_secrets, needs_vapid
from .oidc_clients import OIDCObserved, StoredSecret, secret_names
from .render import Desired, Observed, StatusUpdate, orphan_status, referenced_secrets, render
from .search import COMPONENT as SEARCH_COMPONENT
from .search import SearchWorkload

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, stack name)


@dataclass
class Indices:
    """kopf's in-memory indices, kept live by kopf: bodies by (namespace, stack)."""

    stacks: Mapping[Key, Any]
    members: Mapping[str, Mapping[Key, Any]]  # kind -> index
    workloads: Mapping[Key, Any]
    """The Deployments the operator owns: {"component", "status"} by (namespace, stack)."""
    statefulsets: Mapping[Key, Any] = field(default_factory=dict)
    """The StatefulSets it owns (the search component): {"component", "status", "body"}."""

    def stack(self, key: Key) -> dict[str, Any] | None:
        store = self.stacks.get(key)
        return next(iter(store), None) if store else None

    def members_of(self, key: Key) -> list[dict[str, Any]]:
        return [body for index in self.members.values() for body in index.get(key, [])]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC)


TIMER_SLACK = 0.25
"""Seconds a timer waits past the change it is set for, so the reconcile finds it due."""


def outcome(stack_status: StatusUpdate) -> str:
    """A reconcile's outcome for telemetry: ready when it leaves the Stack Ready=True."""
    is_ready = any(c.type == "Ready" and c.status == TRUE for c in stack_status.conditions)
    return READY if is_ready else NOT_READY


def status_body(existing: dict[str, Any], update: StatusUpdate, timestamp: str) -> dict[str, Any]:
    """The status fields the operator owns, as a merge patch. Fields it does not own (a
    Schedule's run times, written by the worker) are left out, so that the patch keeps
    them as they are on the server, never as they were in an older snapshot."""
    return {
        "observedGeneration": update.generation,
        "conditions": merge_conditions(existing.get("conditions", []), update.conditions, update.generation, timestamp),
        **update.fields,
    }


class StackReconciler:
    def __init__(
        self,
        kube: Kube,
        indices: Indices,
        clock: Callable[[], str] = now,
        time: Callable[[], datetime] = utc_now,
        telemetry: ReconcileTelemetry | None = None,
    ) -> None:
        self.kube = kube
        self.indices = indices
        self.clock = clock
        self.time = time
        self.telemetry = telemetry or ReconcileTelemetry(_describe)
        self._told: dict[str, dict[str, tuple[str, str]]] = {}
        """By object uid: the (status, reason) of each condition last written, so that a reconcile
        reading a cache that has not yet seen that write does not tell a transition twice."""
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._pending: set[Key] = set()
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._failures: dict[Key, int] = {}

    def start_resync(self, interval: float = 300.0) -> None:
        """Reconcile every known Stack every `interval` seconds: the level-triggered safety net."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                for key in list(self.indices.stacks):
                    self.request(*key)

        self._resync = asyncio.create_task(loop(), name="resync")

    def request(self, namespace: str, stack: str) -> None:
        key = (namespace, stack)
        self._pending.add(key)
        if key not in self._running:
            self._running[key] = asyncio.create_task(self._drain(key), name=f"reconcile {namespace}/{stack}")

    async def _drain(self, key: Key) -> None:
        try:
            while key in self._pending:
                self._pending.discard(key)
                try:
                    await self.reconcile(key)
                    self._failures.pop(key, None)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures = self._failures[key] = self._failures.get(key, 0) + 1
                    delay = min(2.0**failures, 60.0)
                    log.warning("reconcile of Stack %s/%s failed (%s); retrying in %.0fs", *key, _describe(exc), delay)
                    await self._report_failure(key, exc)
                    await asyncio.sleep(delay)
                    self._pending.add(key)
        finally:
            del self._running[key]

    async def idle(self) -> None:
        """Wait until nothing is pending (for tests and benchmarks)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    # -- one reconcile ------------------------------------------------------------

    async def reconcile(self, key: Key) -> None:
        with self.telemetry.measure("Stack", *key) as record:
            record.outcome = await self._reconcile(key)

    async def _reconcile(self, key: Key) -> str:
        """Reconcile the Stack `key` (or report its members orphaned); return the outcome."""
        stack = self.indices.stack(key)
        if stack is None:
            self.set_timer(key, None)
            await self.report_orphans(key)
            return NOT_READY  # no Stack: its members are not in force
        observed = await self.observe(key, stack)
        desired = render(observed)
        if desired.config is not None:
            for manifest in desired.objects:
                await self.kube.apply(manifest)
            for obsolete in desired.obsolete:
                await self.kube.delete(obsolete.kind, key[0], obsolete.name, obsolete.uid)
                log.info("deleted %s %s/%s, no longer wanted", obsolete.kind, key[0], obsolete.name)
        self.set_timer(key, desired.next_change)
        await self.write_statuses(stack, observed.members, desired)
        config = f"config {desired.config.hash}" if desired.config is not None else "no config applied"
        log.info("reconciled Stack %s/%s: %s, %d members", *key, config, len(observed.members))
        return outcome(desired.stack_status)

    async def observe(self, key: Key, stack: dict[str, Any]) -> Observed:
        namespace, name = key
        members = self.indices.members_of(key)
        secrets: dict[str, dict[str, str]] = {}
        for secret in sorted(set().union(*(referenced_secrets(b) for b in [stack, *members]))):
            data = await self.kube.secret_data(namespace, secret)
            if data is not None:
                secrets[secret] = data
        previous_config, previous_credentials, revision = await self._in_force(namespace, name)
        workloads = {w["component"]: w["status"] for w in (self.indices.workloads.get(key) or [])}
        search_workload = None
        for found in self.indices.statefulsets.get(key) or []:
            workloads[found["component"]] = found["status"]
            if found["component"] == SEARCH_COMPONENT:
                search_workload = SearchWorkload.of(found["body"])
        auth_keys = AuthKeysObserved.observe(
            self.time(), await self.kube.secret_with_annotations(namespace, auth_keys_secret_name(name))
        )
        fresh = NotifyFresh.make(missing_generated_secrets(members, secrets), needs_vapid(previous_credentials))
        clients = [m for m in members if m.get("kind") == "OIDCClient"]
        client_secrets: dict[str, StoredSecret] = {}
        for secret in sorted(set().union(*(secret_names(c) for c in clients))):
            found = await self.kube.secret_object(namespace, secret)
            if found is not None:
                client_secrets[secret] = StoredSecret.of(found)
        oidc = OIDCObserved.make(self.time(), client_secrets, [c["metadata"]["name"] for c in clients])
        return Observed(
            stack,
            members,
            secrets,
            previous_config,
            previous_credentials,
            revision,
            workloads,
            auth_keys,
            fresh,
            search_workload,
            oidc,
        )

    def set_timer(self, key: Key, at: datetime | None) -> None:
        """Request `key` again at `at` (None: no timer); replaces the Stack's earlier timer."""
        if (old := self._timers.pop(key, None)) is not None:
            old.cancel()
        if at is not None:
            delay = max((at - self.time()).total_seconds(), 0.0) + TIMER_SLACK
            self._timers[key] = asyncio.get_running_loop().call_later(delay, self.request, *key)

    async def _in_force(self, namespace: str, stack: str) -> tuple[RuntimeConfig | None, dict[str, str], int]:
        data = await self.kube.config_map_data(namespace, config_map_name(stack))
        config = None
        if data and CONFIG_KEY in data:
            try:
                config = RuntimeConfig.model_validate_json(data[CONFIG_KEY])
            except ValidationError:
                log.warning(
                    "ConfigMap %s/%s holds no valid config; rendering afresh", namespace, config_map_name(stack)
                )
        found = await self.kube.secret_with_annotations(namespace, credentials_secret_name(stack))
        if found is None:
            return config, {}, 0
        credentials, annotations = found
        revision = annotations.get(CREDENTIALS_REVISION_ANNOTATION, "0")
        return config, credentials, int(revision) if revision.isdigit() else 0

    async def write_statuses(self, stack: dict[str, Any], members: list[dict[str, Any]], desired: Desired) -> None:
        bodies = {("Stack", stack["metadata"]["name"]): stack}
        bodies.update({(m["kind"], m["metadata"]["name"]): m for m in members})
        for (kind, name), update in desired.statuses.items():
            await self.write_status(bodies[(kind, name)], update)

    async def write_status(self, body: dict[str, Any], update: StatusUpdate) -> None:
        existing = dict(body.get("status") or {})
        new = status_body(existing, update, self.clock())
        if all(existing.get(key) == value for key, value in new.items()):
            return
        uid = str(body["metadata"].get("uid", ""))
        told = self._told.get(uid, {})
        for intent in transitions(existing.get("conditions", []), update.conditions):
            if told.get(intent.type) == (intent.status, intent.reason):
                continue
            kopf.event(
                body,
                type="Warning" if intent.status == FALSE else "Normal",
                reason=intent.reason,
                message=f"{intent.type}={intent.status}: {intent.message}"[:1024],
            )
        meta = body["metadata"]
        await self.kube.patch_status(body["kind"], meta["namespace"], meta["name"], new)
        self._told[uid] = {i.type: (i.status, i.reason) for i in update.conditions}

    async def report_orphans(self, key: Key) -> None:
        for member in self.indices.members_of(key):
            await self.write_status(member, orphan_status(member))

    async def _report_failure(self, key: Key, exc: Exception) -> None:
        stack = self.indices.stack(key)
        if stack is None:
            return
        update = StatusUpdate([not_ready("ApplyFailed", _describe(exc))], int(stack["metadata"].get("generation", 0)))
        try:
            await self.write_status(stack, update)
        except Exception as status_exc:
            log.warning("cannot report the failure on Stack %s/%s: %s", *key, _describe(status_exc))


def _describe(exc: Exception) -> str:
    """An error for logs and status: the API's reason and status, never a request body."""
    if isinstance(exc, ApiException):
        return f"Kubernetes API answered {exc.status} {exc.reason}"
    return type(exc).__name__ + (f": {exc}" if not isinstance(exc, (KeyError, ValueError)) else "")
