"""Bucket: a file store on the team's own storage (an S3-compatible bucket or a volume),
with upload limits, content types checked on the bytes, per-owner quotas, private or public
files behind signed URLs, image transforms, an optional malware scan and retention.

These models only declare and validate: `stackyard.storage` stores, signs, transforms and
sweeps.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from .base import (
    AGE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    SECRET_REASONS,
    CamelModel,
    ConditionInfo,
    CustomResource,
    Duration,
    KindInfo,
    ObjectName,
    Pair,
    PairedModel,
    PrinterColumn,
    ResourceStatus,
    SecretKeyRef,
    StackRef,
    duration_seconds,
    member_ready,
)
from .jobs import CronExpression, TimeZone

# Kubernetes quantity style, binary or decimal: 512Ki, 100Mi, 5Gi, 1G, 1000.
BYTE_SIZE_PATTERN = r"^[0-9]+(Ki|Mi|Gi|Ti|k|K|M|G|T)?$"
ByteSize = Annotated[str, StringConstraints(pattern=BYTE_SIZE_PATTERN, max_length=24)]
_BYTE_UNITS = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
# A media type or a family of them: image/png, image/*, application/pdf, */* (anything).
_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]*"
MediaRange = Annotated[str, StringConstraints(max_length=127, pattern=rf"^(\*/\*|{_TOKEN}/(\*|{_TOKEN}))$")]
PathPart = Annotated[str, StringConstraints(max_length=200, pattern=r"^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$")]
PRESET_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ImageFormat = Literal["jpeg", "png", "webp", "avif"]
ALL_IMAGE_FORMATS: tuple[ImageFormat, ...] = ("jpeg", "png", "webp", "avif")
FitMode = Literal["cover", "contain", "fill", "inside", "outside"]
# Where fit=cover anchors its crop (Cloudinary's and imgproxy's gravity).
Gravity = Literal["centre", "north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest"]
GRAVITY_RULE = (
    "!has(self.gravity) || self.gravity == 'centre' || "
    "((!has(self.fit) || self.fit == 'cover') && has(self.width) && has(self.height))"
)
GRAVITY_MESSAGE = "gravity anchors the crop of fit cover: it needs fit cover (the default), a width and a height"


def byte_size(value: str) -> int:
    """Bytes in a quantity string ("100Mi" -> 104857600, "1G" -> 1000000000)."""
    match = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi|Ti|k|K|M|G|T)?", value)
    if match is None:
        raise ValueError(f"not a size: {value!r} (write e.g. 512Ki, 100Mi, 5Gi)")
    return int(match.group(1)) * _BYTE_UNITS[match.group(2) or ""]


# -- backends ----------------------------------------------------------------------------------


class S3Backend(PairedModel):
    pairs = (
        Pair(
            "access_key_id_secret_ref",
            "secret_access_key_secret_ref",
            "accessKeyIdSecretRef and secretAccessKeySecretRef go together",
            exclusive=False,
        ),
    )

    endpoint: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None,
        description="Endpoint URL, e.g. http://minio.storage:9000 or https://<account>.r2.cloudflarestorage.com; "
        "AWS S3's regional endpoint when absent.",
    )
    region: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")] = Field(
        default="us-east-1", description="Region the requests are signed for (auto for R2)."
    )
    bucket: Annotated[str, StringConstraints(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")] = (
        Field(description="Name of the bucket on the server (it must exist).")
    )
    prefix: PathPart = Field(default="", description="Key prefix every object of this Bucket is stored under.")
    path_style: bool = Field(
        default=False,
        description="Address the bucket in the path (endpoint/bucket/key), as MinIO and Ceph usually need; "
        "virtual-host style (bucket.endpoint/key) when false.",
    )
    access_key_id_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the access key id; with secretAccessKeySecretRef."
    )
    secret_access_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the secret access key."
    )


class VolumeBackend(CamelModel):
    claim_name: ObjectName = Field(
        description="PersistentVolumeClaim holding the files, mounted in the api and the worker "
        "(ReadWriteMany when either has more than one replica)."
    )
    sub_path: PathPart = Field(default="", description="Directory inside the volume.")


class BucketBackend(PairedModel):
    pairs = (Pair("s3", "volume", "exactly one of backend.s3 and backend.volume"),)

    s3: S3Backend | None = Field(default=None, description="An S3-compatible bucket (AWS S3, MinIO, Ceph, R2, GCS).")
    volume: VolumeBackend | None = Field(default=None, description="A directory on a PersistentVolumeClaim.")


# -- limits, images, scan, retention -------------------------------------------------------------


class BucketLimits(CamelModel):
    max_object_size: ByteSize = Field(default="100Mi", description="Largest file accepted (e.g. 10Mi, 5Gi).")
    allowed_content_types: list[MediaRange] = Field(
        default_factory=lambda: ["*/*"],
        max_length=100,
        description="Media types accepted, as detected from the file's bytes (image/*, application/pdf); "
        "the type a client declares is never trusted.",
    )
    quota_per_owner: ByteSize | None = Field(
        default=None, description="Total bytes one owner may store in this Bucket; no quota when absent."
    )


class ImageTransform(CamelModel):
    """One transform: what a preset fixes, and what signed URL parameters may ask for."""

    width: int | None = Field(default=None, ge=1, le=16384, description="Width in pixels.")
    height: int | None = Field(default=None, ge=1, le=16384, description="Height in pixels.")
    fit: FitMode = Field(
        default="cover",
        description="cover: fill the box and crop; contain: fit inside and pad; fill: stretch; "
        "inside: fit inside, never enlarge; outside: cover the box, never crop.",
    )
    format: ImageFormat | None = Field(default=None, description="Output format; the original's when absent.")
    quality: int | None = Field(default=None, ge=1, le=100, description="Encoder quality (jpeg, webp, avif).")
    gravity: Gravity = Field(
        default="centre",
        description="Where fit cover anchors its crop: centre, north, south, east, west, northeast, northwest, "
        "southeast or southwest. Only with fit cover, a width and a height.",
    )

    model_config = CamelModel.model_config | {
        "json_schema_extra": {"x-kubernetes-validations": [{"rule": GRAVITY_RULE, "message": GRAVITY_MESSAGE}]}
    }

    @model_validator(mode="after")
    def _gravity_with_cover(self) -> ImageTransform:
        if self.gravity != "centre" and (self.fit != "cover" or self.width is None or self.height is None):
            raise ValueError(GRAVITY_MESSAGE)
        return self


class ImageSettings(CamelModel):
    enabled: bool = Field(default=True, description="Serve transformed images (resized, cropped, converted).")
    max_input_pixels: int = Field(
        default=50_000_000,
        ge=1,
        le=1_000_000_000,
        description="Images with more pixels than this are refused before they are decoded (decompression bombs).",
    )
    max_output_dimension: int = Field(
        default=4096, ge=16, le=16384, description="Largest width or height a transform may ask for."
    )
    formats: list[ImageFormat] = Field(
        default_factory=lambda: list(ALL_IMAGE_FORMATS), max_length=4, description="Output formats allowed."
    )
    default_quality: int = Field(default=80, ge=1, le=100, description="Quality when a transform names none.")
    presets: dict[str, ImageTransform] = Field(
        default_factory=dict,
        max_length=50,
        description="Named transforms (thumb, avatar...). On a public Bucket they need no signature.",
        # A CEL rule on the keys: a structural schema has no propertyNames.
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(k, k.matches('{PRESET_NAME}'))",
                    "message": "every preset name must look like thumb or avatar_96 (a-z, 0-9, '_', '-')",
                }
            ]
        },
    )

    @field_validator("presets")
    @classmethod
    def _preset_names(cls, value: dict[str, ImageTransform]) -> dict[str, ImageTransform]:
        for key in value:
            if not re.fullmatch(PRESET_NAME, key):
                raise ValueError(f"preset name {key!r} must look like thumb or avatar_96 (a-z, 0-9, '_', '-')")
        return value


class ScanSettings(CamelModel):
    enabled: bool = Field(default=False, description="Scan every upload with ClamAV before it can be downloaded.")
    address: Annotated[str, StringConstraints(max_length=300, pattern=r"^(tcp://[^\s:]+:[0-9]+|unix:///[^\s]+)$")] = (
        Field(default="tcp://clamav:3310", description="clamd's address: tcp://host:port or unix:///path.")
    )
    timeout: Duration = Field(default="60s", description="Longest one scan may take before it is retried.")
    queue: ObjectName = Field(default="default", description="JobQueue the scans run on.")


class RetentionSettings(CamelModel):
    days: int = Field(ge=1, le=36_500, description="Files are deleted this many days after their upload.")
    schedule: CronExpression = Field(default="@daily", description="Cron expression of the sweep.")
    time_zone: TimeZone = Field(default="UTC", description="IANA time zone.")


class BucketSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack whose api serves this Bucket.")
    backend: BucketBackend = Field(description="Where the bytes are stored.")
    visibility: Literal["private", "public"] = Field(
        default="private",
        description="private: every download needs a signed URL; public: files (and presets) are served "
        "to anyone who has the file id.",
    )
    signed_url_lifetime: Duration = Field(
        default="15m", description="Lifetime of the signed download and upload URLs the api hands out (at most 7 days)."
    )
    delivery: Literal["proxy", "redirect"] = Field(
        default="proxy",
        description="proxy: the api streams downloads; redirect: it answers 302 to a short presigned URL of the "
        "S3 server (only with backend.s3).",
    )
    limits: BucketLimits = Field(default_factory=BucketLimits, description="What an upload may be.")
    images: ImageSettings = Field(default_factory=ImageSettings, description="Image transforms.")
    scan: ScanSettings = Field(default_factory=ScanSettings, description="Malware scan of uploads.")
    retention: RetentionSettings | None = Field(default=None, description="Delete files after some days.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.signedUrlLifetime) || duration(self.signedUrlLifetime) <= duration('168h')",
                    "message": "signedUrlLifetime must be at most 168h (7 days), as S3 presigned URLs",
                },
                {
                    "rule": "!has(self.delivery) || self.delivery != 'redirect' || has(self.backend.s3)",
                    "message": "delivery redirect needs backend.s3",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _consistent(self) -> BucketSpec:
        if duration_seconds(self.signed_url_lifetime) > 7 * 24 * 3600:
            raise ValueError("signedUrlLifetime must be at most 168h (7 days), as S3 presigned URLs")
        if self.delivery == "redirect" and self.backend.s3 is None:
            raise ValueError("delivery redirect needs backend.s3")
        return self

    @property
    def max_object_bytes(self) -> int:
        return byte_size(self.limits.max_object_size)

    @property
    def quota_bytes(self) -> int | None:
        quota = self.limits.quota_per_owner
        return byte_size(quota) if quota is not None else None

    def secret_refs(self) -> dict[str, SecretKeyRef]:
        """Credentials of this Bucket by their name in the credentials Secret
        (credential_key("Bucket", name, "accessKeyId" | "secretAccessKey"))."""
        s3 = self.backend.s3
        if s3 is None or s3.access_key_id_secret_ref is None or s3.secret_access_key_secret_ref is None:
            return {}
        return {"accessKeyId": s3.access_key_id_secret_ref, "secretAccessKey": s3.secret_access_key_secret_ref}


# -- status --------------------------------------------------------------------------------------


class ReachabilityStatus(CamelModel):
    round_trip_ms: float = Field(ge=0, description="Time the check (write, read, delete a probe object) took.")
    checked_at: str = Field(description="When it was checked.", json_schema_extra={"format": "date-time"})


class RetentionRunStatus(CamelModel):
    at: str = Field(description="When the sweep finished.", json_schema_extra={"format": "date-time"})
    deleted: int = Field(default=0, ge=0, description="Files deleted.")
    bytes: int = Field(default=0, ge=0, description="Bytes freed.")
    error: str | None = Field(default=None, max_length=2048, description="Why the sweep failed.")


class BucketStatus(ResourceStatus):
    """Ready and observedGeneration come from the operator; Reachable and the fields below
    from the worker, which reaches the storage."""

    reachable: ReachabilityStatus | None = Field(default=None, description="The storage, as last reached.")
    last_retention: RetentionRunStatus | None = Field(default=None, description="The latest retention sweep.")


class Bucket(CustomResource):
    info = KindInfo(
        kind="Bucket",
        plural="buckets",
        short_names=["sybucket"],
        description="A file store: S3-compatible or volume backend, limits, signed URLs, image transforms, retention.",
        columns=[
            PrinterColumn("Backend", ".spec.backend.s3.bucket", description="S3 bucket (empty for a volume)"),
            PrinterColumn("Visibility", ".spec.visibility"),
            PrinterColumn("Reachable", '.status.conditions[?(@.type=="Reachable")].status'),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[
            member_ready(**SECRET_REASONS),
            ConditionInfo(
                "Reachable",
                "The worker's check reached the storage (S3 bucket or volume) and could use it.",
                {
                    "Reachable": "True: the check passed.",
                    "Misconfigured": "False: the storage answered and refused (no such bucket, credentials, "
                    "permissions, a read-only volume): the spec or the credentials need a person.",
                    "Unreachable": "False: the storage did not answer.",
                },
                set_by="worker",
            ),
        ],
    )
    kind: Literal["Bucket"] = "Bucket"
    spec: BucketSpec
    status: BucketStatus = Field(default_factory=BucketStatus)
