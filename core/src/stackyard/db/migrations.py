"""Versioned migrations, each applied once, in order, under a lock with a lease.

Scripts are named `V<version>__<name>.json` (database commands in Extended JSON, run in order)
or `V<version>__<name>.py` (a module with `async def up(db)`), in a directory (a mounted
ConfigMap) or as modules of a package. Versions run from the lowest present to the target
with no gaps. The history collection holds one record a version (`_id` = version):
`status` running, applied or failed, with its times, checksum, runner and error. The database
is at the highest applied version.

A run takes the lock (`migration_lock.LeaseLock`), re-reads the history, then for each
version above the current one up to the target: confirms the lock, claims the version
(inserts its record as running, or, for a version that failed or whose runner vanished,
replaces that record), runs it while the lock is renewed (losing the lock cancels it),
confirms the lock again and records the outcome. The first failure stops the run; a later
run retries that version. docs/database-migrations.md says what this guarantees and where it
stops.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from bson import json_util
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from .migration_lock import LOCK_COLLECTION, LeaseLock, LockLost, LockTimeout, utc
from .probe import is_connection_error, scrub

__all__ = [
    "HISTORY_COLLECTION",
    "LOCK_COLLECTION",
    "Migration",
    "MigrationError",
    "MigrationState",
    "Migrator",
    "RunResult",
    "history",
    "load_directory",
    "load_module",
    "migration_state",
]

HISTORY_COLLECTION = "_stackyard_migrations"
LOCK_NAME = "migrations"
SCRIPT_NAME = re.compile(r"^V(?P<version>[0-9]{1,9})__(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<kind>json|py)$")
MODULE_NAME = re.compile(r"^V(?P<version>[0-9]{1,9})__(?P<name>[A-Za-z0-9_]+)$")
ERROR_LIMIT = 2000

Up = Callable[[AsyncDatabase[Any]], Awaitable[None]]


class MigrationError(Exception):
    """The scripts cannot be run as they are (bad names, gaps, bad JSON...): nothing ran."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    kind: Literal["json", "python"]
    checksum: str
    source: str
    """The file name or module it came from (V3__add_email_index.json)."""
    up: Up


# -- loading -------------------------------------------------------------------------------


def load_directory(path: Path) -> list[Migration]:
    """The scripts of a directory, by version. Hidden entries (a mounted ConfigMap's `..data`)
    are skipped; any other file must be a script."""
    if not path.is_dir():
        raise MigrationError(f"{path} is not a directory of migration scripts")
    migrations = []
    for file in sorted(path.iterdir()):
        if file.name.startswith(".") or file.is_dir():
            continue
        match = SCRIPT_NAME.match(file.name)
        if match is None:
            raise MigrationError(
                f"{file.name}: not a migration script name (write V<version>__<name>.json or V<version>__<name>.py)"
            )
        version, name = _version(file.name, match), match["name"]
        data = file.read_bytes()
        checksum = hashlib.sha256(data).hexdigest()
        if match["kind"] == "json":
            up = _json_script(file.name, data)
            migrations.append(Migration(version, name, "json", checksum, file.name, up))
        else:
            module = _load_file(file, f"stackyard_migration_{checksum[:12]}_v{version}")
            migrations.append(Migration(version, name, "python", checksum, file.name, _async_up(file.name, module)))
    return _by_version(migrations)


def load_module(package: str) -> list[Migration]:
    """The modules `V<version>__<name>` of a package (other modules, helpers, are skipped)."""
    try:
        parent = importlib.import_module(package)
    except ImportError as exc:
        raise MigrationError(f"cannot import the migrations package {package}: {exc}") from exc
    if not hasattr(parent, "__path__"):
        raise MigrationError(f"{package} is a module, not a package of migration modules")
    migrations = []
    for info in pkgutil.iter_modules(parent.__path__):
        match = MODULE_NAME.match(info.name)
        if match is None:
            if re.match(r"^[Vv][0-9]", info.name):
                raise MigrationError(f"{package}.{info.name}: not a migration module name (write V<version>__<name>)")
            continue
        source = f"{package}.{info.name}"
        try:
            module = importlib.import_module(source)
        except Exception as exc:
            raise MigrationError(f"{source}: cannot be imported: {_describe(exc)}") from exc
        try:
            checksum = hashlib.sha256(inspect.getsource(module).encode()).hexdigest()
        except (OSError, TypeError) as exc:
            raise MigrationError(f"{source}: its source is not in the image (its checksum is made of it)") from exc
        migrations.append(
            Migration(_version(source, match), match["name"], "python", checksum, source, _async_up(source, module))
        )
    return _by_version(migrations)


