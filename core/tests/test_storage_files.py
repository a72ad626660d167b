"""FileService (stackyard.storage.files): uploads, direct uploads, listing, deletes, variants,
the scan's verdicts and the retention sweep, against FerretDB, Redis and both backends (MinIO
and a volume directory): the same suite runs on each."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from PIL import Image
from stackyard.clients import redis_client
from stackyard.config import AppliedConfig, RuntimeConfig
from stackyard.config.runtime import credential_key
from stackyard.resources.bucket import BucketSpec
from stackyard.storage import files as files_module
from stackyard.storage.backend import PART_SIZE, ObjectMissing, Storage
from stackyard.storage.contract import FileView
from stackyard.storage.factory import storage_for
from stackyard.storage.files import (
    SCAN_FUNCTION,
    Buckets,
    FileService,
    new_file_id,
    object_key,
    quarantine_key,
    sanitize_name,
    variants_prefix,
)
from stackyard.storage.images import Transform
from stackyard.storage.problems import (
    BucketNotFound,
    ContentTypeRefused,
    CursorInvalid,
    FileNotAvailable,
    FileNotFound,
    FileTooLarge,
    MetadataInvalid,
    QuotaExceeded,
    StorageUnavailable,
    UploadIncomplete,
)
from stackyard.storage.quota import usage_key
from stackyard.storage.sniff import SNIFF_BYTES

KiB = 1024
MiB = 1024 * KiB


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def text(size: int) -> bytes:
    line = b"the quick brown fox jumps over the lazy dog\n"
    return (line * (size // len(line) + 1))[:size]


async def chunked(data: bytes, size: int = 64 * KiB, fed: list[int] | None = None) -> AsyncIterator[bytes]:
    """`data` in chunks; `fed` counts the bytes handed out (how far the service read)."""
    for start in range(0, len(data), size):
        if fed is not None:
            fed.append(min(size, len(data) - start))
        yield data[start : start + size]


@dataclass
class Setup:
    backend: str
    db: Any
    redis: Any
    s3_server: Any
    root: Path
    jobs: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    storages: list[Storage] = field(default_factory=list)

    def spec(self, **fields: Any) -> BucketSpec:
        if self.backend == "s3":
            backend: dict[str, Any] = {
                "s3": {
                    "endpoint": self.s3_server.endpoint,
                    "region": self.s3_server.region,
                    "bucket": self.s3_server.create_bucket("files"),
                    "pathStyle": True,
                    "prefix": "stack/files",
                    "accessKeyIdSecretRef": {"name": "s3", "key": "id"},
                    "secretAccessKeySecretRef": {"name": "s3", "key": "secret"},
                }
            }
        else:
            backend = {"volume": {"claimName": "files", "subPath": "area"}}
        return BucketSpec.model_validate({"stackRef": {"name": "s"}, "backend": backend} | fields)

    def credentials(self, name: str) -> dict[str, str]:
        if self.s3_server is None:
            return {}
        return {
            credential_key("Bucket", name, "accessKeyId"): self.s3_server.access_key,
            credential_key("Bucket", name, "secretAccessKey"): self.s3_server.secret_key,
        }

    async def enqueue(self, function: str, args: dict[str, Any], queue: str) -> None:
        self.jobs.append((function, args, queue))

    def service(self, **fields: Any) -> FileService:
        name = "b" + uuid.uuid4().hex[:10]
        (self.root / name).mkdir()  # the volume, as mounted
        spec = self.spec(**fields)
        storage = storage_for(name, spec, self.credentials(name), self.root)
        self.storages.append(storage)
        return FileService(name, spec, storage, self.db, self.redis, self.enqueue)


@pytest.fixture(params=["s3", "volume"])
async def setup(request: pytest.FixtureRequest, db: Any, redis_server: Any, tmp_path: Path) -> AsyncIterator[Setup]:
    s3 = request.getfixturevalue("s3_server") if request.param == "s3" else None
    redis = redis_client(redis_server.url)
    made = Setup(request.param, db, redis, s3, tmp_path)
    yield made
    for storage in made.storages:
        await storage.close()
    await redis.aclose()


async def exists(service: FileService, key: str) -> bool:
    try:
        await service.storage.head(key)
    except ObjectMissing:
        return False
    return True


async def usage(service: FileService, owner: str) -> int:
    return int(await service.redis.get(usage_key(service.name, owner)) or 0)


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def stored_keys(setup: Setup, service: FileService) -> set[str]:
    """Every object of the Bucket, and on S3 every unfinished multipart upload too."""
    storage: Any = service.storage
    if setup.backend == "volume":
        area = setup.root / service.name / "area"
        return {p.relative_to(area).as_posix() for p in area.rglob("*") if p.is_file()} if area.exists() else set()
    client = await storage.client()
    listed = await client.list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix)
    uploads = await client.list_multipart_uploads(Bucket=storage.bucket)
    keys = {o["Key"].removeprefix(storage.prefix) for o in listed.get("Contents", [])}
    return keys | {"multipart:" + u["Key"] for u in uploads.get("Uploads", [])}


async def nothing_left(setup: Setup, service: FileService, owner: str, used: int) -> None:
    """Only the available files' documents and objects are there, and the owner's usage
    is as it was."""
    documents = [d async for d in service.files.find({"bucket": service.name})]
    assert [d["state"] for d in documents if d["state"] != "available"] == []
    assert await stored_keys(setup, service) == {object_key(d["_id"]) for d in documents}
    assert await usage(service, owner) == used


# -- uploads ---------------------------------------------------------------------------------


async def test_an_upload_is_stored_with_its_detected_type_hash_and_size(setup: Setup) -> None:
    service = setup.service()
    data = png()
    record = await service.upload("u1", "../photos/cat.PNG", "text/plain", chunked(data, 100), {"album": "cats"})
    assert record.state == "available"
    assert record.content_type == "image/png"  # the bytes decide, not the declared type
    assert record.size == len(data)
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.name == "cat.PNG"
    assert record.metadata == {"album": "cats"}
    assert record.id.startswith("f_") and len(record.id) == 28
    assert await read_all(service.content(record)) == data
    assert await read_all(service.content(record, 10, 19)) == data[10:20]
    again = await service.get(record.id)
    assert again == record
    view = again.view()
    assert isinstance(view, FileView) and view.content_type == "image/png" and view.variants == 0
    assert view.created_at.tzinfo is not None
    with pytest.raises(FileNotFound):
        await service.get(record.id, owner="someone-else")


async def test_a_multipart_upload_reserves_quota_part_by_part(setup: Setup) -> None:
    service = setup.service(limits={"maxObjectSize": "64Mi", "quotaPerOwner": "40Mi"})
    data = os.urandom(2 * PART_SIZE + 12345)
    record = await service.upload("u1", "blob.bin", None, chunked(data, MiB + 7))
    assert record.size == len(data) and record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.content_type == "application/octet-stream"
    assert await usage(service, "u1") == len(data)
    digest = hashlib.sha256()
    async for chunk in service.content(record):
        digest.update(chunk)
    assert digest.hexdigest() == record.sha256


async def test_a_file_over_the_limit_is_refused_as_soon_as_it_passes_it(setup: Setup) -> None:
    service = setup.service(limits={"maxObjectSize": "1Mi", "quotaPerOwner": "100Mi"})
    await service.upload("u1", "keep.txt", None, chunked(text(1000)))
    fed: list[int] = []
    with pytest.raises(FileTooLarge) as refused:
        await service.upload("u1", "big.bin", None, chunked(os.urandom(5 * MiB), 64 * KiB, fed))
    assert refused.value.extensions["limit"] == MiB
    assert sum(fed) == MiB + 64 * KiB  # stopped at the first chunk past the limit
    await nothing_left(setup, service, "u1", 1000)


async def test_a_type_not_allowed_is_refused_from_the_first_bytes(setup: Setup) -> None:
    service = setup.service(limits={"allowedContentTypes": ["image/*"]})
    fed: list[int] = []
    with pytest.raises(ContentTypeRefused) as refused:
        await service.upload("u1", "notes.png", "image/png", chunked(text(MiB), 4 * KiB, fed))
    assert refused.value.extensions["contentType"] == "text/plain"
    assert sum(fed) == SNIFF_BYTES  # nothing read (or written) past the sniffed head
    await nothing_left(setup, service, "u1", 0)
    small = await service.upload("u1", "tiny.png", None, chunked(png(4, 4)))
    assert small.content_type == "image/png"


async def test_an_upload_over_the_quota_leaves_nothing_and_the_usage_unchanged(setup: Setup) -> None:
    service = setup.service(limits={"quotaPerOwner": "100Ki"})
    first = await service.upload("u1", "a.bin", None, chunked(os.urandom(60 * KiB)))
    with pytest.raises(QuotaExceeded):
        await service.upload("u1", "b.bin", None, chunked(os.urandom(60 * KiB)))
    await nothing_left(setup, service, "u1", 60 * KiB)
    other = await service.upload("u2", "b.bin", None, chunked(os.urandom(60 * KiB)))  # per owner
    assert other.state == "available"
    await service.delete(first.id)
    assert await usage(service, "u1") == 0
    await service.upload("u1", "b.bin", None, chunked(os.urandom(90 * KiB)))


async def test_a_stream_that_breaks_midway_leaves_nothing_behind(setup: Setup) -> None:
    service = setup.service(limits={"maxObjectSize": "64Mi", "quotaPerOwner": "1Gi"})
    kept = await service.upload("u1", "kept.bin", None, chunked(os.urandom(5000)))

    async def disconnecting() -> AsyncIterator[bytes]:
        for _ in range(PART_SIZE // MiB + 3):  # past the first part: a multipart upload is open
            yield os.urandom(MiB)
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await service.upload("u1", "broken.bin", None, disconnecting())
    await nothing_left(setup, service, "u1", 5000)
    assert [r.id for r in (await service.list("u1"))[0]] == [kept.id]
    assert await stored_keys(setup, service) == {object_key(kept.id)}


async def test_a_cancelled_upload_leaves_nothing_behind(setup: Setup) -> None:
    """The api's request task is cancelled when the client disconnects."""
    service = setup.service(limits={"maxObjectSize": "64Mi", "quotaPerOwner": "1Gi"})
    started = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        for _ in range(PART_SIZE // MiB + 2):
            yield os.urandom(MiB)
        started.set()
        await asyncio.Event().wait()  # the client stops sending
        yield b""

    task = asyncio.create_task(service.upload("u1", "stalled.bin", None, stalled()))
    await asyncio.wait_for(started.wait(), 30)
    assert await service.files.count_documents({"bucket": service.name, "state": "pending"}) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await nothing_left(setup, service, "u1", 0)


async def test_bad_metadata_is_refused_before_anything_is_stored(setup: Setup) -> None:
    service = setup.service()
    with pytest.raises(MetadataInvalid):
        await service.upload("u1", "a.txt", None, chunked(b"hi"), {f"k{i}": "v" for i in range(17)})
    with pytest.raises(MetadataInvalid):
        await service.upload("u1", "a.txt", None, chunked(b"hi"), {"bad key": "v"})
    await nothing_left(setup, service, "u1", 0)


# -- quota -----------------------------------------------------------------------------------


async def test_the_usage_is_rebuilt_from_the_documents_when_redis_lost_it(setup: Setup) -> None:
    service = setup.service(limits={"quotaPerOwner": "100Ki"})
    await service.upload("u1", "a.bin", None, chunked(os.urandom(30 * KiB)))
    await service.upload("u1", "b.bin", None, chunked(os.urandom(20 * KiB)))
    await service.redis.delete(usage_key(service.name, "u1"))
    with pytest.raises(QuotaExceeded):
        await service.upload("u1", "c.bin", None, chunked(os.urandom(60 * KiB)))
    assert await usage(service, "u1") == 50 * KiB
    assert await service.quota.usage("u1") == 50 * KiB


# -- listing, delete -------------------------------------------------------------------------


async def test_files_list_newest_first_page_by_page(setup: Setup) -> None:
    service = setup.service()
    made = [(await service.upload("u1", f"{i}.txt", None, chunked(text(10 + i)))).id for i in range(5)]
    await service.upload("u2", "other.txt", None, chunked(b"other"))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        records, cursor = await service.list("u1", limit=2, cursor=cursor)
        seen += [r.id for r in records]
        pages += 1
        if cursor is None:
            break
    assert seen == made[::-1] and pages == 3
    with pytest.raises(CursorInvalid):
        await service.list("u1", cursor="not-a-cursor!")


async def test_a_delete_removes_the_object_its_variants_the_document_and_the_usage(setup: Setup) -> None:
    service = setup.service(limits={"quotaPerOwner": "10Mi"})
    record = await service.upload("u1", "cat.png", None, chunked(png()))
    variant = await service.variant(record, Transform(width=16, height=16, format="webp"))
    assert await exists(service, variant.key)
    await service.delete(record.id, owner="u1")
    assert not await exists(service, record.key)
    assert not await exists(service, variant.key)
    assert await usage(service, "u1") == 0
    with pytest.raises(FileNotFound):
        await service.get(record.id)
    with pytest.raises(FileNotFound):
        await service.delete(record.id)


# -- scanning --------------------------------------------------------------------------------


async def test_a_scanned_bucket_serves_a_file_only_once_found_clean(setup: Setup) -> None:
    service = setup.service(scan={"enabled": True, "queue": "scans"})
    record = await service.upload("u1", "doc.txt", None, chunked(text(500)))
    assert record.state == "scanning"
    assert setup.jobs == [(SCAN_FUNCTION, {"bucket": service.name, "fileId": record.id}, "scans")]
    with pytest.raises(FileNotAvailable) as refused:
        service.content(record)
    assert refused.value.extensions == {"state": "scanning"}
    clean = await service.mark_scanned(record.id, "clean")
    assert clean.state == "available" and clean.scan is not None and clean.scan["result"] == "clean"
    verdict = clean.view().scan
    assert verdict is not None and (verdict.result, verdict.signature) == ("clean", None)
    assert await read_all(service.content(clean)) == text(500)


async def test_an_infected_file_is_quarantined_and_never_served(setup: Setup) -> None:
    service = setup.service(scan={"enabled": True})
    record = await service.upload("u1", "eicar.txt", None, chunked(text(300)))
    quarantined = await service.mark_scanned(record.id, "infected", "Eicar-Test-Signature")
    assert quarantined.state == "quarantined"
    assert quarantined.scan is not None and quarantined.scan["signature"] == "Eicar-Test-Signature"
    assert not await exists(service, object_key(record.id))
    assert await exists(service, quarantine_key(record.id))
    with pytest.raises(FileNotAvailable) as refused:
        service.content(quarantined)
    assert refused.value.extensions == {"state": "quarantined"}
    assert (await service.mark_scanned(record.id, "clean")).state == "quarantined"  # a late verdict changes nothing
    await service.delete(record.id)
    assert not await exists(service, quarantine_key(record.id))


async def test_a_file_too_large_to_scan_is_quarantined_with_the_reason(setup: Setup) -> None:
    service = setup.service(scan={"enabled": True})
    record = await service.upload("u1", "huge.bin", None, chunked(os.urandom(3000)))
    quarantined = await service.mark_scanned(record.id, "unscannable", reason="larger than clamd's StreamMaxLength")
    assert quarantined.state == "quarantined" and quarantined.scan is not None
    assert quarantined.scan == {"result": "unscannable", "reason": "larger than clamd's StreamMaxLength", "at": ANY}
    assert not await exists(service, object_key(record.id))
    assert await exists(service, quarantine_key(record.id))
    with pytest.raises(FileNotAvailable, match="too large to scan") as refused:
        service.content(quarantined)
    assert refused.value.extensions == {"state": "quarantined"}
    view = quarantined.view()
    assert view.state == "quarantined" and view.scan is not None
    assert (view.scan.result, view.scan.reason, view.scan.signature) == (
        "unscannable",
        "larger than clamd's StreamMaxLength",
        None,
    )
    assert view.scan.at is not None and view.scan.at.tzinfo is not None
    assert view.model_dump(by_alias=True, mode="json")["scan"]["result"] == "unscannable"


# -- direct uploads --------------------------------------------------------------------------


async def send_direct(service: FileService, file_id: str, direct: Any, data: bytes) -> None:
    if direct is None:  # the volume: the api's signed PUT hands the body to the service
        await service.receive_direct_upload(file_id, chunked(data, 1000))
        return
    async with httpx.AsyncClient() as client:
        response = await client.post(direct.url, data=direct.fields, files={"file": ("x", data)})
    assert response.is_success, response.text


async def test_a_direct_upload_is_checked_at_completion(setup: Setup) -> None:
    service = setup.service(limits={"quotaPerOwner": "1Mi", "allowedContentTypes": ["image/*"]})
    data = png()
    record, direct = await service.start_direct_upload("u1", "cat.png", "image/png", len(data), {"a": "b"})
    assert (direct is None) == (setup.backend == "volume")
    assert record.state == "pending" and record.expected_size == len(data)
    assert await usage(service, "u1") == len(data)  # reserved at the start
    with pytest.raises(FileNotAvailable):
        service.content(record)
    await send_direct(service, record.id, direct, data)
    done = await service.complete_direct_upload(record.id)
    assert done.state == "available" and done.size == len(data) and done.content_type == "image/png"
    assert done.expected_size is None
    assert await read_all(service.content(done)) == data
    assert (await service.complete_direct_upload(record.id)) == done  # a repeated completion
    assert await usage(service, "u1") == len(data)


async def test_a_direct_upload_of_another_size_or_type_is_removed(setup: Setup) -> None:
    service = setup.service(limits={"quotaPerOwner": "1Mi", "allowedContentTypes": ["image/*"]})
    record, direct = await service.start_direct_upload("u1", "cat.png", "image/png", 5000, None)
    await send_direct(service, record.id, direct, png()[:4000])
    with pytest.raises(UploadIncomplete):
        await service.complete_direct_upload(record.id)
    assert not await exists(service, record.key)
    await nothing_left(setup, service, "u1", 0)

    data = text(3000)
    record, direct = await service.start_direct_upload("u1", "fake.png", "image/png", len(data), None)
    await send_direct(service, record.id, direct, data)
    with pytest.raises(ContentTypeRefused):
        await service.complete_direct_upload(record.id)
    assert not await exists(service, record.key)
    await nothing_left(setup, service, "u1", 0)

    record, _ = await service.start_direct_upload("u1", "never.png", "image/png", 10, None)
    with pytest.raises(UploadIncomplete):
        await service.complete_direct_upload(record.id)
    await nothing_left(setup, service, "u1", 0)


async def test_a_direct_upload_is_bounded_by_the_limit_and_the_quota(setup: Setup) -> None:
    service = setup.service(limits={"maxObjectSize": "1Mi", "quotaPerOwner": "2Mi"})
    with pytest.raises(FileTooLarge):
        await service.start_direct_upload("u1", "big", None, MiB + 1, None)
    first, _ = await service.start_direct_upload("u1", "a", None, MiB, None)
    second, _ = await service.start_direct_upload("u1", "b", None, MiB, None)
    with pytest.raises(QuotaExceeded):
        await service.start_direct_upload("u1", "c", None, 1, None)
    assert await usage(service, "u1") == 2 * MiB
    if setup.backend == "volume":
        with pytest.raises(FileTooLarge):
            await service.receive_direct_upload(first.id, chunked(os.urandom(MiB + 1)))
        assert not await exists(service, first.key)
    await service.delete(second.id)
    assert await usage(service, "u1") == MiB


# -- variants --------------------------------------------------------------------------------


async def test_a_variant_is_rendered_once_and_recorded(setup: Setup) -> None:
    service = setup.service()
    record = await service.upload("u1", "cat.png", None, chunked(png(64, 48)))
    transform = Transform(width=32, height=32, fit="cover", format="webp")
    variant = await service.variant(record, transform)
    assert (variant.width, variant.height, variant.content_type) == (32, 32, "image/webp")
    assert variant.key == f"{variants_prefix(record.id)}{transform.digest}.webp"
    data = await read_all(service.variant_content(record, variant))
    assert len(data) == variant.size and Image.open(io.BytesIO(data)).size == (32, 32)
    assert variant.data == data  # the rendered bytes come back with it: served without a read back
    stored = await service.get(record.id)
    assert stored.variants == {transform.digest: variant} and stored.view().variants == 1
    again = await service.variant(stored, transform)  # from the record, not rendered again
    assert again == variant and again.data is None and again.created_at == variant.created_at
    # A record read before the variant was made renders it again: the same key, the same bytes.
    remade = await service.variant(record, transform)
    assert remade.key == variant.key and remade.data == data
    assert (await service.get(record.id)).variants == {transform.digest: remade}


@pytest.mark.parametrize("setup", ["volume"], indirect=True)
async def test_a_variant_that_cannot_be_stored_fails_unrecorded_and_is_rendered_next_time(setup: Setup) -> None:
    """The storage put and the record are made at once; when the put fails the record is
    taken back (it never names a missing object) and the error goes on."""
    service = setup.service()
    record = await service.upload("u1", "cat.png", None, chunked(png(64, 48)))
    transform = Transform(width=16, format="png")
    # A file where the variants' directory goes: the volume cannot write the variant.
    blocker = setup.root / service.name / "area" / variants_prefix(record.id).rstrip("/")
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"in the way")
    with pytest.raises(StorageUnavailable, match="writing a file failed"):
        await service.variant(record, transform)
    assert (await service.get(record.id)).variants == {}
    blocker.unlink()
    variant = await service.variant(await service.get(record.id), transform)
    assert variant.data is not None and Image.open(io.BytesIO(variant.data)).size == (16, 12)
    assert await read_all(service.variant_content(record, variant)) == variant.data
    assert (await service.get(record.id)).variants == {transform.digest: variant}


