"""An index that follows a MongoDB collection: the initial bulk load, then every insert,
update and delete, and where the sync stands (SyncState) for the status reporter.

    sync = MongoSync("products", spec, client["shop"], service)
    service.set_source("products", sync)      # a rebuild reads the collection through it
    task = asyncio.create_task(sync.run())    # until cancelled
    sync.state.mode, sync.state.lag_seconds, sync.state.error

Building (the initial load, and every rebuild) goes through the service: it asks
`checkpoint_now()` where the change feed stands, then reads `full_load()` into a new version
of the index, stores the checkpoint with it and swaps. Following starts from the checkpoint of
the version being served and moves it with every batch applied (`apply_sync`), so a restart
resumes where the last batch ended without reading the collection again.

How changes are followed (`spec.source.mongodb.sync.mode`):

- changeStream: a change stream on the collection (a replica set or a sharded cluster);
  its resume token is the checkpoint. Inserts, updates, replaces and deletes arrive in
  order; a dropped or renamed collection, or a token the server no longer holds, makes the
  index rebuild once the collection is back.
- poll: documents whose `updatedAtField` (a date the application sets on every write) is
  newer than the checkpoint, in (updatedAt, _id) order, so that a page boundary inside a run
  of equal timestamps neither skips nor repeats a document. Each pass starts a few seconds
  (OVERLAP) before the checkpoint, to catch a write that committed after a later one of
  another writer (its timestamp is older than one already seen); documents already applied
  at the same updatedAt are not applied again. Deletes, and documents written without the
  field, are found by the id scan every `deleteScanInterval`: ids in the index minus ids in
  the collection are deleted, ids in the collection missing from the index are read and
  indexed.
- auto: a change stream where the server has them, else the poll (FerretDB 1.x, the test
  server, answers that `$changeStream` is not implemented).

BSON becomes JSON (`map_document`): ObjectId -> its 24 hex digits, datetime and Timestamp ->
ISO 8601 UTC with milliseconds (`2026-11-26T15:44:43.123Z`: fixed width, so text order is
time order), Decimal128 -> a number (float; NaN and infinities -> null), Int64 -> a number,
UUID -> its canonical text, DBRef -> the referenced id, Regex and Code -> their text,
MinKey/MaxKey -> null; other binary data is left out (nothing to search in it); embedded
documents and arrays are kept, mapped the same way.

A failure (MongoDB unreachable, the collection missing, a bad document) is recorded in the
state with a reason, and the sync tries again with backoff; the loop never ends on an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from bson import (
    Binary,
    Code,
    DBRef,
    Decimal128,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
    json_util,
)
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from ..db.probe import is_connection_error, scrub
from ..jobs.backoff import backoff_delay
from ..jobs.settings import RetryPolicy
from ..resources.base import duration_seconds
from ..resources.search import MongoSource, SearchIndexSpec, SyncSettings
from .contract import PRIMARY_KEY_VALUE

__all__ = [
    "OVERLAP",
    "ChangeBatch",
    "CollectionGone",
    "MongoSync",
    "SyncState",
    "SyncTarget",
    "UnindexableDocument",
    "document_key",
    "json_value",
    "map_document",
]

log = logging.getLogger(__name__)

OVERLAP = timedelta(seconds=5)
"""How far before its checkpoint a poll pass starts reading (writes that committed late)."""
KEEPALIVE = 60.0
"""Most seconds between two stores of a change stream's resume token when nothing changes."""
RETRY = RetryPolicy(initial_backoff=1.0, max_backoff=30.0, multiplier=2.0, jitter="full")
"""Waits between attempts after a failure: up to 1, 2, 4 … 30 seconds."""
ERROR_LIMIT = 2048
_ID = re.compile(PRIMARY_KEY_VALUE)
_NOT_SUPPORTED_CODES = frozenset({40573, 115, 238})
"""The server cannot open a change stream: not a replica set, CommandNotSupported, NotImplemented."""
_HISTORY_LOST_CODES = frozenset({280, 286})
"""ChangeStreamFatalError, ChangeStreamHistoryLost: the resume token is no longer in the oplog."""
_INVALIDATING = frozenset({"drop", "rename", "dropDatabase", "invalidate"})


