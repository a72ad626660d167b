"""Debian's redis-server on a free loopback port with a throw-away directory."""

from __future__ import annotations

from pathlib import Path

import redis

from .process import ManagedProcess, free_port
from .tools import Tools


def _ping(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as client:
        return bool(client.ping())


DATABASES = 64
"""Databases 0-63: the test modules that need a Redis of their own take one each."""


class RedisServer:
    name = "redis"

    def __init__(self, tools: Tools, run_dir: Path, *, appendonly: bool = False, appendfsync: str = "everysec") -> None:
        self.binary = tools.require("redis-server")
        self.dir = run_dir / "redis"
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "redis",
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir,
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                self.appendfsync,
                "--daemonize",
                "no",
                "--databases",
                str(DATABASES),
                "--loglevel",
                "warning",
            ],
            self.dir.parent / "redis.log",
        ).start()
        self.process.wait_ready(lambda: _ping(self.port), 15, "answering PING")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        """Crash it (SIGKILL); `start()` again brings it back on the same port and directory."""
        if self.process:
            self.process.kill()

    def env(self) -> dict[str, str]:
        return {"STACKYARD_REDIS_URL": self.url}

    def describe(self) -> str:
        return f"redis           {self.url}"
