"""One behaviour suite for both storage backends (stackyard.storage.backend.Storage):
S3Storage on the harness's MinIO and VolumeStorage on a temporary directory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from stackyard.resources.bucket import S3Backend
from stackyard.storage.backend import PART_SIZE, ObjectMissing, Storage
from stackyard.storage.s3 import PARTS_IN_FLIGHT, S3Storage
from stackyard.storage.volume import VolumeStorage

MiB = 1024 * 1024


def s3_storage(s3_server: Any, **spec: Any) -> S3Storage:
    backend = S3Backend(
        endpoint=s3_server.endpoint,
        region=s3_server.region,
        bucket=spec.pop("bucket", None) or s3_server.create_bucket("storage"),
        path_style=True,
        **spec,
    )
    return S3Storage(backend, s3_server.access_key, s3_server.secret_key)


@pytest.fixture(params=["s3", "volume"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    backend: Storage
    if request.param == "s3":
        backend = s3_storage(request.getfixturevalue("s3_server"), prefix="team/files-area")
    else:
        backend = VolumeStorage(tmp_path / "bucket", mount=tmp_path)
    yield backend
    await backend.close()


async def read_all(storage: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, start, end)])


async def write_chunks(storage: Storage, key: str, data: bytes, chunk: int, content_type: str = "image/png") -> None:
    writer = await storage.open_writer(key, content_type)
    for start in range(0, len(data), chunk):
        await writer.write(data[start : start + chunk])
    await writer.complete()


async def test_small_object_round_trips(storage: Storage) -> None:
    data = os.urandom(1000)
    await write_chunks(storage, "files/f_small", data, 300)
    assert await read_all(storage, "files/f_small") == data
    assert (await storage.head("files/f_small")).size == 1000


async def test_put_round_trips_and_overwrites(storage: Storage) -> None:
    await storage.put("variants/f_1/abc.webp", b"first", "image/webp")
    await storage.put("variants/f_1/abc.webp", b"second one", "image/webp")
    assert await read_all(storage, "variants/f_1/abc.webp") == b"second one"
    assert (await storage.head("variants/f_1/abc.webp")).size == 10


async def test_multipart_object_round_trips_with_equal_sha256(storage: Storage) -> None:
    data = os.urandom(20 * MiB + 12345)
    await write_chunks(storage, "files/f_big", data, 1024 * 1024 + 7)
    digest = hashlib.sha256()
    size = 0
    async for chunk in storage.read("files/f_big"):
        digest.update(chunk)
        size += len(chunk)
    assert size == len(data)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert (await storage.head("files/f_big")).size == len(data)


async def test_object_of_exactly_one_part_round_trips(storage: Storage) -> None:
    data = os.urandom(PART_SIZE)
    await write_chunks(storage, "files/f_part", data, PART_SIZE)
    assert await read_all(storage, "files/f_part") == data


async def test_empty_object_round_trips(storage: Storage) -> None:
    writer = await storage.open_writer("files/f_empty", "text/plain")
    await writer.complete()
    assert (await storage.head("files/f_empty")).size == 0
    assert await read_all(storage, "files/f_empty") == b""
    assert await storage.read_head("files/f_empty", 100) == b""


async def test_range_reads_return_the_inclusive_span(storage: Storage) -> None:
    data = os.urandom(600 * 1024)
    await storage.put("files/f_range", data, "application/octet-stream")
    assert await read_all(storage, "files/f_range", 10, 19) == data[10:20]
    assert await read_all(storage, "files/f_range", 300 * 1024) == data[300 * 1024 :]
    assert await read_all(storage, "files/f_range", 0, 0) == data[:1]
    assert await read_all(storage, "files/f_range", len(data) - 5, len(data) + 100) == data[-5:]
    assert await read_all(storage, "files/f_range", len(data) + 10) == b""


async def test_reads_are_chunked(storage: Storage) -> None:
    await storage.put("files/f_chunks", os.urandom(3 * MiB), "application/octet-stream")
    sizes = [len(chunk) async for chunk in storage.read("files/f_chunks")]
    assert sum(sizes) == 3 * MiB
    assert len(sizes) > 1 and max(sizes) <= MiB


async def test_read_head_returns_the_first_bytes(storage: Storage) -> None:
    data = os.urandom(5000)
    await storage.put("files/f_head", data, "application/octet-stream")
    assert await storage.read_head("files/f_head", 16) == data[:16]
    assert await storage.read_head("files/f_head", 100_000) == data


async def test_missing_object_raises_object_missing(storage: Storage) -> None:
    with pytest.raises(ObjectMissing):
        await storage.head("files/f_none")
    with pytest.raises(ObjectMissing):
        await read_all(storage, "files/f_none")
    with pytest.raises(ObjectMissing):
        await storage.read_head("files/f_none", 10)
    with pytest.raises(ObjectMissing):
        await storage.move("files/f_none", "quarantine/f_none")
    await storage.delete("files/f_none")  # already gone: no error


async def test_object_appears_only_on_complete(storage: Storage) -> None:
    writer = await storage.open_writer("files/f_late", "application/pdf")
    await writer.write(os.urandom(PART_SIZE + MiB))  # one part sent on S3
    with pytest.raises(ObjectMissing):
        await storage.head("files/f_late")
    await writer.write(b"end")
    await writer.complete()
    assert (await storage.head("files/f_late")).size == PART_SIZE + MiB + 3


async def test_abort_leaves_no_object(storage: Storage) -> None:
    writer = await storage.open_writer("files/f_aborted", "application/pdf")
    await writer.write(os.urandom(20 * MiB))
    await writer.abort()
    await writer.abort()  # twice: nothing more to do
    with pytest.raises(ObjectMissing):
        await storage.head("files/f_aborted")
    assert await storage.delete_prefix("files/") == 0


async def test_abort_keeps_the_previous_object(storage: Storage) -> None:
    await storage.put("files/f_kept", b"old", "text/plain")
    writer = await storage.open_writer("files/f_kept", "text/plain")
    await writer.write(b"new bytes")
    await writer.abort()
    assert await read_all(storage, "files/f_kept") == b"old"


async def test_delete_removes_the_object(storage: Storage) -> None:
    await storage.put("files/f_del", b"x", "text/plain")
    await storage.delete("files/f_del")
    with pytest.raises(ObjectMissing):
        await storage.head("files/f_del")


async def test_delete_prefix_deletes_only_keys_under_it(storage: Storage) -> None:
    for key in ["variants/f_1/a.webp", "variants/f_1/b.png", "variants/f_10/c.webp", "files/f_1"]:
        await storage.put(key, b"data", "image/webp")
    assert await storage.delete_prefix("variants/f_1/") == 2
    assert await storage.delete_prefix("variants/f_1/") == 0
    assert (await storage.head("variants/f_10/c.webp")).size == 4
    assert (await storage.head("files/f_1")).size == 4
    with pytest.raises(ObjectMissing):
        await storage.head("variants/f_1/a.webp")


async def test_delete_prefix_deletes_more_than_one_batch(storage: Storage) -> None:
    for number in range(1005):
        await storage.put(f"variants/f_many/{number}.png", b"v", "image/png")
    assert await storage.delete_prefix("variants/f_many/") == 1005
    assert await storage.delete_prefix("variants/") == 0


async def test_move_copies_then_deletes_the_source(storage: Storage) -> None:
    data = os.urandom(PART_SIZE + 10)
    await write_chunks(storage, "files/f_bad", data, MiB)
    await storage.move("files/f_bad", "quarantine/f_bad")
    assert await read_all(storage, "quarantine/f_bad") == data
    with pytest.raises(ObjectMissing):
        await storage.head("files/f_bad")


async def test_check_passes_and_leaves_nothing(storage: Storage) -> None:
    await storage.check()
    assert await storage.delete_prefix("") == 0


WRITE_64_MIB = """
import asyncio, json, os, sys, tracemalloc
from pathlib import Path
from stackyard.resources.bucket import S3Backend
from stackyard.storage.s3 import S3Storage
from stackyard.storage.volume import VolumeStorage

