"""Backups of a MongoDB database to a directory, in the layout of `mongodump --gzip`, their
retention, and restore.

    <root>/20261126T052400Z/                   one backup, named by its UTC start time
        <dbname>/<collection>.bson.gz           the documents: raw BSON, one after another, gzipped
        <dbname>/<collection>.metadata.json.gz  indexes and options (Extended JSON)
        stackyard-backup.json                   the manifest, written last: counts and bytes
    <root>/20261126T060000Z.partial/           a backup being written (renamed when complete)

Documents are streamed as raw BSON (`RawBSONDocument`): never decoded, so every type comes
back exactly as it was, and never a whole collection in memory. Each collection is read by
one cursor: a backup is consistent per collection, not a snapshot of the database, and has
no oplog (no point-in-time restore).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from bson import json_util
from bson.codec_options import CodecOptions
from bson.json_util import CANONICAL_JSON_OPTIONS
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from ..durable import fsync_directory
from .migration_lock import LOCK_COLLECTION

FORMAT = 1
MANIFEST = "stackyard-backup.json"
PARTIAL = ".partial"
PARTIAL_MAX_AGE = timedelta(hours=1)
"""A `.partial` directory untouched for this long is a backup that died; prune removes it."""

CHUNK_BYTES = 1 << 20
"""Raw BSON collected before it goes through gzip (in a thread, off the event loop)."""
BATCH_BYTES = 4 << 20
MAX_BATCH_DOCUMENTS = 1000
"""A backup's cursor fetches about BATCH_BYTES of documents at a time, at most this many."""
RESTORE_BATCH_DOCUMENTS = 1000
RESTORE_BATCH_BYTES = 4 << 20
MAX_DOCUMENT_BYTES = 48 << 20
"""Larger than any BSON document a server accepts (16 MiB): a length above it is corruption."""

RAW = CodecOptions(document_class=RawBSONDocument)
_NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")
_NAME_FORMAT = "%Y%m%dT%H%M%SZ"

Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot be done as asked (the message says why)."""


@dataclass
class BackupResult:
    name: str
    path: Path
    documents: int
    bytes: int
    collections: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class BackupInfo:
    """A complete backup, as its manifest describes it."""

    name: str
    path: Path
    database: str
    created_at: datetime
    finished_at: datetime
    documents: int
    bytes: int
    collections: dict[str, int] = field(default_factory=dict)


@dataclass
class RestoreResult:
    documents: int
    collections: dict[str, int]
    indexes: int
    seconds: float


# -- names and files ---------------------------------------------------------------------------


def backup_name(moment: datetime) -> str:
    """The name of a backup started at `moment` (its UTC time: 20261126T052400Z); a second
    one in the same second gets -1, -2..."""
    return moment.astimezone(UTC).strftime(_NAME_FORMAT)


def _file_stem(collection: str) -> str:
    """The collection's name as a file name (as mongodump escapes it: % and / percent-encoded)."""
    return collection.replace("%", "%25").replace("/", "%2F")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sort_key(name: str) -> tuple[str, int]:
    match = _NAME.match(name)
    assert match is not None
    return match.group(1), int(match.group(2) or 0)


def _claim_directory(root: Path, now: datetime) -> tuple[str, Path]:
    """A fresh `<name>.partial` directory (created atomically: two runs never share one);
    a second backup in the same second is named `<time>-1`, `-2`..."""
    root.mkdir(parents=True, exist_ok=True)
    base = backup_name(now)
    for suffix in range(1000):
        name = base if suffix == 0 else f"{base}-{suffix}"
        if (root / name).exists():
            continue
        partial = root / (name + PARTIAL)
        try:
            partial.mkdir()
        except FileExistsError:
            continue
        return name, partial
    raise BackupError(f"no free backup name for {base} in the backup directory")


