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
import logging
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

from pymongo import AsyncMongoClient
from stackyard.db.indexes import Drift, definition, reconcile
from stackyard.db.migrations import MigrationState, history, migration_state
from stackyard.db.options import DatabaseOptionsError
from stackyard.db.probe import ProbeResult, classify, is_connection_error, probe, scrub
from stackyard.db.schema import capability_indexes
from stackyard.resources.database import DatabaseSpec
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus, Condition, PeriodicStatusReporter, now_iso

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
LIST_LIMIT = 1000
ERROR_LIMIT = 2048
MESSAGE_LIMIT = 4096

Patch = Callable[[str, dict[str, Any]], Any]


def _condition(type_: str, ok: bool, reason: str, message: str) -> Condition:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…",
        "lastTransitionTime": now_iso(),
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
    status = {"inSync": in_sync, **{k: v[:LIST_LIMIT] for k, v in labels.items()}, "checkedAt": now_iso()}
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


class DatabaseStatusReporter(PeriodicStatusReporter[DatabaseSpec]):
    """Checks every Database of the config and writes its status (see the module)."""

    kind, plural = "Database", "databases"
    ok_word, failed_word = "connected", "not connected"
    write_timeout = PROBE_TIMEOUT
    log = log

    def __init__(
        self,
        runtime: Runtime,
        cluster: ClusterStatus,
        *,
        interval: float = CHECK_INTERVAL,
        rewrite_interval: float = REWRITE_INTERVAL,
        client_for: Callable[[str], AsyncMongoClient[Any]] | None = None,
    ) -> None:
        super().__init__(runtime, cluster, interval=interval, rewrite_interval=rewrite_interval)
        self._client_for = client_for or runtime.database_client

    def specs(self) -> Mapping[str, DatabaseSpec]:
        return self.runtime.config.config.databases

    def _significant(self, view: Mapping[str, Any]) -> dict[str, Any]:
        return significant(view)

    async def check(self, name: str, spec: DatabaseSpec) -> dict[str, Any]:
        """The status fields of one Database: Connected, then (when connected) indexes and
        migrations."""
        view: dict[str, Any]
        try:
            client = self._client_for(name)
        except DatabaseOptionsError as exc:  # settings the driver refuses; the message quotes no password
            condition = _condition("Connected", False, "Misconfigured", str(exc))
            view = {"conditions": [self._scrubbed(condition)]}
            self._note(name, view["conditions"][0])
            return view
        result = await probe(client, spec.connection.database, timeout=PROBE_TIMEOUT)
        view = {"conditions": [self._scrubbed(connected_condition(result))]}
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
        self._note(name, view["conditions"][0])
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

    def _scrubbed(self, condition: Condition) -> Condition:
        return condition | {"message": self._scrub(condition["message"])}
