"""The real api (`stackyard-api`) as a process of its own, over a config directory as the
operator renders it (a Stack with one S3 Bucket on the harness's MinIO, Redis and FerretDB from
the harness), and what the storage bench and tests measure it with: its /proc/<pid>/status, a
thread sampling its peak VmSize and VmRSS, and a streamed multipart/form-data upload body.

stackyard (core) is imported where it is used: the harness itself does not depend on it."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from .auth_stack import signing_keys
from .process import ManagedProcess, free_port
from .s3 import S3Server

SAMPLE_EVERY = 0.02  # seconds between two reads of /proc/<pid>/status in MemorySampler


def write_bucket_config(
    directory: Path,
    s3: S3Server,
    bucket: str,
    redis_url: str,
    mongo_url: str,
    admin_key: str,
    *,
    name: str = "default",
    limits: Mapping[str, Any] | None = None,
    database: str | None = None,
    stack: str = "demo",
) -> None:
    """config.json and credentials.json in `directory`: a Stack `stack` (in a namespace of the
    same name) with one Bucket `name` on the MinIO bucket `bucket` (its `limits`, camelCase as in
    a Bucket's spec, when given), its MongoDB database `database` (a fresh one when None)."""
    from stackyard.config import RuntimeConfig, credential_key
    from stackyard.resources.bucket import BucketSpec
    from stackyard.resources.stack import StackSpec

    directory.mkdir(parents=True, exist_ok=True)
    spec = StackSpec.model_validate(
        {
            "redis": {"urlSecretRef": {"name": "backends", "key": "redis"}},
            "mongodb": {
                "uriSecretRef": {"name": "backends", "key": "mongodb"},
                "database": database or f"api_{uuid.uuid4().hex[:10]}",
            },
        }
    )
    bucket_spec: dict[str, Any] = {
        "stackRef": {"name": stack},
        "backend": {
            "s3": {
                "endpoint": s3.endpoint,
                "region": s3.region,
                "bucket": bucket,
                "pathStyle": True,
                "accessKeyIdSecretRef": {"name": "s3", "key": "id"},
                "secretAccessKeySecretRef": {"name": "s3", "key": "secret"},
            }
        },
    }
    if limits is not None:
        bucket_spec["limits"] = dict(limits)
    config = RuntimeConfig(
        stack=stack,
        namespace=stack,
        generation=1,
        spec=spec,
        buckets={name: BucketSpec.model_validate(bucket_spec)},
    )
    credentials = stack_credentials(redis_url, mongo_url) | {
        "stack.auth.adminApiKey": admin_key,
        credential_key("Bucket", name, "accessKeyId"): s3.access_key,
        credential_key("Bucket", name, "secretAccessKey"): s3.secret_key,
    }
    write_config_dir(directory, config.canonical_json(), credentials)


def stack_credentials(redis_url: str, mongo_url: str) -> dict[str, str]:
    """The credentials every Stack's api needs: Redis, MongoDB, a signing key set (EdDSA, see
    `signing_keys`) and an encryption key, as the operator first makes them."""
    return {
        "stack.redis.url": redis_url,
        "stack.mongodb.uri": mongo_url,
        "stack.auth.signingKeys": signing_keys(),
        "stack.auth.encryptionKey": base64.b64encode(os.urandom(32)).decode(),
    }


def write_config_dir(directory: Path, config_json: str, credentials: Mapping[str, str]) -> None:
    """A config directory as the api reads it: config.json, and credentials.json (mode 600)."""
    directory.mkdir(parents=True, exist_ok=True)
    credentials_file = directory / "credentials.json"
    credentials_file.write_text(json.dumps(dict(credentials)))
    credentials_file.chmod(0o600)
    (directory / "config.json").write_text(config_json)


def start_api_script(script: Path, directory: Path) -> tuple[ManagedProcess, str]:
    """A script that serves the api's app (with routes of its own, as bench/peers/auth_api.py)
    over the config `directory` on a free loopback port, its log there; returns once it serves
    /v1/config: (the process, its base URL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"STACKYARD_CONFIG_DIR": str(directory), "STACKYARD_LOG_LEVEL": "warning"}
    argv = [sys.executable, str(script), str(port)]
    server = ManagedProcess(f"{script.stem} (bench)", argv, directory / "api.log", env=env)

    def ready() -> bool:
        return httpx.get(f"{url}/v1/config", timeout=1).status_code == 200

    server.start().wait_ready(ready, 30, "serving its config")
    return server, url


def start_api(directory: Path, log_dir: Path, *, timeout: float = 120.0) -> tuple[ManagedProcess, str]:
    """`stackyard-api` (its module, with this Python) over the config `directory` on a free
    loopback port, its log in `log_dir`/api.log; returns once it serves /v1/config:
    (the process, its base URL). Stopped again when it does not within `timeout` seconds."""
    port = free_port()
    env = {"STACKYARD_CONFIG_DIR": str(directory), "STACKYARD_LOG_LEVEL": "warning", "STACKYARD_STACK": ""}
    argv = [sys.executable, "-m", "stackyard_api.main", "--host", "127.0.0.1", "--port", str(port)]
    process = ManagedProcess("stackyard-api", argv, log_dir / "api.log", env=env).start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return httpx.get(f"{url}/v1/config", timeout=1).status_code == 200

    try:
        process.wait_ready(ready, timeout, "serving its config")  # 3 s quiet, 30 s under load
    except BaseException:
        process.stop()
        raise
    return process, url


def start_worker(directory: Path, log_dir: Path, *, env: dict[str, str] | None = None) -> ManagedProcess:
    """`stackyard-worker` (next to this Python) over the config `directory` on a free loopback
    port, its log in `log_dir`/worker.log; returns once it answers /readyz."""
    port = free_port()
    settings = {
        "STACKYARD_CONFIG_DIR": str(directory),
        "STACKYARD_PORT": str(port),
        "STACKYARD_HOST": "127.0.0.1",
        "STACKYARD_STACK": "",
    } | (env or {})
    worker = Path(sys.executable).parent / "stackyard-worker"
    process = ManagedProcess("stackyard-worker", [worker], log_dir / "worker.log", env=settings)
    process.start().wait_ready(
        lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 30, "ready"
    )
    return process


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime


def proc_status_kib(pid: int) -> dict[str, int]:
    """VmSize, VmRSS and VmHWM of a process from /proc/<pid>/status (KiB), and Threads (a count)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmSize", "VmRSS", "VmHWM", "Threads"):
            found[name] = int(value.split()[0])
    return found


class MemorySampler:
    """A process's /proc/<pid>/status read every `every` seconds in a thread while a `with`
    block runs: the peak VmSize and VmRSS (KiB) and every VmRSS read (`rss`). Stops sampling,
    quietly, when the process is gone."""

    def __init__(self, pid: int, every: float = SAMPLE_EVERY) -> None:
        self.pid = pid
        self.every = every
        self.vm_size = self.vm_rss = 0
        self.rss: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def samples(self) -> int:
        return len(self.rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                now = proc_status_kib(self.pid)
            except OSError:
                return
            self.vm_size, self.vm_rss = max(self.vm_size, now["VmSize"]), max(self.vm_rss, now["VmRSS"])
            self.rss.append(now["VmRSS"])
            time.sleep(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def multipart_body(chunks: Iterator[bytes], size: int, filename: str) -> tuple[Iterator[bytes], dict[str, str]]:
    """A multipart/form-data body (one part, `file`) around `size` bytes of `chunks`, streamed
    as they come: (the body, its Content-Type and Content-Length headers)."""
    boundary = "----stackyard-" + secrets.token_hex(8)
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from chunks
        yield tail

    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),
    }
    return body(), headers
