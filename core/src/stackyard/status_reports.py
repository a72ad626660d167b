"""Writing the status of a Stack's custom resources from the programs that watch them (the
worker's Schedules, EmailProviders, Buckets, Databases and Webhooks; the search component's
SearchIndexes): one Kubernetes client, merge patches that keep the conditions others own
(the operator's Ready), and the periodic reporter the per-resource status writers share.

- `ClusterStatus`: the client, opened on first use, and only where the config comes from a
  cluster (STACKYARD_STACK set); `merge_status` merges a status conditionally on the
  resourceVersion read.
- `status_patch`: the merge patch of our fields and conditions into a status.
- `PeriodicStatusReporter`: check every resource of a kind at once on a new config and every
  `interval`, one after the other, forget the ones the config no longer has, and merge each
  one's view into its status when something else than timestamps changed, and at least every
  `rewrite_interval`. A subclass says which kind it checks and how:

    class BucketStatusReporter(PeriodicStatusReporter[BucketSpec]):
        kind, plural = "Bucket", "buckets"
        ok_word, failed_word = "reachable", "not reachable"
        write_timeout = CHECK_TIMEOUT
        log = log

        def specs(self) -> Mapping[str, BucketSpec]: ...
        async def check(self, name: str, spec: BucketSpec) -> dict[str, Any]: ...
        def _significant(self, view: Mapping[str, Any]) -> dict[str, Any]: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from .config.sources import kube_api_client
from .db.probe import scrub
from .resources import GROUP, VERSION
from .runtime import Runtime

__all__ = ["TICK", "ClusterStatus", "Condition", "PeriodicStatusReporter", "now_iso", "status_patch"]

MERGE_PATCH = "application/merge-patch+json"
CONFLICT_RETRIES = 3
TICK = 1.0
"""Seconds between two looks at the config in force."""

Condition = dict[str, Any]
SpecT = TypeVar("SpecT")


def now_iso() -> str:
    """The time now as the status fields write it (RFC 3339, UTC, to the second)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_patch(current: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The status fields to merge-patch: the conditions as a whole list (a merge patch
    replaces lists), the others as they are."""
    merged = {k: v for k, v in status.items() if k != "conditions"}
    if "conditions" in status:
        ours = {c["type"]: c for c in status["conditions"]}
        conditions = []
        for existing in current.get("conditions") or []:
            mine = ours.pop(existing.get("type"), None)
            if mine is None:
                conditions.append(existing)
            elif existing.get("status") == mine["status"] and existing.get("lastTransitionTime"):
                conditions.append(mine | {"lastTransitionTime": existing["lastTransitionTime"]})
            else:
                conditions.append(mine)
        merged["conditions"] = conditions + list(ours.values())
    return merged


class ClusterStatus:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._kube: client.ApiClient | None = None

    @property
    def enabled(self) -> bool:
        return bool(os.environ.get("STACKYARD_STACK"))

    @property
    def namespace(self) -> str:
        return self.runtime.config.config.namespace

    async def api(self) -> client.CustomObjectsApi:
        if self._kube is None:
            self._kube = await kube_api_client()
        return client.CustomObjectsApi(self._kube)

    async def get(self, plural: str, name: str) -> dict[str, Any]:
        api = await self.api()
        found: dict[str, Any] = await api.get_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, plural, name
        )
        return found

    async def merge(self, plural: str, name: str, body: dict[str, Any]) -> None:
        """Merge-patch `body` (a status, with a metadata.resourceVersion to make it
        conditional) into <plural>/<name>/status."""
        api = await self.api()
        await api.patch_namespaced_custom_object_status(  # type: ignore[call-arg]  # _content_type is a kwarg
            GROUP, VERSION, self.namespace, plural, name, body, _content_type=MERGE_PATCH
        )

    async def merge_status(self, plural: str, name: str, status: dict[str, Any]) -> bool:
        """Merge `status` into <plural>/<name>/status, our conditions replacing their own
        entries among the others' (keeping lastTransitionTime while the status is the
        same), conditional on the resourceVersion read and read again on a conflict. False
        when the object does not exist (no error: it may come, or be gone)."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                current = await self.get(plural, name)
                body = {
                    "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                    "status": status_patch(current.get("status") or {}, status),
                }
                await self.merge(plural, name, body)
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                if exc.status != 409 or attempt == CONFLICT_RETRIES - 1:
                    raise
        return False

    async def close(self) -> None:
        if self._kube is not None:
            await self._kube.close()
            self._kube = None


