"""The storage job functions in a real worker process (`stackyard-worker`) with a file config
holding an S3 Bucket on the harness's MinIO that scans uploads with the harness's clamd
(Debian's, with its test signatures): the EICAR test file is quarantined (its object moved
to quarantine/<id>), a clean file becomes available, a file larger than clamd's
StreamMaxLength is quarantined as unscannable at the first attempt; with clamd down the scan
job is retried and the file stays `scanning`, never served, until clamd is back. The retention job deletes
expired files and the worker reports the sweep."""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from stackyard.clients import redis_client
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig, credential_key
from stackyard.jobs import JobClient
from stackyard.jobs.contract import EnqueueRequest
from stackyard.jobs.settings import queues_from_config
from stackyard.resources.bucket import BucketSpec
from stackyard.resources.jobs import JobQueueSpec
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard.storage.files import Buckets, FileRecord, FileService
from stackyard.storage.problems import FileNotAvailable, FileNotFound
from stackyard_harness.clamav import EICAR, EICAR_SIGNATURE, MARKER, MARKER_SIGNATURE, ClamdServer
from stackyard_harness.kube import KubeCluster
from stackyard_harness.process import ManagedProcess, free_port
from stackyard_harness.pytest_plugin import unavailable
from stackyard_harness.s3 import S3Server
from stackyard_harness.tools import ToolMissing

from .test_jobs_workers import registered, until

WORKER = str(Path(sys.executable).parent / "stackyard-worker")
SCAN, RETENTION = "stackyard.storage.scan", "stackyard.storage.retention"
STACK = {"stackRef": {"name": "demo"}}
KEYS = {
    "accessKeyIdSecretRef": {"name": "s3", "key": "id"},
    "secretAccessKeySecretRef": {"name": "s3", "key": "secret"},
}
OWNER = "user-1"


class StorageStack:
    """A config directory with one Bucket "media" and its JobQueue, a worker process on it,
    and the same config's FileService in the test (the api's side: uploads)."""

    def __init__(self, directory: Path, redis_url: str, mongo_url: str, s3: S3Server) -> None:
        self.directory = directory
        self.redis_url, self.mongo_url, self.s3 = redis_url, mongo_url, s3
        self.dbname = f"stw_{uuid.uuid4().hex[:10]}"
        self.bucket = s3.create_bucket("scan")
        self.queue = f"scans-{uuid.uuid4().hex[:6]}"
        self.process: ManagedProcess | None = None
        live = LiveConfig()
        self.runtime = Runtime("test-storage", FileConfigSource(live, directory, interval=0.02), live)
        self.buckets: Buckets | None = None
        self.namespace = "ns"
        self.spec: BucketSpec | None = None

    def apply(self, clamd_address: str, *, max_attempts: int = 60, **bucket: Any) -> None:
        spec = BucketSpec.model_validate(
            STACK
            | {
                "backend": {"s3": {"bucket": self.bucket, "endpoint": self.s3.endpoint, "pathStyle": True} | KEYS},
                "scan": {"enabled": True, "address": clamd_address, "timeout": "5s", "queue": self.queue},
            }
            | bucket
        )
        self.spec = spec
        config = RuntimeConfig(
            stack="demo",
            namespace=self.namespace,
            generation=1,
            spec=StackSpec.model_validate(
                {
                    "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                    "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}, "database": self.dbname},
                }
            ),
            buckets={"media": spec},
            job_queues={
                self.queue: JobQueueSpec.model_validate(
                    STACK
                    | {
                        "retry": {
                            "maxAttempts": max_attempts,
                            "initialBackoff": "1s",
                            "maxBackoff": "1s",
                            "jitter": "none",
                        }
                    }
                )
            },
        )
        secrets = {
            "stack.redis.url": self.redis_url,
            "stack.mongodb.uri": self.mongo_url,
            credential_key("Bucket", "media", "accessKeyId"): self.s3.access_key,
            credential_key("Bucket", "media", "secretAccessKey"): self.s3.secret_key,
        }
        (self.directory / "credentials.json").write_text(json.dumps(secrets))
        (self.directory / "config.json").write_text(config.canonical_json())

    async def service(self) -> FileService:
        if self.buckets is None:
            await self.runtime.start()

            async def loaded() -> bool:
                return self.runtime.live.current is not None

            await until(loaded, 10, "the config loaded")
            self.buckets = Buckets(self.runtime)
        return self.buckets.service("media")

    def start_worker(self, cluster: dict[str, str] | None = None) -> ManagedProcess:
        """Start it; `cluster` (STACKYARD_STACK and KUBECONFIG) makes it write status."""
        port = free_port()
        env = {
            "STACKYARD_CONFIG_DIR": str(self.directory),
            "STACKYARD_BUCKET_ROOT": str(self.directory / "buckets"),
            "STACKYARD_PORT": str(port),
            "STACKYARD_HOST": "127.0.0.1",
            "STACKYARD_STACK": "",
        } | (cluster or {})
        self.process = ManagedProcess("worker", [WORKER], self.directory / "worker.log", env=env)
        self.process.start().wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 30, "ready"
        )
        return self.process

    def log(self) -> str:
        return self.process.log_path.read_text() if self.process else ""

    async def enqueue(self, jobs: JobClient, function: str, payload: dict[str, Any]) -> str:
        """A job on the Bucket's queue, as the operator's Schedule or the api would put it."""
        queue = queues_from_config(self.runtime.config.config.job_queues)[self.queue]
        request = EnqueueRequest(queue=self.queue, function=function, payload=payload)
        job, _ = await jobs.enqueue(queue, request, builtin=True)
        return job.id

    async def backdate(self, file_id: str, days: int, retention_days: int) -> None:
        """Make a file look uploaded `days` ago under a retention of `retention_days`."""
        assert self.buckets is not None
        past = datetime.now(UTC) - timedelta(days=days)
        expiry = past + timedelta(days=retention_days)
        await self.buckets.service("media").files.update_one(
            {"_id": file_id}, {"$set": {"createdAt": past, "expiresAt": expiry}}
        )

    def objects(self) -> set[str]:
        listed = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return {item["Key"] for item in listed.get("Contents", [])}

    async def close(self) -> None:
        if self.process:
            self.process.stop()
        if self.buckets is not None:
            await self.buckets.close()
            await self.runtime.mongo.drop_database(self.dbname)
            await self.runtime.stop()


