"""What every storage backend does, so that uploads, downloads, variants, scans and sweeps
are written once: `S3Storage` (stackyard.storage.s3) and `VolumeStorage`
(stackyard.storage.volume) implement `Storage`.

Keys are relative to the Bucket's own root (its S3 prefix or volume directory) and look
like `files/<id>`, `variants/<id>/<digest>.<ext>`, `quarantine/<id>`.

Errors: a missing object raises `ObjectMissing`; a server or disk that does not answer
raises `StorageUnavailable` (stackyard.storage.problems), with no key or credential in the
message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

PART_SIZE = 8 * 1024 * 1024
"""Bytes buffered before a part is sent (S3 multipart parts are at least 5 MiB, but the last)."""


class ObjectMissing(Exception):
    """The key holds no object."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class DirectUpload:
    """How a client uploads straight to the storage: send `method` to `url` with `headers`;
    for a POST, as multipart/form-data with `fields` first and the file last (field `file`)."""

    url: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class ObjectWriter(Protocol):
    """A streamed write: `write` as the bytes arrive (memory stays at one part), then
    `complete` once, or `abort` (nothing is left behind: no object, no multipart upload)."""

    async def write(self, data: bytes) -> None: ...

    async def complete(self) -> None: ...

    async def abort(self) -> None: ...


class Storage(Protocol):
    async def check(self) -> None:
        """Reachability: write, read back and delete a small probe object; raises
        StorageUnavailable (with the reason, e.g. NoSuchBucket or permission denied)."""

    async def open_writer(self, key: str, content_type: str) -> ObjectWriter:
        """A streamed write to `key`; the object appears only on `complete`."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """A small object in one request (variants, probes)."""

    async def head(self, key: str) -> ObjectInfo:
        """Size and type of `key`; ObjectMissing when absent."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of `key` from `start` to `end` (inclusive, as an HTTP Range), in chunks;
        ObjectMissing (raised on the first iteration) when absent."""

    async def read_head(self, key: str, size: int) -> bytes:
        """The first `size` bytes (fewer when the object is smaller): for type detection."""

    async def delete(self, key: str) -> None:
        """Delete `key`; no error when it is already gone."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; how many were deleted."""

    async def move(self, source: str, target: str) -> None:
        """Copy then delete (quarantine)."""

    async def direct_upload(self, key: str, content_type: str, max_size: int, expires_in: int) -> DirectUpload | None:
        """A presigned way for a client to upload `key` itself (S3: a POST policy bounded to
        `max_size`); None when the backend has none (the volume: the api signs its own URL)."""

    async def presigned_get(self, key: str, expires_in: int, filename: str | None = None) -> str | None:
        """A presigned GET of `key` (S3), for delivery redirect; None for the volume."""

    async def close(self) -> None:
        """Release connections."""
