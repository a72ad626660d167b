"""The machinery the worker's per-resource status reporters share (Buckets, Databases):
check every resource of a kind at once on a new config and every `interval`, one after the
other, forget the ones the config no longer has, and merge each one's view into its status
when something else than timestamps changed, and at least every `rewrite_interval`.

A subclass says which kind it checks and how:

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
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from stackyard.db.probe import scrub
from stackyard.runtime import Runtime

from .cluster_status import ClusterStatus

__all__ = ["TICK", "Condition", "PeriodicStatusReporter"]

TICK = 1.0
"""Seconds between two looks at the config in force."""

Condition = dict[str, Any]
SpecT = TypeVar("SpecT")


def now_iso() -> str:
    """The time now as the status fields write it (RFC 3339, UTC, to the second)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
