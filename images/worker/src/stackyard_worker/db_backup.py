"""The built-in job function `stackyard.db.backup`: back up a Database of the Stack to its
volume, prune by its retention, and record the run in the Database's `status.lastBackup`.

The operator's Schedule `<database>-backup` enqueues it with the payload
`{"database": NAME}`; the backups go to `$STACKYARD_BACKUP_ROOT/NAME`, where the operator
mounts the Database's volume. A failed backup fails the job, so the queue retries it (and
dead-letters it after the last attempt)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from stackyard.db.backup import BackupError, backup, backup_name, prune
from stackyard.db.options import database_uri, scrub
from stackyard.jobs import FunctionRegistry, JobContext, NonRetryable
from stackyard.resources.base import as_timedelta
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus

log = logging.getLogger(__name__)

BACKUP_FUNCTION = "stackyard.db.backup"
BACKUP_ROOT_ENV = "STACKYARD_BACKUP_ROOT"
DEFAULT_BACKUP_ROOT = "/var/lib/stackyard/backups"
MAX_ERROR = 2048


def backup_root() -> Path:
    return Path(os.environ.get(BACKUP_ROOT_ENV) or DEFAULT_BACKUP_ROOT)


def backup_functions(runtime: Runtime, cluster: ClusterStatus) -> FunctionRegistry:
    """The registry holding `stackyard.db.backup` (the worker includes it in its functions)."""
    registry = FunctionRegistry()
    registry.add(BACKUP_FUNCTION, DatabaseBackups(runtime, cluster).run)
    return registry


class DatabaseBackups:
    def __init__(self, runtime: Runtime, cluster: ClusterStatus) -> None:
        self.runtime = runtime
        self.cluster = cluster

    async def run(self, ctx: JobContext, payload: Any) -> dict[str, Any]:
        name = payload.get("database") if isinstance(payload, dict) else None
        if not isinstance(name, str) or not name:
            raise NonRetryable('the payload must be {"database": "<name of a Database>"}')
        applied = self.runtime.config
        spec = applied.config.databases.get(name)
        if spec is None:
            raise NonRetryable(f"no Database {name!r} in the Stack's config")
        if spec.backup is None:
            raise NonRetryable(f"Database {name!r} has no spec.backup (no volume to write to)")
        retention = spec.backup.retention
        root = backup_root() / name
        started = datetime.now(UTC)
        try:
            db = self.runtime.database_client(name)[spec.connection.database]
            result = await backup(
                db,
                root,
                collections=spec.backup.collections,
                now=started,
                progress=lambda line: log.info("backup of Database %s: %s", name, line),
            )
        except Exception as exc:
            error = self._scrub(f"{type(exc).__name__}: {exc}", applied.credentials, name)[:MAX_ERROR]
            log.warning("backup of Database %s failed: %s", name, error)
            await self._report(name, {"name": backup_name(started), "outcome": "failed", "error": error})
            raise BackupError(error) from None
        await self._report(
            name,
            {"name": result.name, "outcome": "succeeded", "documents": result.documents, "bytes": result.bytes},
        )
        done: dict[str, Any] = {
            "name": result.name,
            "documents": result.documents,
            "bytes": result.bytes,
            "collections": result.collections,
            "seconds": round(result.seconds, 3),
        }
        try:
            done["pruned"] = await asyncio.to_thread(
                prune,
                root,
                keep_last=retention.keep_last,
                max_age=as_timedelta(retention.max_age) if retention.max_age else None,
                now=datetime.now(UTC),
            )
        except OSError as exc:  # the backup is made: retrying the job would only make another
            done["pruneError"] = f"{type(exc).__name__}: {exc}"
            log.warning("backups of Database %s not pruned: %s", name, done["pruneError"])
        else:
            if done["pruned"]:
                log.info("backups of Database %s deleted by retention: %s", name, ", ".join(done["pruned"]))
        return done

    async def _report(self, name: str, run: dict[str, Any]) -> None:
        """Merge the run into the Database's status.lastBackup (where the config comes from a
        cluster). A status that cannot be written does not fail a backup that was made."""
        if not self.cluster.enabled:
            return
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        last = {"at": at, "documents": 0, "bytes": 0, "error": None} | run
        try:
            await self.cluster.merge("databases", name, {"status": {"lastBackup": last}})
        except ApiException as exc:
            log.warning("status.lastBackup of Database %s not written: %s %s", name, exc.status, exc.reason)

    @staticmethod
    def _scrub(text: str, credentials: Mapping[str, str], name: str) -> str:
        """An error without the Database's connection string, its password, or any credential."""
        with contextlib.suppress(KeyError):
            text = scrub(text, database_uri(credentials, name))
        for secret in credentials.values():
            if len(secret) >= 6:
                text = text.replace(secret, "***")
        return text
