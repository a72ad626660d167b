"""What workers know of each Database, written to its status: Connected (with the server's
version, topology and round trip), IndexesInSync (and the drift, fixed or only listed per
spec.indexPolicy) and Migrated (from the history collection, when spec.migrations is set).

Every 60 seconds, and at once when the config changes, each Database of the config is
checked in turn:

1. probe (`stackyard.db.probe`): Connected True/Connected ("MongoDB 7.0.77, Single, 0.8 ms")
   or False with AuthenticationFailed, TLSError, Timeout, Unreachable or Misconfigured. Not
   connected: the other conditions stay as last written.
2. indexes: spec.indexes (and every capability's, for the Stack's own Database) reconciled
   under spec.indexPolicy: `enforce` creates the missing and rebuilds the different, `report`
   changes nothing. IndexesInSync True/InSync, or False/Drift listing what differs (under
   enforce: what could not be fixed, and why).
3. migrations: Migrated True/AtVersion "at version 3", False/Pending "at 2, spec wants 3" or
   False/Failed "version 3 (V3__x.json) failed: <error>; the database stays at 2".

A status is written when something else than timestamps and the round trip changed, and at
least every 5 minutes; several replicas write the same facts, the last one wins. Texts come
from the probe (scrubbed of URIs) and are scrubbed of the Stack's credential values again.

    reporter = DatabaseStatusReporter(runtime, cluster)
    task = asyncio.create_task(reporter.run(stop))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from stackyard.db.indexes import Drift, definition, reconcile
from stackyard.db.migrations import MigrationState, history, migration_state
from stackyard.db.options import DatabaseOptionsError
from stackyard.db.probe import ProbeResult, classify, is_connection_error, probe, scrub
from stackyard.db.schema import capability_indexes
from stackyard.resources.database import DatabaseSpec
from stackyard.runtime import Runtime

from .cluster_status import ClusterStatus

__all__ = [
    "CHECK_INTERVAL",
    "REWRITE_INTERVAL",
    "DatabaseStatusReporter",
    "connected_condition",
    "indexes_status",
    "migration_status",
    "significant",
]

log = logging.getLogger(__name__)

CHECK_INTERVAL = 60.0
"""Seconds between two checks of an unchanged config."""
REWRITE_INTERVAL = 300.0
"""Most seconds between two writes of an unchanged status (its timestamps and round trip)."""
PROBE_TIMEOUT = 10.0
CHECK_TIMEOUT = 120.0
"""Most seconds for the indexes and migrations of one Database."""
TICK = 1.0
LIST_LIMIT = 1000
ERROR_LIMIT = 2048
MESSAGE_LIMIT = 4096

Condition = dict[str, Any]
Patch = Callable[[str, dict[str, Any]], Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(type_: str, ok: bool, reason: str, message: str) -> Condition:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…",
        "lastTransitionTime": _now(),
    }


def connected_condition(result: ProbeResult) -> Condition:
    return _condition("Connected", result.ok, result.reason, result.message)


def indexes_status(
    drift: Drift, declared: int, policy: str, failure: str | None = None
) -> tuple[Condition, dict[str, Any]]:
    """IndexesInSync and status.indexes for the drift left after reconciling (`failure`:
    why reconciling stopped short)."""
    in_sync = drift.in_sync and not drift.errors and failure is None
    if in_sync:
        noted = drift.extra or drift.ttl_unsupported
        text = f"{declared} declared {'index' if declared == 1 else 'indexes'} in place"
        condition = _condition("IndexesInSync", True, "InSync", text + (f"; {drift.message()}" if noted else ""))
    else:
        parts = [drift.message()]
        if failure is not None:
            parts.append(f"enforcing failed: {failure}")
        elif policy == "report":
            parts.append("indexPolicy report: nothing changed")
        condition = _condition("IndexesInSync", False, "Drift", "; ".join(parts))
    labels = drift.labels()
    status = {"inSync": in_sync, **{k: v[:LIST_LIMIT] for k, v in labels.items()}, "checkedAt": _now()}
    return condition, status


def migration_status(
    state: MigrationState, desired: int, failed_source: str | None = None
) -> tuple[Condition, dict[str, Any]]:
    """Migrated and status.migration for the history's state against spec.migrations.version."""
    if state.version >= desired:
        condition = _condition("Migrated", True, "AtVersion", f"at version {state.version}")
    elif state.failed_version is not None and state.failed_version <= desired:
        source = f" ({failed_source})" if failed_source else ""
        condition = _condition(
            "Migrated",
            False,
            "Failed",
            f"version {state.failed_version}{source} failed: {state.error or 'no error recorded'}; "
            f"the database stays at {state.version}",
        )
    else:
        running = getattr(state, "running_version", None)
        note = f" (version {running} running)" if running is not None else ""
        condition = _condition("Migrated", False, "Pending", f"at {state.version}, spec wants {desired}{note}")
    error = state.error[:ERROR_LIMIT] if state.error else None
    status = {
        "version": state.version,
        "desiredVersion": desired,
        "failedVersion": state.failed_version,
        "error": error,
        "lastAppliedAt": state.last_applied_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if state.last_applied_at
        else None,
    }
    return condition, status


def significant(view: Mapping[str, Any]) -> dict[str, Any]:
    """`view` without what changes on every check: timestamps, the round trip (also in the
    message of Connected=True)."""
    out: dict[str, Any] = {}
    for key, value in view.items():
        if key == "conditions":
            out[key] = [
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                | ({"message": None} if c["type"] == "Connected" and c["status"] == "True" else {})
                for c in value
            ]
        elif isinstance(value, Mapping):
            out[key] = {k: v for k, v in value.items() if k not in ("checkedAt", "roundTripMs")}
        else:
            out[key] = value
    return out


