"""The Database status that workers compute: a Runtime on a file config whose Databases point
at the harness's FerretDB (one MongoDB database per test) or at a port nobody listens on;
indexes dropped by hand, migrations run by the real Migrator. What is written to the cluster
is tested live in tests/integration/test_database_status_live.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig, credential_key
from stackyard.db.indexes import Drift, index
from stackyard.db.migrations import Migrator, load_directory
from stackyard.db.probe import ProbeResult
from stackyard.db.schema import capability_indexes
from stackyard.resources.database import DatabaseSpec
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard.status_reports import ClusterStatus
from stackyard_harness.process import free_port
from stackyard_worker.database_status import (
    DatabaseStatusReporter,
    connected_condition,
    indexes_status,
    significant,
)

PASSWORD = "db-pass-9f8e7d6c5b"
BY_EMAIL = {"collection": "things", "name": "by_email", "keys": [{"field": "email"}], "unique": True}


class Stack:
    """A config directory with Databases, and the worker's Runtime and reporter reading it."""

    def __init__(self, directory: Path, mongo_url: str) -> None:
        self.directory, self.mongo_url = directory, mongo_url
        self.generation = 0
        self.dbname = f"dbs_{uuid.uuid4().hex[:10]}"
        live = LiveConfig()
        self.runtime = Runtime("stackyard-worker", FileConfigSource(live, directory, interval=0.02), live)
        self.reporter = DatabaseStatusReporter(self.runtime, ClusterStatus(self.runtime))

    def apply(
        self, databases: dict[str, dict[str, Any]], uris: dict[str, str] | None = None, stack_database: str = ""
    ) -> None:
        self.generation += 1
        stack = {"stackRef": {"name": "demo"}}
        mongodb = {"databaseRef": {"name": stack_database}} if stack_database else {}
        config = RuntimeConfig(
            stack="demo",
            namespace="ns",
            generation=self.generation,
            spec=StackSpec.model_validate(
                {
                    "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                    "mongodb": mongodb or {"uriSecretRef": {"name": "b", "key": "m"}, "database": self.dbname},
                }
            ),
            databases={
                name: DatabaseSpec.model_validate(
                    stack | {"connection": {"uriSecretRef": {"name": name, "key": "uri"}, "database": self.dbname}} | d
                )
                for name, d in databases.items()
            },
        )
        credentials = {"stack.redis.url": "redis://127.0.0.1:1/0", "stack.mongodb.uri": self.mongo_url}
        for name in databases:
            credentials[credential_key("Database", name, "uri")] = (uris or {}).get(name, self.mongo_url)
        (self.directory / "credentials.json").write_text(json.dumps(credentials))
        (self.directory / "config.json").write_text(config.canonical_json())

    async def applied(self) -> None:
        live = self.runtime.live
        await wait_until(lambda: live.current is not None and live.current.config.generation == self.generation)

    async def check(self, name: str) -> dict[str, Any]:
        await self.applied()
        return await self.reporter.check(name, self.runtime.config.config.databases[name])


@pytest.fixture
async def stack(tmp_path: Path, mongo_server: Any) -> AsyncIterator[Stack]:
    built = Stack(tmp_path, mongo_server.url)
    await built.runtime.start()
    yield built
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_server.url)
    await client.drop_database(built.dbname)
    await client.close()
    await built.runtime.stop()


@pytest.fixture
async def db(stack: Stack, mongo_server: Any) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_server.url)
    yield client[stack.dbname]
    await client.close()


def condition(view: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in view["conditions"] if c["type"] == type_), None)


async def index_names(db: Any, collection: str) -> set[str]:
    return {i["name"] async for i in await db[collection].list_indexes()}


async def test_a_reachable_database_is_connected_with_its_indexes_in_place(stack: Stack, db: Any) -> None:
    stack.apply({"main": {"indexes": [BY_EMAIL]}})
    view = await stack.check("main")
    version = (await db.command("buildInfo"))["version"]
    connected = condition(view, "Connected")
    assert connected is not None and (connected["status"], connected["reason"]) == ("True", "Connected")
    assert connected["message"].startswith(f"MongoDB {version}, Single, ")
    assert view["server"]["version"] == version and view["server"]["topology"] == "Single"
    assert view["server"]["roundTripMs"] >= 0
    in_sync = condition(view, "IndexesInSync")
    assert in_sync is not None and (in_sync["status"], in_sync["reason"]) == ("True", "InSync"), in_sync
    assert view["indexes"] | {"checkedAt": None} == {
        "inSync": True,
        "missing": [],
        "different": [],
        "extra": [],
        "checkedAt": None,
    }
    assert "by_email" in await index_names(db, "things")  # enforce (the default) created it
    assert condition(view, "Migrated") is None and "migration" not in view


