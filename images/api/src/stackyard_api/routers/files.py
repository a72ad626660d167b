"""/v1/files: files in the Stack's Buckets — streamed uploads, direct uploads to the storage,
signed download URLs (with image transforms), and the downloads themselves.

POST   /v1/files                     upload (multipart/form-data, or a raw body with ?name=), streamed
POST   /v1/files/uploads             start a direct upload (S3 presigned POST, or the api's signed PUT)
PUT    /v1/files/{id}/upload         the signed PUT of a direct upload (volume Buckets)
POST   /v1/files/{id}/complete       finish a direct upload: the bytes are checked, the file is available
GET    /v1/files                     the caller's files, newest first (cursor pages)
GET    /v1/files/{id}                one file
DELETE /v1/files/{id}                delete it (and its variants)
GET    /v1/files/{id}/url            a signed download URL (with transform parameters)
GET    /v1/files/{id}/content        the bytes: signed, or unsigned on a public Bucket

Who: the user of the access token owns what they upload and sees only their own files (another
user's file is 404, never 403: its existence is not revealed). The Stack's admin API key acts
for any owner (`?owner=`). The content route needs neither: its signature is the permission.
`?bucket=` picks the Bucket, else the default one (named `default`, or the only one).
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from stackyard.auth.errors import InvalidToken
from stackyard.config import AUTH_ENCRYPTION_KEY
from stackyard.db.schema import stack_index_policy
from stackyard.problems import NotConfigured, Problem
from stackyard.resources.base import duration_seconds
from stackyard.storage import images, signing
from stackyard.storage.backend import ObjectMissing
from stackyard.storage.contract import (
    DirectUploadRequest,
    DirectUploadView,
    FileList,
    FileView,
    SignedUrlView,
)
from stackyard.storage.files import Buckets, FileRecord, FileService
from stackyard.storage.problems import FileNotFound, FileTooLarge, SignatureInvalid

from ..auth_deps import AuthDep, bearer, current_claims
from ..deps import RuntimeDep
from ..errors import problem_responses
from ..upload_stream import FORM_OVERHEAD, FormUpload, MalformedUpload, multipart_boundary

router = APIRouter(prefix="/v1/files", tags=["files"])

FileId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^f_[0-9a-z]+$", description="The file's id.")]
BucketName = Annotated[
    str | None,
    Query(min_length=1, max_length=253, description="The Bucket; the default one (named default, or the only one)."),
]
Owner = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Admin API key only: act for this owner.")
]
METADATA_PREFIX = "metadata."
TRANSFORM_PARAMS = images.TRANSFORM_PARAMS


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


# -- who is calling -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The owner the request acts for, and whether it came with the admin API key."""

    owner: str | None
    admin: bool


async def caller(request: Request, context: AuthDep, owner: Owner = None) -> Caller:
    """A user's access token (its subject owns the files), or the admin API key (`owner` to
    act for someone)."""
    key = context.admin_api_key
    presented = bearer(request)
    if key is not None and presented is not None and hmac.compare_digest(presented.encode(), key.encode()):
        return Caller(owner=owner, admin=True)
    if owner is not None:
        raise InvalidToken("only the admin API key may act for another owner (?owner=)")
    claims = await current_claims(request, context)
    return Caller(owner=claims.sub, admin=False)


CallerDep = Annotated[Caller, Depends(caller)]


def owner_for_write(who: Caller) -> str:
    if who.owner is None:
        raise BadRequest("with the admin API key, say whose file this is: ?owner=<user id>")
    return who.owner


# -- the Bucket ---------------------------------------------------------------------------------


def buckets(request: Request, runtime: RuntimeDep) -> Buckets:
    """The app's Buckets registry (services rebuilt when the config changes)."""
    found: Buckets | None = getattr(request.app.state, "buckets", None)
    if found is None:
        found = request.app.state.buckets = Buckets(runtime)
    return found


BucketsDep = Annotated[Buckets, Depends(buckets)]


