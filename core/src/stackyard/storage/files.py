"""Files of a Bucket: metadata in MongoDB (collection `files` of the Stack's database),
bytes in the Bucket's `Storage`, per-owner quotas in Redis (stackyard.storage.quota).

An upload never leaves anything half-written behind:

1. a `pending` document is inserted first (so a crash leaves a trace the retention sweep
   finds: pending documents older than a day are removed with their object);
2. the bytes are streamed: the first SNIFF_BYTES are held back until the type is detected
   from them (a refused type is refused before anything is written), then every chunk is
   hashed (sha256), counted (FileTooLarge as soon as the Bucket's maxObjectSize is passed)
   and written through an ObjectWriter; the quota is reserved a part at a time;
3. the writer completes, and the document becomes `available`, or `scanning` (with the
   job `stackyard.storage.scan` enqueued) when the Bucket scans uploads.

Any failure on the way, a client that goes away included (a cancelled task or a stream that
raises), aborts the writer, deletes the document and releases the reserved bytes before the
error goes on.

Only `available` files are served. Deletes mark the document `deleting` first, then remove
the variants, the object and the document, and release the quota; a delete that stops half
way is finished by the sweep.

`Buckets` holds one FileService per Bucket of the config in force, remade when the Bucket's
spec or credentials change (the old storage is closed after a grace period).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal, cast

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from ..clients import AnyRedis
from ..config.runtime import credential_key
from ..db.indexes import Drift, IndexPolicy
from ..db.schema import FILES, ensure_capability_indexes
from ..jobs.ids import sortable_id
from ..resources.base import duration_seconds
from ..resources.bucket import BucketSpec
from . import images, sniff
from .backend import PART_SIZE, DirectUpload, ObjectMissing, Storage
from .contract import FileState, FileView, check_metadata, file_view
from .problems import (
    BucketNotFound,
    ContentTypeRefused,
    CursorInvalid,
    FileNotAvailable,
    FileNotFound,
    FileTooLarge,
    ImageRefused,
    MetadataInvalid,
    StorageUnavailable,
    UploadIncomplete,
)
from .quota import Quota, usage_key
from .retention import PENDING_GRACE, cutoff, expires_at, sweep_reason

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

__all__ = [
    "COLLECTION",
    "SCAN_FUNCTION",
    "Buckets",
    "Enqueue",
    "FileRecord",
    "FileService",
    "SweepResult",
    "VariantRecord",
    "job_enqueue",
    "new_file_id",
    "object_key",
    "quarantine_key",
    "sanitize_name",
    "variants_prefix",
]

COLLECTION = FILES
SCAN_FUNCTION = "stackyard.storage.scan"
OCTET_STREAM = "application/octet-stream"
SPOOL_BYTES = 8 * 1024 * 1024
"""An original read for a variant stays in memory up to this, then spills to a temporary file."""
RENDERS_AT_ONCE = 2
"""Image renders one process runs at once (each a thread holding a decoded image)."""
STORAGE_GRACE = 60.0
"""Seconds a replaced Bucket's storage stays open for the calls still using it."""
MAX_PAGE = 200

Enqueue = Callable[[str, dict[str, Any], str], Awaitable[None]]
"""async (function name, args, queue name) -> None: puts a job on a queue."""


def new_file_id() -> str:
    """`f_` + 26 characters: milliseconds then 80 random bits (Crockford base32), so ids sort
    by creation time and a listing by `_id` descending is newest first."""
    return "f_" + sortable_id()


def object_key(file_id: str) -> str:
    return f"files/{file_id}"


def variants_prefix(file_id: str) -> str:
    return f"variants/{file_id}/"


def quarantine_key(file_id: str) -> str:
    return f"quarantine/{file_id}"


_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/]')


def sanitize_name(name: str | None) -> str:
    """The client's file name without directories, control characters or quotes, NFC,
    at most 255 characters (the extension kept); `file` when nothing is left."""
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name or ""))[-1]
    base = _UNSAFE.sub("", base).strip().strip(".") or "file"
    if len(base) > 255:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 254 - len(ext)] + "." + ext) if dot and len(ext) <= 16 else base[:255]
    return base


