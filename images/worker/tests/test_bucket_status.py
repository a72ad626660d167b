"""The Bucket status that workers compute: a Runtime on a file config whose Buckets point at
the harness's MinIO (a fresh bucket per test, the right keys or wrong ones, a bucket that
does not exist), at a port nobody listens on, or at a volume directory."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig, credential_key
from stackyard.resources.bucket import BucketSpec
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus
from stackyard_harness.process import free_port
from stackyard_harness.s3 import S3Server
from stackyard_worker.bucket_status import BucketStatusReporter, classify, significant

STACK = {"stackRef": {"name": "demo"}}
KEYS = {
    "accessKeyIdSecretRef": {"name": "s3", "key": "id"},
    "secretAccessKeySecretRef": {"name": "s3", "key": "secret"},
}


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


class Stack:
    """A config directory with Buckets, and the worker's Runtime and reporter reading it."""

    def __init__(self, directory: Path, s3: S3Server) -> None:
        self.directory, self.s3 = directory, s3
        self.generation = 0
        live = LiveConfig()
        self.runtime = Runtime("stackyard-worker", FileConfigSource(live, directory, interval=0.02), live)
        self.reporter = BucketStatusReporter(self.runtime, ClusterStatus(self.runtime), timeout=10)

    def s3_bucket(self, bucket: str, *, endpoint: str | None = None, keys: bool = True) -> dict[str, Any]:
        backend = {"bucket": bucket, "endpoint": endpoint or self.s3.endpoint, "pathStyle": True, "prefix": "app"}
        return {"backend": {"s3": backend | (KEYS if keys else {})}}

    def apply(self, buckets: dict[str, dict[str, Any]], keys: dict[str, tuple[str, str]] | None = None) -> None:
        """`keys`: Bucket name -> (access key id, secret) in the credentials Secret."""
        self.generation += 1
        config = RuntimeConfig(
            stack="demo",
            namespace="ns",
            generation=self.generation,
            spec=StackSpec.model_validate(
                {
                    "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                    "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}},
                }
            ),
            buckets={name: BucketSpec.model_validate(STACK | spec) for name, spec in buckets.items()},
        )
        credentials = {"stack.redis.url": "redis://127.0.0.1:1/0", "stack.mongodb.uri": "mongodb://127.0.0.1:1/"}
        for name, (key_id, secret) in (keys or {}).items():
            credentials[credential_key("Bucket", name, "accessKeyId")] = key_id
            credentials[credential_key("Bucket", name, "secretAccessKey")] = secret
        (self.directory / "credentials.json").write_text(json.dumps(credentials))
        (self.directory / "config.json").write_text(config.canonical_json())

    async def check(self, name: str) -> dict[str, Any]:
        live = self.runtime.live
        await wait_until(lambda: live.current is not None and live.current.config.generation == self.generation)
        return await self.reporter.check(name, self.runtime.config.config.buckets[name])