async def service(request: Request, registry: Buckets, name: str | None) -> FileService:
    """The FileService of Bucket `name` (the default one when None), its indexes ensured
    once per database; NotConfigured when the Stack has no Bucket at all."""
    if not registry.names():
        raise NotConfigured(
            "the Stack has no Bucket to store files in: apply a Bucket (kind Bucket, spec.stackRef this Stack), "
            "named default or the only one"
        )
    files = registry.service(name)
    indexed: set[tuple[str, str]] = request.app.state.__dict__.setdefault("files_indexed", set())
    key = (files.name, files.files.database.name)
    if key not in indexed:
        await files.ensure_indexes(stack_index_policy(registry.runtime.config.config))
        indexed.add(key)
    return files


async def owned(
    request: Request, registry: Buckets, bucket: str | None, file_id: str, who: Caller
) -> tuple[FileService, FileRecord]:
    """The file, when the caller may see it; FileNotFound otherwise (also for another's)."""
    files = await service(request, registry, bucket)
    return files, await files.get(file_id, who.owner)


def url_signer(runtime: Any) -> signing.UrlSigner:
    key = runtime.config.credentials.get(AUTH_ENCRYPTION_KEY)
    if not key:
        raise NotConfigured("the Stack's credentials have no encryption key to sign URLs with")
    return signing.UrlSigner(signing.signing_key(key))


def view(record: FileRecord) -> FileView:
    return record.view()


def metadata_of(query: dict[str, str], fields: dict[str, str]) -> dict[str, str]:
    """`metadata.<key>` query parameters, and the form's text fields (`metadata.<key>` or
    `<key>`)."""
    found = {k.removeprefix(METADATA_PREFIX): v for k, v in fields.items()}
    found |= {k[len(METADATA_PREFIX) :]: v for k, v in query.items() if k.startswith(METADATA_PREFIX)}
    return found


# -- upload -------------------------------------------------------------------------------------


UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "The file (the last part)."}
                },
                "additionalProperties": {"type": "string", "description": "Metadata (before the file)."},
                "required": ["file"],
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


