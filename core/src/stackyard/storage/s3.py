"""The S3 backend: a Bucket on any S3-compatible server (AWS S3, MinIO, Ceph RGW, Cloudflare
R2, Google Cloud Storage's XML API), over aiobotocore.

aiobotocore is botocore (the request signing, endpoint rules, retries and presigners every
AWS SDK for Python shares) on an aiohttp transport: uploads and downloads stream on the
event loop, presigned GET and POST policies come from botocore itself, and the retry and
timeout settings are botocore's documented ones.

- One client per `S3Storage`, created on first use and closed by `close()`.
- Timeouts: connect 3 s, read 30 s; retries in botocore's `standard` mode, 3 attempts.
- Checksums only where the operation requires one (`when_required`): servers other than AWS
  (older Ceph and R2, GCS) refuse the CRC headers botocore >= 1.36 adds by default.
- Keys are stored under the Bucket's `prefix`.
- Errors name the S3 error code (NoSuchBucket, AccessDenied, SignatureDoesNotMatch...) or the
  connection failure, never a key, the secret or a signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ..resources.bucket import S3Backend
from .backend import PART_SIZE, DirectUpload, ObjectInfo, ObjectMissing
from .problems import StorageUnavailable

__all__ = ["COPY_LIMIT", "COPY_PART_SIZE", "PARTS_IN_FLIGHT", "PRESIGN_LIMIT", "READ_CHUNK", "S3Storage", "S3Writer"]

CONNECT_TIMEOUT = 3
READ_TIMEOUT = 30
MAX_ATTEMPTS = 3
READ_CHUNK = 256 * 1024
"""Bytes yielded at most per chunk of `read`."""
PRESIGN_LIMIT = 7 * 24 * 3600
"""SigV4 presigned URLs live at most 7 days."""
COPY_LIMIT = 5 * 1024**3
"""Largest object CopyObject copies in one request; larger ones are copied part by part."""
COPY_PART_SIZE = 512 * 1024**2
PARTS_IN_FLIGHT = 2
"""Parts of one streamed upload sent at once while the next is received (memory: about
PARTS_IN_FLIGHT + 1 parts)."""
DELETE_BATCH = 1000
"""Keys per DeleteObjects request (the S3 maximum)."""
PROBE_PREFIX = "_stackyard_probe/"
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Storage:
    """A Bucket's objects on an S3-compatible server (`spec`: the Bucket's backend.s3).

    Without `access_key_id` and `secret_access_key`, botocore's default chain finds the
    credentials (IRSA's web identity token, the environment, an instance profile).
    `credentials_error`, when given, is why the declared credentials are missing: every call
    then raises StorageUnavailable with it.
    """

    def __init__(
        self,
        spec: S3Backend,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        *,
        credentials_error: str | None = None,
    ) -> None:
        self.spec = spec
        self.bucket = spec.bucket
        self.prefix = f"{spec.prefix.strip('/')}/" if spec.prefix.strip("/") else ""
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._credentials_error = credentials_error
        self._client_value: Any = None
        self._exit: AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self._where()!r})"

    # -- client ----------------------------------------------------------------------------

    def config(self) -> AioConfig:
        return AioConfig(
            signature_version="s3v4",
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            s3={"addressing_style": "path" if self.spec.path_style else "virtual"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    async def client(self) -> Any:
        """The aiobotocore S3 client, created on first use."""
        if self._credentials_error is not None:
            raise StorageUnavailable(self._credentials_error)
        if self._client_value is not None:
            return self._client_value
        async with self._lock:
            if self._client_value is None:
                stack = AsyncExitStack()
                self._client_value = await stack.enter_async_context(
                    get_session().create_client(
                        "s3",
                        region_name=self.spec.region,
                        endpoint_url=self.spec.endpoint,
                        aws_access_key_id=self._access_key_id,
                        aws_secret_access_key=self._secret_access_key,
                        config=self.config(),
                    )
                )
                self._exit = stack
        return self._client_value

    async def close(self) -> None:
        exit_stack, self._exit, self._client_value = self._exit, None, None
        if exit_stack is not None:
            await exit_stack.aclose()

    def key(self, key: str) -> str:
        """The object's key on the server (under the Bucket's prefix)."""
        if not key or key.startswith("/"):
            raise ValueError("an object key is relative and not empty")
        return self.prefix + key

    def _where(self) -> str:
        if self.spec.endpoint is None:
            return f"s3.{self.spec.region}.amazonaws.com"
        parts = urlsplit(self.spec.endpoint)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "the endpoint"

    def unavailable(self, exc: BaseException, action: str) -> StorageUnavailable:
        """The StorageUnavailable for a failed call: the S3 error code or the connection's
        failure, never the request's key, signature or credentials."""
        return StorageUnavailable(f"S3 bucket {self.bucket} at {self._where()}: {action} failed: {reason(exc)}")

    # -- the Storage protocol ----------------------------------------------------------------

    async def check(self) -> None:
        key = PROBE_PREFIX + secrets.token_hex(8)
        data = secrets.token_bytes(32)
        try:
            client = await self.client()
            await client.put_object(
                Bucket=self.bucket, Key=self.key(key), Body=data, ContentType="application/octet-stream"
            )
            try:
                response = await client.get_object(Bucket=self.bucket, Key=self.key(key))
                async with response["Body"] as body:
                    read = await body.read()
                if read != data:
                    raise StorageUnavailable(
                        f"S3 bucket {self.bucket} at {self._where()}: the probe object read back differs"
                    )
            finally:
                await client.delete_object(Bucket=self.bucket, Key=self.key(key))
        except StorageUnavailable:
            raise
        except _FAILURES as exc:
            raise self.unavailable(exc, "the probe (put, get, delete)") from None

    async def open_writer(self, key: str, content_type: str) -> S3Writer:
        return S3Writer(self, self.key(key), content_type)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            client = await self.client()
            await client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data, ContentType=content_type)
        except _FAILURES as exc:
            raise self.unavailable(exc, "PutObject") from None

    async def head(self, key: str) -> ObjectInfo:
        try:
            client = await self.client()
            response = await client.head_object(Bucket=self.bucket, Key=self.key(key))
        except ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
                raise ObjectMissing(key) from None
            raise self.unavailable(exc, "HeadObject") from None
        except _FAILURES as exc:
            raise self.unavailable(exc, "HeadObject") from None
        etag = response.get("ETag")
        return ObjectInfo(
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType"),
            etag=etag.strip('"') if etag else None,
        )

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if start < 0 or (end is not None and end < start):
            raise ValueError("a range starts at 0 or later and ends at or after its start")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(key)}
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            client = await self.client()
            response = await client.get_object(**params)
        except ClientError as exc:
            code = error_code(exc)
            if code in _MISSING_CODES:
                raise ObjectMissing(key) from None
            if code == "InvalidRange":  # starts past the end: nothing to read, as on a volume
                return
            raise self.unavailable(exc, "GetObject") from None
        except _FAILURES as exc:
            raise self.unavailable(exc, "GetObject") from None
        async with response["Body"] as body:
            while True:
                try:
                    chunk = await body.read(READ_CHUNK)
                except _FAILURES as exc:
                    raise self.unavailable(exc, "reading the object") from None
                if not chunk:
                    return
                yield chunk

    async def read_head(self, key: str, size: int) -> bytes:
        if size <= 0:
            return b""
        chunks = [chunk async for chunk in self.read(key, 0, size - 1)]
        return b"".join(chunks)[:size]

    async def delete(self, key: str) -> None:
        try:
            client = await self.client()
            await client.delete_object(Bucket=self.bucket, Key=self.key(key))
        except ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
                return
            raise self.unavailable(exc, "DeleteObject") from None
        except _FAILURES as exc:
            raise self.unavailable(exc, "DeleteObject") from None

    async def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        try:
            client = await self.client()
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys = [item["Key"] for item in page.get("Contents", [])]
                for start in range(0, len(keys), DELETE_BATCH):
                    deleted += await self._delete_keys(client, keys[start : start + DELETE_BATCH])
        except StorageUnavailable:
            raise
        except _FAILURES as exc:
            raise self.unavailable(exc, "deleting a prefix") from None
        return deleted

    async def _delete_keys(self, client: Any, keys: list[str]) -> int:
        try:
            response = await client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
            )
        except ClientError as exc:
            if error_code(exc) not in {"NotImplemented", "MethodNotAllowed"}:
                raise
            # GCS's XML API has no multi-object delete: one request per key.
            for key in keys:
                await client.delete_object(Bucket=self.bucket, Key=key)
            return len(keys)
        errors = response.get("Errors") or []
        if errors:
            codes = sorted({str(error.get("Code")) for error in errors})
            raise StorageUnavailable(
                f"S3 bucket {self.bucket} at {self._where()}: DeleteObjects refused {len(errors)} "
                f"of {len(keys)} objects: {', '.join(codes)}"
            )
        return len(keys)

    async def move(self, source: str, target: str) -> None:
        info = await self.head(source)
        source_key, target_key = self.key(source), self.key(target)
        try:
            client = await self.client()
            if info.size <= COPY_LIMIT:
                await client.copy_object(
                    Bucket=self.bucket, Key=target_key, CopySource={"Bucket": self.bucket, "Key": source_key}
                )
            else:
                await self._copy_parts(client, source_key, target_key, info)
            await client.delete_object(Bucket=self.bucket, Key=source_key)
        except ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
                raise ObjectMissing(source) from None
            raise self.unavailable(exc, "moving an object") from None
        except _FAILURES as exc:
            raise self.unavailable(exc, "moving an object") from None

    async def _copy_parts(self, client: Any, source_key: str, target_key: str, info: ObjectInfo) -> None:
        """A server-side copy in COPY_PART_SIZE parts (UploadPartCopy), for objects larger
        than one CopyObject copies."""
        created = await client.create_multipart_upload(
            Bucket=self.bucket, Key=target_key, ContentType=info.content_type or "application/octet-stream"
        )
        upload_id = created["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, info.size, COPY_PART_SIZE), start=1):
                end = min(start + COPY_PART_SIZE, info.size) - 1
                answer = await client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=target_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source_key},
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=target_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(*_FAILURES):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=target_key, UploadId=upload_id)
            raise

    async def direct_upload(self, key: str, content_type: str, max_size: int, expires_in: int) -> DirectUpload | None:
        """A presigned POST policy: exactly this key and Content-Type, 1 to `max_size` bytes.
        None on Cloudflare R2, which has no POST Object (the api's signed PUT serves instead)."""
        if self.spec.endpoint is not None and (urlsplit(self.spec.endpoint).hostname or "").endswith(
            ".r2.cloudflarestorage.com"
        ):
            return None
        try:
            client = await self.client()
            post = await client.generate_presigned_post(
                Bucket=self.bucket,
                Key=self.key(key),
                Fields={"Content-Type": content_type},
                Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_size]],
                ExpiresIn=min(expires_in, PRESIGN_LIMIT),
            )
        except _FAILURES as exc:
            raise self.unavailable(exc, "presigning a POST") from None
        return DirectUpload(url=post["url"], method="POST", fields={k: str(v) for k, v in post["fields"].items()})

    async def presigned_get(self, key: str, expires_in: int, filename: str | None = None) -> str | None:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self.key(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        try:
            client = await self.client()
            url: str = await client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=min(expires_in, PRESIGN_LIMIT)
            )
        except _FAILURES as exc:
            raise self.unavailable(exc, "presigning a GET") from None
        return url


