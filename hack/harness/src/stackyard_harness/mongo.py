"""A MongoDB wire-protocol server: FerretDB 1.x on its SQLite backend, with a
throw-away data directory (see docs/testing.md for what it lacks next to MongoDB)."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from .process import ManagedProcess, free_port, tcp_open
from .tools import Tools


class MongoServer:
    name = "ferretdb"

    def __init__(self, tools: Tools, run_dir: Path) -> None:
        self.binary = tools.require("ferretdb")
        self.dir = run_dir / "ferretdb"
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> MongoServer:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "ferretdb",
            [
                self.binary,
                "--handler=sqlite",
                f"--sqlite-url=file:{self.dir / 'data'}/",
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

    def env(self) -> dict[str, str]:
        return {"STACKYARD_MONGODB_URL": self.url}

    def describe(self) -> str:
        return f"ferretdb        {self.url}"
