"""A multipart upload larger than the api process may hold in memory (issue 11).

The real api (`stackyard-api` over a config directory as the operator renders it: one S3
Bucket on the harness's MinIO, Redis and FerretDB from the harness) runs as a process of its
own. Once it has served one small multipart upload (warm: its lazy imports done, its
connection pools and threads made), its address space is capped with
`prlimit(RLIMIT_AS)` at its VmSize then + HEADROOM. A file several times larger than the
headroom is then sent as multipart/form-data to `POST /v1/files`, generated on the fly
(nothing of that size in the test either), hashed on the way; the api must answer 201,
the object in MinIO must have the file's size and sha256, and the api must still be alive.
A process that held the file (or any sizeable part of it) would get MemoryError (or die)
under the cap.

HEADROOM, measured (2 cores, CPython 3.11, glibc 2.36): the warm api at rest has VmSize 625-666
MiB (VmRSS 170-210 MiB; 7 threads, no new thread during the upload, so no new 64 MiB malloc
arena or 8 MiB stack to fit in). During the 768 MiB upload its VmSize grew 7-41 MiB
(sampled every 20 ms) and its VmHWM 8-41 MiB (the parts in flight: two 8 MiB parts on their
way to MinIO while the next is received). Capped at VmSize + 0 or + 16 MiB the same upload
failed (503 "UploadPart failed", or 500); at + 48 MiB it passed. 160 MiB is over 3x
the measured need, so the test does not depend on the allocator's luck, and still 4.8x
smaller than the file.

The control (`test_the_cap_is_in_force_and_bites`) shows the cap in the api's
/proc/<pid>/limits and that the same cap, computed the same way, stops a process holding
the file: a Python process capped at its VmSize + HEADROOM allocates half the headroom but
gets MemoryError for the file's size. (Lowering the api's own soft limit to no headroom does
refuse uploads, but not reliably: after a large upload glibc keeps freed heap that a later
upload may fit in, so that is measured here, not asserted.)

About 15-25 s on 2 cores (the upload, and reading the object back from MinIO to hash it).
"""

from __future__ import annotations

import hashlib
import os
import resource
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from stackyard_harness.api_process import MemorySampler, multipart_body, proc_status_kib, start_api, write_bucket_config
from stackyard_harness.process import ManagedProcess
from stackyard_harness.s3 import S3Server

MIB = 1024 * 1024
HEADROOM = 160 * MIB
FILE_SIZE = 768 * MIB  # 4.8x the headroom
WARM_SIZE = 24 * MIB  # three S3 parts: the multipart path (CreateMultipartUpload, UploadPart, Complete)
SEND_CHUNK = MIB
OWNER = "memory-owner"
BUCKET = "media"
TIMEOUT = httpx.Timeout(120.0, connect=10.0)


# -- the api process ----------------------------------------------------------------------------