class S3Writer:
    """A streamed write: the bytes are buffered up to PART_SIZE; once more than a part has
    arrived a multipart upload starts and each full part is sent (UploadPart). `complete`
    sends the rest and CompleteMultipartUpload, or one PutObject when the object fits in a
    part. A failure, or `abort`, aborts the multipart upload: no object, no parts left.

    Parts are sent in the background, PARTS_IN_FLIGHT at a time, while the next one is
    received: the request is read on while a part travels to the server (sending one part
    after the other left the two sides taking turns, at half boto3's speed).

    Memory: the chunks received (up to a part), the parts being sent (one copy each, in a
    BytesIO of its own) and aiohttp's socket buffers: each body is handed over as a file
    object, which aiohttp sends in small reads instead of copying it whole (as it does a
    bytes body)."""

    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        self.storage = storage
        self.key = key
        self.content_type = content_type
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._next_part = 1
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._finished = False

    async def write(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError("the write was completed or aborted")
        if not data:
            return
        self._chunks.append(data if isinstance(data, bytes) else bytes(data))
        self._buffered += len(data)
        try:
            while self._buffered > PART_SIZE:
                await self._free_slot()
                await self._start_part(self._take(PART_SIZE))
        except BaseException:
            await self.abort()
            raise

    async def _free_slot(self) -> None:
        """Wait until fewer than PARTS_IN_FLIGHT parts are on their way (a failed one raises
        here), before the next part is cut from the buffer: memory stays at the parts sent
        plus the one being received."""
        while len(self._sending) >= PARTS_IN_FLIGHT:
            done, _ = await asyncio.wait(self._sending, return_when=asyncio.FIRST_COMPLETED)
            self._sending -= done
            for task in done:
                task.result()

    async def _start_part(self, part: io.BytesIO) -> None:
        """Send `part` in the background (after `_free_slot`)."""
        await self._create_upload()
        number, self._next_part = self._next_part, self._next_part + 1
        self._sending.add(asyncio.create_task(self._send_part(number, part)))

    async def _finish_parts(self) -> None:
        """Wait for every part on its way; the first failure raises."""
        sending, self._sending = self._sending, set()
        if sending:
            for task in await asyncio.gather(*sending, return_exceptions=True):
                if isinstance(task, BaseException):
                    raise task

    async def _cancel_parts(self) -> None:
        sending, self._sending = self._sending, set()
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)

    async def _create_upload(self) -> None:
        if self.upload_id is not None:
            return
        storage = self.storage
        try:
            client = await storage.client()
            created = await client.create_multipart_upload(
                Bucket=storage.bucket, Key=self.key, ContentType=self.content_type
            )
        except _FAILURES as exc:
            raise storage.unavailable(exc, "CreateMultipartUpload") from None
        self.upload_id = created["UploadId"]

    def _take(self, size: int) -> io.BytesIO:
        """The first `size` buffered bytes, copied into a BytesIO of its own (at position 0).
        Not io.BytesIO(joined bytes): that shares the bytes object, and aiohttp's BytesIO
        payload calls getbuffer(), which un-shares it with a second whole copy of the part."""
        part = io.BytesIO()
        needed = size
        while needed:
            chunk = self._chunks[0]
            if len(chunk) <= needed:
                part.write(self._chunks.popleft())
                needed -= len(chunk)
            else:
                part.write(memoryview(chunk)[:needed])
                self._chunks[0] = chunk[needed:]
                needed = 0
        self._buffered -= size
        part.seek(0)
        return part

    async def _send_part(self, number: int, part: io.BytesIO) -> None:
        storage = self.storage
        try:
            client = await storage.client()
            answer = await client.upload_part(
                Bucket=storage.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=part,
                ContentLength=part.getbuffer().nbytes,
            )
        except _FAILURES as exc:
            raise storage.unavailable(exc, "UploadPart") from None
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def complete(self) -> None:
        if self._finished:
            raise RuntimeError("the write was completed or aborted")
        storage = self.storage
        try:
            rest = self._take(self._buffered)
            client = await storage.client()
            if self.upload_id is None:
                try:
                    await client.put_object(
                        Bucket=storage.bucket,
                        Key=self.key,
                        Body=rest,
                        ContentLength=rest.getbuffer().nbytes,
                        ContentType=self.content_type,
                    )
                except _FAILURES as exc:
                    raise storage.unavailable(exc, "PutObject") from None
            else:
                if rest.getbuffer().nbytes:
                    await self._free_slot()
                    await self._start_part(rest)
                del rest
                await self._finish_parts()
                self.parts.sort(key=lambda part: int(part["PartNumber"]))
                try:
                    await client.complete_multipart_upload(
                        Bucket=storage.bucket,
                        Key=self.key,
                        UploadId=self.upload_id,
                        MultipartUpload={"Parts": self.parts},
                    )
                except _FAILURES as exc:
                    raise storage.unavailable(exc, "CompleteMultipartUpload") from None
        except BaseException:
            await self.abort()
            raise
        self._finished = True

    async def abort(self) -> None:
        """Drop what was written; the multipart upload (if one started) is aborted. Safe to
        call twice, or after a failed write or complete."""
        if self._finished:
            return
        self._finished = True
        self._chunks.clear()
        self._buffered = 0
        await self._cancel_parts()
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return
        storage = self.storage
        try:
            client = await storage.client()
            await client.abort_multipart_upload(Bucket=storage.bucket, Key=self.key, UploadId=upload_id)
        except ClientError as exc:
            if error_code(exc) != "NoSuchUpload":
                raise storage.unavailable(exc, "AbortMultipartUpload") from None
        except _FAILURES as exc:
            raise storage.unavailable(exc, "AbortMultipartUpload") from None


