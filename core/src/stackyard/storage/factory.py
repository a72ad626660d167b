"""The Storage of a Bucket, from its spec: `S3Storage` with the Bucket's credentials from the
credentials Secret (botocore's default chain when it declares none), or `VolumeStorage` on
`<STACKYARD_BUCKET_ROOT>/<bucket name>/<subPath>`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..config.runtime import credential_key
from ..resources.bucket import BucketSpec
from .backend import Storage
from .s3 import S3Storage
from .volume import VolumeStorage

__all__ = ["BUCKET_ROOT_ENV", "DEFAULT_BUCKET_ROOT", "bucket_root", "storage_for"]

BUCKET_ROOT_ENV = "STACKYARD_BUCKET_ROOT"
DEFAULT_BUCKET_ROOT = "/var/lib/stackyard/buckets"


def bucket_root() -> Path:
    """Where the operator mounts the volumes of volume Buckets (one directory per Bucket)."""
    return Path(os.environ.get(BUCKET_ROOT_ENV) or DEFAULT_BUCKET_ROOT)


def storage_for(name: str, spec: BucketSpec, credentials: Mapping[str, str], root: Path | None = None) -> Storage:
    """The Storage of the Bucket `name`. `credentials` is the credentials Secret's data
    (decoded); `root` overrides bucket_root() for volume Buckets."""
    s3 = spec.backend.s3
    if s3 is not None:
        if not spec.secret_refs():
            return S3Storage(s3)
        names = {field: credential_key("Bucket", name, field) for field in ("accessKeyId", "secretAccessKey")}
        missing = [field for field, key in names.items() if not credentials.get(key)]
        if missing:
            # Declared but not (yet) in the Secret: fail each call with why, rather than fall
            # back to other credentials the Bucket did not ask for.
            return S3Storage(
                s3,
                credentials_error=f"the credentials Secret has no {' nor '.join(missing)} for Bucket {name} "
                "(see the Bucket's secret references)",
            )
        return S3Storage(s3, credentials[names["accessKeyId"]], credentials[names["secretAccessKey"]])
    volume = spec.backend.volume
    assert volume is not None  # BucketBackend validates exactly one backend
    mount = (root if root is not None else bucket_root()) / name
    directory = mount.joinpath(*volume.sub_path.split("/")) if volume.sub_path else mount
    return VolumeStorage(directory, mount=mount)