class _GzipWriter:
    """A gzip file written from a thread, fsynced on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("wb")
        self._gzip = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=6, mtime=0)

    def write(self, data: bytes) -> None:
        self._gzip.write(data)

    def close(self) -> int:
        """Finish the file; its size in bytes."""
        self._gzip.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.path.stat().st_size

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            self._gzip.close()
        self._file.close()


def _write_json_gz(path: Path, document: dict[str, Any]) -> int:
    writer = _GzipWriter(path)
    writer.write(json_util.dumps(document, json_options=CANONICAL_JSON_OPTIONS).encode())
    return writer.close()


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{directory.name}: no {MANIFEST}, not a complete backup") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{directory.name}: unreadable {MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{directory.name}: backup format {manifest.get('format')!r}, this version reads {FORMAT}")
    return manifest


def _info(directory: Path) -> BackupInfo:
    manifest = _read_manifest(directory)
    collections = manifest["collections"]
    return BackupInfo(
        name=directory.name,
        path=directory,
        database=manifest["database"],
        created_at=_parse_iso(manifest["createdAt"]),
        finished_at=_parse_iso(manifest["finishedAt"]),
        documents=int(manifest["documents"]),
        bytes=int(manifest["bytes"]),
        collections={name: int(entry["documents"]) for name, entry in collections.items()},
    )


# -- backup ------------------------------------------------------------------------------------


def _transient(name: str) -> bool:
    """Collections whose documents only mean something while they are written: the
    migration lock (a restored lease would be stale) and the index checks' scratch ones."""
    return name == LOCK_COLLECTION or name.startswith("_stackyard_index_probe_")


