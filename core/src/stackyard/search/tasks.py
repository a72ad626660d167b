"""The durable task log of the search component: every write through the API (documents
added, replaced or deleted, a rebuild) is a task, enqueued before the 202 and processed in
order per index, as Meilisearch's task queue.

Storage: SQLite (stdlib sqlite3) at `<data>/tasks.sqlite` in WAL mode with synchronous=FULL,
so a committed task survives a crash or a power cut; a task's payload (the documents of an
addition, the ids of a deletion) is a JSON file `<data>/tasks/<uid>.json`, written and
fsynced (file, then directory) before the task's row is committed, and removed when the task
finishes. A payload file without a committed row (a crash between the two) is removed at the
next open; a uid is never reused (AUTOINCREMENT), even after `prune`.

Threads: one connection (check_same_thread=False) behind one lock: every method may be
called from any thread, one at a time. The store is small and each call is a few
statements, so a lock costs less than a connection per thread and keeps writes ordered.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..durable import write_atomically
from . import documents_json
from .contract import Task, TaskError, TaskPage, TaskStatus, TaskType

__all__ = ["FINISHED_STATUSES", "TaskStore"]

FINISHED_STATUSES: tuple[TaskStatus, ...] = ("succeeded", "failed", "canceled")
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    uid INTEGER PRIMARY KEY AUTOINCREMENT,
    index_uid TEXT NOT NULL,
    status TEXT NOT NULL,
    type TEXT NOT NULL,
    details BLOB NOT NULL,
    error BLOB,
    has_payload INTEGER NOT NULL,
    enqueued_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_index_status ON tasks (index_uid, status, uid);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, uid);
"""
_COLUMNS = "uid, index_uid, status, type, details, error, enqueued_at, started_at, finished_at"
_BY_UID = (
    "SELECT uid, index_uid, status, type, details, error, enqueued_at, started_at, finished_at FROM tasks WHERE uid = ?"
)
_NEXT_ENQUEUED = (
    "SELECT uid, index_uid, status, type, details, error, enqueued_at, started_at, finished_at FROM tasks "
    "WHERE index_uid = ? AND status = 'enqueued' ORDER BY uid LIMIT 1"
)

Row = tuple[int, str, str, str, bytes, bytes | None, str, str | None, str | None]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _task(row: Row) -> Task:
    uid, index_uid, status, type, details, error, enqueued_at, started_at, finished_at = row
    return Task.model_validate(
        {
            "uid": uid,
            "index_uid": index_uid,
            "status": status,
            "type": type,
            "details": orjson.loads(details),
            "error": None if error is None else orjson.loads(error),
            "enqueued_at": datetime.fromisoformat(enqueued_at),
            "started_at": _time(started_at),
            "finished_at": _time(finished_at),
        }
    )


class TaskStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.payload_dir = data_dir / "tasks"
        self.payload_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / "tasks.sqlite", isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        self._remove_orphan_payloads()

    # -- helpers ---------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock (BEGIN IMMEDIATE: no other writer in between)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _path(self, uid: int) -> Path:
        return self.payload_dir / f"{uid}.json"

    def _remove_payload(self, uid: int) -> None:
        self._path(uid).unlink(missing_ok=True)

    def _remove_orphan_payloads(self) -> None:
        with self._lock:
            waiting = {
                uid
                for (uid,) in self._db.execute(
                    "SELECT uid FROM tasks WHERE has_payload = 1 AND status IN ('enqueued', 'processing')"
                )
            }
        for path in self.payload_dir.iterdir():
            stem = path.name.removesuffix(".json")
            if path.name.endswith(".tmp") or not stem.isdigit() or int(stem) not in waiting:
                path.unlink(missing_ok=True)

    def _write_payload(self, uid: int, payload: Any) -> None:
        path = self._path(uid)
        write_atomically(path, documents_json.dumps(payload))

    def _one(self, uid: int) -> Task:
        row = self._db.execute(_BY_UID, (uid,)).fetchone()
        if row is None:
            raise LookupError(f"no task {uid}")
        return _task(row)

    def _finish(
        self,
        uid: int,
        status: TaskStatus,
        details: dict[str, Any] | None,
        error: TaskError | None,
    ) -> Task:
        with self._write() as db:
            task = self._one(uid)
            if task.status in FINISHED_STATUSES:
                raise ValueError(f"task {uid} is already {task.status}")
            merged = {**task.details, **(details or {})}
            db.execute(
                "UPDATE tasks SET status = ?, details = ?, error = ?, finished_at = ?, has_payload = 0 WHERE uid = ?",
                (
                    status,
                    orjson.dumps(merged),
                    None if error is None else orjson.dumps(error.model_dump(mode="json", by_alias=True)),
                    _now(),
                    uid,
                ),
            )
            finished = self._one(uid)
        self._remove_payload(uid)
        return finished

    # -- the queue -------------------------------------------------------------------------------

    def enqueue(self, index_uid: str, type: TaskType, details: dict[str, Any], payload: Any | None = None) -> Task:
        """A new task, `enqueued`, with the next uid; its payload (when given) is on disk and
        fsynced before the task is committed, so a task that exists always has its payload."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO tasks (index_uid, status, type, details, has_payload, enqueued_at) "
                "VALUES (?, 'enqueued', ?, ?, ?, ?)",
                (index_uid, type, orjson.dumps(details), int(payload is not None), _now()),
            )
            uid = cursor.lastrowid
            assert uid is not None
            if payload is not None:
                try:
                    self._write_payload(uid, payload)
                except BaseException:
                    self._remove_payload(uid)
                    raise
            return self._one(uid)

    def payload(self, uid: int) -> Any | None:
        """The payload given at enqueue, or None when there was none or the task has finished
        (its file is removed then)."""
        with self._lock:
            row = self._db.execute("SELECT has_payload FROM tasks WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            raise LookupError(f"no task {uid}")
        if not row[0]:
            return None
        return orjson.loads(self._path(uid).read_bytes())

    def next_enqueued(self, index_uid: str) -> Task | None:
        """The oldest enqueued task of an index."""
        with self._lock:
            row = self._db.execute(_NEXT_ENQUEUED, (index_uid,)).fetchone()
        return None if row is None else _task(row)

    def indexes_with_enqueued(self) -> set[str]:
        with self._lock:
            return {
                index for (index,) in self._db.execute("SELECT DISTINCT index_uid FROM tasks WHERE status = 'enqueued'")
            }

    def start(self, uid: int) -> Task:
        """enqueued -> processing, with startedAt."""
        with self._write() as db:
            task = self._one(uid)
            if task.status != "enqueued":
                raise ValueError(f"task {uid} is {task.status}, not enqueued")
            db.execute("UPDATE tasks SET status = 'processing', started_at = ? WHERE uid = ?", (_now(), uid))
            return self._one(uid)

    def succeed(self, uid: int, details: dict[str, Any]) -> Task:
        """-> succeeded, with finishedAt; `details` are merged into the task's (indexedDocuments,
        deletedDocuments…); the payload file is removed."""
        return self._finish(uid, "succeeded", details, None)

    def fail(self, uid: int, error: TaskError, details: dict[str, Any] | None = None) -> Task:
        """-> failed, with the error and finishedAt; the payload file is removed."""
        return self._finish(uid, "failed", details, error)

    def cancel_index(self, index_uid: str) -> int:
        """The enqueued tasks of an index that was removed -> canceled (finishedAt, payloads
        removed). Returns how many."""
        with self._write() as db:
            uids = [
                uid
                for (uid,) in db.execute(
                    "SELECT uid FROM tasks WHERE index_uid = ? AND status = 'enqueued'", (index_uid,)
                )
            ]
            db.execute(
                "UPDATE tasks SET status = 'canceled', finished_at = ?, has_payload = 0 "
                "WHERE index_uid = ? AND status = 'enqueued'",
                (_now(), index_uid),
            )
        for uid in uids:
            self._remove_payload(uid)
        return len(uids)

    def requeue_processing(self) -> int:
        """At start: tasks a crash left `processing` go back to `enqueued` (startedAt cleared),
        to be processed again in their order. Returns how many."""
        with self._write() as db:
            cursor = db.execute("UPDATE tasks SET status = 'enqueued', started_at = NULL WHERE status = 'processing'")
            return cursor.rowcount

    # -- reading ---------------------------------------------------------------------------------

    def get(self, uid: int) -> Task | None:
        with self._lock:
            row = self._db.execute(_BY_UID, (uid,)).fetchone()
        return None if row is None else _task(row)

    def list(
        self,
        *,
        statuses: Sequence[TaskStatus] | None = None,
        types: Sequence[TaskType] | None = None,
        index_uids: Sequence[str] | None = None,
        limit: int = 20,
        from_: int | None = None,
    ) -> TaskPage:
        """Tasks newest first, as Meilisearch pages them: at most `limit` with uid <= `from_`
        (the newest when None), `next` the uid to pass as `from` for the following page (None
        on the last), `total` every task matching the filters. A filter that is None or empty
        does not filter."""
        if limit < 0:
            raise ValueError("limit must be at least 0")
        where: list[str] = []
        arguments: list[Any] = []
        for column, values in (("status", statuses), ("type", types), ("index_uid", index_uids)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                arguments.extend(values)
        condition = " AND ".join(where) or "1"
        paged = condition + (" AND uid <= ?" if from_ is not None else "")
        paged_arguments = [*arguments, *([from_] if from_ is not None else [])]
        with self._lock:
            (total,) = self._db.execute(f"SELECT count(*) FROM tasks WHERE {condition}", arguments).fetchone()  # noqa: S608
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE {paged} ORDER BY uid DESC LIMIT ?",  # noqa: S608
                [*paged_arguments, limit + 1],
            ).fetchall()
        results = [_task(row) for row in rows[:limit]]
        following = rows[limit][0] if len(rows) > limit else None
        return TaskPage(
            results=results, limit=limit, from_=results[0].uid if results else from_, next=following, total=total
        )

    def prune(self, keep: int = 100_000) -> int:
        """Removes the oldest finished tasks beyond the newest `keep` finished ones; enqueued
        and processing tasks are never removed. Returns how many were removed."""
        with self._write() as db:
            uids = [
                uid
                for (uid,) in db.execute(
                    "SELECT uid FROM tasks WHERE status IN ('succeeded', 'failed', 'canceled') "
                    "ORDER BY uid DESC LIMIT -1 OFFSET ?",
                    (max(keep, 0),),
                )
            ]
            db.executemany("DELETE FROM tasks WHERE uid = ?", [(uid,) for uid in uids])
        for uid in uids:
            self._remove_payload(uid)
        return len(uids)

    def close(self) -> None:
        with self._lock:
            self._db.close()