@pytest.fixture
async def stack(tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    monkeypatch.setenv("STACKYARD_BUCKET_ROOT", str(tmp_path / "buckets"))
    config = tmp_path / "config"
    config.mkdir()
    built = Stack(config, s3_server)
    await built.runtime.start()
    yield built
    await built.runtime.stop()


def reachable(view: dict[str, Any]) -> dict[str, Any]:
    (condition,) = [c for c in view["conditions"] if c["type"] == "Reachable"]
    return condition


async def test_a_bucket_the_worker_can_write_read_and_delete_is_reachable(stack: Stack, s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket("status")
    stack.apply({"files": stack.s3_bucket(bucket)}, {"files": (s3_server.access_key, s3_server.secret_key)})
    view = await stack.check("files")
    condition = reachable(view)
    assert (condition["status"], condition["reason"]) == ("True", "Reachable"), condition
    assert condition["message"].startswith(f"S3 bucket {bucket} (prefix app/): probe written, read and deleted in ")
    assert view["reachable"]["roundTripMs"] > 0 and view["reachable"]["checkedAt"].endswith("Z")
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # the probe is gone


async def test_a_volume_bucket_is_reachable_once_its_directory_exists(stack: Stack, tmp_path: Path) -> None:
    stack.apply({"media": {"backend": {"volume": {"claimName": "media", "subPath": "uploads"}}}})
    (tmp_path / "buckets" / "media").mkdir(parents=True)  # the operator's mount point
    condition = reachable(await stack.check("media"))
    assert (condition["status"], condition["reason"]) == ("True", "Reachable"), condition
    assert condition["message"].startswith("volume claim media (directory uploads): probe written")


async def test_wrong_keys_and_a_missing_bucket_are_misconfigured_without_the_secret(
    stack: Stack, s3_server: S3Server
) -> None:
    bucket = s3_server.create_bucket("status")
    wrong_secret = "wrong-" + os.urandom(12).hex()
    stack.apply(
        {"wrongkey": stack.s3_bucket(bucket), "gone": stack.s3_bucket("no-such-bucket-here")},
        {"wrongkey": (s3_server.access_key, wrong_secret), "gone": (s3_server.access_key, s3_server.secret_key)},
    )
    refused = reachable(await stack.check("wrongkey"))
    assert (refused["status"], refused["reason"]) == ("False", "Misconfigured"), refused
    assert "SignatureDoesNotMatch" in refused["message"]
    gone = reachable(await stack.check("gone"))
    assert (gone["status"], gone["reason"]) == ("False", "Misconfigured"), gone
    assert "NoSuchBucket" in gone["message"]
    for condition in (refused, gone):
        text = json.dumps(condition)
        assert wrong_secret not in text and s3_server.secret_key not in text


async def test_declared_keys_missing_from_the_secret_are_misconfigured(stack: Stack, s3_server: S3Server) -> None:
    stack.apply({"nokeys": stack.s3_bucket(s3_server.create_bucket("status"))})
    view = await stack.check("nokeys")
    condition = reachable(view)
    assert (condition["status"], condition["reason"]) == ("False", "Misconfigured"), condition
    assert "reachable" not in view


async def test_a_server_that_does_not_listen_is_unreachable(stack: Stack, s3_server: S3Server) -> None:
    stack.apply(
        {"down": stack.s3_bucket("files", endpoint=f"http://127.0.0.1:{free_port()}")},
        {"down": (s3_server.access_key, s3_server.secret_key)},
    )
    view = await stack.check("down")
    condition = reachable(view)
    assert (condition["status"], condition["reason"]) == ("False", "Unreachable"), condition
    assert "connection refused" in condition["message"] and "reachable" not in view
    assert s3_server.secret_key not in json.dumps(view)


async def test_check_all_follows_the_config_and_forgets_removed_buckets(stack: Stack, s3_server: S3Server) -> None:
    keys = (s3_server.access_key, s3_server.secret_key)
    stack.apply(
        {"a": stack.s3_bucket(s3_server.create_bucket("a")), "b": stack.s3_bucket("nowhere-b")}, {"a": keys, "b": keys}
    )
    await stack.check("a")
    await stack.reporter.check_all()
    assert set(stack.reporter.views) == {"a", "b"}
    assert reachable(stack.reporter.views["a"])["status"] == "True"
    assert reachable(stack.reporter.views["b"])["reason"] == "Misconfigured"
    stack.apply({"a": stack.s3_bucket(s3_server.create_bucket("a"))}, {"a": keys})
    await stack.check("a")
    await stack.reporter.check_all()
    assert set(stack.reporter.views) == {"a"}


def test_only_a_change_of_status_counts_not_the_round_trip() -> None:
    def view(ok: bool, message: str, ms: float) -> dict[str, Any]:
        condition = {"type": "Reachable", "status": str(ok), "reason": "R", "message": message}
        return {"conditions": [condition | {"lastTransitionTime": str(ms)}]} | (
            {"reachable": {"roundTripMs": ms, "checkedAt": str(ms)}} if ok else {}
        )

    assert significant(view(True, "in 1.0 ms", 1.0)) == significant(view(True, "in 9.0 ms", 9.0))
    assert significant(view(False, "refused", 1.0)) != significant(view(False, "NoSuchBucket", 1.0))
    assert significant(view(True, "in 1.0 ms", 1.0)) != significant(view(False, "in 1.0 ms", 1.0))


def test_refusals_are_misconfigured_and_silence_is_unreachable() -> None:
    assert classify("S3 bucket x at h:9000: the probe failed: NoSuchBucket (HTTP 404)") == "Misconfigured"
    assert classify("S3 bucket x at h:9000: the probe failed: AccessDenied (HTTP 403)") == "Misconfigured"
    assert classify("volume /v: Permission denied") == "Misconfigured"
    assert classify("S3 bucket x at h:9000: the probe failed: connection refused") == "Unreachable"
    assert classify("S3 bucket x at h:9000: the probe failed: read timed out (no answer within 30 s)") == "Unreachable"
