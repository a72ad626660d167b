"""`stackyard-migrate` as real processes (what the operator's Job runs) against the real
MongoDB wire-protocol server of the harness, with a file config: three runners at once apply
each version once, a failure exits 1 and leaves the version, a SIGKILLed runner's lock is
taken over after its lease, a runner frozen past its lease neither records nor runs on
(and exits 3: run again, unlike 1, a script that failed)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from stackyard.config import RuntimeConfig, credential_key
from stackyard.db.migrations import HISTORY_COLLECTION
from stackyard.resources.database import DatabaseSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.process import ManagedProcess

from .conftest import wait_for

MIGRATE = str(Path(sys.executable).parent / "stackyard-migrate")
STACK_SPEC = StackSpec.model_validate(
    {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
)


def python_step(marker: str, sleep: float = 0.0, fail: str | None = None) -> str:
    """A migration that sleeps, then fails or inserts {marker, pid} into `effects`."""
    return textwrap.dedent(f"""\
        import asyncio, os

        async def up(db):
            await asyncio.sleep({sleep})
            if {fail!r}:
                raise RuntimeError({fail!r})
            await db.effects.insert_one({{"marker": {marker!r}, "pid": os.getpid()}})
        """)


class Runners:
    """A file config with Database `app`, its scripts directory and migrate processes."""

    def __init__(self, directory: Path, mongo_url: str) -> None:
        self.directory = directory
        self.scripts = directory / "scripts"
        self.scripts.mkdir(parents=True)
        self.config_dir = directory / "config"
        self.config_dir.mkdir()
        self.dbname = f"mig_{uuid.uuid4().hex[:10]}"
        self.client: MongoClient[Any] = MongoClient(mongo_url, tz_aware=True)
        self.db = self.client[self.dbname]
        self.processes: list[ManagedProcess] = []
        credentials = {"stack.redis.url": "redis://unused", "stack.mongodb.uri": mongo_url}
        (self.config_dir / "credentials.json").write_text(
            json.dumps(credentials | {credential_key("Database", "app", "uri"): mongo_url})
        )

    def configure(self, version: int, lease: str = "60s") -> None:
        spec = DatabaseSpec.model_validate(
            {
                "stackRef": {"name": "demo"},
                "connection": {"uriSecretRef": {"name": "db", "key": "uri"}, "database": self.dbname},
                "migrations": {"version": version, "configMapRef": {"name": "app-migrations"}, "lockLease": lease},
            }
        )
        config = RuntimeConfig(stack="demo", namespace="ns", generation=1, spec=STACK_SPEC, databases={"app": spec})
        (self.config_dir / "config.json").write_text(config.canonical_json())

    def write(self, name: str, text: str) -> None:
        (self.scripts / name).write_text(text)

    def start(self, name: str, *args: str, database: str = "app") -> ManagedProcess:
        env = {
            "STACKYARD_CONFIG_DIR": str(self.config_dir),
            "STACKYARD_MIGRATIONS_DIR": str(self.scripts),
            "STACKYARD_STACK": "",
        }
        process = ManagedProcess(
            name, [MIGRATE, "--database", database, *args], self.directory / f"{name}.log", env=env
        )
        self.processes.append(process)
        return process.start()

    def start_and_signal(self, name: str, sig: signal.Signals) -> ManagedProcess:
        """Start a runner and send it `sig` once it runs version 1."""
        process = self.start(name)
        wait_for(lambda: (self.record(1) or {}).get("status") == "running", 30, what="version 1 to start")
        assert process.proc is not None
        process.proc.send_signal(sig)
        return process

    @staticmethod
    def exit_code(process: ManagedProcess, timeout: float = 60) -> int:
        assert process.proc is not None
        try:
            return process.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{process.name} still running after {timeout}s:\n{process.log_path.read_text()}")

    def effects(self, marker: str) -> list[dict[str, Any]]:
        return list(self.db.effects.find({"marker": marker}))

    def record(self, version: int) -> dict[str, Any] | None:
        return self.db[HISTORY_COLLECTION].find_one({"_id": version})

    def close(self) -> None:
        for process in self.processes:
            if process.proc and process.proc.poll() is None:
                process.proc.send_signal(signal.SIGCONT)
            process.stop()
        self.client.drop_database(self.dbname)
        self.client.close()


@pytest.fixture
def runners(tmp_path: Path, mongo_server: Any) -> Iterator[Runners]:
    stack = Runners(tmp_path, mongo_server.url)
    yield stack
    stack.close()


def log(process: ManagedProcess) -> str:
    return process.log_path.read_text()


def test_three_runners_at_once_apply_each_version_once(runners: Runners) -> None:
    runners.configure(version=3)
    runners.write("V1__slow.py", python_step("one", sleep=4.0))
    runners.write(
        "V2__seed.json",
        '{"commands": [{"insert": "effects",'
        ' "documents": [{"marker": "two", "at": {"$date": "2026-05-01T00:00:00Z"}}]}]}',
    )
    runners.write("V3__last.py", python_step("three"))
    started = [runners.start(f"migrate-{n}") for n in "abc"]
    logs = "".join(log(process) for process in started)
    assert [runners.exit_code(process) for process in started] == [0, 0, 0], logs

    for marker in ("one", "two", "three"):
        assert len(runners.effects(marker)) == 1, marker
    assert runners.effects("two")[0]["at"].year == 2026
    assert [runners.record(v)["status"] for v in (1, 2, 3)] == ["applied"] * 3  # type: ignore[index]
    logs = "".join(log(process) for process in started)
    assert "waiting for the lock held by" in logs and logs.count("at version 3") == 3


def test_a_failing_migration_exits_1_and_the_database_stays_at_the_version_before(runners: Runners) -> None:
    runners.configure(version=2)
    runners.write("V1__ok.py", python_step("one"))
    runners.write("V2__bad.py", python_step("two", fail="column missing"))
    process = runners.start("migrate-fails")
    assert runners.exit_code(process) == 1
    assert "FAILED at version 1: RuntimeError: column missing" in log(process)
    failed = runners.record(2)
    assert failed and failed["status"] == "failed" and "column missing" in failed["error"]
    assert runners.effects("two") == []

    runners.write("V2__bad.py", python_step("two"))  # fixed; the Job runs again
    again = runners.start("migrate-fixed")
    assert runners.exit_code(again) == 0, log(again)
    assert runners.record(2)["status"] == "applied" and len(runners.effects("two")) == 1  # type: ignore[index]


def test_a_killed_runners_lock_is_taken_over_after_its_lease(runners: Runners) -> None:
    runners.configure(version=1, lease="2s")
    runners.write("V1__slow.py", python_step("one", sleep=3.0))
    runners.start_and_signal("migrate-killed", signal.SIGKILL)
    started = time.monotonic()
    successor = runners.start("migrate-successor")
    assert runners.exit_code(successor) == 0, log(successor)
    assert time.monotonic() - started > 1.5  # it waited for the lease
    assert "took over the lock from" in log(successor) and "left running by" in log(successor)
    assert len(runners.effects("one")) == 1 and runners.record(1)["attempts"] == 2  # type: ignore[index]


def test_a_runner_frozen_past_its_lease_neither_records_nor_runs_the_next_version(runners: Runners) -> None:
    runners.configure(version=2, lease="2s")
    runners.write("V1__slow.py", python_step("one", sleep=3.0))
    runners.write("V2__next.py", python_step("two"))
    frozen = runners.start_and_signal("migrate-frozen", signal.SIGSTOP)
    successor = runners.start("migrate-successor")
    assert runners.exit_code(successor) == 0, log(successor)
    frozen.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    assert runners.exit_code(frozen) == 3
    assert "lost the lock" in log(frozen)

    record = runners.record(1)
    assert record and record["status"] == "applied" and record["runner"] in log(successor)
    two = runners.effects("two")
    assert len(two) == 1 and str(two[0]["pid"]) in record["runner"]
    assert runners.record(2)["runner"] == record["runner"]  # type: ignore[index]


def test_wrong_config_or_scripts_exit_2_before_anything_runs(runners: Runners) -> None:
    runners.configure(version=3)
    runners.write("V1__a.py", python_step("a"))
    runners.write("V3__c.py", python_step("c"))
    gap = runners.start("migrate-gap")
    assert runners.exit_code(gap) == 2 and "versions missing between 1 and 3: [2]" in log(gap)
    unknown = runners.start("migrate-unknown", database="nope")
    assert runners.exit_code(unknown) == 2
    assert "no Database nope in Stack demo's config (Databases: app)" in log(unknown)
    credentials = runners.config_dir / "credentials.json"
    credentials.write_text(json.dumps({"stack.redis.url": "redis://unused", "stack.mongodb.uri": "mongodb://unused"}))
    runners.write("V2__b.py", python_step("b"))
    uncredentialed = runners.start("migrate-no-uri")
    assert runners.exit_code(uncredentialed) == 2
    assert "Database app: credential 'database.app.uri' is not in the Stack's credentials Secret" in log(uncredentialed)
    assert runners.effects("a") == [] and runners.record(1) is None


def test_sigterm_gives_the_lock_back_so_the_next_runner_does_not_wait_out_the_lease(runners: Runners) -> None:
    runners.configure(version=1, lease="120s")
    runners.write("V1__slow.py", python_step("one", sleep=3.0))
    stopped = runners.start_and_signal("migrate-stopped", signal.SIGTERM)
    assert runners.exit_code(stopped) == 3 and "stopped by SIGTERM" in log(stopped)
    successor = runners.start("migrate-next", "--wait", "20")
    assert runners.exit_code(successor) == 0, log(successor)
    assert "waiting for the lock" not in log(successor) and "left running by" in log(successor)
    assert len(runners.effects("one")) == 1
