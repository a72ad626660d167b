"""S3Storage against the harness's MinIO: what only the S3 backend does (multipart uploads
and their abort, presigned POST and GET, the prefix, the check's reasons)."""

from __future__ import annotations

import asyncio
import calendar
import os
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from stackyard.resources.bucket import S3Backend
from stackyard.storage import s3 as s3_module
from stackyard.storage.backend import PART_SIZE, ObjectMissing
from stackyard.storage.problems import StorageUnavailable
from stackyard.storage.s3 import S3Storage
from stackyard_harness.process import free_port

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


async def read_all(storage: S3Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key)])


def signed_until(url: str) -> float:
    """The Unix time a presigned URL stops working: its X-Amz-Date plus X-Amz-Expires."""
    query = parse_qs(urlsplit(url).query)
    signed = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
    return signed + int(query["X-Amz-Expires"][0])


def uploads(s3_server: Any, bucket: str) -> list[dict[str, Any]]:
    return list(s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def keys(s3_server: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


async def test_objects_are_stored_under_the_prefix(s3_server: Any) -> None:
    storage = s3_storage(s3_server, prefix="team/area")
    await storage.put("files/f_1", b"x", "text/plain")
    assert keys(s3_server, storage.bucket) == ["team/area/files/f_1"]
    await storage.close()


async def test_large_object_is_a_multipart_upload_and_small_one_a_put(s3_server: Any) -> None:
    storage = s3_storage(s3_server)
    writer = await storage.open_writer("files/f_big", "video/mp4")
    for _ in range(20):
        await writer.write(os.urandom(MiB))
    await writer.complete()
    big = await storage.head("files/f_big")
    assert big.etag is not None and big.etag.endswith("-3")  # 8 + 8 + 4 MiB
    assert big.content_type == "video/mp4"
    writer = await storage.open_writer("files/f_small", "image/png")
    await writer.write(os.urandom(PART_SIZE))
    await writer.complete()
    small = await storage.head("files/f_small")
    assert small.etag is not None and "-" not in small.etag
    assert small.content_type == "image/png"
    await storage.close()


async def test_abort_after_parts_leaves_no_multipart_upload(s3_server: Any) -> None:
    storage = s3_storage(s3_server)
    writer = await storage.open_writer("files/f_aborted", "application/pdf")
    for _ in range(18):
        await writer.write(os.urandom(MiB))
    assert len(uploads(s3_server, storage.bucket)) == 1
    await writer.abort()
    assert uploads(s3_server, storage.bucket) == []
    assert keys(s3_server, storage.bucket) == []
    await storage.close()


async def test_a_failed_complete_aborts_the_upload(s3_server: Any) -> None:
    storage = s3_storage(s3_server)
    writer = await storage.open_writer("files/f_failed", "application/pdf")
    for _ in range(9):
        await writer.write(os.urandom(MiB))
    await writer._finish_parts()  # the first part is in: spoil its ETag, the server refuses the list
    writer.parts[0]["ETag"] = '"00000000000000000000000000000000"'
    with pytest.raises(StorageUnavailable, match="InvalidPart"):
        await writer.complete()
    assert uploads(s3_server, storage.bucket) == []
    with pytest.raises(ObjectMissing):
        await storage.head("files/f_failed")
    await storage.close()


async def test_move_of_an_object_over_the_copy_limit_copies_part_by_part(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "COPY_LIMIT", 5 * MiB)
    monkeypatch.setattr(s3_module, "COPY_PART_SIZE", 5 * MiB)
    storage = s3_storage(s3_server)
    data = os.urandom(12 * MiB)
    await storage.put("files/f_large", data, "application/zip")
    await storage.move("files/f_large", "quarantine/f_large")
    assert await read_all(storage, "quarantine/f_large") == data
    assert keys(s3_server, storage.bucket) == ["quarantine/f_large"]
    assert uploads(s3_server, storage.bucket) == []
    await storage.close()


async def test_presigned_post_uploads_the_exact_key_and_type(s3_server: Any) -> None:
    storage = s3_storage(s3_server, prefix="p")
    upload = await storage.direct_upload("files/f_direct", "image/png", 1000, 300)
    assert upload is not None and upload.method == "POST"
    assert upload.fields["key"] == "p/files/f_direct" and upload.fields["Content-Type"] == "image/png"
    data = os.urandom(500)
    async with httpx.AsyncClient() as http:
        answer = await http.post(upload.url, data=upload.fields, files={"file": ("a.png", data, "image/png")})
    assert answer.status_code == 204, answer.text
    assert await read_all(storage, "files/f_direct") == data
    assert (await storage.head("files/f_direct")).content_type == "image/png"
    await storage.close()


async def test_presigned_post_refuses_a_too_large_file_another_key_or_type(s3_server: Any) -> None:
    storage = s3_storage(s3_server)
    upload = await storage.direct_upload("files/f_limited", "image/png", 1000, 300)
    assert upload is not None
    async with httpx.AsyncClient() as http:
        too_large = await http.post(upload.url, data=upload.fields, files={"file": ("a", os.urandom(1001))})
        empty = await http.post(upload.url, data=upload.fields, files={"file": ("a", b"")})
        other_key = await http.post(
            upload.url, data=upload.fields | {"key": "files/f_other"}, files={"file": ("a", b"x")}
        )
        other_type = await http.post(
            upload.url, data=upload.fields | {"Content-Type": "text/html"}, files={"file": ("a", b"x")}
        )
    assert too_large.status_code == 400 and "EntityTooLarge" in too_large.text
    assert empty.status_code == 400 and "EntityTooSmall" in empty.text
    assert other_key.status_code == 403
    assert other_type.status_code == 403
    assert keys(s3_server, storage.bucket) == []
    await storage.close()


async def test_presigned_get_serves_the_object_with_its_filename_then_expires(s3_server: Any) -> None:
    storage = s3_storage(s3_server)
    await storage.put("files/f_get", b"hello", "text/plain")
    url = await storage.presigned_get("files/f_get", 300, filename="résumé 2026.txt")
    short = await storage.presigned_get("files/f_get", 4)
    assert url is not None and short is not None
    async with httpx.AsyncClient() as http:
        assert (await http.get(short)).status_code == 200
        answer = await http.get(url)
        assert answer.status_code == 200 and answer.content == b"hello"
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="r_sum_ 2026.txt"')
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9%202026.txt" in disposition
        # The signature's clock has whole seconds: wait until past X-Amz-Date + X-Amz-Expires,
        # not a fixed time, so a slow machine neither expires the URL early nor reads it late.
        await asyncio.sleep(max(0.0, signed_until(short) - time.time()) + 1.1)
        expired = await http.get(short)
    assert expired.status_code == 403 and "AccessDenied" in expired.text
    await storage.close()


async def test_check_names_a_missing_bucket(s3_server: Any) -> None:
    storage = s3_storage(s3_server, bucket="no-such-bucket-here")
    with pytest.raises(StorageUnavailable) as caught:
        await storage.check()
    assert "NoSuchBucket" in str(caught.value.detail)
    await storage.close()


@pytest.mark.parametrize("wrong", ["secret", "key id"])
async def test_check_names_wrong_credentials_without_the_secret(s3_server: Any, wrong: str) -> None:
    secret = "wrong-" + os.urandom(8).hex() if wrong == "secret" else s3_server.secret_key
    key_id = s3_server.access_key if wrong == "secret" else "nobody-" + os.urandom(4).hex()
    backend = S3Backend(
        endpoint=s3_server.endpoint, region=s3_server.region, bucket=s3_server.create_bucket("creds"), path_style=True
    )
    storage = S3Storage(backend, key_id, secret)
    with pytest.raises(StorageUnavailable) as caught:
        await storage.check()
    detail = str(caught.value.detail)
    assert ("SignatureDoesNotMatch" if wrong == "secret" else "InvalidAccessKeyId") in detail
    assert "HTTP 403" in detail
    assert secret not in detail and secret not in repr(caught.value) and s3_server.secret_key not in detail
    assert caught.value.headers == {"Retry-After": "5"}
    await storage.close()


async def test_check_names_a_refused_connection(s3_server: Any) -> None:
    backend = S3Backend(endpoint=f"http://127.0.0.1:{free_port()}", bucket="any-bucket", path_style=True)
    storage = S3Storage(backend, "id", "very-secret-value")
    with pytest.raises(StorageUnavailable) as caught:
        await storage.check()
    assert "connection refused" in str(caught.value.detail)
    assert "very-secret-value" not in str(caught.value.detail)
    with pytest.raises(StorageUnavailable, match="connection refused"):
        await read_all(storage, "files/f_1")
    await storage.close()


async def test_close_then_use_opens_a_new_client(s3_server: Any) -> None:
    storage = s3_storage(s3_server)
    await storage.put("files/f_1", b"one", "text/plain")
    await storage.close()
    await storage.close()
    assert await read_all(storage, "files/f_1") == b"one"
    await storage.close()


async def test_direct_upload_is_none_on_r2() -> None:
    backend = S3Backend(endpoint="https://account.r2.cloudflarestorage.com", region="auto", bucket="files")
    storage = S3Storage(backend, "id", "secret")
    assert await storage.direct_upload("files/f_1", "image/png", 100, 60) is None
    await storage.close()