@router.post(
    "",
    status_code=201,
    response_model=FileView,
    response_model_by_alias=True,
    summary="Upload a file (streamed)",
    description=(
        "multipart/form-data with one file part (text fields before it become metadata), or the raw bytes "
        "with `?name=` (and any Content-Type). Streamed to the storage as it arrives. The type is detected "
        "from the bytes, never taken from the client. `metadata.<key>` query parameters add metadata."
    ),
    responses=problem_responses(400, 401, 404, 413, 415, 422, 503),
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload(
    request: Request,
    response: Response,
    registry: BucketsDep,
    who: CallerDep,
    bucket: BucketName = None,
    name: Annotated[str | None, Query(min_length=1, max_length=255, description="Filename of a raw body.")] = None,
) -> FileView:
    owner = owner_for_write(who)
    files = await service(request, registry, bucket)
    content_type = request.headers.get("content-type", "application/octet-stream")
    boundary = multipart_boundary(content_type)
    _check_length(request, files.spec.max_object_bytes + (FORM_OVERHEAD if boundary else 0))
    query = dict(request.query_params)
    if boundary is not None:
        form = FormUpload(request.stream(), boundary)
        await form.start()
        filename = name or form.filename or "upload"
        record = await files.upload(owner, filename, form.content_type, form.chunks(), metadata_of(query, form.fields))
    else:
        if name is None:
            raise MalformedUpload("a raw upload names its file: ?name=photo.jpg (or send multipart/form-data)")
        record = await files.upload(owner, name, content_type, request.stream(), metadata_of(query, {}))
    response.headers["Location"] = f"/v1/files/{record.id}"
    return view(record)


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FileTooLarge(f"the body is {int(declared)} bytes; this Bucket takes files up to {limit} bytes")


@router.post(
    "/uploads",
    status_code=201,
    response_model=DirectUploadView,
    response_model_by_alias=True,
    summary="Start a direct upload",
    description=(
        "The client then sends the bytes straight to the storage: an S3 presigned POST (form fields first, "
        "the file last as field `file`) or, for a volume Bucket, a signed `PUT /v1/files/{id}/upload`. "
        "Then `POST /v1/files/{id}/complete`."
    ),
    responses=problem_responses(400, 401, 404, 413, 415, 422, 503),
)
async def start_direct_upload(
    body: DirectUploadRequest, request: Request, registry: BucketsDep, who: CallerDep, runtime: RuntimeDep
) -> DirectUploadView:
    owner = owner_for_write(who)
    bucket = body.bucket or request.query_params.get("bucket")
    files = await service(request, registry, bucket)
    record, direct = await files.start_direct_upload(
        owner, body.name, body.content_type, body.size, dict(body.metadata)
    )
    lifetime = int(duration_seconds(files.spec.signed_url_lifetime))
    expires_at = int(time.time()) + lifetime
    if direct is None:
        params = {"bucket": files.name} if bucket else {}
        signed = url_signer(runtime).sign(record.id, params, expires_at, purpose=signing.UPLOAD)
        url = absolute(request, f"/v1/files/{record.id}/upload", signed)
        return DirectUploadView(
            file=view(record),
            url=url,
            method="PUT",
            fields={},
            headers={},
            expires_at=datetime.fromtimestamp(expires_at, UTC),
        )
    return DirectUploadView(
        file=view(record),
        url=direct.url,
        method=direct.method,
        fields=direct.fields,
        headers=direct.headers,
        expires_at=datetime.fromtimestamp(expires_at, UTC),
    )


@router.put(
    "/{file_id}/upload",
    status_code=204,
    summary="Send a direct upload's bytes (volume Buckets)",
    description="The signed URL of `POST /v1/files/uploads`; the raw bytes, streamed. Then call complete.",
    responses=problem_responses(400, 403, 404, 409, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    },
)
async def direct_put(file_id: FileId, request: Request, registry: BucketsDep, runtime: RuntimeDep) -> Response:
    params = url_signer(runtime).verify(file_id, dict(request.query_params), time.time(), purpose=signing.UPLOAD)
    files = await service(request, registry, params.get("bucket"))
    await files.receive_direct_upload(file_id, request.stream())
    return Response(status_code=204)


@router.post(
    "/{file_id}/complete",
    response_model=FileView,
    response_model_by_alias=True,
    summary="Finish a direct upload",
    description="Checks the stored bytes (size as declared, detected type allowed) and makes the file available.",
    responses=problem_responses(401, 404, 409, 413, 415, 422, 503),
)
async def complete_direct_upload(
    file_id: FileId, request: Request, registry: BucketsDep, who: CallerDep, bucket: BucketName = None
) -> FileView:
    files, _ = await owned(request, registry, bucket, file_id, who)
    return view(await files.complete_direct_upload(file_id))


# -- read, list, delete -------------------------------------------------------------------------


@router.get(
    "",
    response_model=FileList,
    response_model_by_alias=True,
    summary="The caller's files",
    description="Newest first; pass nextCursor as cursor for the next page. The admin API key lists `?owner=`'s.",
    responses=problem_responses(400, 401, 404, 422, 503),
)
async def list_files(
    request: Request,
    registry: BucketsDep,
    who: CallerDep,
    bucket: BucketName = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> FileList:
    files = await service(request, registry, bucket)
    records, next_cursor = await files.list(owner_for_write(who), limit, cursor)
    return FileList(items=[view(r) for r in records], next_cursor=next_cursor)


@router.get(
    "/{file_id}",
    response_model=FileView,
    response_model_by_alias=True,
    summary="One file",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_file(
    file_id: FileId, request: Request, registry: BucketsDep, who: CallerDep, bucket: BucketName = None
) -> FileView:
    _, record = await owned(request, registry, bucket, file_id, who)
    return view(record)


@router.delete(
    "/{file_id}",
    status_code=204,
    summary="Delete a file",
    description="The file, its variants and its metadata; its bytes no longer count in the owner's quota.",
    responses=problem_responses(401, 404, 422, 503),
)
async def delete_file(
    file_id: FileId, request: Request, registry: BucketsDep, who: CallerDep, bucket: BucketName = None
) -> Response:
    files, _ = await owned(request, registry, bucket, file_id, who)
    await files.delete(file_id, who.owner)
    return Response(status_code=204)


# -- signed URLs and downloads ------------------------------------------------------------------


def absolute(request: Request, path: str, params: dict[str, str]) -> str:
    return str(request.base_url).rstrip("/") + path + ("?" + urlencode(sorted(params.items())) if params else "")


@router.get(
    "/{file_id}/url",
    response_model=SignedUrlView,
    response_model_by_alias=True,
    summary="A signed download URL",
    description=(
        "A URL of `GET /v1/files/{id}/content` anyone may use until it expires (at most the Bucket's "
        "signedUrlLifetime). Transform parameters (w, h, fit, g, crop, format, q, or preset) ask for an image variant; "
        "`download=1` for Content-Disposition: attachment. Changing any parameter breaks the signature."
    ),
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def signed_url(
    file_id: FileId,
    request: Request,
    registry: BucketsDep,
    who: CallerDep,
    runtime: RuntimeDep,
    bucket: BucketName = None,
    expires_in: Annotated[int | None, Query(alias="expiresIn", ge=1, description="Seconds the URL lives.")] = None,
    w: Annotated[int | None, Query(ge=1, le=16384, description="Width in pixels.")] = None,
    h: Annotated[int | None, Query(ge=1, le=16384, description="Height in pixels.")] = None,
    fit: Annotated[str | None, Query(pattern=r"^(cover|contain|fill|inside|outside)$")] = None,
    g: Annotated[
        str | None,
        Query(
            pattern=r"^(centre|north|south|east|west|northeast|northwest|southeast|southwest)$",
            description="Gravity: where fit=cover anchors its crop (default centre).",
        ),
    ] = None,
    crop: Annotated[
        str | None,
        Query(
            max_length=31,
            description="x,y,w,h: the region of the (upright) original, in pixels, cut before the fit.",
        ),
    ] = None,
    format: Annotated[str | None, Query(pattern=r"^(jpeg|png|webp|avif)$")] = None,
    q: Annotated[int | None, Query(ge=1, le=100, description="Encoder quality.")] = None,
    preset: Annotated[str | None, Query(min_length=1, max_length=63)] = None,
    download: Annotated[bool, Query(description="Content-Disposition: attachment.")] = False,
) -> SignedUrlView:
    files, record = await owned(request, registry, bucket, file_id, who)
    lifetime = int(duration_seconds(files.spec.signed_url_lifetime))
    seconds = min(expires_in or lifetime, lifetime)
    given = {"w": w, "h": h, "fit": fit, "g": g, "crop": crop, "format": format, "q": q, "preset": preset}
    params = {k: str(v) for k, v in given.items() if v is not None}
    if params:
        images.parse_transform(params, files.spec.images)  # refused now rather than at download
    if download:
        params["download"] = "1"
    if bucket:
        params["bucket"] = files.name
    expires_at = int(time.time()) + seconds
    signed = url_signer(runtime).sign(record.id, params, expires_at)
    return SignedUrlView(
        url=absolute(request, f"/v1/files/{record.id}/content", signed),
        expires_at=datetime.fromtimestamp(expires_at, UTC),
    )


RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Problem):
    status, slug, title = 416, "range-not-satisfiable", "Range not satisfiable"


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single-range Range header; None to send the whole
    file (no header, several ranges, or a unit other than bytes); RangeNotSatisfiable."""
    if not header:
        return None
    match = RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(f"the file has {size} bytes", size=size)
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(f"the file has {size} bytes", size=size)
    return start, end


def content_disposition(filename: str, attachment: bool) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name (filename*)."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename).strip() or "file"
    kind = "attachment" if attachment else "inline"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The bytes.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    206: {
        "description": "The requested range.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    302: {"description": "Redirect to the storage (delivery redirect)."},
    304: {"description": "Not modified (If-None-Match)."},
    416: {"description": "Range not satisfiable."},
}


@router.get(
    "/{file_id}/content",
    summary="Download a file",
    description=(
        "With the signature of a signed URL, or unsigned on a public Bucket (the original or a preset). "
        "Supports Range (206) and If-None-Match (the ETag is the sha256). Transform parameters serve an image "
        "variant, rendered once."
    ),
    responses=CONTENT_RESPONSES | problem_responses(403, 404, 409, 416, 422, 503),
    response_class=StreamingResponse,
)
async def content(
    file_id: FileId,
    request: Request,
    registry: BucketsDep,
    runtime: RuntimeDep,
    bucket: BucketName = None,
    exp: Annotated[int | None, Query(description="Signed URL: expiry (unix seconds).")] = None,
    sig: Annotated[str | None, Query(max_length=200, description="Signed URL: the signature.")] = None,
) -> Response:
    query = dict(request.query_params)
    now = time.time()
    if sig is not None or exp is not None:
        params = url_signer(runtime).verify(file_id, query, now)
        expires_at: int | None = int(query["exp"])
    else:
        params = query
        expires_at = None
    files = await service(request, registry, params.get("bucket"))
    if expires_at is None:
        public_ok = files.spec.visibility == "public" and set(params) <= {"bucket", "preset", "download"}
        if not public_ok:
            raise SignatureInvalid("this file needs a signed URL (GET /v1/files/{id}/url)")
    record = await files.get(file_id)  # the one read of the record in this request
    if record.state != "available":
        files.content(record)  # raises FileNotAvailable with the state
    transform_query = {k: v for k, v in params.items() if k in TRANSFORM_PARAMS}
    transform = images.parse_transform(transform_query, files.spec.images) if transform_query else None
    rendered: bytes | None = None  # a variant rendered by this request: served as it is, not read back
    if transform is not None:
        variant = await files.variant(record, transform)
        rendered = variant.data
        key, content_type, size, etag = (
            variant.key,
            variant.content_type,
            variant.size,
            f'"{record.sha256[:32]}-{transform.digest}"',
        )
    else:
        key, content_type, size, etag = record.key, record.content_type, record.size, f'"{record.sha256}"'
    attachment = params.get("download") in ("1", "true")
    filename = record.name
    if files.spec.delivery == "redirect":
        lifetime = int(expires_at - now) if expires_at else int(duration_seconds(files.spec.signed_url_lifetime))
        location = await files.storage.presigned_get(key, max(lifetime, 1), filename if attachment else None)
        if location is not None:
            return RedirectResponse(location, status_code=302)
    # Signed: only the holder's cache, until the URL expires; public: anyone's, for an hour.
    cache = f"private, max-age={max(int(expires_at - now), 0)}" if expires_at is not None else "public, max-age=3600"
    headers = {
        "ETag": etag,
        "Cache-Control": cache,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(filename, attachment),
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    try:
        wanted = byte_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers=headers | {"Content-Range": f"bytes */{size}"})
    if wanted is None:
        start, end, status = 0, size - 1, 200
    else:
        (start, end), status = wanted, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(end - start + 1, 0))
    if rendered is not None or not size:
        body = _chunks((rendered or b"")[start : end + 1])
    else:
        chunks = files.storage.read(key, start, end) if transform is not None else files.content(record, start, end)
        body = await _primed(chunks)
    return StreamingResponse(body, status_code=status, media_type=content_type, headers=headers)


async def _primed(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks` with its first one read now: a missing object or a storage error is the
    problem answer, not a response cut after its headers."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    except ObjectMissing as exc:
        raise FileNotFound("the file's bytes are gone from the storage") from exc
    return _chain(first, chunks)


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