class DatabaseStatusReporter:
    """Checks every Database of the config and writes its status (see the module)."""

    def __init__(
        self,
        runtime: Runtime,
        cluster: ClusterStatus,
        *,
        interval: float = CHECK_INTERVAL,
        rewrite_interval: float = REWRITE_INTERVAL,
        client_for: Callable[[str], AsyncMongoClient[Any]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.cluster = cluster
        self.interval = interval
        self.rewrite_interval = rewrite_interval
        self._client_for = client_for or runtime.database_client
        self.views: dict[str, dict[str, Any]] = {}
        """The latest view of each Database (what was or would be written)."""
        self._written: dict[str, tuple[dict[str, Any], float]] = {}
        self._connected: dict[str, bool] = {}

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
        checking = asyncio.create_task(self.check_all(), name="check Databases")
        await asyncio.wait([checking, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not checking.done():
            checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checking
        elif checking.exception() is not None:  # a bug: say so, try again on the next turn
            log.error("checking the Databases failed", exc_info=checking.exception())

    async def check_all(self) -> None:
        """Check and write every Database of the config in force, one after the other."""
        databases = self.runtime.config.config.databases
        for gone in set(self.views) - set(databases):
            self.views.pop(gone)
            self._written.pop(gone, None)
            self._connected.pop(gone, None)
        for name, spec in sorted(databases.items()):
            try:
                view = await self.check(name, spec)
            except Exception as exc:  # a bug or a refusal nothing classifies: the others still get checked
                log.error("checking Database %s failed: %s", name, type(exc).__name__, exc_info=exc)
                continue
            self.views[name] = view
            await self._write(name, view)

    async def check(self, name: str, spec: DatabaseSpec) -> dict[str, Any]:
        """The status fields of one Database: Connected, then (when connected) indexes and
        migrations."""
        try:
            client = self._client_for(name)
        except DatabaseOptionsError as exc:  # settings the driver refuses; the message quotes no password
            condition = _condition("Connected", False, "Misconfigured", str(exc))
            view = {"conditions": [self._scrubbed(condition)]}
            self._note_connection(name, view["conditions"][0])
            return view
        result = await probe(client, spec.connection.database, timeout=PROBE_TIMEOUT)
        view: dict[str, Any] = {"conditions": [self._scrubbed(connected_condition(result))]}
        if result.ok and result.server is not None:
            view["server"] = result.server.model_dump(by_alias=True)
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    await self._check_contents(name, spec, client, view)
            except Exception as exc:
                if not (is_connection_error(exc) or isinstance(exc, TimeoutError)):
                    raise
                reason, message = classify(exc, client, CHECK_TIMEOUT)
                view = {"conditions": [self._scrubbed(_condition("Connected", False, reason, message))]}
        self._note_connection(name, view["conditions"][0])
        return view

    async def _check_contents(
        self, name: str, spec: DatabaseSpec, client: AsyncMongoClient[Any], view: dict[str, Any]
    ) -> None:
        database = client[spec.connection.database]
        declared = [definition(index) for index in spec.indexes]
        config = self.runtime.config.config
        if config.spec.mongodb.database_ref is not None and config.spec.mongodb.database_ref.name == name:
            declared += capability_indexes()
        failure: str | None = None
        try:
            drift = await reconcile(database, declared, spec.index_policy)
        except Exception as exc:
            if is_connection_error(exc):
                raise
            failure = scrub(f"{type(exc).__name__}: {exc}")[:ERROR_LIMIT]
            drift = await reconcile(database, declared, "report")
        condition, view["indexes"] = indexes_status(drift, len(declared), spec.index_policy, failure)
        view["conditions"].append(self._scrubbed(condition))
        if spec.migrations is not None:
            state = await migration_state(database)
            source = None
            if state.failed_version is not None:
                records = await history(database)
                source = next((r.get("source") for r in records if r.get("version") == state.failed_version), None)
            condition, view["migration"] = migration_status(state, spec.migrations.version, source)
            if view["migration"]["error"]:
                view["migration"]["error"] = self._scrub(view["migration"]["error"])
            view["conditions"].append(self._scrubbed(condition))

    def _note_connection(self, name: str, connected: Condition) -> None:
        ok = connected["status"] == "True"
        if self._connected.get(name) == ok:
            return
        self._connected[name] = ok
        if ok:
            log.info("Database %s connected: %s", name, connected["message"])
        else:
            log.warning("Database %s not connected (%s): %s", name, connected["reason"], connected["message"])

    async def _write(self, name: str, view: dict[str, Any]) -> None:
        if not self.cluster.enabled:
            return
        now = time.monotonic()
        written = self._written.get(name)
        if written is not None and written[0] == significant(view) and now - written[1] < self.rewrite_interval:
            return
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                found = await self.cluster.merge_status("databases", name, view)
        except Exception as exc:
            code = getattr(exc, "status", None)
            log.warning(
                "status of Database %s not written (%s%s); trying again on the next check",
                name,
                type(exc).__name__,
                f" {code}" if code else "",
            )
            return
        if not found:
            log.debug("Database %s/%s not found: its status is not written", self.cluster.namespace, name)
        self._written[name] = (significant(view), now)

    def _scrubbed(self, condition: Condition) -> Condition:
        return condition | {"message": self._scrub(condition["message"])}

    def _scrub(self, text: str) -> str:
        applied = self.runtime.live.current
        for secret in applied.credentials.values() if applied is not None else ():
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return scrub(text)
