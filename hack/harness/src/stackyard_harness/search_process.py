"""The search component (`stackyard-search`) as a process of its own, over a config directory
as the operator renders it (the harness's file config; see auth_stack and api_process) and a
data directory that outlives the process, so that a test can kill it (SIGKILL) and start it
again on the same files and port.

    search = SearchProcess(config_dir, data_dir, log_dir / "search.log").start()
    search.wait_index("products", admin_key)        # the config's index is served
    search.kill(); search.start()                    # a crash, then the restart
    search.stop()

`write_search_config` writes a config directory with SearchIndexes only (the search component
needs no Redis, and MongoDB only for a synced index).

stackyard (core) is not imported here: the harness itself does not depend on it."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from .process import ManagedProcess, free_port


def write_search_config(
    directory: Path,
    indexes: Mapping[str, Mapping[str, Any]],
    admin_key: str,
    *,
    mongo_url: str = "mongodb://127.0.0.1:1",
    redis_url: str = "redis://127.0.0.1:1/0",
    database: str = "search",
    generation: int = 1,
    extra_credentials: Mapping[str, str] | None = None,
) -> None:
    """config.json and credentials.json in `directory`: a Stack `demo` whose SearchIndexes are
    `indexes` (name -> spec without stackRef, camelCase), its MongoDB database `database` on
    `mongo_url` (the search component reaches MongoDB only for a synced index)."""
    from stackyard.config import RuntimeConfig
    from stackyard.resources.search import SearchIndexSpec
    from stackyard.resources.stack import StackSpec

    directory.mkdir(parents=True, exist_ok=True)
    spec = StackSpec.model_validate(
        {
            "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
            "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}, "database": database},
        }
    )
    config = RuntimeConfig(
        stack="demo",
        namespace="ns",
        generation=generation,
        spec=spec,
        search_indexes={
            name: SearchIndexSpec.model_validate({"stackRef": {"name": "demo"}, **index})
            for name, index in indexes.items()
        },
    )
    credentials = {
        "stack.redis.url": redis_url,
        "stack.mongodb.uri": mongo_url,
        "stack.auth.adminApiKey": admin_key,
    } | dict(extra_credentials or {})
    credentials_file = directory / "credentials.json"
    credentials_file.write_text(json.dumps(credentials))
    credentials_file.chmod(0o600)
    (directory / "config.json").write_text(config.canonical_json())


class SearchProcess:
    def __init__(
        self,
        config_dir: Path,
        data_dir: Path,
        log_path: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.process: ManagedProcess | None = None

    @property
    def pid(self) -> int | None:
        return self.process.proc.pid if self.process is not None and self.process.proc is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def start(self, timeout: float = 60.0) -> SearchProcess:
        """Start it (the console script next to this Python) and wait until it is ready (its
        config loaded); the same port and data directory every time."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "STACKYARD_CONFIG_DIR": str(self.config_dir),
            "STACKYARD_SEARCH_DATA": str(self.data_dir),
            "STACKYARD_PORT": str(self.port),
            "STACKYARD_HOST": "127.0.0.1",
            "STACKYARD_STACK": "",
            "STACKYARD_LOG_LEVEL": os.environ.get("STACKYARD_LOG_LEVEL", "info"),
        } | self.env
        program = Path(sys.executable).with_name("stackyard-search")
        self.process = ManagedProcess("stackyard-search", [program], self.log_path, env=settings).start()
        self.process.wait_ready(self._ready, timeout, "ready")
        return self

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200

    def wait_index(self, name: str, api_key: str, timeout: float = 30.0) -> dict[str, Any]:
        """GET /v1/indexes/<name> once the component serves that index (it applies a new config
        a moment after loading it): the index's stats."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"{self.url}/v1/indexes/{name}", headers=self.headers(api_key), timeout=2)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if answer.status_code == 200:
                    return dict(answer.json())
                last = f"{answer.status_code} {answer.text[:200]}"
            time.sleep(0.05)
        raise AssertionError(f"the search component did not serve index {name} in {timeout:.0f} s: {last}")

    def wait_indexes(self, names: set[str], api_key: str, timeout: float = 30.0) -> None:
        """Until GET /v1/indexes lists exactly `names` (a new config applied to the indexes)."""
        deadline = time.monotonic() + timeout
        served: set[str] | str = ""
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(
                    f"{self.url}/v1/indexes", params={"limit": 1000}, headers=self.headers(api_key), timeout=2
                )
                if answer.status_code == 200:
                    served = {index["uid"] for index in answer.json()["results"]}
                    if served == names:
                        return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the search component serves {served or 'nothing'}, not {sorted(names)}")

    @staticmethod
    def headers(api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill: nothing is flushed, nothing is finished."""
        if self.process is not None and self.process.proc is not None and self.process.running:
            self.process.proc.send_signal(signal.SIGKILL)
            self.process.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the task being processed finishes), SIGKILL after `timeout` seconds."""
        if self.process is not None:
            self.process.stop(timeout)
