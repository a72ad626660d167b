"""The wire contract of /v1/files: request and response bodies, shared by the api's router,
the Python SDK and the CLI so that they cannot drift."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

FileState = Literal["pending", "scanning", "available", "quarantined", "deleting"]
"""pending: being uploaded; scanning: uploaded, waiting for the malware scan; available:
served; quarantined: the scan found malware, or the file was too large to scan (never
served); deleting: on its way out."""

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_NAME = 255

_METADATA_KEY = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_METADATA_KEY - 1}}}")


def check_metadata(value: dict[str, str]) -> dict[str, str]:
    """User metadata: at most 16 string pairs, keys like `album` or `x.source` (a-z, 0-9,
    `.`, `_`, `-`), values up to 512 characters. Raises ValueError."""
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"at most {MAX_METADATA_KEYS} metadata keys")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValueError("metadata keys and values are strings")
        if not _METADATA_KEY.fullmatch(key):
            raise ValueError(f"metadata key {key[:MAX_METADATA_KEY]!r}: 1-{MAX_METADATA_KEY} of a-z A-Z 0-9 . _ -")
        if len(item) > MAX_METADATA_VALUE:
            raise ValueError(f"metadata value of {key!r}: at most {MAX_METADATA_VALUE} characters")
    return value


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class VariantView(_Wire):
    digest: str = Field(description="Which transform (first 16 hex digits of its canonical form's sha256).")
    content_type: str
    width: int
    height: int
    size: int
    created_at: datetime


class ScanView(_Wire):
    """The malware scan's verdict on a file of a Bucket that scans uploads."""

    result: Literal["clean", "infected", "unscannable"] = Field(
        description="clean (served), infected or unscannable (both quarantined, never served)."
    )
    signature: str | None = Field(default=None, description="The matched signature when infected.")
    reason: str | None = Field(
        default=None, description="Why it could not be scanned (e.g. larger than clamd's StreamMaxLength)."
    )
    at: datetime | None = Field(default=None, description="When the verdict was given.")


class FileView(_Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "f_01jq3v7k2m8n4p5r6s7t8v9w0x",
                    "bucket": "default",
                    "owner": "u_42",
                    "name": "cat.png",
                    "contentType": "image/png",
                    "size": 48213,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "state": "available",
                    "createdAt": "2026-11-25T10:00:00Z",
                    "expiresAt": None,
                    "metadata": {"album": "holidays"},
                    "variants": 1,
                }
            ]
        }
    )

    id: str = Field(description="The file's id: `f_` and 26 characters, sortable by creation time.")
    bucket: str = Field(description="The Bucket it is stored in.")
    owner: str = Field(description="Who uploaded it (the access token's subject).")
    name: str = Field(description="The client's file name (sanitized: no directories, no control characters).")
    content_type: str = Field(description="The media type detected from the bytes (never the declared one).")
    size: int = Field(ge=0, description="Bytes (the declared size while a direct upload is pending).")
    sha256: str | None = Field(default=None, description="Hex SHA-256 of the bytes (none for a direct upload).")
    state: FileState = Field(description="pending, scanning, available (served), quarantined or deleting.")
    created_at: datetime
    updated_at: datetime | None = None
    expires_at: datetime | None = Field(default=None, description="When retention deletes it; none without retention.")
    metadata: dict[str, str] = Field(default_factory=dict, description="The uploader's metadata (at most 16 pairs).")
    variants: int = Field(default=0, ge=0, description="Image variants rendered and stored so far.")
    scan: ScanView | None = Field(default=None, description="The malware scan's verdict; none before or without one.")


class FileList(_Wire):
    items: list[FileView]
    next_cursor: str | None = Field(default=None, description="Opaque: give it as `cursor` for the next page.")


class DirectUploadRequest(_Wire):
    """POST /v1/files/uploads: a direct upload of `size` bytes, sent by the client straight
    to the storage (S3 presigned POST) or to the api's signed PUT URL (volume)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(description="The file name.")
    size: int = Field(ge=0, description="Exact size in bytes; the completion checks it.")
    content_type: str | None = Field(
        default=None, max_length=255, description="The declared type (the bytes decide at completion)."
    )
    metadata: dict[str, str] = Field(default_factory=dict, description="At most 16 string pairs.")
    bucket: str | None = Field(default=None, description="The Bucket; `default` (or the only one) when absent.")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str]) -> dict[str, str]:
        return check_metadata(value)


class DirectUploadView(_Wire):
    """Send `method` to `url` with `headers`; for a POST, as multipart/form-data with
    `fields` first and the file last (field `file`). Then POST /v1/files/{id}/complete."""

    file: FileView = Field(description="The pending file.")
    url: str
    method: Literal["POST", "PUT"]
    fields: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime = Field(description="The URL is refused after this.")


class SignedUrlView(_Wire):
    url: str = Field(description="The signed download URL (of the api, or of the S3 server with delivery redirect).")
    expires_at: datetime


class UploadCompleted(_Wire):
    """What an upload answers: the file, and whether it is served yet (false while scanned)."""

    file: FileView
    available: bool


def file_view(document: dict[str, Any]) -> FileView:
    """The wire view of a `files` document."""
    return FileView(
        id=document["_id"],
        bucket=document["bucket"],
        owner=document["owner"],
        name=document["name"],
        content_type=document.get("contentType") or "application/octet-stream",
        size=int(document.get("size") or document.get("expectedSize") or 0),
        sha256=document.get("sha256"),
        state=document["state"],
        created_at=_aware(document["createdAt"]),
        updated_at=_aware(document.get("updatedAt")),
        expires_at=_aware(document.get("expiresAt")),
        metadata=dict(document.get("metadata") or {}),
        variants=len(document.get("variants") or {}),
        scan=_scan(document.get("scan")),
    )


def _scan(scan: Any) -> ScanView | None:
    if not isinstance(scan, dict) or scan.get("result") not in ("clean", "infected", "unscannable"):
        return None
    return ScanView(
        result=scan["result"], signature=scan.get("signature"), reason=scan.get("reason"), at=_aware(scan.get("at"))
    )


def _aware(value: Any) -> Any:
    """PyMongo answers naive datetimes in UTC."""
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value