async def test_report_policy_lists_a_dropped_index_and_leaves_it_dropped(stack: Stack, db: Any) -> None:
    stack.apply({"main": {"indexes": [BY_EMAIL], "indexPolicy": "report"}})
    await db["things"].create_index("email", name="by_email", unique=True)
    assert condition(await stack.check("main"), "IndexesInSync")["status"] == "True"  # type: ignore[index]
    await db["things"].drop_index("by_email")
    view = await stack.check("main")
    drift = condition(view, "IndexesInSync")
    assert drift is not None and (drift["status"], drift["reason"]) == ("False", "Drift")
    assert drift["message"] == "missing: things.by_email; indexPolicy report: nothing changed"
    assert view["indexes"]["missing"] == ["things.by_email"] and not view["indexes"]["inSync"]
    assert "by_email" not in await index_names(db, "things")


async def test_enforce_policy_recreates_a_dropped_index_and_rebuilds_a_changed_one(stack: Stack, db: Any) -> None:
    stack.apply({"main": {"indexes": [BY_EMAIL]}})
    await stack.check("main")
    await db["things"].drop_index("by_email")
    await db["things"].create_index("email", name="by_email")  # no longer unique
    view = await stack.check("main")
    assert condition(view, "IndexesInSync")["reason"] == "InSync"  # type: ignore[index]
    found = {i["name"]: i async for i in await db["things"].list_indexes()}
    assert found["by_email"].get("unique") is True


async def test_undeclared_indexes_are_named_and_kept(stack: Stack, db: Any) -> None:
    stack.apply({"main": {"indexes": [BY_EMAIL]}})
    await db["things"].create_index("colour", name="by_colour")
    view = await stack.check("main")
    in_sync = condition(view, "IndexesInSync")
    assert in_sync is not None and in_sync["status"] == "True"
    assert "things.by_colour" in in_sync["message"] and view["indexes"]["extra"] == ["things.by_colour"]
    assert "by_colour" in await index_names(db, "things")


async def test_the_stacks_own_database_keeps_every_capabilitys_indexes_too(stack: Stack, db: Any) -> None:
    stack.apply({"main": {"indexes": [BY_EMAIL], "indexPolicy": "report"}}, stack_database="main")
    drift = condition(await stack.check("main"), "IndexesInSync")
    assert drift is not None and drift["reason"] == "Drift"
    assert "users.email_unique" in drift["message"] and "things.by_email" in drift["message"]

    stack.apply({"main": {"indexes": [BY_EMAIL]}}, stack_database="main")
    view = await stack.check("main")
    in_sync = condition(view, "IndexesInSync")
    assert in_sync is not None and in_sync["reason"] == "InSync", in_sync
    assert in_sync["message"].startswith(f"{1 + len(capability_indexes())} declared indexes in place")
    assert {"email_unique", "identity"} <= await index_names(db, "users")


def write_migrations(directory: Path, *commands: dict[str, Any]) -> Path:
    directory.mkdir()
    for version, command in enumerate(commands, start=1):
        script = {"commands": [command]}
        (directory / f"V{version}__step{version}.json").write_text(json.dumps(script))
    return directory