@pytest.fixture
async def stack(
    tmp_path: Path, redis_server: Any, mongo_server: Any, s3_server: S3Server
) -> AsyncIterator[StorageStack]:
    built = StorageStack(tmp_path, redis_server.url, mongo_server.url, s3_server)
    yield built
    await built.close()


@pytest.fixture
async def jobs(redis_server: Any) -> AsyncIterator[JobClient]:
    redis = redis_client(redis_server.url)
    yield JobClient(redis)
    await redis.aclose()


@pytest.fixture
def own_clamd(tmp_path: Path) -> Iterator[ClamdServer]:
    """A clamd of this test's own, not started: the test stops and starts it."""
    try:
        server = ClamdServer(None, tmp_path / "own")
    except ToolMissing as exc:
        unavailable(exc)
        raise
    yield server
    server.stop()


@pytest.fixture
def small_clamd(tmp_path: Path) -> Iterator[ClamdServer]:
    """A clamd of this test's own that takes streams of 1 MiB at most."""
    try:
        server = ClamdServer(None, tmp_path / "small", stream_max_length="1M")
    except ToolMissing as exc:
        unavailable(exc)
        raise
    server.start()
    yield server
    server.stop()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def state_of(service: FileService, file_id: str, wanted: str, timeout: float = 30) -> FileRecord:
    async def reached() -> FileRecord | None:
        record = await service.get(file_id)
        return record if record.state == wanted else None

    found: FileRecord = await until(reached, timeout, f"file {file_id} {wanted}")
    return found


async def test_eicar_is_quarantined_and_a_clean_file_becomes_available(
    stack: StorageStack, clamd: ClamdServer, jobs: JobClient
) -> None:
    stack.apply(clamd.address)
    service = await stack.service()
    stack.start_worker()
    await registered(jobs, stack.queue, SCAN)

    clean_bytes = b"%PDF-1.4\n" + os.urandom(300_000) + b"\n%%EOF\n"
    clean = await service.upload(OWNER, "report.pdf", "application/pdf", chunks(clean_bytes))
    eicar = await service.upload(OWNER, "eicar.com.txt", "text/plain", chunks(EICAR))
    hidden = await service.upload(OWNER, "notes.txt", None, chunks(b"x" * 100_000, MARKER, b"y" * 100_000))
    assert {clean.state, eicar.state, hidden.state} == {"scanning"}
    with pytest.raises(FileNotAvailable) as refused:
        service.content(await service.get(eicar.id))
    assert refused.value.extensions["state"] == "scanning"

    available = await state_of(service, clean.id, "available")
    assert available.scan is not None and (available.scan["result"], available.scan["signature"]) == ("clean", None)
    assert b"".join([part async for part in service.content(available)]) == clean_bytes

    for infected, signature in ((eicar, EICAR_SIGNATURE), (hidden, MARKER_SIGNATURE)):
        quarantined = await state_of(service, infected.id, "quarantined")
        assert quarantined.scan is not None
        assert (quarantined.scan["result"], quarantined.scan["signature"]) == ("infected", signature)
        with pytest.raises(FileNotAvailable) as refused:
            service.content(quarantined)
        assert refused.value.extensions["state"] == "quarantined"
    assert stack.objects() == {
        f"files/{clean.id}",
        f"quarantine/{eicar.id}",
        f"quarantine/{hidden.id}",
    }
    assert f"scan of file {eicar.id} in Bucket media: {EICAR_SIGNATURE}" in stack.log()
    assert f"scan of file {clean.id} in Bucket media: clean" in stack.log()