class PeriodicStatusReporter(Generic[SpecT]):
    """Checks every resource of one kind in the config and writes its status (see the module)."""

    kind: ClassVar[str]
    """The resource's kind, as log messages name it: `Bucket`."""
    plural: ClassVar[str]
    """The resource's plural, whose status is patched: `buckets`."""
    ok_word: ClassVar[str]
    """What the first condition's status True is logged as: `reachable`."""
    failed_word: ClassVar[str]
    """What its status False is logged as: `not reachable`."""
    write_timeout: ClassVar[float]
    """Most seconds for one status write."""
    log: ClassVar[logging.Logger]
    """The subclass's module logger."""

    def __init__(self, runtime: Runtime, cluster: ClusterStatus, *, interval: float, rewrite_interval: float) -> None:
        self.runtime = runtime
        self.cluster = cluster
        self.interval = interval
        self.rewrite_interval = rewrite_interval
        self.views: dict[str, dict[str, Any]] = {}
        """The latest view of each resource (what was or would be written)."""
        self._written: dict[str, tuple[dict[str, Any], float]] = {}
        self._ok: dict[str, bool] = {}

    def specs(self) -> Mapping[str, SpecT]:
        """The resources of the config in force to check, by name."""
        raise NotImplementedError

    async def check(self, name: str, spec: SpecT) -> dict[str, Any]:
        """The status fields of one resource; its first condition says whether it is ok."""
        raise NotImplementedError

    def _significant(self, view: Mapping[str, Any]) -> dict[str, Any]:
        """`view` without what changes on every check (timestamps, round trips)."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        """Check at once on a new config and every `interval`, until `stop` is set (which
        cancels a check under way: a probe of an absent server takes seconds)."""
        checked: object = None
        due = 0.0
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                applied = self.runtime.live.current
                if applied is not None and (applied is not checked or time.monotonic() >= due):
                    checked, due = applied, time.monotonic() + self.interval
                    await self._check_unless_stopped(stopping)
                await asyncio.wait([stopping], timeout=TICK)
        finally:
            stopping.cancel()

    async def _check_unless_stopped(self, stopping: asyncio.Task[Any]) -> None:
        checking = asyncio.create_task(self.check_all(), name=f"check {self.kind}s")
        await asyncio.wait([checking, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not checking.done():
            checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checking
        elif checking.exception() is not None:  # a bug: say so, try again on the next turn
            self.log.error("checking the %ss failed", self.kind, exc_info=checking.exception())

    async def check_all(self) -> None:
        """Check and write every resource of the config in force, one after the other."""
        specs = self.specs()
        for gone in set(self.views) - set(specs):
            self.views.pop(gone)
            self._written.pop(gone, None)
            self._ok.pop(gone, None)
        for name, spec in sorted(specs.items()):
            try:
                view = await self.check(name, spec)
            except Exception as exc:  # a bug or a refusal nothing classifies: the others still get checked
                self.log.error("checking %s %s failed: %s", self.kind, name, type(exc).__name__, exc_info=exc)
                continue
            self.views[name] = view
            await self._write(name, view)

    def _note(self, name: str, condition: Condition) -> None:
        """Log a change of `condition` (the first of a view) between ok and not."""
        ok = condition["status"] == "True"
        if self._ok.get(name) == ok:
            return
        self._ok[name] = ok
        if ok:
            self.log.info("%s %s %s: %s", self.kind, name, self.ok_word, condition["message"])
        else:
            self.log.warning(
                "%s %s %s (%s): %s", self.kind, name, self.failed_word, condition["reason"], condition["message"]
            )

    async def _write(self, name: str, view: dict[str, Any]) -> None:
        if not self.cluster.enabled:
            return
        now = time.monotonic()
        written = self._written.get(name)
        if written is not None and written[0] == self._significant(view) and now - written[1] < self.rewrite_interval:
            return
        try:
            async with asyncio.timeout(self.write_timeout):
                found = await self.cluster.merge_status(self.plural, name, view)
        except Exception as exc:
            code = getattr(exc, "status", None)
            self.log.warning(
                "status of %s %s not written (%s%s); trying again on the next check",
                self.kind,
                name,
                type(exc).__name__,
                f" {code}" if code else "",
            )
            return
        if not found:
            self.log.debug("%s %s/%s not found: its status is not written", self.kind, self.cluster.namespace, name)
        self._written[name] = (self._significant(view), now)

    def _scrub(self, text: str) -> str:
        """`text` without any credential value of the Stack (6 characters or more), nor URIs."""
        applied = self.runtime.live.current
        for secret in applied.credentials.values() if applied is not None else ():
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return str(scrub(text))