async def test_no_variant_of_a_file_not_available(setup: Setup) -> None:
    service = setup.service(scan={"enabled": True})
    record = await service.upload("u1", "cat.png", None, chunked(png()))
    with pytest.raises(FileNotAvailable):
        await service.variant(record, Transform(width=8))


# -- sweep -----------------------------------------------------------------------------------


async def test_the_sweep_deletes_expired_files_and_crash_leftovers(setup: Setup) -> None:
    service = setup.service(retention={"days": 1}, limits={"quotaPerOwner": "10Mi"})
    now = datetime.now(UTC)
    old = await service.upload("u1", "old.txt", None, chunked(text(700)))
    assert old.expires_at is not None and timedelta(hours=23) < old.expires_at - now <= timedelta(days=1, minutes=1)
    fresh = await service.upload("u1", "fresh.txt", None, chunked(text(300)))
    later_upload = {"createdAt": now + timedelta(days=1), "expiresAt": now + timedelta(days=2)}
    await service.files.update_one({"_id": fresh.id}, {"$set": later_upload})
    abandoned, _ = await service.start_direct_upload("u2", "gone.bin", None, 100, None)
    await service.files.update_one({"_id": abandoned.id}, {"$set": {"updatedAt": now - timedelta(hours=1)}})
    stuck = await service.upload("u1", "stuck.txt", None, chunked(text(200)))
    await service.files.update_one({"_id": stuck.id}, {"$set": {"state": "deleting"}})

    early = await service.sweep(now + timedelta(hours=2))
    assert (early.expired, early.abandoned, early.deleting) == (0, 0, 1) and early.bytes == 200
    assert not await exists(service, stuck.key)

    later = await service.sweep(now + timedelta(days=1, hours=2))
    assert (later.expired, later.abandoned, later.deleting, later.bytes) == (1, 1, 0, 700)
    assert later.deleted == 2
    assert [r.id for r in (await service.list("u1"))[0]] == [fresh.id]
    assert not await exists(service, old.key)
    assert await usage(service, "u1") == 300 and await usage(service, "u2") == 0