def _version(source: str, match: re.Match[str]) -> int:
    version = int(match["version"])
    if version < 1:
        raise MigrationError(f"{source}: versions start at 1")
    return version


def _by_version(migrations: list[Migration]) -> list[Migration]:
    seen: dict[int, str] = {}
    for migration in migrations:
        if migration.version in seen:
            raise MigrationError(f"version {migration.version} twice: {seen[migration.version]} and {migration.source}")
        seen[migration.version] = migration.source
    return sorted(migrations, key=lambda m: m.version)


def _json_script(source: str, data: bytes) -> Up:
    try:
        script = json_util.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise MigrationError(f"{source}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise MigrationError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except Exception as exc:  # Extended JSON that does not decode ({"$date": "yesterday"})
        raise MigrationError(f"{source}: invalid Extended JSON: {exc}") from exc
    if not isinstance(script, dict):
        raise MigrationError(f'{source}: must be an object {{"description": ..., "commands": [...]}}')
    unknown = sorted(set(script) - {"description", "commands"})
    if unknown:
        raise MigrationError(f"{source}: unknown keys {', '.join(unknown)} (allowed: description, commands)")
    commands = script.get("commands")
    if not isinstance(commands, list) or not commands:
        raise MigrationError(f"{source}: commands must be a non-empty list of database commands")
    for index, command in enumerate(commands, 1):
        if not isinstance(command, dict) or not command:
            raise MigrationError(f"{source}: command {index} is not a command document like {{'create': 'users'}}")

    async def up(db: AsyncDatabase[Any]) -> None:
        for index, command in enumerate(commands, 1):
            try:
                await db.command(command)
            except OperationFailure as exc:
                raise MigrationError(
                    f"command {index} of {len(commands)} ({next(iter(command))}) failed: {_describe(exc)}"
                ) from exc

    return up


def _load_file(path: Path, module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise MigrationError(f"{path.name}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise MigrationError(f"{path.name}, line {exc.lineno}: {exc.msg}") from exc
    except Exception as exc:
        del sys.modules[module_name]
        raise MigrationError(f"{path.name}: failed while loading: {_describe(exc)}") from exc
    return module


def _async_up(source: str, module: ModuleType) -> Up:
    up = getattr(module, "up", None)
    if not inspect.iscoroutinefunction(up):
        raise MigrationError(
            f"{source}: define `async def up(db)` (db is pymongo's AsyncDatabase; the sync API is not supported)"
        )
    return up


# -- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationState:
    version: int
    failed_version: int | None
    error: str | None
    last_applied_at: datetime | None
    running_version: int | None = None
    """A version whose run has started and not been recorded (running, or its runner vanished)."""


def _state(records: Sequence[Mapping[str, Any]]) -> MigrationState:
    applied = [r for r in records if r.get("status") == "applied"]
    version = max((int(r["_id"]) for r in applied), default=0)
    failed = [r for r in records if r.get("status") == "failed" and int(r["_id"]) > version]
    running = [r for r in records if r.get("status") == "running" and int(r["_id"]) > version]
    first_failed = min(failed, key=lambda r: int(r["_id"]), default=None)
    finished = [utc(r["finishedAt"]) for r in applied if isinstance(r.get("finishedAt"), datetime)]
    return MigrationState(
        version=version,
        failed_version=int(first_failed["_id"]) if first_failed else None,
        error=first_failed.get("error") if first_failed else None,
        last_applied_at=max(finished, default=None),
        running_version=min((int(r["_id"]) for r in running), default=None),
    )


async def _records(db: AsyncDatabase[Any]) -> list[dict[str, Any]]:
    return [record async for record in db[HISTORY_COLLECTION].find({}, sort=[("_id", -1)])]


async def migration_state(db: AsyncDatabase[Any]) -> MigrationState:
    """Where the database stands, from the history collection."""
    return _state(await _records(db))


async def history(db: AsyncDatabase[Any]) -> list[dict[str, Any]]:
    """Every version's record, newest version first, JSON-safe (`version`, ISO dates)."""
    return [_json_safe(record) for record in await _records(db)]


def _json_safe(record: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"version": int(record["_id"])}
    for key, value in record.items():
        if key != "_id":
            out[key] = utc(value).isoformat() if isinstance(value, datetime) else value
    return out


# -- running ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    start_version: int
    version: int
    applied: list[int]
    failed_version: int | None
    error: str | None
    waited_seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def default_runner() -> str:
    """host-pid-random: a pod's name is its host name."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Migrator:
    def __init__(
        self,
        db: AsyncDatabase[Any],
        migrations: Sequence[Migration],
        *,
        lease: float = 60.0,
        runner: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.migrations = _by_version(list(migrations))
        self.runner = runner or default_runner()
        self.progress = progress or (lambda _line: None)
        self.lock = LeaseLock(db, LOCK_NAME, owner=self.runner, lease=lease, progress=self.progress)
        self.history = db[HISTORY_COLLECTION]

    async def migrate(self, target: int, *, wait: float = 600.0) -> RunResult:
        """Bring the database to `target`. MigrationError (nothing ran) when the scripts cannot
        reach it; otherwise a RunResult, `ok` or with the error that stopped the run."""
        self._check_sequence(target)
        before = await _records(self.db)
        state = _state(before)
        self._check_reachable(state.version, target)
        result = RunResult(state.version, state.version, [], None, None, 0.0, self._changed_checksums(before))
        if target <= state.version:
            self._say_nothing_to_do(result, target)
            return result
        seen_failures = {int(r["_id"]): r.get("startedAt") for r in before if r.get("status") == "failed"}
        try:
            result.waited_seconds = await self.lock.acquire(wait)
        except LockTimeout as exc:
            result.error = f"gave up waiting for the migration lock: {exc}"
            self.progress(result.error)
            return result
        async with self.lock.held():
            try:
                await self._run(result, target, seen_failures)
            except LockLost as exc:
                result.error = f"{exc}; stopped at version {result.version}"
                self.progress(result.error)
        return result

    def _check_sequence(self, target: int) -> None:
        if target < 0:
            raise MigrationError(f"target version {target} is negative")
        versions = [m.version for m in self.migrations]
        if versions and versions != list(range(versions[0], versions[-1] + 1)):
            missing = sorted(set(range(versions[0], versions[-1] + 1)) - set(versions))
            raise MigrationError(f"versions missing between {versions[0]} and {versions[-1]}: {missing}")
        if target > (versions[-1] if versions else 0):
            have = f"the scripts end at {versions[-1]}" if versions else "there are no scripts"
            raise MigrationError(f"target version {target}, but {have}")

    def _check_reachable(self, current: int, target: int) -> None:
        if target > current and self.migrations and self.migrations[0].version > current + 1:
            raise MigrationError(
                f"the database is at version {current}, but the scripts start at {self.migrations[0].version}"
            )

    def _changed_checksums(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        by_version = {m.version: m for m in self.migrations}
        warnings = []
        for record in sorted(records, key=lambda r: int(r["_id"])):
            migration = by_version.get(int(record["_id"]))
            if record.get("status") == "applied" and migration and migration.checksum != record.get("checksum"):
                warnings.append(
                    f"{migration.source} changed since version {migration.version} was applied "
                    f"(checksum {str(record.get('checksum'))[:12]} then, {migration.checksum[:12]} now); "
                    "it is not run again"
                )
        for warning in warnings:
            self.progress(f"warning: {warning}")
        return warnings

    def _say_nothing_to_do(self, result: RunResult, target: int) -> None:
        if target < result.version:
            self.progress(
                f"the database is at version {result.version}, above the target {target}: "
                "migrations only go up; nothing done"
            )
        else:
            self.progress(f"the database is at version {result.version}: nothing to do")

    async def _run(self, result: RunResult, target: int, seen_failures: Mapping[int, Any]) -> None:
        records = {int(r["_id"]): r for r in await _records(self.db)}
        state = _state(list(records.values()))
        result.version = state.version
        self._check_reachable(state.version, target)
        if target <= state.version:
            self.progress(f"the database reached version {state.version} while this runner waited")
            return
        for migration in self.migrations:
            if not state.version < migration.version <= target:
                continue
            record = records.get(migration.version)
            if (
                record
                and record.get("status") == "failed"
                and seen_failures.get(migration.version) != record.get("startedAt")
            ):
                # It failed in another runner while this one waited: report it, do not retry.
                result.failed_version, result.error = migration.version, str(record.get("error"))
                self.progress(f"version {migration.version} ({migration.source}) failed in {record.get('runner')}")
                return
            await self.lock.renew()
            await self._claim(migration, record)
            self.progress(f"applying version {migration.version} ({migration.source})")
            started = time.monotonic()
            try:
                await self.lock.guard(migration.up(self.db))
            except LockLost:
                raise
            except Exception as exc:
                if is_connection_error(exc):
                    # The server went away, not the script: the claim stays running and the
                    # next run (the Job's retry) runs the version again.
                    self.progress(f"version {migration.version} interrupted: {_describe(exc)}")
                    raise
                error = _describe(exc)
                await self.lock.renew()
                await self._finish(migration, started, error)
                result.failed_version, result.error = migration.version, error
                self.progress(
                    f"version {migration.version} ({migration.source}) failed: {error}; "
                    f"the database stays at {result.version}"
                )
                return
            await self.lock.renew()
            await self._finish(migration, started, None)
            result.applied.append(migration.version)
            result.version = migration.version
            self.progress(f"applied version {migration.version} in {time.monotonic() - started:.1f}s")

    async def _claim(self, migration: Migration, record: Mapping[str, Any] | None) -> None:
        """Record the version as running under our lock epoch. The insert (first attempt)
        lets one runner only claim it; a retry replaces the failed or orphaned record, matched
        on the runner and epoch seen."""
        now = await self.lock.server_now()
        claim = {
            "name": migration.name,
            "kind": migration.kind,
            "source": migration.source,
            "checksum": migration.checksum,
            "status": "running",
            "startedAt": now,
            "finishedAt": None,
            "durationMs": None,
            "error": None,
            "runner": self.runner,
            "epoch": self.lock.epoch,
            "attempts": int(record.get("attempts", 1)) + 1 if record else 1,
        }
        if record is None:
            try:
                await self.history.insert_one({"_id": migration.version, **claim})
            except DuplicateKeyError as exc:
                raise LockLost(f"lost the lock: version {migration.version} was claimed by another runner") from exc
            return
        if record.get("status") == "running":
            self.progress(
                f"version {migration.version} was left running by {record.get('runner')}, which lost the lock; "
                "running it again"
            )
        replaced = await self.history.update_one(
            {
                "_id": migration.version,
                "status": record.get("status"),
                "runner": record.get("runner"),
                "epoch": record.get("epoch"),
            },
            {"$set": claim},
        )
        if replaced.matched_count != 1:
            raise LockLost(f"lost the lock: version {migration.version} was claimed by another runner")

    async def _finish(self, migration: Migration, started: float, error: str | None) -> None:
        """Record the outcome, if the version is still our claim."""
        recorded = await self.history.update_one(
            {"_id": migration.version, "status": "running", "runner": self.runner, "epoch": self.lock.epoch},
            {
                "$set": {
                    "status": "failed" if error else "applied",
                    "finishedAt": await self.lock.server_now(),
                    "durationMs": round((time.monotonic() - started) * 1000),
                    "error": error,
                }
            },
        )
        if recorded.matched_count != 1:
            raise LockLost(f"lost the lock: version {migration.version} is no longer this runner's claim")


def _describe(exc: BaseException) -> str:
    """An error for the history and status: its type and message, no credentials, bounded."""
    if isinstance(exc, OperationFailure) and isinstance(exc.details, Mapping) and exc.details.get("errmsg"):
        text = f"{exc.details.get('codeName') or 'OperationFailure'} ({exc.code}): {exc.details['errmsg']}"
    elif isinstance(exc, MigrationError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = scrub(text)
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"