async def test_migrated_follows_the_history_collection(stack: Stack, db: Any, tmp_path: Path) -> None:
    scripts = write_migrations(
        tmp_path / "migrations",
        {"create": "widgets"},
        {"insert": "widgets", "documents": [{"n": 1}]},
        {"noSuchCommand": 1},
    )
    migrations = load_directory(scripts)
    stack.apply({"main": {"migrations": {"version": 3, "configMapRef": {"name": "m"}}}})

    view = await stack.check("main")
    assert condition(view, "Migrated") | {"lastTransitionTime": None} == {  # type: ignore[operator]
        "type": "Migrated",
        "status": "False",
        "reason": "Pending",
        "message": "at 0, spec wants 3",
        "lastTransitionTime": None,
    }
    assert view["migration"] == {
        "version": 0,
        "desiredVersion": 3,
        "failedVersion": None,
        "error": None,
        "lastAppliedAt": None,
    }

    result = await Migrator(db, migrations).migrate(3)
    assert (result.version, result.failed_version) == (2, 3)
    view = await stack.check("main")
    failed = condition(view, "Migrated")
    assert failed is not None and (failed["status"], failed["reason"]) == ("False", "Failed")
    assert failed["message"].startswith("version 3 (V3__step3.json) failed: ")
    assert failed["message"].endswith("; the database stays at 2")
    assert view["migration"]["version"] == 2 and view["migration"]["failedVersion"] == 3
    assert view["migration"]["error"] and view["migration"]["lastAppliedAt"].endswith("Z")

    stack.apply({"main": {"migrations": {"version": 2, "configMapRef": {"name": "m"}}}})
    view = await stack.check("main")
    assert condition(view, "Migrated")["message"] == "at version 2"  # type: ignore[index]
    assert condition(view, "Migrated")["reason"] == "AtVersion"  # type: ignore[index]


async def test_an_unreachable_database_says_why_and_nothing_else(stack: Stack) -> None:
    port = free_port()
    uri = f"mongodb://app:{PASSWORD}@127.0.0.1:{port}/?serverSelectionTimeoutMS=1000"
    stack.apply({"away": {"indexes": [BY_EMAIL], "migrations": {"version": 1, "module": "x"}}}, {"away": uri})
    view = await stack.check("away")
    assert list(view) == ["conditions"] and len(view["conditions"]) == 1
    connected = view["conditions"][0]
    assert (connected["type"], connected["status"], connected["reason"]) == ("Connected", "False", "Unreachable")
    assert f"127.0.0.1:{port}" in connected["message"]
    assert PASSWORD not in json.dumps(view)


async def test_a_connection_string_the_driver_refuses_is_misconfigured(stack: Stack) -> None:
    uri = f"postgres://app:{PASSWORD}@127.0.0.1:5432/app"  # a connection string for another server
    stack.apply({"odd": {}}, {"odd": uri})
    view = await stack.check("odd")
    connected = view["conditions"][0]
    assert (connected["type"], connected["status"], connected["reason"]) == ("Connected", "False", "Misconfigured")
    assert "mongodb://" in connected["message"], connected["message"]  # the driver says which schemes it takes
    assert PASSWORD not in json.dumps(view)


async def test_the_loop_checks_every_database_at_once_and_forgets_removed_ones(stack: Stack) -> None:
    stack.apply({"one": {}, "two": {}})
    await stack.applied()
    stop = asyncio.Event()
    task = asyncio.create_task(stack.reporter.run(stop))
    try:
        await wait_until(lambda: set(stack.reporter.views) == {"one", "two"})
        stack.apply({"two": {}})  # a new config: checked at once, not after the interval
        await wait_until(lambda: set(stack.reporter.views) == {"two"})
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


def test_significant_ignores_timestamps_and_the_round_trip() -> None:
    def view(round_trip: float, at: str) -> dict[str, Any]:
        server = {"version": "7.0.42", "topology": "Single", "roundTripMs": round_trip, "checkedAt": at}
        result = ProbeResult(True, "Connected", f"MongoDB 7.0.42, Single, {round_trip:g} ms", None)
        return {"conditions": [connected_condition(result) | {"lastTransitionTime": at}], "server": server}

    assert significant(view(0.8, "2026-01-01T00:00:00Z")) == significant(view(1.9, "2026-01-01T00:01:00Z"))
    changed = view(0.8, "2026-01-01T00:00:00Z")
    changed["server"]["version"] = "7.0.77"
    assert significant(changed) != significant(view(0.8, "2026-01-01T00:00:00Z"))
    lost = {"conditions": [connected_condition(ProbeResult(False, "Timeout", "no answer", None))]}
    assert significant(lost) != significant(view(0.8, "2026-01-01T00:00:00Z"))


def test_a_failed_enforcement_is_drift_with_the_reason() -> None:
    wanted = index("things", ("email", 1), name="by_email", unique=True)
    condition_, status = indexes_status(
        Drift(missing=[wanted], errors={"things.by_email": "E11000 duplicate key"}), 1, "enforce"
    )
    assert (condition_["status"], condition_["reason"]) == ("False", "Drift")
    assert condition_["message"] == "missing: things.by_email; things.by_email: E11000 duplicate key"
    assert status["missing"] == ["things.by_email"] and status["inSync"] is False