async def test_the_sweep_without_retention_keeps_files(setup: Setup) -> None:
    service = setup.service()
    record = await service.upload("u1", "a.txt", None, chunked(b"kept"))
    assert record.expires_at is None
    result = await service.sweep(datetime.now(UTC) + timedelta(days=3650))
    assert result.deleted == 0 and (await service.get(record.id)).state == "available"


# -- the Buckets of a Runtime ----------------------------------------------------------------


class FakeRuntime:
    """What Buckets reads of a Runtime: the config in force and the clients."""

    def __init__(self, config: AppliedConfig, database: Any, redis: Any) -> None:
        self.config = config
        self.database = database
        self.mongo = database.client
        self.redis = redis


def applied(buckets: dict[str, Any], credentials: dict[str, str] | None = None) -> AppliedConfig:
    config = RuntimeConfig.model_validate(
        {
            "stack": "s",
            "namespace": "n",
            "generation": 1,
            "spec": {
                "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}},
            },
            "buckets": buckets,
        }
    )
    return AppliedConfig(config=config, credentials=credentials or {}, hash=uuid.uuid4().hex, applied_at=0.0)


async def test_buckets_hold_a_service_per_bucket_and_remake_it_when_the_spec_changes(
    db: Any, redis_server: Any, tmp_path: Path
) -> None:
    volume = {"stackRef": {"name": "s"}, "backend": {"volume": {"claimName": "files"}}}
    redis = redis_client(redis_server.url)
    runtime = FakeRuntime(applied({"media": volume}), db, redis)
    (tmp_path / "media").mkdir()
    buckets = Buckets(runtime, root=tmp_path)  # type: ignore[arg-type]
    try:
        assert buckets.default_bucket() == "media"
        service = buckets.service()
        assert service.name == "media" and buckets.service("media") is service
        record = await service.upload("u1", "a.txt", None, chunked(b"hello"))
        assert (tmp_path / "media" / object_key(record.id)).read_bytes() == b"hello"
        with pytest.raises(BucketNotFound):
            buckets.service("nope")
        runtime.config = applied({"media": volume | {"limits": {"maxObjectSize": "1Ki"}}, "default": volume})
        assert buckets.default_bucket() == "default"
        remade = buckets.service("media")
        assert remade is not service and remade.spec.max_object_bytes == 1024
        assert (await remade.get(record.id)).size == 5
        runtime.config = applied({"x": volume, "y": volume})
        with pytest.raises(BucketNotFound, match="several"):
            buckets.default_bucket()
    finally:
        await buckets.close()
        await redis.aclose()


