"""MinIO, built from its Go module by `make tools`: the S3-compatible server of the storage
tests, on a free loopback port with a throw-away data directory and its own root keys."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path
from typing import Any

import botocore.session
import httpx
from botocore.config import Config

from .process import ManagedProcess, free_port, tcp_open
from .tools import Tools

REGION = "us-east-1"


class S3Server:
    name = "s3"

    def __init__(self, tools: Tools, run_dir: Path) -> None:
        self.binary = tools.require("minio")
        self.dir = run_dir / "minio"
        self.port = free_port()
        self.console_port = free_port()
        self.access_key = "stackyard-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        self.region = REGION
        self.process: ManagedProcess | None = None
        self._buckets = itertools.count(1)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "minio",
            [
                self.binary,
                "server",
                str(self.dir / "data"),
                "--address",
                f"127.0.0.1:{self.port}",
                "--console-address",
                f"127.0.0.1:{self.console_port}",
                "--quiet",
            ],
            self.dir.parent / "minio.log",
            env={
                "MINIO_ROOT_USER": self.access_key,
                "MINIO_ROOT_PASSWORD": self.secret_key,
                "MINIO_REGION": self.region,
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
                "MINIO_CI_CD": "1",
            },
        ).start()
        self.process.wait_ready(self._live, 60, "answering its liveness probe")
        return self

    def _live(self) -> bool:
        if not tcp_open(self.port):
            return False
        return httpx.get(f"{self.endpoint}/minio/health/live", timeout=1).status_code == 200

    def client(self) -> Any:
        """A synchronous botocore S3 client with the root keys (for test set-up and checks)."""
        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            region_name=self.region,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def create_bucket(self, prefix: str = "test") -> str:
        """A new, empty bucket; returns its name."""
        name = f"{prefix}-{next(self._buckets)}-{secrets.token_hex(3)}".lower()
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def env(self) -> dict[str, str]:
        return {
            "STACKYARD_S3_ENDPOINT": self.endpoint,
            "STACKYARD_S3_ACCESS_KEY": self.access_key,
            "STACKYARD_S3_SECRET_KEY": self.secret_key,
            "STACKYARD_S3_REGION": self.region,
        }

    def describe(self) -> str:
        return f"minio (S3)      {self.endpoint}"
