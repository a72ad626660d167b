"""A MongoDB wire-protocol server: FerretDB 1.x on its SQLite backend, with a
throw-away data directory (see docs/testing.md for what it lacks next to MongoDB).

With STACKYARD_FERRETDB_BACKEND=postgresql, FerretDB stores in a throw-away PostgreSQL
cluster (Debian's postgresql) instead: slower to start, but its updates do not read the
whole collection as SQLite's do, which is what `make bench` wants (bench/README.md)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from pymongo import MongoClient

from .process import HarnessError, ManagedProcess, free_port, tcp_open
from .tools import Tools

BACKEND_ENV = "STACKYARD_FERRETDB_BACKEND"


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory, run as the `postgres` user when root."""

    def __init__(self, log_dir: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not found:
            raise HarnessError(f"{BACKEND_ENV}=postgresql needs Debian's postgresql (apt-get install postgresql)")
        self.bin = Path(found[-1]).parent
        self.log_dir = log_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="stackyard-pg-"))
        self.process: ManagedProcess | None = None
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        data = self.dir / "data"
        subprocess.run(
            [*self.as_user, str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        self.process = ManagedProcess(
            "postgres",
            [
                *self.as_user,
                str(self.bin / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            self.log_dir / "postgres.log",
        ).start()
        self.process.wait_ready(lambda: tcp_open(self.port), 30, "accepting connections")

    def stop(self) -> None:
        if self.process:
            self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class MongoServer:
    name = "ferretdb"

    def __init__(self, tools: Tools, run_dir: Path) -> None:
        self.binary = tools.require("ferretdb")
        self.dir = run_dir / "ferretdb"
        self.port = free_port()
        self.process: ManagedProcess | None = None
        self.backend = os.environ.get(BACKEND_ENV, "sqlite")
        if self.backend not in ("sqlite", "postgresql"):
            raise HarnessError(f"{BACKEND_ENV} must be sqlite or postgresql, not {self.backend!r}")
        self.postgres: PostgresCluster | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> MongoServer:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        storage = ["--handler=sqlite", f"--sqlite-url=file:{self.dir / 'data'}/"]
        if self.backend == "postgresql":
            self.postgres = PostgresCluster(self.dir.parent)
            self.postgres.start()
            storage = ["--handler=postgresql", f"--postgresql-url={self.postgres.url}"]
        self.process = ManagedProcess(
            "ferretdb",
            [
                self.binary,
                *storage,
                f"--listen-addr=127.0.0.1:{self.port}",
                f"--state-dir={self.dir}",
                f"--debug-addr=127.0.0.1:{free_port()}",
                "--telemetry=disable",
                "--log-level=warn",
            ],
            self.dir.parent / "ferretdb.log",
        ).start()
        self.process.wait_ready(self._answers_ping, 30, "answering a MongoDB ping")
        return self

    def _answers_ping(self) -> bool:
        if not tcp_open(self.port):
            return False
        with MongoClient(self.url, serverSelectionTimeoutMS=1000) as client:
            return bool(client.admin.command("ping").get("ok"))

    def stop(self) -> None:
        if self.process:
            self.process.stop()
        if self.postgres:
            self.postgres.stop()

    def env(self) -> dict[str, str]:
        return {"STACKYARD_MONGODB_URL": self.url}

    def describe(self) -> str:
        return f"ferretdb        {self.url}" + (" (on PostgreSQL)" if self.backend == "postgresql" else "")
