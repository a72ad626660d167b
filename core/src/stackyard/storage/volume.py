"""The volume backend: a Bucket's objects as files under one directory (a PersistentVolumeClaim
mounted in the api and the worker at `<STACKYARD_BUCKET_ROOT>/<bucket>`), the key being the
path below it.

- Writes go to a temporary file next to the target (`.upload-*`, in the same directory so
  the rename cannot cross file systems), are fsynced, then renamed over the target: a reader
  sees the old object or the whole new one, never a part. `abort` unlinks the temporary file.
- File IO runs in threads (asyncio.to_thread), never on the event loop; reads are chunked.
- Keys are relative paths of plain segments: absolute paths, `..`, `.`, empty segments and
  backslashes are refused, so nothing outside the directory is ever reached.
- The directory is not created when it is missing (an unmounted volume must not turn into
  files on the container's own disk), except a `subPath` inside a mounted volume.
- No presigned URLs: `direct_upload` and `presigned_get` return None (the api signs its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from .backend import DirectUpload, ObjectInfo, ObjectMissing
from .problems import StorageUnavailable

__all__ = ["READ_CHUNK", "TEMP_PREFIX", "WRITE_BUFFER", "VolumeStorage", "VolumeWriter"]

READ_CHUNK = 256 * 1024
"""Bytes read per chunk of `read`."""
WRITE_BUFFER = 1024 * 1024
"""Bytes gathered before a write is handed to a thread."""
TEMP_PREFIX = ".upload-"
PROBE_PREFIX = "_stackyard_probe/"


class VolumeStorage:
    """Objects as files under `root`. `mount`, when given, is the volume's mount point that
    `root` lies in (root = mount/subPath): `root` is then created once the mount exists."""

    def __init__(self, root: Path, mount: Path | None = None) -> None:
        self.root = Path(root)
        self.mount = Path(mount) if mount is not None else None
        self._root_ready = False

    def __repr__(self) -> str:
        return f"VolumeStorage(root={str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file of `key`; ValueError for a key that would leave the directory."""
        if not key or key.startswith("/") or "\\" in key or "\0" in key:
            raise ValueError("an object key is a relative path of plain segments")
        parts = key.split("/")
        if any(part in {"", ".", ".."} for part in parts):
            raise ValueError("an object key is a relative path of plain segments")
        return self.root.joinpath(*parts)

    def _prefix_parts(self, prefix: str) -> tuple[Path, str]:
        """The directory to walk for `prefix` and the start every key must have."""
        directory, _, _ = prefix.rpartition("/")
        base = self.path(directory) if directory else self.root
        return base, prefix

    def _ensure_root(self) -> None:
        if self._root_ready:
            return
        if not self.root.is_dir():
            if self.mount is not None and self.mount.is_dir() and self.root != self.mount:
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise unavailable(exc, "creating the directory") from None
            else:
                raise StorageUnavailable("the volume's directory is missing (is the volume mounted?)")
        self._root_ready = True

    def _make_parent(self, target: Path) -> None:
        self._ensure_root()
        target.parent.mkdir(parents=True, exist_ok=True)

    def _open_temp(self, target: Path) -> tuple[IO[bytes], Path]:
        # A concurrent delete may remove an empty parent between mkdir and mkstemp: try again.
        for attempt in range(3):
            self._make_parent(target)
            try:
                fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            return os.fdopen(fd, "wb"), Path(name)
        raise AssertionError("unreachable")

    # -- the Storage protocol ----------------------------------------------------------------

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        self._root_ready = False
        self._ensure_root()
        key = PROBE_PREFIX + secrets.token_hex(8)
        data = secrets.token_bytes(32)
        target = self.path(key)
        try:
            self._put(target, data)
            try:
                if target.read_bytes() != data:
                    raise StorageUnavailable("the volume's probe file read back differs")
            finally:
                self._remove(target)
        except OSError as exc:
            raise unavailable(exc, "the probe (write, read, delete)") from None

    async def open_writer(self, key: str, content_type: str) -> VolumeWriter:
        target = self.path(key)
        try:
            handle, temp = await asyncio.to_thread(self._open_temp, target)
        except OSError as exc:
            raise unavailable(exc, "opening a file") from None
        return VolumeWriter(self, handle, temp, target)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        target = self.path(key)
        try:
            await asyncio.to_thread(self._put, target, data)
        except OSError as exc:
            raise unavailable(exc, "writing a file") from None

    def _put(self, target: Path, data: bytes) -> None:
        handle, temp = self._open_temp(target)
        try:
            with handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)

    async def head(self, key: str) -> ObjectInfo:
        path = self.path(key)
        try:
            result = await asyncio.to_thread(path.stat)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise unavailable(exc, "reading a file's size") from None
        if not _is_file(result.st_mode):
            raise ObjectMissing(key)
        return ObjectInfo(size=result.st_size, etag=f"{result.st_mtime_ns:x}-{result.st_size:x}")

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise ValueError("a range starts at 0 or later and ends at or after its start")
        path = self.path(key)
        try:
            handle = await asyncio.to_thread(_open_read, path, start)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise unavailable(exc, "opening a file") from None
        try:
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                try:
                    chunk = await asyncio.to_thread(handle.read, size)
                except OSError as exc:
                    raise unavailable(exc, "reading a file") from None
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def read_head(self, key: str, size: int) -> bytes:
        if size <= 0:
            return b""
        chunks = [chunk async for chunk in self.read(key, 0, size - 1)]
        return b"".join(chunks)

    async def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            await asyncio.to_thread(self._remove, path)
        except OSError as exc:
            raise unavailable(exc, "deleting a file") from None

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove the empty directories from `directory` up to the root (variants/<id>/...)."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    async def delete_prefix(self, prefix: str) -> int:
        try:
            return await asyncio.to_thread(self._delete_prefix, prefix)
        except OSError as exc:
            raise unavailable(exc, "deleting files") from None

    def _delete_prefix(self, prefix: str) -> int:
        base, start = self._prefix_parts(prefix)
        if not base.is_dir():
            return 0
        deleted = 0
        directories: list[Path] = []
        for directory, _, names in os.walk(base):
            here = Path(directory)
            directories.append(here)
            for name in names:
                if name.startswith(TEMP_PREFIX):
                    continue  # an upload in progress: it is not an object (yet)
                path = here / name
                if path.relative_to(self.root).as_posix().startswith(start):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        deleted += 1
        for walked in reversed(directories):
            self._prune(walked)
        return deleted

    async def move(self, source: str, target: str) -> None:
        source_path, target_path = self.path(source), self.path(target)
        try:
            await asyncio.to_thread(self._move, source_path, target_path)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissing(source) from None
        except OSError as exc:
            raise unavailable(exc, "moving a file") from None

    def _move(self, source: Path, target: Path) -> None:
        if not source.is_file():
            raise FileNotFoundError(source)
        self._make_parent(target)
        os.replace(source, target)  # one volume: a rename, atomic
        _fsync_directory(target.parent)
        self._prune(source.parent)

    async def direct_upload(self, key: str, content_type: str, max_size: int, expires_in: int) -> DirectUpload | None:
        self.path(key)
        return None

    async def presigned_get(self, key: str, expires_in: int, filename: str | None = None) -> str | None:
        self.path(key)
        return None

    async def close(self) -> None:
        return None