async def _collections_to_dump(db: AsyncDatabase[Any], wanted: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Name -> options of the collections to back up (views, timeseries, system.* and the
    transient ones are not; the migration history is)."""
    found: dict[str, dict[str, Any]] = {}
    cursor = await db.list_collections()
    async for info in cursor:
        name = info["name"]
        if info.get("type", "collection") == "collection" and not name.startswith("system.") and not _transient(name):
            found[name] = dict(info.get("options") or {})
    if not wanted:
        return dict(sorted(found.items()))
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise BackupError(f"no such collection in database {db.name}: {', '.join(missing)}")
    return {name: found[name] for name in sorted(set(wanted))}


async def _batch_size(db: AsyncDatabase[Any], name: str) -> int:
    """Documents per cursor batch for about BATCH_BYTES of them (MongoDB caps a batch at
    16 MiB, but not every server does), from the collection's average document size."""
    try:
        stats = await db.command("collStats", name)
        average = int(stats.get("avgObjSize") or 0)
    except PyMongoError:
        average = 0
    return max(1, min(MAX_BATCH_DOCUMENTS, BATCH_BYTES // average)) if average > 0 else MAX_BATCH_DOCUMENTS


async def _dump_collection(
    db: AsyncDatabase[Any], name: str, options: dict[str, Any], directory: Path
) -> dict[str, int]:
    """Write one collection's documents and metadata; its counts."""
    indexes = [dict(index) async for index in await db[name].list_indexes()]
    metadata = {"indexes": indexes, "collectionName": name, "type": "collection", "options": options}
    await asyncio.to_thread(_write_json_gz, directory / f"{_file_stem(name)}.metadata.json.gz", metadata)
    writer = await asyncio.to_thread(_GzipWriter, directory / f"{_file_stem(name)}.bson.gz")
    documents = raw_bytes = 0
    chunk = bytearray()
    try:
        cursor = db.get_collection(name, codec_options=RAW).find({}, batch_size=await _batch_size(db, name))
        try:
            async for document in cursor:
                chunk += document.raw
                documents += 1
                if len(chunk) >= CHUNK_BYTES:
                    raw_bytes += len(chunk)
                    await asyncio.to_thread(writer.write, bytes(chunk))
                    chunk.clear()
        finally:
            await cursor.close()
        raw_bytes += len(chunk)
        await asyncio.to_thread(writer.write, bytes(chunk))
        size = await asyncio.to_thread(writer.close)
    except BaseException:
        await asyncio.to_thread(writer.abandon)
        raise
    return {"documents": documents, "bytes": size, "bsonBytes": raw_bytes, "indexes": len(indexes)}


def _finish(partial: Path, final: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last, then make the backup visible under its name."""
    path = partial / MANIFEST
    with path.open("w") as out:
        json.dump(manifest, out, indent=2, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    fsync_directory(partial / manifest["database"])
    fsync_directory(partial)
    partial.rename(final)
    fsync_directory(final.parent)


async def backup(
    db: AsyncDatabase[Any],
    root: Path,
    *,
    collections: Sequence[str] = (),
    now: datetime | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Back up `collections` of `db` (every collection when empty) to a new directory under
    `root`; it appears under its final name only once complete."""
    started = time.monotonic()
    created = now or datetime.now(UTC)
    note = progress or (lambda _: None)
    selected = await _collections_to_dump(db, collections)
    name, partial = await asyncio.to_thread(_claim_directory, root, created)
    try:
        directory = partial / db.name
        directory.mkdir()
        counts: dict[str, dict[str, int]] = {}
        for collection, options in selected.items():
            counts[collection] = await _dump_collection(db, collection, options, directory)
            note(f"{collection}: {counts[collection]['documents']} documents, {counts[collection]['bytes']} bytes")
        documents = sum(c["documents"] for c in counts.values())
        size = sum(c["bytes"] for c in counts.values())
        manifest = {
            "format": FORMAT,
            "name": name,
            "database": db.name,
            "createdAt": _iso(created),
            "finishedAt": _iso(datetime.now(UTC)),
            "collections": counts,
            "documents": documents,
            "bytes": size,
        }
        await asyncio.to_thread(_finish, partial, root / name, manifest)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, partial, True)
        raise
    note(f"backup {name}: {len(counts)} collections, {documents} documents, {size} bytes")
    return BackupResult(
        name=name,
        path=root / name,
        documents=documents,
        bytes=size,
        collections={c: n["documents"] for c, n in counts.items()},
        seconds=time.monotonic() - started,
    )


# -- listing and retention -----------------------------------------------------------------------


def list_backups(root: Path) -> list[BackupInfo]:
    """The complete backups under `root` (named by time, with a readable manifest), newest first."""
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if not entry.is_dir() or not _NAME.match(entry.name):
            continue
        with contextlib.suppress(BackupError, KeyError, TypeError, ValueError):
            found.append(_info(entry))
    return sorted(found, key=lambda info: _sort_key(info.name), reverse=True)


def _last_change(path: Path) -> float:
    """The latest modification time of anything under `path` (a running backup touches its files)."""
    latest = path.stat().st_mtime
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                latest = max(latest, (Path(dirpath) / name).stat().st_mtime)
    return latest


def prune(root: Path, *, keep_last: int, max_age: timedelta | None, now: datetime) -> list[str]:
    """Delete the complete backups beyond the newest `keep_last` or older than `max_age` (the
    newest one is always kept), and `.partial` directories untouched for an hour; the names
    deleted."""
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    deleted = []
    for index, info in enumerate(list_backups(root)):
        too_many = index >= keep_last
        too_old = max_age is not None and now - info.created_at > max_age
        if index > 0 and (too_many or too_old):
            shutil.rmtree(info.path)
            deleted.append(info.name)
    if root.is_dir():
        for partial in sorted(root.glob("*" + PARTIAL)):
            if partial.is_dir() and now.timestamp() - _last_change(partial) > PARTIAL_MAX_AGE.total_seconds():
                shutil.rmtree(partial, ignore_errors=True)
                deleted.append(partial.name)
    return deleted


# -- restore -------------------------------------------------------------------------------------


class _BsonReader:
    """Raw BSON documents, one after another, out of a gzip file (read from a thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = gzip.open(path, "rb")  # noqa: SIM115 - closed by close()

    def batch(self) -> list[RawBSONDocument]:
        documents: list[RawBSONDocument] = []
        size = 0
        while len(documents) < RESTORE_BATCH_DOCUMENTS and size < RESTORE_BATCH_BYTES:
            head = self._file.read(4)
            if not head:
                break
            length = int.from_bytes(head, "little") if len(head) == 4 else 0
            if not 5 <= length <= MAX_DOCUMENT_BYTES:
                raise BackupError(f"{self.path.name}: corrupt BSON after {len(documents)} documents of a batch")
            body = self._file.read(length - 4)
            if len(body) != length - 4:
                raise BackupError(f"{self.path.name}: the file ends inside a document")
            documents.append(RawBSONDocument(head + body, RAW))
            size += length
        return documents

    def close(self) -> None:
        self._file.close()


def _load_metadata(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt") as source:
        metadata: dict[str, Any] = json_util.loads(source.read(), json_options=CANONICAL_JSON_OPTIONS)
    return metadata


async def _has_documents(db: AsyncDatabase[Any], name: str) -> bool:
    return await db[name].find_one({}, projection={"_id": 1}) is not None


async def _load_collection(db: AsyncDatabase[Any], name: str, path: Path) -> int:
    collection = db.get_collection(name, codec_options=RAW)
    reader = await asyncio.to_thread(_BsonReader, path)
    inserted = 0
    try:
        while documents := await asyncio.to_thread(reader.batch):
            await collection.insert_many(documents, ordered=True)  # raises unless all went in
            inserted += len(documents)
    finally:
        await asyncio.to_thread(reader.close)
    return inserted


async def _create_indexes(db: AsyncDatabase[Any], name: str, indexes: Sequence[dict[str, Any]]) -> int:
    """The backed-up indexes, one per command (the default _id index exists already)."""
    created = 0
    for index in indexes:
        if index.get("name") == "_id_":
            continue
        spec = {k: v for k, v in index.items() if k not in ("v", "ns")}
        await db.command({"createIndexes": name, "indexes": [spec]})
        created += 1
    return created


async def restore(
    db: AsyncDatabase[Any],
    backup_dir: Path,
    *,
    drop: bool = False,
    collections: Sequence[str] = (),
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the backup in `backup_dir` (a directory with a manifest) into `db`.

    A target collection that has documents is refused unless `drop` (then it is dropped
    first); nothing is written before every target has been checked. Documents go in as raw
    BSON in batches, indexes are recreated after them, and the counts are checked against
    the manifest."""
    started = time.monotonic()
    note = progress or (lambda _: None)
    manifest = await asyncio.to_thread(_read_manifest, backup_dir)
    source = backup_dir / manifest["database"]
    backed_up: dict[str, dict[str, int]] = manifest["collections"]
    unknown = sorted(set(collections) - set(backed_up))
    if unknown:
        raise BackupError(f"not in backup {backup_dir.name}: {', '.join(unknown)}")
    selected = sorted(set(collections)) if collections else sorted(backed_up)
    existing = set(await db.list_collection_names())
    if not drop:
        occupied = [name for name in selected if name in existing and await _has_documents(db, name)]
        if occupied:
            raise BackupError(
                f"collections in {db.name} already have documents: {', '.join(occupied)} (restore with drop to replace)"
            )
    counts: dict[str, int] = {}
    indexes = 0
    for name in selected:
        stem = _file_stem(name)
        metadata = await asyncio.to_thread(_load_metadata, source / f"{stem}.metadata.json.gz")
        if drop and name in existing:
            await db.drop_collection(name)
        if drop or name not in existing:
            await db.create_collection(name, **metadata.get("options", {}))
        counts[name] = await _load_collection(db, name, source / f"{stem}.bson.gz")
        created = await _create_indexes(db, name, metadata.get("indexes", []))
        indexes += created
        expected = int(backed_up[name]["documents"])
        present = await db[name].count_documents({})
        if counts[name] != expected or present != expected:
            raise BackupError(
                f"{name}: the backup lists {expected} documents; {counts[name]} were inserted and {present} are there"
            )
        note(f"{name}: {counts[name]} documents, {created} indexes")
    documents = sum(counts.values())
    note(f"restored {len(counts)} collections, {documents} documents, {indexes} indexes from {backup_dir.name}")
    return RestoreResult(documents=documents, collections=counts, indexes=indexes, seconds=time.monotonic() - started)