# -- pure pieces -----------------------------------------------------------------------------


def test_file_ids_sort_by_creation_and_names_are_sanitized() -> None:
    ids = [new_file_id() for _ in range(50)]
    assert all(i.startswith("f_") and len(i) == 28 for i in ids) and len(set(ids)) == 50
    assert sanitize_name("../../etc/passwd") == "passwd"
    assert sanitize_name("C:\\Users\\ana\\photo.jpg") == "photo.jpg"
    assert sanitize_name('bad"\x00name\n.txt') == "badname.txt"
    assert sanitize_name("") == sanitize_name(None) == sanitize_name("..") == "file"
    long = sanitize_name("a" * 400 + ".jpeg")
    assert len(long) == 255 and long.endswith(".jpeg")


def test_the_module_names_what_the_worker_runs() -> None:
    assert files_module.SCAN_FUNCTION == "stackyard.storage.scan"
    assert files_module.COLLECTION == "files"


async def test_the_default_enqueue_puts_the_scan_job_on_the_buckets_queue(
    db: Any, redis_server: Any, tmp_path: Path
) -> None:
    from stackyard.jobs.settings import QueueSettings
    from stackyard.jobs.store import JobClient

    queue = "scan-" + uuid.uuid4().hex[:8]
    volume = {"stackRef": {"name": "s"}, "backend": {"volume": {"claimName": "files"}}}
    redis = redis_client(redis_server.url)
    runtime = FakeRuntime(applied({"media": volume | {"scan": {"enabled": True, "queue": queue}}}), db, redis)
    (tmp_path / "media").mkdir()
    buckets = Buckets(runtime, root=tmp_path)  # type: ignore[arg-type]
    try:
        record = await buckets.service().upload("u1", "a.txt", None, chunked(b"scan me"))
        assert record.state == "scanning"
        taken = await JobClient(redis).take(QueueSettings(name=queue), 10, "test-worker")
        assert [(j.function, j.payload) for j in taken.jobs] == [
            (SCAN_FUNCTION, {"bucket": "media", "fileId": record.id})
        ]
    finally:
        await buckets.close()
        await redis.aclose()