def _now() -> datetime:
    """Now, to the millisecond (what MongoDB keeps), so a record equals its document read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _aware(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


@dataclass(frozen=True)
class VariantRecord:
    digest: str
    key: str
    content_type: str
    width: int
    height: int
    size: int
    created_at: datetime
    data: bytes | None = field(default=None, compare=False, repr=False)
    """The rendered bytes when this call rendered the variant (stored and recorded already):
    serve them rather than read them back. None for a variant found recorded."""

    @classmethod
    def from_document(cls, digest: str, document: Mapping[str, Any]) -> VariantRecord:
        return cls(
            digest=digest,
            key=document["key"],
            content_type=document["contentType"],
            width=int(document["width"]),
            height=int(document["height"]),
            size=int(document["size"]),
            created_at=_aware(document["createdAt"]),
        )


@dataclass(frozen=True)
class FileRecord:
    id: str
    bucket: str
    owner: str
    name: str
    content_type: str
    size: int
    sha256: str | None
    state: FileState
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    metadata: dict[str, str]
    variants: dict[str, VariantRecord] = field(default_factory=dict)
    expected_size: int | None = None
    """The declared size of a direct upload not completed yet."""
    scan: dict[str, Any] | None = None

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> FileRecord:
        return cls(
            id=document["_id"],
            bucket=document["bucket"],
            owner=document["owner"],
            name=document["name"],
            content_type=document.get("contentType") or OCTET_STREAM,
            size=int(document.get("size") or 0),
            sha256=document.get("sha256"),
            state=document["state"],
            created_at=_aware(document["createdAt"]),
            updated_at=_aware(document.get("updatedAt") or document["createdAt"]),
            expires_at=_aware(document.get("expiresAt")),
            metadata=dict(document.get("metadata") or {}),
            variants={d: VariantRecord.from_document(d, v) for d, v in (document.get("variants") or {}).items()},
            expected_size=document.get("expectedSize"),
            scan=document.get("scan"),
        )

    @property
    def key(self) -> str:
        return object_key(self.id)

    def view(self) -> FileView:
        document: dict[str, Any] = {
            "_id": self.id,
            "bucket": self.bucket,
            "owner": self.owner,
            "name": self.name,
            "contentType": self.content_type,
            "size": self.size or self.expected_size or 0,
            "sha256": self.sha256,
            "state": self.state,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "expiresAt": self.expires_at,
            "metadata": self.metadata,
            "variants": self.variants,
            "scan": self.scan,
        }
        return file_view(document)


@dataclass(frozen=True)
class SweepResult:
    expired: int = 0
    abandoned: int = 0
    deleting: int = 0
    bytes: int = 0
    """Bytes of stored files freed (pending leftovers held none)."""

    @property
    def deleted(self) -> int:
        return self.expired + self.abandoned + self.deleting


class FileService:
    """The files of one Bucket."""

    def __init__(
        self,
        name: str,
        spec: BucketSpec,
        storage: Storage,
        database: AsyncDatabase[Any],
        redis: AnyRedis,
        enqueue: Enqueue | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.storage = storage
        self.files: AsyncCollection[Any] = database[COLLECTION]
        self.redis = redis
        self.quota = Quota(redis, self.files, name, spec.quota_bytes)
        self.enqueue = enqueue
        self._renders = asyncio.Semaphore(RENDERS_AT_ONCE)

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> Drift:
        """The `files` indexes of stackyard.db.schema."""
        return await ensure_capability_indexes(self.files.database, [COLLECTION], policy)

    @property
    def url_lifetime(self) -> int:
        """Seconds the signed and presigned URLs of this Bucket last."""
        return int(duration_seconds(self.spec.signed_url_lifetime))

    # -- upload ----------------------------------------------------------------------------

    async def upload(
        self,
        owner: str,
        name: str | None,
        declared_type: str | None,
        chunks: AsyncIterator[bytes],
        metadata: Mapping[str, str] | None = None,
    ) -> FileRecord:
        """Store a streamed file (see the module's docstring for the order and guarantees).
        `declared_type` is never trusted: the bytes decide the type."""
        document = self._new_document(owner, name, declared_type, metadata)
        await self.files.insert_one(document)
        file_id, key = document["_id"], object_key(document["_id"])
        limit = self.spec.max_object_bytes
        hasher = hashlib.sha256()
        head = bytearray()
        size = reserved = 0
        writer = None
        completed = False
        content_type = OCTET_STREAM
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge(f"the file is larger than this Bucket's limit of {limit} bytes", limit=limit)
                hasher.update(chunk)
                if size - reserved >= PART_SIZE:
                    await self.quota.reserve(owner, size - reserved)
                    reserved = size
                if writer is not None:
                    await writer.write(chunk)
                    continue
                head += chunk
                if len(head) >= sniff.SNIFF_BYTES:
                    content_type = self._check_type(bytes(head), document["name"])
                    writer = await self.storage.open_writer(key, content_type)
                    await writer.write(bytes(head))
                    head.clear()
            if writer is None:
                content_type = self._check_type(bytes(head), document["name"])
                writer = await self.storage.open_writer(key, content_type)
                if head:
                    await writer.write(bytes(head))
            if size > reserved:
                await self.quota.reserve(owner, size - reserved)
                reserved = size
            await writer.complete()
            completed = True
            state: FileState = "scanning" if self.spec.scan.enabled else "available"
            now = _now()
            changes = {"contentType": content_type, "size": size, "sha256": hasher.hexdigest(), "updatedAt": now}
            await self.files.update_one({"_id": file_id}, {"$set": changes | {"state": state}})
            document |= changes | {"state": state}
            if state == "scanning":
                await self._enqueue_scan(file_id)
        except BaseException:
            await self._undo(file_id, key, owner, reserved, writer, completed)
            raise
        return FileRecord.from_document(document)

    def _check_type(self, head: bytes, name: str) -> str:
        detected = sniff.detect(head, name)
        if not sniff.allowed(detected, self.spec.limits.allowed_content_types):
            raise ContentTypeRefused(
                f"files of type {detected} are not accepted by this Bucket",
                contentType=detected,
                allowed=list(self.spec.limits.allowed_content_types),
            )
        return detected

    async def _undo(self, file_id: str, key: str, owner: str, reserved: int, writer: Any, completed: bool) -> None:
        """What a failed upload leaves: nothing (each step is tried even when another fails)."""
        steps: list[Callable[[], Awaitable[Any]]] = []
        if writer is not None and not completed:
            steps.append(writer.abort)
        if completed:
            steps.append(lambda: self.storage.delete(key))
        steps.append(lambda: self.files.delete_one({"_id": file_id}))
        steps.append(lambda: self.quota.release(owner, reserved))
        for step in steps:
            try:
                await step()
            except Exception:
                log.warning(
                    "bucket %s: file %s: clean-up after a failed upload failed", self.name, file_id, exc_info=True
                )

    def _new_document(
        self, owner: str, name: str | None, content_type: str | None, metadata: Mapping[str, str] | None
    ) -> dict[str, Any]:
        try:
            checked = check_metadata(dict(metadata or {}))
        except ValueError as exc:
            raise MetadataInvalid(str(exc)) from None
        now = _now()
        return {
            "_id": new_file_id(),
            "bucket": self.name,
            "owner": owner,
            "name": sanitize_name(name),
            "contentType": (content_type or OCTET_STREAM)[:255],
            "size": 0,
            "sha256": None,
            "state": "pending",
            "createdAt": now,
            "updatedAt": now,
            "expiresAt": expires_at(now, self.spec.retention),
            "metadata": checked,
            "variants": {},
            "scan": None,
        }

    async def _enqueue_scan(self, file_id: str) -> None:
        if self.enqueue is None:
            raise StorageUnavailable("this Bucket scans uploads but no job queue was given to scan them")
        await self.enqueue(SCAN_FUNCTION, {"bucket": self.name, "fileId": file_id}, self.spec.scan.queue)

    # -- direct uploads --------------------------------------------------------------------

    async def start_direct_upload(
        self, owner: str, name: str | None, content_type: str | None, size: int, metadata: Mapping[str, str] | None
    ) -> tuple[FileRecord, DirectUpload | None]:
        """A pending file of `size` bytes (reserved in the quota at once) and how the client
        sends them to the storage: a presigned POST for S3, None for a volume (the api signs
        its own PUT URL, see `receive_direct_upload`)."""
        limit = self.spec.max_object_bytes
        if size > limit:
            raise FileTooLarge(f"the file is larger than this Bucket's limit of {limit} bytes", limit=limit)
        document = self._new_document(owner, name, content_type, metadata)
        document["expectedSize"] = size
        await self.quota.reserve(owner, size)
        try:
            await self.files.insert_one(document)
            direct = await self.storage.direct_upload(
                object_key(document["_id"]), document["contentType"], size, self.url_lifetime
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self.files.delete_one({"_id": document["_id"]})
            with contextlib.suppress(Exception):
                await self.quota.release(owner, size)
            raise
        return FileRecord.from_document(document), direct

    async def receive_direct_upload(self, file_id: str, chunks: AsyncIterator[bytes]) -> FileRecord:
        """The body of a volume direct upload (the api's signed PUT): streamed to the
        object, at most the declared size (FileTooLarge past it; nothing kept). The checks
        are `complete_direct_upload`'s."""
        record = await self.get(file_id)
        if record.state != "pending" or record.expected_size is None:
            raise FileNotAvailable(f"file {file_id} is not waiting for a direct upload", state=record.state)
        writer = await self.storage.open_writer(record.key, record.content_type)
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > record.expected_size:
                    raise FileTooLarge(
                        f"more than the {record.expected_size} bytes declared", limit=record.expected_size
                    )
                await writer.write(chunk)
            await writer.complete()
        except BaseException:
            with contextlib.suppress(Exception):
                await writer.abort()
            raise
        return record

    async def complete_direct_upload(self, file_id: str) -> FileRecord:
        """Check what the client uploaded: the object is there, of the declared size, of a
        type the Bucket accepts; then the file is available (or scanning). Otherwise the
        object and the document are deleted, the quota released, and UploadIncomplete or
        ContentTypeRefused raised. A file already completed is answered as it is."""
        record = await self.get(file_id)
        if record.state != "pending":
            if record.state in ("available", "scanning"):
                return record
            raise FileNotAvailable(f"file {file_id} is {record.state}", state=record.state)
        if record.expected_size is None:
            raise UploadIncomplete(f"file {file_id} is being uploaded through the api, not directly")
        try:
            try:
                info = await self.storage.head(record.key)
            except ObjectMissing:
                raise UploadIncomplete(f"nothing was uploaded for file {file_id}") from None
            if info.size != record.expected_size:
                raise UploadIncomplete(
                    f"{info.size} bytes were uploaded, {record.expected_size} were declared",
                    size=info.size,
                    expected=record.expected_size,
                )
            head = await self.storage.read_head(record.key, sniff.SNIFF_BYTES)
            content_type = self._check_type(head, record.name)
        except (UploadIncomplete, ContentTypeRefused):
            await self._remove_everything(record, record.expected_size)
            raise
        state: FileState = "scanning" if self.spec.scan.enabled else "available"
        changes = {"contentType": content_type, "size": info.size, "state": state, "updatedAt": _now()}
        await self.files.update_one({"_id": file_id}, {"$set": changes, "$unset": {"expectedSize": ""}})
        if state == "scanning":
            await self._enqueue_scan(file_id)
        return await self.get(file_id)

    # -- reads -----------------------------------------------------------------------------

    async def get(self, file_id: str, owner: str | None = None) -> FileRecord:
        """The file (FileNotFound when absent, in another Bucket, or of another owner than
        `owner` when one is given)."""
        document = await self.files.find_one({"_id": file_id, "bucket": self.name})
        if document is None or (owner is not None and document["owner"] != owner):
            raise FileNotFound(f"no file {file_id}", id=file_id)
        return FileRecord.from_document(document)

    async def list(self, owner: str, limit: int = 50, cursor: str | None = None) -> tuple[list[FileRecord], str | None]:
        """The owner's files, newest first, `limit` at most; the cursor of the next page or None.
        Files being deleted are left out."""
        limit = max(1, min(limit, MAX_PAGE))
        query: dict[str, Any] = {"bucket": self.name, "owner": owner, "state": {"$ne": "deleting"}}
        if cursor:
            query["_id"] = {"$lt": _decode_cursor(cursor)}
        documents = await self.files.find(query).sort("_id", -1).limit(limit + 1).to_list(limit + 1)
        records = [FileRecord.from_document(d) for d in documents[:limit]]
        next_cursor = _encode_cursor(records[-1].id) if len(documents) > limit else None
        return records, next_cursor

    def content(self, record: FileRecord, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of an available file, from `start` to `end` (inclusive, as an HTTP Range);
        FileNotAvailable with its state otherwise."""
        _servable(record)
        return self.storage.read(record.key, start, end)

    # -- variants --------------------------------------------------------------------------

    async def variant(self, record: FileRecord, transform: images.Transform) -> VariantRecord:
        """The variant of an available image made by `transform`. Found in `record` (read
        just before, by the caller: nothing is read again here), or rendered (Pillow, in a
        thread, a few at a time) from the original, then stored at
        variants/<id>/<digest>.<ext> and recorded (`$set variants.<digest>`) at the same
        time. A variant rendered here comes back with its bytes (`data`): the caller serves
        them, nothing is read back. It is returned only once both the storage and the
        document have it; when either fails the error goes on (the request fails, the next
        one renders again) and a record whose object was not stored is taken back. A record
        read before another call recorded the variant renders it again: the same key and
        `$set` again, harmless."""
        _servable(record)
        if not self.spec.images.enabled:
            raise ImageRefused("this Bucket does not transform images")
        digest = transform.digest
        if digest in record.variants:
            return record.variants[digest]
        async with self._renders:
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as source:
                await self._read_into(record, source)
                source.seek(0)
                rendered = await asyncio.to_thread(images.render, cast(BinaryIO, source), transform, self.spec.images)
        key = f"{variants_prefix(record.id)}{digest}.{rendered.extension}"
        variant = {
            "key": key,
            "contentType": rendered.content_type,
            "width": rendered.width,
            "height": rendered.height,
            "size": len(rendered.data),
            "createdAt": _now(),
        }
        await self._store_variant(record.id, digest, variant, rendered.data)
        return replace(VariantRecord.from_document(digest, variant), data=rendered.data)

    async def _store_variant(self, file_id: str, digest: str, variant: dict[str, Any], data: bytes) -> None:
        """Put the variant's object and record it, both at once; if the object could not be
        stored, the record (if made) is taken back so that it never names a missing object."""
        put = self.storage.put(variant["key"], data, variant["contentType"])
        record = self.files.update_one({"_id": file_id}, {"$set": {f"variants.{digest}": variant}})
        try:
            stored, recorded = await asyncio.gather(put, record, return_exceptions=True)
        except BaseException:  # cancelled while either was on its way
            await self._forget_variant(file_id, digest, variant)
            raise
        if isinstance(stored, BaseException):
            await self._forget_variant(file_id, digest, variant)
            raise stored
        if isinstance(recorded, BaseException):
            raise recorded  # the object stays: the next render overwrites it, a delete removes it

    async def _forget_variant(self, file_id: str, digest: str, variant: dict[str, Any]) -> None:
        """Take back this call's record of a variant (not one another call made since)."""
        try:
            await self.files.update_one(
                {"_id": file_id, f"variants.{digest}.createdAt": variant["createdAt"]},
                {"$unset": {f"variants.{digest}": ""}},
            )
        except Exception:
            log.warning(
                "bucket %s: file %s: variant %s recorded but not stored; record not taken back",
                self.name,
                file_id,
                digest,
                exc_info=True,
            )

    async def _read_into(self, record: FileRecord, target: IO[bytes]) -> None:
        """The original into `target` (a spooled file): in memory up to SPOOL_BYTES, written
        there directly; past it the writes (to a temporary file) go through a thread."""
        limit = self.spec.max_object_bytes
        read = 0
        async for chunk in self.storage.read(record.key):
            read += len(chunk)
            if read > limit:
                raise ImageRefused(f"the original is larger than this Bucket's limit of {limit} bytes")
            if read <= SPOOL_BYTES:
                target.write(chunk)
            else:
                await asyncio.to_thread(target.write, chunk)

    def variant_content(self, record: FileRecord, variant: VariantRecord) -> AsyncIterator[bytes]:
        _servable(record)
        return self.storage.read(variant.key)

    # -- scan ------------------------------------------------------------------------------

    async def mark_scanned(
        self,
        file_id: str,
        result: Literal["clean", "infected", "unscannable"],
        signature: str | None = None,
        reason: str | None = None,
    ) -> FileRecord:
        """The scan's verdict on a `scanning` file: clean -> available; infected (with the
        `signature`) or unscannable (with the `reason`, e.g. larger than clamd's
        StreamMaxLength) -> the object is moved to quarantine/<id> and the file is
        quarantined (never served). The verdict is kept in `scan`: {result, signature, at}
        or {result, reason, at}. A file in any other state is left as it is (a repeated job,
        a file deleted meanwhile)."""
        record = await self.get(file_id)
        if record.state != "scanning":
            return record
        now = _now()
        scan: dict[str, Any] = {"result": result}
        scan |= {"reason": reason} if result == "unscannable" else {"signature": signature}
        scan["at"] = now
        if result == "clean":
            state: FileState = "available"
        else:
            await self.storage.move(record.key, quarantine_key(file_id))
            state = "quarantined"
            why = signature if result == "infected" else f"unscannable: {reason}"
            log.warning("bucket %s: file %s quarantined (%s)", self.name, file_id, why)
        await self.files.update_one({"_id": file_id}, {"$set": {"state": state, "scan": scan, "updatedAt": now}})
        return await self.get(file_id)

    # -- delete and sweep ------------------------------------------------------------------

    async def delete(self, file_id: str, owner: str | None = None) -> FileRecord:
        """Delete a file: `deleting`, then its variants and object, then the document, then
        the quota's bytes. FileNotFound when there is none (for `owner`)."""
        record = await self.get(file_id, owner)
        await self._remove_everything(record, record.size or record.expected_size or 0)
        return record

    async def _remove_everything(self, record: FileRecord, size: int) -> None:
        if record.state != "deleting":
            await self.files.update_one({"_id": record.id}, {"$set": {"state": "deleting", "updatedAt": _now()}})
        await self.storage.delete_prefix(variants_prefix(record.id))
        await self.storage.delete(record.key)
        await self.storage.delete(quarantine_key(record.id))
        result = await self.files.delete_one({"_id": record.id})
        if result.deleted_count:  # a concurrent delete released them already
            await self.quota.release(record.owner, size)

    async def sweep(self, now: datetime | None = None) -> SweepResult:
        """Retention: delete the files whose `expiresAt` has passed (or older than the days in
        force), the pending documents older than a day (an upload that crashed) and the
        documents left `deleting`. Answers how many of each, and the bytes freed."""
        now = _aware(now) if now is not None else _now()
        retention = self.spec.retention
        due: list[dict[str, Any]] = [
            {"state": "deleting"},
            {"state": "pending", "updatedAt": {"$lte": now - PENDING_GRACE}},
        ]
        if retention is not None:
            due.append({"expiresAt": {"$lte": now}})
            due.append({"createdAt": {"$lte": cutoff(now, retention)}})
        counts = {"expired": 0, "abandoned": 0, "deleting": 0}
        freed = 0
        stale_owners: set[str] = set()
        async for document in self.files.find({"bucket": self.name, "$or": due}):
            reason = sweep_reason(document, now, retention)
            if reason is None:
                continue
            record = FileRecord.from_document(document)
            size = record.size or record.expected_size or 0
            try:
                await self._remove_everything(record, size)
            except StorageUnavailable:
                raise
            except Exception:
                log.warning("bucket %s: sweep: file %s not removed", self.name, record.id, exc_info=True)
                continue
            counts[reason] += 1
            if reason == "abandoned" and record.expected_size is None:
                # A crashed streamed upload reserved bytes no document says: count again.
                stale_owners.add(record.owner)
            if record.state not in ("pending",):
                freed += record.size
        for owner in stale_owners:
            await self.redis.delete(usage_key(self.name, owner))
        return SweepResult(counts["expired"], counts["abandoned"], counts["deleting"], freed)


def _servable(record: FileRecord) -> None:
    if record.state != "available":
        why = {
            "pending": "is still being uploaded",
            "scanning": "is being scanned for malware",
            "quarantined": "was quarantined by the malware scan (infected, or too large to scan)",
            "deleting": "is being deleted",
        }.get(record.state, f"is {record.state}")
        raise FileNotAvailable(f"file {record.id} {why}", state=record.state)


def _encode_cursor(file_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": file_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        before = data["before"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise CursorInvalid("the cursor was not made by this api") from None
    if not isinstance(before, str):
        raise CursorInvalid("the cursor was not made by this api")
    return before


# -- the Buckets of a Runtime ------------------------------------------------------------------


def job_enqueue(runtime: Runtime) -> Enqueue:
    """An Enqueue onto the Stack's job queues (stackyard.jobs), as the api and the worker
    hold them: a builtin function (every worker runs it), idempotent per file and function."""
    from ..jobs.contract import EnqueueRequest
    from ..jobs.settings import QueueSettings, queues_from_config
    from ..jobs.store import JobClient

    async def enqueue(function: str, args: dict[str, Any], queue: str) -> None:
        queues = queues_from_config(runtime.config.config.job_queues)
        settings = queues.get(queue) or QueueSettings(name=queue)
        key = f"{function}:{args.get('bucket')}:{args.get('fileId')}" if "fileId" in args else None
        request = EnqueueRequest(queue=queue, function=function, payload=args, idempotency_key=key)
        await JobClient(runtime.redis).enqueue(settings, request, builtin=True)

    return enqueue


class Buckets:
    """One FileService per Bucket of the Runtime's config in force: made on first use and
    remade when the Bucket's spec, its credentials or the Stack's clients change."""

    def __init__(self, runtime: Runtime, *, root: Path | None = None, enqueue: Enqueue | None = None) -> None:
        self.runtime = runtime
        self.root = root
        self.enqueue = enqueue if enqueue is not None else job_enqueue(runtime)
        self._services: dict[str, tuple[str, FileService]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._retired: list[Storage] = []

    def names(self) -> list[str]:
        return sorted(self.runtime.config.config.buckets)

    def default_bucket(self) -> str:
        """The Bucket named `default`, or the only one; BucketNotFound otherwise."""
        names = self.names()
        if "default" in names:
            return "default"
        if len(names) == 1:
            return names[0]
        if not names:
            raise BucketNotFound("the Stack has no Bucket")
        raise BucketNotFound(f"the Stack has several Buckets and none named default: give one of {', '.join(names)}")

    def service(self, name: str | None = None) -> FileService:
        """The FileService of Bucket `name` (default_bucket() when None)."""
        name = name or self.default_bucket()
        applied = self.runtime.config
        spec = applied.config.buckets.get(name)
        if spec is None:
            raise BucketNotFound(f"no Bucket {name!r} in the Stack's config", bucket=name)
        mongo, redis = self.runtime.mongo, self.runtime.redis
        fingerprint = self._fingerprint(name, spec, applied.credentials, id(mongo), id(redis))
        held = self._services.get(name)
        if held is not None and held[0] == fingerprint:
            return held[1]
        if held is not None:
            self._retire(held[1].storage)
        from .factory import storage_for

        storage = storage_for(name, spec, applied.credentials, self.root)
        service = FileService(name, spec, storage, self.runtime.database, redis, self.enqueue)
        self._services[name] = (fingerprint, service)
        for gone in set(self._services) - set(applied.config.buckets):
            self._retire(self._services.pop(gone)[1].storage)
        return service

    def _fingerprint(self, name: str, spec: BucketSpec, credentials: Mapping[str, str], *clients: int) -> str:
        secrets = [credentials.get(credential_key("Bucket", name, f), "") for f in ("accessKeyId", "secretAccessKey")]
        material = json.dumps([spec.model_dump(mode="json"), secrets, str(self.root), clients], sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()

    def _retire(self, storage: Storage) -> None:
        """Close a replaced storage after the calls still using it had time to finish."""
        self._retired.append(storage)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._close_later(storage))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_later(self, storage: Storage) -> None:
        await asyncio.sleep(STORAGE_GRACE)
        await _close(storage)
        with contextlib.suppress(ValueError):
            self._retired.remove(storage)

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        for storage in [*self._retired, *(s.storage for _, s in self._services.values())]:
            await _close(storage)
        self._retired.clear()
        self._services.clear()


async def _close(storage: Storage) -> None:
    try:
        await storage.close()
    except Exception:
        log.warning("a Bucket's storage did not close cleanly", exc_info=True)