# -- BSON to JSON ------------------------------------------------------------------------------

_OMIT: Any = object()
"""A value that has no JSON form worth indexing (binary data): the attribute is left out."""
_MISSING: Any = object()


class UnindexableDocument(ValueError):
    """A source document that cannot become an index document (its `_id` cannot be a primary key)."""


def iso(value: datetime) -> str:
    """A datetime as the index stores it: UTC, milliseconds (BSON's precision), `Z`."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}Z"


def json_value(value: Any) -> Any:
    """`value` (as the driver decodes BSON) in its JSON form; `_OMIT` for binary data."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # Int64 too
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, (Decimal128, Decimal)):
        number = value.to_decimal() if isinstance(value, Decimal128) else value
        return float(number) if number.is_finite() else None
    if isinstance(value, Mapping):
        mapped = {str(k): json_value(v) for k, v in value.items()}
        return {k: v for k, v in mapped.items() if v is not _OMIT}
    if isinstance(value, (list, tuple)):
        return [v for v in map(json_value, value) if v is not _OMIT]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Binary) and value.subtype in (3, 4) and len(value) == 16:
        return str(uuid.UUID(bytes=bytes(value)))
    if isinstance(value, (bytes, bytearray)):  # Binary is a bytes
        return _OMIT
    if isinstance(value, Timestamp):
        return iso(value.as_datetime())
    if isinstance(value, (Regex, re.Pattern)):
        return str(value.pattern)
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, DBRef):
        return json_value(value.id)
    if isinstance(value, (MinKey, MaxKey)):
        return None
    return str(value)


def document_key(value: Any) -> str | int:
    """The primary key value of a source document's `_id`: an ObjectId's hex, a string or
    UUID as text, an integer as itself. Raises UnindexableDocument for anything else, or a
    string the index cannot hold (PRIMARY_KEY_VALUE: letters, digits, `-`, `_`)."""
    if isinstance(value, bool):
        raise UnindexableDocument(f"_id {value!r} is a boolean")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, ObjectId):
        return str(value)
    text = json_value(value) if isinstance(value, (uuid.UUID, Binary)) else value
    if not isinstance(text, str):
        raise UnindexableDocument(f"_id of type {type(value).__name__} cannot be a document id")
    if not _ID.fullmatch(text):
        raise UnindexableDocument(f"_id {text[:80]!r} holds characters a document id cannot (A-Z a-z 0-9 - _)")
    return text


def _lookup(value: Any, parts: Sequence[str]) -> Any:
    """The value at a dotted path; through an array, the values of its elements (as a MongoDB
    query reads `tags.name`)."""
    if not parts:
        return value
    if isinstance(value, Mapping):
        return _lookup(value[parts[0]], parts[1:]) if parts[0] in value else _MISSING
    if isinstance(value, list):
        found = [v for v in (_lookup(item, parts) for item in value) if v is not _MISSING]
        return found if found else _MISSING
    return _MISSING


def _place(document: dict[str, Any], attribute: str, value: Any) -> None:
    *parents, last = attribute.split(".")
    for part in parents:
        child = document.get(part)
        if not isinstance(child, dict):
            child = document[part] = {}
        document = child
    document[last] = value


def map_document(source: Mapping[str, Any], source_spec: MongoSource, primary_key: str) -> dict[str, Any]:
    """The index document of a source document: the primary key from `_id` (document_key),
    then the attributes of `source_spec.fields` (index attribute <- dotted source path; an
    absent path leaves the attribute out), or every field but `_id` under its own name when
    no mapping is given, in JSON form (json_value). The primary key always wins over a source
    field of the same name."""
    key = document_key(source.get("_id"))
    document: dict[str, Any] = {primary_key: key}
    if source_spec.fields:
        for attribute, path in source_spec.fields.items():
            if attribute == primary_key:
                continue
            value = _lookup(source, path.split("."))
            mapped = _OMIT if value is _MISSING else json_value(value)
            if mapped is not _OMIT:
                _place(document, attribute, mapped)
    else:
        for name, value in source.items():
            if name in ("_id", primary_key):
                continue
            mapped = json_value(value)
            if mapped is not _OMIT:
                document[name] = mapped
    return document


