"""What each call of /v1/files sends (shared by `files_async` and `files_sync`), and the
file sources both stream from: an upload is read in chunks as it is sent, a download is
written as it arrives, neither is held whole in memory."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from stackyard.storage.contract import DirectUploadView, FileList, FileView, SignedUrlView

from .admin_calls import admin
from .calls import Call, NoContent, Params, _segment

FILES = "/v1/files"
CHUNK = 256 * 1024
"""Bytes read (upload) or written (download) at a time."""

Progress = Callable[[int, int | None], object]
"""Called as the bytes go: (bytes so far, total bytes when known)."""
Source = str | os.PathLike[str] | bytes | BinaryIO
"""A path, the bytes themselves, or an open binary file."""


def _params(bucket: str | None, owner: str | None, **more: Any) -> Params:
    params: Params = {k: v for k, v in more.items() if v is not None}
    if bucket is not None:
        params["bucket"] = bucket
    if owner is not None:
        params["owner"] = owner
    return params


def headers_for(key: str | None, owner: str | None) -> dict[str, str]:
    """The admin API key as the bearer token when acting for `owner`; the client's own
    token otherwise."""
    return admin(key) if owner is not None else {}


def get_file(key: str | None, file_id: str, bucket: str | None, owner: str | None) -> Call[FileView]:
    return Call(
        "GET",
        f"{FILES}/{_segment(file_id)}",
        FileView,
        params=_params(bucket, owner),
        headers=headers_for(key, owner),
        repeatable=True,
    )


def list_files(
    key: str | None, bucket: str | None, owner: str | None, limit: int, cursor: str | None
) -> Call[FileList]:
    params = _params(bucket, owner, limit=limit, cursor=cursor)
    return Call("GET", FILES, FileList, params=params, headers=headers_for(key, owner), repeatable=True)


def delete_file(key: str | None, file_id: str, bucket: str | None, owner: str | None) -> Call[NoContent]:
    """DELETE is repeatable: a second one finds nothing (404) and deleted nothing more."""
    return Call(
        "DELETE",
        f"{FILES}/{_segment(file_id)}",
        NoContent,
        params=_params(bucket, owner),
        headers=headers_for(key, owner),
        repeatable=True,
    )


def signed_url(
    key: str | None,
    file_id: str,
    *,
    bucket: str | None,
    owner: str | None,
    expires_in: int | None,
    width: int | None,
    height: int | None,
    fit: str | None,
    format: str | None,
    quality: int | None,
    preset: str | None,
    download: bool,
    gravity: str | None = None,
    crop: tuple[int, int, int, int] | None = None,
) -> Call[SignedUrlView]:
    params = _params(
        bucket,
        owner,
        expiresIn=expires_in,
        w=width,
        h=height,
        fit=fit,
        g=gravity,
        crop=None if crop is None else ",".join(str(int(n)) for n in crop),
        format=format,
        q=quality,
        preset=preset,
        download="true" if download else None,
    )
    return Call(
        "GET",
        f"{FILES}/{_segment(file_id)}/url",
        SignedUrlView,
        params=params,
        headers=headers_for(key, owner),
        repeatable=True,
    )


def start_upload(
    key: str | None,
    name: str,
    content_type: str | None,
    size: int,
    metadata: Mapping[str, str] | None,
    bucket: str | None,
    owner: str | None,
) -> Call[DirectUploadView]:
    body: dict[str, Any] = {"name": name, "size": size, "metadata": dict(metadata or {})}
    if content_type is not None:
        body["contentType"] = content_type
    if bucket is not None:
        body["bucket"] = bucket
    return Call(
        "POST",
        f"{FILES}/uploads",
        DirectUploadView,
        json=body,
        params=_params(None, owner),
        headers=headers_for(key, owner),
    )


def complete_upload(key: str | None, file_id: str, bucket: str | None, owner: str | None) -> Call[FileView]:
    """Repeatable: completing an available file again answers it as it is."""
    return Call(
        "POST",
        f"{FILES}/{_segment(file_id)}/complete",
        FileView,
        params=_params(bucket, owner),
        headers=headers_for(key, owner),
        repeatable=True,
    )


def upload_params(name: str, bucket: str | None, owner: str | None, metadata: Mapping[str, str] | None) -> Params:
    """The query of a raw POST /v1/files: the name, the Bucket, the owner, metadata.<key>."""
    params = _params(bucket, owner, name=name)
    params |= {f"metadata.{k}": v for k, v in (metadata or {}).items()}
    return params


def source_name(source: Source, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    found = getattr(source, "name", None)
    if isinstance(found, str) and found:
        return Path(found).name
    raise ValueError("name the file (name=...): its source has no file name")


def source_size(source: Source) -> int | None:
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, str | os.PathLike):
        return Path(source).stat().st_size
    try:
        return os.fstat(source.fileno()).st_size - source.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None


def uploaded() -> Call[FileView]:
    """How the answer of POST /v1/files (sent streamed, outside `send`) is read."""
    return Call("POST", FILES, FileView)


def content_path(url: str) -> str:
    """A signed URL of this api, as a path and query for the client's base URL."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


class _Chunked:
    """The bytes of `source` in chunks of CHUNK, reporting progress."""

    def __init__(self, source: Source, progress: Progress | None = None) -> None:
        self.source = source
        self.progress = progress
        self.total = source_size(source)
        self.sent = 0

    def opened(self) -> BinaryIO:
        """`source` as a binary file (the caller's own, or one opened here)."""
        if isinstance(self.source, bytes):
            return io.BytesIO(self.source)
        if isinstance(self.source, str | os.PathLike):
            return open(self.source, "rb")
        return self.source

    def _chunks(self) -> Iterator[bytes]:
        handle = self.opened()
        try:
            while chunk := handle.read(CHUNK):
                self.sent += len(chunk)
                if self.progress is not None:
                    self.progress(self.sent, self.total)
                yield chunk
        finally:
            if handle is not self.source:
                handle.close()


class FileChunks(_Chunked):
    """For a blocking upload (an Iterable, as httpx.Client wants)."""

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()


class AsyncFileChunks(_Chunked):
    """For an asyncio upload (an AsyncIterable only, as httpx.AsyncClient wants; a local
    read of one chunk is short)."""

    async def _achunks(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._achunks()


class Destination:
    """Where a download goes: a path (written to `<path>.part`, renamed when whole) or an
    open binary file; reports progress."""

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, progress: Progress | None = None) -> None:
        self.target = target
        self.progress = progress
        self.received = 0
        self.total: int | None = None
        self._handle: BinaryIO | None = None
        self._partial: Path | None = None

    def start(self, total: int | None) -> None:
        self.total = total
        if isinstance(self.target, str | os.PathLike):
            self._partial = Path(f"{os.fspath(self.target)}.part")
            self._handle = open(self._partial, "wb")  # noqa: SIM115 - closed by finish/abort
        else:
            self._handle = self.target

    def write(self, chunk: bytes) -> None:
        assert self._handle is not None
        self._handle.write(chunk)
        self.received += len(chunk)
        if self.progress is not None:
            self.progress(self.received, self.total)

    def finish(self) -> None:
        if self._partial is not None and self._handle is not None:
            self._handle.close()
            self._partial.replace(Path(os.fspath(self.target)))  # type: ignore[arg-type]

    def abort(self) -> None:
        if self._partial is not None and self._handle is not None:
            self._handle.close()
            self._partial.unlink(missing_ok=True)


def content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None