async def test_a_file_larger_than_clamds_stream_max_length_is_quarantined_as_unscannable_at_once(
    stack: StorageStack, small_clamd: ClamdServer, jobs: JobClient
) -> None:
    stack.apply(small_clamd.address)
    service = await stack.service()
    stack.start_worker()
    await registered(jobs, stack.queue, SCAN)
    small = await service.upload(OWNER, "small.bin", None, chunks(os.urandom(100_000)))
    large = await service.upload(OWNER, "large.bin", None, chunks(*[os.urandom(512 * 1024) for _ in range(6)]))
    assert {small.state, large.state} == {"scanning"}

    quarantined = await state_of(service, large.id, "quarantined")
    assert quarantined.scan is not None
    assert quarantined.scan == {"result": "unscannable", "reason": "larger than clamd's StreamMaxLength", "at": ANY}
    view = quarantined.view()
    assert view.scan is not None and (view.scan.result, view.scan.reason) == (
        "unscannable",
        "larger than clamd's StreamMaxLength",
    )
    with pytest.raises(FileNotAvailable) as refused:
        service.content(quarantined)
    assert refused.value.extensions["state"] == "quarantined"
    assert (await state_of(service, small.id, "available")).scan is not None
    assert stack.objects() == {f"files/{small.id}", f"quarantine/{large.id}"}
    log = stack.log()
    assert (
        f"scan of file {large.id} in Bucket media: unscannable (larger than clamd's StreamMaxLength), quarantined"
        in log
    )
    assert f"scan of file {large.id} in Bucket media: no verdict" not in log  # one attempt, no retry
    assert (await jobs.dead_page(stack.queue)).items == []


async def test_with_clamd_down_the_scan_is_retried_and_the_file_waits_until_clamd_is_back(
    stack: StorageStack, own_clamd: ClamdServer, jobs: JobClient
) -> None:
    stack.apply(own_clamd.address)  # not started yet: nothing listens there
    service = await stack.service()
    stack.start_worker()
    await registered(jobs, stack.queue, SCAN)
    uploaded = await service.upload(OWNER, "photo.bin", None, chunks(os.urandom(50_000)))
    assert uploaded.state == "scanning"

    def failed_attempts() -> list[str]:
        return re.findall(
            rf"scan of file {uploaded.id} in Bucket media: no verdict \(attempt (\d+) of 60\)", stack.log()
        )

    async def retried() -> bool:
        return len(failed_attempts()) >= 3

    await until(retried, 30, "three failed scan attempts")
    assert "is unreachable" in stack.log()
    record = await service.get(uploaded.id)
    assert record.state == "scanning" and record.scan is None
    with pytest.raises(FileNotAvailable):
        service.content(record)
    assert stack.objects() == {f"files/{uploaded.id}"}

    own_clamd.start()
    available = await state_of(service, uploaded.id, "available", timeout=30)
    assert available.scan is not None and available.scan["result"] == "clean"
    assert int(failed_attempts()[-1]) >= 3


async def test_a_clamd_that_stops_between_scans_delays_the_next_scan_without_losing_it(
    stack: StorageStack, own_clamd: ClamdServer, jobs: JobClient
) -> None:
    own_clamd.start()
    stack.apply(own_clamd.address)
    service = await stack.service()
    stack.start_worker()
    await registered(jobs, stack.queue, SCAN)
    first = await service.upload(OWNER, "a.txt", None, chunks(b"first file\n"))
    await state_of(service, first.id, "available")

    own_clamd.stop()
    second = await service.upload(OWNER, "b.txt", None, chunks(b"second file\n"))

    async def retried() -> bool:
        return f"scan of file {second.id} in Bucket media: no verdict (attempt 2 of 60)" in stack.log()

    await until(retried, 30, "a second scan attempt")
    assert (await service.get(second.id)).state == "scanning"
    own_clamd.start()
    done = await state_of(service, second.id, "available")
    assert done.scan is not None and done.scan["result"] == "clean"