def address_space_limit(pid: int) -> tuple[str, str]:
    """The soft and hard "Max address space" of /proc/<pid>/limits, as written there."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            soft, hard = line[len("Max address space") :].split()[:2]
            return soft, hard
    raise AssertionError(f"no 'Max address space' in /proc/{pid}/limits")


def cap(pid: int) -> int:
    """RLIMIT_AS of `pid` at its VmSize now + HEADROOM (soft and hard); returns the limit."""
    limit = proc_status_kib(pid)["VmSize"] * 1024 + HEADROOM
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
    return limit


def chunks(size: int, digest: Any) -> Iterator[bytes]:
    """`size` bytes, SEND_CHUNK at a time, each chunk distinct (a random 8 MiB block with the
    chunk's number in front), fed to `digest` on the way."""
    block = os.urandom(8 * MIB)
    sent = 0
    number = 0
    while sent < size:
        start = (number * SEND_CHUNK) % len(block)
        piece = number.to_bytes(8, "big") + block[start + 8 : start + min(SEND_CHUNK, size - sent)]
        digest.update(piece)
        yield piece
        sent += len(piece)
        number += 1


@dataclass
class Api:
    process: ManagedProcess
    http: httpx.Client
    s3: S3Server
    bucket: str
    at_rest: dict[str, int]
    limit: int

    @property
    def pid(self) -> int:
        assert self.process.proc is not None
        return self.process.proc.pid

    def upload(self, size: int, filename: str) -> tuple[httpx.Response, str]:
        """POST /v1/files, multipart, streamed; (the answer, the sha256 of what was sent)."""
        digest = hashlib.sha256()
        body, headers = multipart_body(chunks(size, digest), size, filename)
        answer = self.http.post("/v1/files", params={"owner": OWNER, "bucket": BUCKET}, headers=headers, content=body)
        return answer, digest.hexdigest()

    def stored(self, file_id: str) -> tuple[int, str]:
        """(size, sha256) of the object in MinIO, read back 1 MiB at a time."""
        got = self.s3.client().get_object(Bucket=self.bucket, Key=f"files/{file_id}")
        digest, size = hashlib.sha256(), 0
        for piece in got["Body"].iter_chunks(MIB):
            digest.update(piece)
            size += len(piece)
        return size, digest.hexdigest()


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, redis_server: Any, mongo_server: Any
) -> Iterator[Api]:
    """The api, warm, then capped at its VmSize + HEADROOM."""
    directory = tmp_path_factory.mktemp("storage-memory")
    admin_key = secrets.token_urlsafe(24)
    bucket = s3_server.create_bucket("memory")
    write_bucket_config(
        directory / "config",
        s3_server,
        bucket,
        redis_server.url,
        mongo_server.url,
        admin_key,
        name=BUCKET,
        limits={"maxObjectSize": "1Gi"},
        database=f"mem_{uuid.uuid4().hex[:10]}",
    )
    process, url = start_api(directory / "config", directory, timeout=60)
    http = httpx.Client(base_url=url, timeout=TIMEOUT, headers={"Authorization": f"Bearer {admin_key}"})
    try:
        holder = Api(process, http, s3_server, bucket, {}, 0)
        warm, _ = holder.upload(WARM_SIZE, "warm.bin")
        assert warm.status_code == 201, warm.text[:500]
        holder.at_rest = proc_status_kib(holder.pid)
        holder.limit = cap(holder.pid)
        yield holder
    finally:
        http.close()
        process.stop()


def test_a_multipart_upload_several_times_the_headroom_is_stored_whole(api: Api) -> None:
    # the capped process, at rest, still answers (arenas and threads fit in the headroom)
    assert api.http.get("/v1/config").status_code == 200
    Path(f"/proc/{api.pid}/clear_refs").write_text("5")  # VmHWM back to the current RSS
    before = proc_status_kib(api.pid)

    with MemorySampler(api.pid) as sampled:
        answer, sent_sha256 = api.upload(FILE_SIZE, "large.bin")

    after = proc_status_kib(api.pid)
    growth = (after["VmHWM"] - before["VmRSS"]) / 1024
    seen = (
        f"VmSize at rest {api.at_rest['VmSize'] / 1024:.0f} MiB, limit {api.limit / MIB:.0f} MiB"
        f" (headroom {HEADROOM // MIB} MiB), VmSize max during the upload {sampled.vm_size / 1024:.0f} MiB"
        f" ({sampled.samples} samples); VmRSS before {before['VmRSS'] / 1024:.0f} MiB, max during"
        f" {sampled.vm_rss / 1024:.0f} MiB, VmHWM after {after['VmHWM'] / 1024:.0f} MiB (+{growth:.0f} MiB);"
        f" threads {before['Threads']} -> {after['Threads']}"
    )
    print(seen)
    assert answer.status_code == 201, f"{answer.status_code} {answer.text[:500]}; {seen}"
    assert api.process.running, f"the api exited ({api.process.proc and api.process.proc.returncode}); {seen}"
    record = answer.json()
    assert record["size"] == FILE_SIZE, seen
    assert record["sha256"] == sent_sha256, seen
    assert api.stored(record["id"]) == (FILE_SIZE, sent_sha256), seen
    assert growth < HEADROOM / MIB, seen


def test_the_cap_is_in_force_and_bites(api: Api) -> None:
    """The control: the kernel holds the api to the cap (its /proc/<pid>/limits), and the same
    cap, computed the same way, stops a process that tries to hold the file: a Python process
    capped at its VmSize + HEADROOM allocates half the headroom, not the file's size."""
    assert address_space_limit(api.pid) == (str(api.limit), str(api.limit))
    program = (
        "import sys\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        f"some = bytearray({HEADROOM // 2})\n"
        "print('half the headroom: allocated', flush=True)\n"
        "try:\n"
        f"    whole = bytearray({FILE_SIZE})\n"
        "    print('the whole file: allocated', flush=True)\n"
        "except MemoryError:\n"
        "    print('the whole file: MemoryError', flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        limit = cap(child.pid)
        assert address_space_limit(child.pid) == (str(limit), str(limit))
        out, _ = child.communicate("go\n", timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert out.splitlines() == ["half the headroom: allocated", "the whole file: MemoryError"], out