async def main(where):
    if where["kind"] == "s3":
        storage = S3Storage(S3Backend.model_validate(where["backend"]), where["key"], where["secret"])
    else:
        storage = VolumeStorage(Path(where["root"]), mount=Path(where["mount"]))
    chunk = os.urandom(1024 * 1024)
    await storage.check()  # the client and its connections exist before measuring
    tracemalloc.start()
    writer = await storage.open_writer("files/f_memory", "application/octet-stream")
    for _ in range(64):
        await writer.write(chunk)
    await writer.complete()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    size = (await storage.head("files/f_memory")).size
    await storage.close()
    print(json.dumps({"peak": peak, "size": size}))

asyncio.run(main(json.loads(sys.argv[1])))
"""


def test_writing_64_mib_keeps_memory_to_the_parts_in_flight(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The parts being sent (S3: PARTS_IN_FLIGHT), the one being received, and the copy made
    when a part is cut from the received chunks: a bound that does not grow with the size.
    Measured in a process of its own: tracemalloc counts every thread's allocations, and a
    long test session has threads of its own (the OpenTelemetry SDK's readers) at work."""
    for kind in ("s3", "volume"):
        if kind == "s3":
            s3_server = request.getfixturevalue("s3_server")
            backend = {
                "endpoint": s3_server.endpoint,
                "region": s3_server.region,
                "bucket": s3_server.create_bucket("storage"),
                "pathStyle": True,
                "prefix": "team/files-area",
            }
            where = {"kind": kind, "backend": backend, "key": s3_server.access_key, "secret": s3_server.secret_key}
        else:
            where = {"kind": kind, "root": str(tmp_path / "bucket"), "mount": str(tmp_path)}
        ran = subprocess.run(
            [sys.executable, "-c", WRITE_64_MIB, json.dumps(where)], capture_output=True, text=True, timeout=300
        )
        assert ran.returncode == 0, ran.stderr[-2000:]
        measured = json.loads(ran.stdout.strip().splitlines()[-1])
        assert measured["size"] == 64 * MiB
        peak = measured["peak"]
        assert peak < (PARTS_IN_FLIGHT + 2.5) * PART_SIZE, f"{kind}: peak {peak / MiB:.1f} MiB"


async def test_reading_64_mib_keeps_memory_bounded(storage: Storage) -> None:
    chunk = os.urandom(MiB)
    writer = await storage.open_writer("files/f_read_memory", "application/octet-stream")
    for _ in range(64):
        await writer.write(chunk)
    await writer.complete()
    tracemalloc.start()
    try:
        size = 0
        async for part in storage.read("files/f_read_memory"):
            size += len(part)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 64 * MiB
    assert peak < PART_SIZE, f"peak {peak / MiB:.1f} MiB"