async def test_the_retention_job_deletes_expired_files_and_keeps_the_others(
    stack: StorageStack, clamd: ClamdServer, jobs: JobClient
) -> None:
    stack.apply(clamd.address, retention={"days": 7}, scan={"enabled": False})
    service = await stack.service()
    stack.start_worker()
    await registered(jobs, stack.queue, SCAN)
    old = await service.upload(OWNER, "old.txt", None, chunks(b"o" * 1000))
    new = await service.upload(OWNER, "new.txt", None, chunks(b"n" * 10))
    assert old.expires_at is not None and old.expires_at - old.created_at == timedelta(days=7)
    await stack.backdate(old.id, days=8, retention_days=7)
    job_id = await stack.enqueue(jobs, RETENTION, {"bucket": "media"})

    async def finished() -> Any:
        found = await jobs.get(job_id)
        return found if found is not None and found.result is not None else None

    done = await until(finished, 30, "the retention job's result")
    assert done.result == {"bucket": "media", "deleted": 1, "bytes": 1000}
    with pytest.raises(FileNotFound):
        await service.get(old.id)
    assert (await service.get(new.id)).state == "available"
    assert stack.objects() == {f"files/{new.id}"}
    assert "retention sweep of Bucket media: 1 files deleted, 1000 bytes freed" in stack.log()


async def test_a_scan_job_for_an_unknown_bucket_or_a_bad_payload_is_dead_lettered_at_once(
    stack: StorageStack, clamd: ClamdServer, jobs: JobClient
) -> None:
    stack.apply(clamd.address)
    await stack.service()
    stack.start_worker()
    await registered(jobs, stack.queue, SCAN)
    for payload in ({"bucket": "nope", "fileId": "f_x"}, {"bucket": "media"}):
        await stack.enqueue(jobs, SCAN, payload)

    async def dead() -> Any:
        items = (await jobs.dead_page(stack.queue)).items
        return items if len(items) == 2 else None

    errors = [job.last_error or "" for job in await until(dead, 30, "two dead-lettered scan jobs")]
    assert any("no Bucket 'nope' in the Stack's config" in error for error in errors), errors
    assert any('the payload must be {"bucket": "…", "fileId": "…"}' in error for error in errors), errors
    assert all("NonRetryable" in error for error in errors), errors


async def test_the_worker_writes_the_buckets_reachable_status_and_its_last_retention(
    stack: StorageStack, clamd: ClamdServer, jobs: JobClient, cluster: KubeCluster, namespace: Any
) -> None:
    """With STACKYARD_STACK set, the Bucket's status says it is Reachable (with the round
    trip) and how the latest retention sweep went; no credential in either."""
    stack.namespace = namespace.name
    stack.apply(clamd.address, retention={"days": 1}, scan={"enabled": False})
    assert stack.spec is not None
    spec = stack.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    namespace.apply(
        [{"apiVersion": "stackyard.dev/v1alpha1", "kind": "Bucket", "metadata": {"name": "media"}, "spec": spec}]
    )
    service = await stack.service()
    stack.start_worker({"STACKYARD_STACK": "demo", "KUBECONFIG": str(cluster.kubeconfig)})
    await registered(jobs, stack.queue, SCAN)

    def status() -> dict[str, Any]:
        return (namespace.get("buckets.stackyard.dev", "media") or {}).get("status") or {}

    async def reachable() -> Any:
        found = [c for c in status().get("conditions", []) if c["type"] == "Reachable"]
        return found[0] if found else None

    condition = await until(reachable, 30, "the Reachable condition of Bucket media")
    assert (condition["status"], condition["reason"]) == ("True", "Reachable"), condition
    assert condition["message"].startswith(f"S3 bucket {stack.bucket}: probe written, read and deleted in ")
    assert status()["reachable"]["roundTripMs"] > 0

    old = await service.upload(OWNER, "old.txt", None, chunks(b"o" * 200))
    await stack.backdate(old.id, days=2, retention_days=1)
    await stack.enqueue(jobs, RETENTION, {"bucket": "media"})

    async def recorded() -> Any:
        return status().get("lastRetention")

    last = await until(recorded, 30, "status.lastRetention of Bucket media")
    assert (last["deleted"], last["bytes"], last.get("error")) == (1, 200, None) and last["at"].endswith("Z")
    text = json.dumps(status())
    assert stack.s3.secret_key not in text and stack.s3.access_key not in text