# -- errors ----------------------------------------------------------------------------------

_FAILURES: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError)


def error_code(exc: ClientError) -> str:
    return str(
        exc.response.get("Error", {}).get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    )


def reason(exc: BaseException) -> str:
    """Why a call failed, in words an operator can act on: the S3 error code with its HTTP
    status, or what the connection did. Never the request (its key, signature, credentials)."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error_code(exc)
        # A HEAD answer has no body, so no code: its status says it.
        code = {"403": "AccessDenied", "404": "NotFound"}.get(code, code)
        return f"{code} (HTTP {status})" if status else code
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return "no credentials (none in the credentials Secret nor in the default chain: IRSA, environment)"
    if name in {"ConnectTimeoutError"}:
        return f"connection timed out (no answer within {CONNECT_TIMEOUT} s)"
    if name in {"ReadTimeoutError", "AioReadTimeoutError"} or isinstance(exc, TimeoutError):
        return f"read timed out (no answer within {READ_TIMEOUT} s)"
    cause = _os_error(exc)
    if cause is not None:
        if cause.errno == errno.ECONNREFUSED:
            return "connection refused"
        if cause.errno == errno.ECONNRESET:
            return "connection reset"
        if cause.errno in {errno.EHOSTUNREACH, errno.ENETUNREACH}:
            return "host unreachable"
        if cause.strerror:
            return cause.strerror
    if name in {"EndpointConnectionError", "ConnectionClosedError"}:
        text = str(exc).lower()
        if "name or service not known" in text or "nodename nor servname" in text or "no address" in text:
            return "host name not resolved"
        if "connect call failed" in text or "refused" in text:
            return "connection refused"
        return "could not connect to the endpoint"
    if name == "SSLError":
        return "TLS handshake failed"
    return name


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind a botocore or aiohttp error, if any (followed through `error`
    kwargs, __cause__ and __context__)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, OSError):
            pending.append(os_error)
        kwargs = getattr(current, "kwargs", None)
        if isinstance(kwargs, dict) and isinstance(kwargs.get("error"), BaseException):
            pending.append(kwargs["error"])
        pending.extend([current.__cause__, current.__context__])
    return None


def content_disposition(filename: str) -> str:
    """`attachment` with the filename as RFC 6266 asks: an ASCII fallback and the UTF-8 form."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