# -- what the sync needs of the service ----------------------------------------------------------


class SyncTarget(Protocol):
    """The part of SearchService (stackyard.search.service) a sync writes through."""

    def checkpoint(self, name: str) -> dict[str, Any] | None: ...

    async def apply_sync(
        self, name: str, upserts: list[dict[str, Any]], deletes: list[str], checkpoint: dict[str, Any]
    ) -> None: ...

    def index_ids(self, name: str) -> set[str]: ...

    def rebuilding(self, name: str) -> bool: ...

    def version(self, name: str) -> int: ...

    async def enqueue_rebuild(self, name: str) -> Any: ...

    def task(self, uid: int) -> Any: ...


# -- state ---------------------------------------------------------------------------------------

Reason = Literal[
    "Starting",
    "InitialLoad",
    "Rebuilding",
    "Following",
    "SourceUnreachable",
    "CollectionMissing",
    "ChangeStreamsUnsupported",
    "RebuildFailed",
    "SyncFailed",
]


@dataclass
class SyncState:
    """Where a sync stands, as the status reporter writes it (status.sync and Synced)."""

    mode: Literal["changeStream", "poll"] = "poll"
    last_sync: datetime | None = None
    """When changes were last applied to the index."""
    lag_seconds: float | None = None
    """Age of the oldest source change not yet applied; 0 when caught up, None when unknown."""
    error: str | None = None
    """Why the last attempt failed (None once one succeeds)."""
    reason: Reason = "Starting"
    """The Synced condition's reason: Following is the one good one."""
    message: str = "starting"
    read: int = 0
    """Source documents read since this sync started (initial load and rebuilds included)."""
    skipped: int = 0
    """Source documents left out of the index (an _id that cannot be a document id, or a
    document the index refused); each is logged."""

    @property
    def synced(self) -> bool:
        return self.reason == "Following"


