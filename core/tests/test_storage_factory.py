"""storage_for: the Storage of a Bucket from its spec and the credentials Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stackyard.config.runtime import credential_key
from stackyard.resources.bucket import BucketSpec
from stackyard.storage.factory import DEFAULT_BUCKET_ROOT, bucket_root, storage_for
from stackyard.storage.problems import StorageUnavailable
from stackyard.storage.s3 import S3Storage
from stackyard.storage.volume import VolumeStorage


def s3_spec(s3_server: Any, bucket: str, secrets: bool = True) -> BucketSpec:
    s3: dict[str, Any] = {"endpoint": s3_server.endpoint, "bucket": bucket, "pathStyle": True, "prefix": "uploads"}
    if secrets:
        s3["accessKeyIdSecretRef"] = {"name": "minio", "key": "id"}
        s3["secretAccessKeySecretRef"] = {"name": "minio", "key": "secret"}
    return BucketSpec.model_validate({"stackRef": {"name": "app"}, "backend": {"s3": s3}})


def volume_spec(sub_path: str = "") -> BucketSpec:
    return BucketSpec.model_validate(
        {"stackRef": {"name": "app"}, "backend": {"volume": {"claimName": "files", "subPath": sub_path}}}
    )


def test_bucket_root_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKYARD_BUCKET_ROOT", raising=False)
    assert bucket_root() == Path(DEFAULT_BUCKET_ROOT) == Path("/var/lib/stackyard/buckets")
    monkeypatch.setenv("STACKYARD_BUCKET_ROOT", "/srv/buckets")
    assert bucket_root() == Path("/srv/buckets")


async def test_s3_bucket_uses_its_credentials_from_the_secret(s3_server: Any) -> None:
    bucket = s3_server.create_bucket("factory")
    credentials = {
        credential_key("Bucket", "avatars", "accessKeyId"): s3_server.access_key,
        credential_key("Bucket", "avatars", "secretAccessKey"): s3_server.secret_key,
    }
    storage = storage_for("avatars", s3_spec(s3_server, bucket), credentials)
    assert isinstance(storage, S3Storage) and storage.prefix == "uploads/"
    await storage.check()
    await storage.put("files/f_1", b"x", "text/plain")
    listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["uploads/files/f_1"]
    await storage.close()


async def test_s3_bucket_with_credentials_missing_from_the_secret_is_unavailable(s3_server: Any) -> None:
    credentials = {credential_key("Bucket", "avatars", "accessKeyId"): s3_server.access_key}
    storage = storage_for("avatars", s3_spec(s3_server, s3_server.create_bucket("factory")), credentials)
    with pytest.raises(StorageUnavailable, match="no secretAccessKey for Bucket avatars"):
        await storage.check()
    await storage.close()


async def test_s3_bucket_without_secret_refs_uses_the_default_chain(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    storage = storage_for("logs", s3_spec(s3_server, s3_server.create_bucket("chain"), secrets=False), {})
    await storage.check()
    await storage.close()


async def test_volume_bucket_lives_under_the_root_and_its_sub_path(tmp_path: Path) -> None:
    storage = storage_for("docs", volume_spec("team/a"), {}, root=tmp_path)
    assert isinstance(storage, VolumeStorage)
    assert storage.root == tmp_path / "docs" / "team" / "a"
    (tmp_path / "docs").mkdir()  # the volume, mounted
    await storage.check()
    await storage.put("files/f_1", b"x", "text/plain")
    assert (tmp_path / "docs" / "team" / "a" / "files" / "f_1").read_bytes() == b"x"


async def test_volume_bucket_uses_the_environment_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKYARD_BUCKET_ROOT", str(tmp_path))
    storage = storage_for("docs", volume_spec(), {})
    assert isinstance(storage, VolumeStorage) and storage.root == tmp_path / "docs"
    with pytest.raises(StorageUnavailable, match="missing"):
        await storage.check()