class VolumeWriter:
    """A streamed write into a temporary file next to the target, renamed over it on
    `complete`; `abort` (or a failure) unlinks it."""

    def __init__(self, storage: VolumeStorage, handle: IO[bytes], temp: Path, target: Path) -> None:
        self.storage = storage
        self.temp = temp
        self.target = target
        self._handle = handle
        self._buffer = bytearray()
        self._finished = False

    async def write(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError("the write was completed or aborted")
        self._buffer += data
        if len(self._buffer) >= WRITE_BUFFER:
            buffer, self._buffer = self._buffer, bytearray()
            try:
                await asyncio.to_thread(self._handle.write, buffer)
            except BaseException as exc:
                await self.abort()
                if isinstance(exc, OSError):
                    raise unavailable(exc, "writing a file") from None
                raise

    async def complete(self) -> None:
        if self._finished:
            raise RuntimeError("the write was completed or aborted")
        buffer, self._buffer = self._buffer, bytearray()
        try:
            await asyncio.to_thread(self._complete, buffer)
        except BaseException as exc:
            await self.abort()
            if isinstance(exc, OSError):
                raise unavailable(exc, "writing a file") from None
            raise
        self._finished = True

    def _complete(self, buffer: bytearray) -> None:
        handle = self._handle
        if buffer:
            handle.write(buffer)
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(self.temp, self.target)
        _fsync_directory(self.target.parent)

    async def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._buffer = bytearray()
        await asyncio.to_thread(self._discard)

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(OSError):
            self.temp.unlink(missing_ok=True)


def _open_read(path: Path, start: int) -> IO[bytes]:
    handle = path.open("rb")
    if start:
        handle.seek(start)
    return handle


def _is_file(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (the directory entry), where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def unavailable(exc: OSError, action: str) -> StorageUnavailable:
    """The StorageUnavailable for a failed file operation: its reason (Read-only file system,
    No space left on device, Permission denied), not the path."""
    return StorageUnavailable(f"the volume: {action} failed: {exc.strerror or type(exc).__name__}")