class _Failure(Exception):
    """A failure with the reason the state shows."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message


class _VersionChanged(Exception):
    """The service swapped in another version of the index: follow from its checkpoint."""


@dataclass
class _PollPosition:
    updated_at: datetime | None = None
    id: Any = None

    def checkpoint(self) -> dict[str, Any]:
        return {
            "mode": "poll",
            "updatedAt": iso(self.updated_at) if self.updated_at is not None else None,
            "id": _encode(self.id) if self.updated_at is not None else None,
        }

    @classmethod
    def of(cls, checkpoint: Mapping[str, Any]) -> _PollPosition:
        at = checkpoint.get("updatedAt")
        if at is None:
            return cls()
        return cls(datetime.fromisoformat(at.replace("Z", "+00:00")), _decode(checkpoint.get("id")))

    def after(self, at: datetime, id: Any) -> bool:
        """True when (at, id) comes after this position in (updatedAt, _id) order."""
        if self.updated_at is None:
            return True
        if at != self.updated_at:
            return at > self.updated_at
        try:
            return bool(id > self.id)
        except TypeError:  # _ids of two types: BSON orders by type first, the tie-break does not matter
            return True


def _encode(value: Any) -> Any:
    """A BSON value (an _id, a resume token) in a JSON-storable form (MongoDB Extended JSON)."""
    return json.loads(json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS))


def _decode(value: Any) -> Any:
    return json_util.loads(json.dumps(value), json_options=json_util.CANONICAL_JSON_OPTIONS)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _change_streams_unsupported(exc: OperationFailure) -> bool:
    text = str(exc).lower()
    return exc.code in _NOT_SUPPORTED_CODES or (
        "changestream" in text and ("not implemented" in text or "not supported" in text)
    )


class CollectionGone(Exception):
    """A change stream event that ends the stream: the collection was dropped or renamed."""


class ChangeBatch:
    """Change stream events folded into one batch to apply: per document the last event wins
    (an insert then a delete is a delete; a delete then an insert, an upsert)."""

    def __init__(self, source_spec: MongoSource, primary_key: str) -> None:
        self.source_spec = source_spec
        self.primary_key = primary_key
        self.upserts: dict[str, dict[str, Any]] = {}
        self.deletes: set[str] = set()
        self.refused: list[tuple[Any, UnindexableDocument]] = []
        """(_id, why) of the documents left out."""

    def add(self, change: Mapping[str, Any]) -> None:
        """Fold one event; raises CollectionGone for drop, rename, dropDatabase and invalidate."""
        operation = change.get("operationType")
        if operation in _INVALIDATING:
            raise CollectionGone(str(operation))
        if operation not in ("insert", "update", "replace", "delete"):
            return  # createIndexes, modify …: nothing a document changed
        id = (change.get("documentKey") or {}).get("_id")
        try:
            key = str(document_key(id))
            full = change.get("fullDocument")
            document = map_document(full, self.source_spec, self.primary_key) if full is not None else None
        except UnindexableDocument as exc:
            self.refused.append((id, exc))
            return
        if operation != "delete" and document is not None:
            self.upserts[key] = document
            self.deletes.discard(key)
        else:  # a delete, or a document deleted since the change (its lookup found none)
            self.upserts.pop(key, None)
            self.deletes.add(key)


# -- the sync ------------------------------------------------------------------------------------


class MongoSync:
    """Builds an index from a collection and follows its changes (see the module). One per
    mongodb-sourced index; implements FullSource for the service's rebuilds."""

    def __init__(self, name: str, spec: SearchIndexSpec, database: AsyncDatabase[Any], service: SyncTarget) -> None:
        source = spec.source.mongodb
        if source is None:
            raise ValueError(f"SearchIndex {name} is not sourced from MongoDB")
        self.name = name
        self.spec = spec
        self.source: MongoSource = source
        self.settings: SyncSettings = source.sync
        self.database = database
        self.collection: AsyncCollection[Any] = database[source.collection]
        self.service = service
        self.poll_interval = duration_seconds(self.settings.poll_interval)
        self.delete_scan_interval = duration_seconds(self.settings.delete_scan_interval)
        self.state = SyncState(mode="changeStream" if self.settings.mode == "changeStream" else "poll")
        self._streams: bool | None = False if self.settings.mode == "poll" else None
        """Whether to follow by change stream: None until the server has been asked."""
        self._version: int | None = None
        self._position = _PollPosition()
        self._seen: dict[str, datetime] = {}
        """Documents applied in the last OVERLAP before the position, with their updatedAt."""
        self._next_scan = 0.0
        self._needs_rebuild = False
        self._attempt = 0

    @property
    def where(self) -> str:
        return f"collection {self.database.name}.{self.collection.name}"

    # -- FullSource ------------------------------------------------------------------------------

    async def checkpoint_now(self) -> dict[str, Any]:
        """Where the change feed stands now: a full load that starts after this sees every
        change before it, and following from it replays every change after it."""
        await self._require_collection()
        if await self._use_streams():
            async with await self.collection.watch(max_await_time_ms=100) as stream:
                await stream.try_next()
                return {"mode": "changeStream", "resumeToken": _encode(stream.resume_token)}
        field = self.settings.updated_at_field
        latest = (
            await self.collection.find({field: {"$type": "date"}}, {field: 1})
            .sort([(field, -1), ("_id", -1)])
            .limit(1)
            .to_list()
        )
        if not latest:
            return _PollPosition().checkpoint()
        at = _lookup(latest[0], field.split("."))
        return _PollPosition(_aware(at), latest[0]["_id"]).checkpoint()

    async def full_load(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Every document of the collection, mapped, in batches of `batchSize`."""
        await self._require_collection()
        batch: list[dict[str, Any]] = []
        async for source in self.collection.find({}, batch_size=self.settings.batch_size):
            self.state.read += 1
            if (document := self._mapped(source)) is not None:
                batch.append(document)
            if len(batch) >= self.settings.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Build the index when it has no checkpoint, then follow the collection, until
        cancelled. Failures are recorded in `state` and retried with backoff."""
        while True:
            try:
                await self._ensure_built()
                checkpoint = self.service.checkpoint(self.name) or {}
                self._version = self.service.version(self.name)
                if checkpoint.get("mode") == "changeStream":
                    await self._follow_stream(checkpoint)
                else:
                    await self._follow_poll(checkpoint)
            except _VersionChanged:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._attempt += 1
                self._failed(exc)
                await asyncio.sleep(backoff_delay(self._attempt, RETRY))

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, _Failure):
            reason, message = exc.reason, exc.message
        elif is_connection_error(exc):
            reason, message = "SourceUnreachable", f"{self.where}: MongoDB did not answer: {_first_line(exc)}"
        else:
            reason, message = "SyncFailed", f"{self.where}: {type(exc).__name__}: {_first_line(exc)}"
            log.warning("sync of index %s failed", self.name, exc_info=exc)
        message = scrub(message)[:ERROR_LIMIT]
        if self.state.error != message:
            log.warning("index %s: %s (%s); trying again", self.name, message, reason)
        self.state.reason, self.state.error, self.state.message = reason, message, message
        self.state.lag_seconds = None

    def _succeeded(self, message: str) -> None:
        if self.state.error is not None:
            log.info("index %s: sync recovered: %s", self.name, message)
        self._attempt = 0
        self.state.reason, self.state.error, self.state.message = "Following", None, message

    async def _require_collection(self) -> None:
        names = await self.database.list_collection_names(filter={"name": self.collection.name})
        if not names:
            raise _Failure("CollectionMissing", f"{self.where} does not exist")

    async def _use_streams(self) -> bool:
        """Whether to follow by change stream (asks the server once): auto falls back to the
        poll where the server has none; changeStream fails with ChangeStreamsUnsupported."""
        if self._streams is None:
            try:
                async with await self.collection.watch(max_await_time_ms=10) as stream:
                    await stream.try_next()
                self._streams = True
            except OperationFailure as exc:
                if not _change_streams_unsupported(exc):
                    raise
                if self.settings.mode == "changeStream":
                    raise _Failure(
                        "ChangeStreamsUnsupported",
                        f"{self.where}: the server has no change streams ({_first_line(exc)}); "
                        "use sync.mode poll or auto on it",
                    ) from exc
                log.info("index %s: the server has no change streams (%s); polling", self.name, _first_line(exc))
                self._streams = False
        self.state.mode = "changeStream" if self._streams else "poll"
        return self._streams

    async def _ensure_built(self) -> None:
        """Have the service build the index (the initial load, or a rebuild the change feed
        asked for) and wait for it."""
        if self.service.checkpoint(self.name) is not None and not self._needs_rebuild:
            return
        await self._require_collection()
        await self._use_streams()
        first = self.service.checkpoint(self.name) is None
        self.state.reason = "InitialLoad" if first else "Rebuilding"
        self.state.message = f"building the index from {self.where}"
        self.state.lag_seconds = None
        uid: int | None = None
        if not self.service.rebuilding(self.name):
            uid = (await self.service.enqueue_rebuild(self.name)).uid
        self._needs_rebuild = False
        while True:
            await asyncio.sleep(0.2)
            if uid is not None:
                task = self.service.task(uid)
                status = getattr(task, "status", None)
                if status == "failed":
                    error = getattr(getattr(task, "error", None), "message", None) or "the rebuild failed"
                    self._needs_rebuild = not first
                    raise _Failure("RebuildFailed", f"building from {self.where} failed: {error}")
                if status in ("succeeded", "canceled"):
                    break
            elif not self.service.rebuilding(self.name) and self.service.checkpoint(self.name) is not None:
                break
        self.state.last_sync = datetime.now(UTC)
        self._seen.clear()

    def _check_version(self) -> None:
        if self.service.version(self.name) != self._version:
            raise _VersionChanged

    async def _apply(self, upserts: list[dict[str, Any]], deletes: list[str], checkpoint: dict[str, Any]) -> None:
        """Apply a batch; when the index refuses a document, apply the others one by one and
        leave the refused ones out (a bad document must not stop the sync)."""
        self._check_version()
        if self.service.rebuilding(self.name):
            # The new version reads the collection after its own checkpoint: this batch is in it.
            await _until(lambda: not self.service.rebuilding(self.name))
            raise _VersionChanged
        try:
            await self.service.apply_sync(self.name, upserts, deletes, checkpoint)
        except ValueError as exc:  # the engine's DocumentError: nothing of the batch was written
            if len(upserts) <= 1:
                if not upserts:
                    raise
                self._skip(upserts[0], exc)
                await self.service.apply_sync(self.name, [], deletes, checkpoint)
            else:
                for document in upserts:
                    try:
                        await self.service.apply_sync(self.name, [document], [], self._held_checkpoint())
                    except ValueError as refused:
                        self._skip(document, refused)
                await self.service.apply_sync(self.name, [], deletes, checkpoint)
        if upserts or deletes:
            self.state.last_sync = datetime.now(UTC)

    def _held_checkpoint(self) -> dict[str, Any]:
        return self.service.checkpoint(self.name) or {}

    def _skip(self, document: Mapping[str, Any], exc: Exception) -> None:
        self.state.skipped += 1
        key = document.get(self.spec.primary_key, "?")
        log.warning("index %s: document %s left out: %s", self.name, key, _first_line(exc))

    def _skip_many(self, refused: Iterable[tuple[Any, Exception]]) -> None:
        for id, exc in refused:
            self._skip({self.spec.primary_key: repr(id)[:80]}, exc)

    def _mapped(self, source: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            return map_document(source, self.source, self.spec.primary_key)
        except UnindexableDocument as exc:
            self._skip({self.spec.primary_key: repr(source.get("_id"))[:80]}, exc)
            return None

    # -- poll --------------------------------------------------------------------------------------

    async def _follow_poll(self, checkpoint: Mapping[str, Any]) -> None:
        if await self._use_streams() and self.settings.mode == "changeStream":
            # Built for the poll (sync.mode changed since): a rebuild takes a change stream's place.
            self._needs_rebuild = True
            raise _VersionChanged
        self.state.mode = "poll"
        self._position = _PollPosition.of(checkpoint)
        self._seen.clear()
        self._next_scan = time.monotonic() + self.delete_scan_interval
        while True:
            await self._poll_pass()
            if time.monotonic() >= self._next_scan:
                await self._id_scan()
                self._next_scan = time.monotonic() + self.delete_scan_interval
            every = self.settings.poll_interval
            self._succeeded(f"following {self.where} by polling {self.settings.updated_at_field} every {every}")
            await asyncio.sleep(self.poll_interval)
            self._check_version()

    async def _poll_pass(self) -> None:
        """Read and apply every document written since the position (see the module)."""
        await self._require_collection()
        field = self.settings.updated_at_field
        start = self._position.updated_at
        query: dict[str, Any]
        if start is None:
            query = {field: {"$type": "date"}}
        elif datetime.now(UTC) - start < OVERLAP:  # a write stamped before the checkpoint may still commit
            query = {field: {"$gte": start - OVERLAP}}
        else:
            query = _after(field, start, self._position.id)
        limit = self.settings.batch_size
        while True:
            page = await self.collection.find(query).sort([(field, 1), ("_id", 1)]).limit(limit).to_list()
            self.state.read += len(page)
            changed: list[dict[str, Any]] = []
            oldest: datetime | None = None
            last: tuple[datetime, Any] | None = None
            for source in page:
                at = _lookup(source, field.split("."))
                if not isinstance(at, datetime):
                    continue
                at = _aware(at)
                last = (at, source["_id"])
                key = self._key_of(source)
                if key is not None and self._seen.get(key) == at:
                    continue
                document = self._mapped(source)
                if key is not None:
                    self._seen[key] = at
                if document is not None:
                    changed.append(document)
                    oldest = at if oldest is None else min(oldest, at)
            if oldest is not None:
                self.state.lag_seconds = _age(oldest)
            if last is not None and self._position.after(*last):
                self._position = _PollPosition(*last)
            if changed:
                await self._apply(changed, [], self._position.checkpoint())
            if len(page) < limit or last is None:
                break
            query = _after(field, *last)
        self.state.lag_seconds = 0.0
        if self._position.updated_at is not None:
            horizon = self._position.updated_at - OVERLAP
            self._seen = {k: v for k, v in self._seen.items() if v >= horizon}

    def _key_of(self, source: Mapping[str, Any]) -> str | None:
        try:
            return str(document_key(source.get("_id")))
        except UnindexableDocument:
            return None

    async def _id_scan(self) -> None:
        """Delete what the collection no longer has, index what the index misses (documents
        written without updatedAtField)."""
        indexed = self.service.index_ids(self.name)
        present: dict[str, Any] = {}
        async for source in self.collection.find({}, {"_id": 1}, batch_size=10_000):
            if (key := self._key_of(source)) is not None:
                present[key] = source["_id"]
        if not present and indexed:
            await self._require_collection()  # an empty answer from a dropped collection deletes nothing
        checkpoint = self._position.checkpoint()
        gone = sorted(indexed - present.keys())
        size = self.settings.batch_size
        for ids in _chunks(gone, size):
            await self._apply([], list(ids), checkpoint)
        missing = [present[key] for key in present.keys() - indexed]
        for chunk in _chunks(missing, size):
            sources = await self.collection.find({"_id": {"$in": list(chunk)}}).to_list()
            self.state.read += len(sources)
            documents = [d for d in map(self._mapped, sources) if d is not None]
            if documents:
                await self._apply(documents, [], checkpoint)
        if gone or missing:
            log.info("index %s: the id scan deleted %d and indexed %d documents", self.name, len(gone), len(missing))

    # -- change stream -----------------------------------------------------------------------------

    async def _follow_stream(self, checkpoint: Mapping[str, Any]) -> None:
        if not await self._use_streams():
            # Built from a change stream the server no longer offers: a rebuild takes the poll's place.
            self._needs_rebuild = True
            raise _VersionChanged
        token = _decode(checkpoint.get("resumeToken"))
        where = f"following {self.where} by change stream"
        try:
            async with await self.collection.watch(
                full_document="updateLookup",
                resume_after=token,
                max_await_time_ms=int(max(self.poll_interval, 0.1) * 1000),
                batch_size=self.settings.batch_size,
            ) as stream:
                stored = time.monotonic()
                while True:
                    batch = ChangeBatch(self.source, self.spec.primary_key)
                    oldest: datetime | None = None
                    change: Mapping[str, Any] | None = None
                    events = 0
                    deadline = time.monotonic() + self.poll_interval  # a trickle of events is applied too
                    while events < self.settings.batch_size and time.monotonic() < deadline:
                        change = await stream.try_next()
                        if change is None:
                            break
                        events += 1
                        if oldest is None and isinstance(change.get("clusterTime"), Timestamp):
                            oldest = change["clusterTime"].as_datetime()
                            self.state.lag_seconds = _age(oldest)
                        batch.add(change)
                    self.state.read += events
                    self._skip_many(batch.refused)
                    token = stream.resume_token
                    checkpoint = {"mode": "changeStream", "resumeToken": _encode(token)}
                    if batch.upserts or batch.deletes or time.monotonic() - stored >= KEEPALIVE:
                        await self._apply(list(batch.upserts.values()), sorted(batch.deletes), checkpoint)
                        stored = time.monotonic()
                    if change is None:  # the stream had nothing more
                        self.state.lag_seconds = 0.0
                    self._succeeded(where)
                    self._check_version()
        except CollectionGone as exc:
            self._needs_rebuild = True
            raise _Failure("CollectionMissing", f"{self.where} was dropped or renamed ({exc})") from exc
        except OperationFailure as exc:
            if exc.code in _HISTORY_LOST_CODES:
                self._needs_rebuild = True
                raise _Failure(
                    "Rebuilding", f"{self.where}: the change stream lost its place ({_first_line(exc)})"
                ) from exc
            raise


def _after(field: str, at: datetime, id: Any) -> dict[str, Any]:
    """The documents after (at, id) in (updatedAt, _id) order."""
    return {"$or": [{field: {"$gt": at}}, {field: at, "_id": {"$gt": id}}]}


async def _until(done: Callable[[], bool], every: float = 0.2) -> None:
    """Return once `done()` is true, looking every `every` seconds."""
    while not done():  # noqa: ASYNC110  # the service offers no event for it
        await asyncio.sleep(every)


def _age(at: datetime) -> float:
    return max(0.0, round((datetime.now(UTC) - _aware(at)).total_seconds(), 3))


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:500]


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
