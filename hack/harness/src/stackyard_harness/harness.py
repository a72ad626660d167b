"""Start a set of the real servers, report where they are, stop them all."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Protocol

from .clamav import ClamdServer
from .kube import KubeCluster
from .mongo import MongoServer
from .otel import OtelCollector
from .process import HarnessError
from .redis import RedisServer
from .redis_cluster import RedisCluster
from .s3 import S3Server
from .tools import REPO_ROOT, Tools


class Service(Protocol):
    name: str

    def start(self) -> Service: ...
    def stop(self) -> None: ...
    def env(self) -> dict[str, str]: ...
    def describe(self) -> str: ...


SERVICES = {
    "kube": KubeCluster,
    "redis": RedisServer,
    "redis-cluster": RedisCluster,
    "mongo": MongoServer,
    "otel": OtelCollector,
    "s3": S3Server,
    "clamd": ClamdServer,
}
# What `stackyard-harness servers` starts when no names are given (the cluster only on request).
DEFAULT_SERVERS = ["kube", "redis", "mongo", "otel"]
RUNS_KEPT = 5


def new_run_dir() -> Path:
    """A directory for this run's data and logs, under .stackyard/runs (old runs pruned,
    but never one whose process still runs: a test session and `make bench` side by side)."""
    runs = Path(os.environ.get("STACKYARD_RUNS", REPO_ROOT / ".stackyard" / "runs"))
    runs.mkdir(parents=True, exist_ok=True)
    for old in sorted(runs.iterdir())[:-RUNS_KEPT]:
        if not _owner_alive(old):
            shutil.rmtree(old, ignore_errors=True)
    run = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    run.mkdir()
    return run


def _owner_alive(run: Path) -> bool:
    """Whether the process that made `run` (<time>-<pid>) is still running (this one too:
    a test session that starts a second Harness keeps using its first run's servers)."""
    pid = run.name.rpartition("-")[2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


class Harness:
    """Starts services on demand, each once; `stop()` stops them in reverse order."""

    def __init__(self, run_dir: Path | None = None, tools: Tools | None = None) -> None:
        self.run_dir = run_dir or new_run_dir()
        self.tools = tools or Tools.locate()
        self.started: dict[str, Service] = {}

    def service(self, name: str) -> Service:
        if name not in self.started:
            if name not in SERVICES:
                raise HarnessError(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
            t0 = time.monotonic()
            progress(f"starting {name}")
            service = SERVICES[name](self.tools, self.run_dir)
            self.started[name] = service.start()
            progress(f"{name} ready in {time.monotonic() - t0:.1f} s")
        return self.started[name]

    def start(self, names: list[str]) -> Harness:
        for name in names:
            self.service(name)
        return self

    def stop(self) -> None:
        for name in reversed(list(self.started)):
            self.started.pop(name).stop()

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for service in self.started.values():
            env.update(service.env())
        return env

    def write_env_file(self, path: Path) -> Path:
        return write_exports(path, self.env())

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_exports(path: Path, env: dict[str, str]) -> Path:
    """`env` as shell exports, for `source` (readable by the owner only: it may hold keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items())))
    return path
