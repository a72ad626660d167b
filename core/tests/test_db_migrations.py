"""Migrations against the harness's real MongoDB wire-protocol server (FerretDB 1.x, no
transactions), one database per test: loading and refusing scripts, running each version
once under the lock, failures, lease takeover and fencing of a runner that lost the lock."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from stackyard.db.migration_lock import LOCK_COLLECTION, LeaseLock
from stackyard.db.migrations import (
    HISTORY_COLLECTION,
    MigrationError,
    Migrator,
    history,
    load_directory,
    load_module,
    migration_state,
)


def scripts(directory: Path, **files: str) -> Path:
    """Write files named like V1__init_json (the last underscore is the dot)."""
    directory.mkdir(exist_ok=True)
    for key, text in files.items():
        stem, _, ext = key.rpartition("_")
        (directory / f"{stem}.{ext}").write_text(textwrap.dedent(text))
    return directory


def python_step(marker: str, sleep: float = 0.0, fail: str | None = None) -> str:
    """A Python migration inserting {_id: marker, runner...} after an optional sleep."""
    raise_line = f"    raise RuntimeError({fail!r})\n" if fail else ""
    return (
        "import asyncio, os\n"
        "async def up(db):\n"
        f"    await asyncio.sleep({sleep})\n"
        f"{raise_line}"
        f"    await db.effects.insert_one({{'marker': {marker!r}, 'pid': os.getpid()}})\n"
    )


async def until_running(db: Any, version: int) -> None:
    for _ in range(200):
        if (await migration_state(db)).running_version == version:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"version {version} did not start")


def documented_json_example() -> str:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "database-migrations.md").read_text()
    return doc.split("```json\n", 1)[1].split("```", 1)[0]


async def effects(db: Any, marker: str) -> int:
    return await db.effects.count_documents({"marker": marker})


async def test_json_commands_run_in_order_with_extended_json_dates(db, tmp_path):
    directory = scripts(
        tmp_path / "m",
        V1__users_json="""
            {"description": "users with a signup date",
             "commands": [
               {"create": "users"},
               {"insert": "users", "documents": [
                 {"_id": "ana", "joined": {"$date": "2026-01-02T03:04:05Z"}, "n": {"$numberLong": "7"}}]}
             ]}
        """,
        V2__email_index_json="""
            {"commands": [{"createIndexes": "users", "indexes": [{"key": {"email": 1}, "name": "email_1"}]},
                          {"update": "users", "updates": [{"q": {"_id": "ana"}, "u": {"$set": {"email": "a@x"}}}]}]}
        """,
    )
    lines: list[str] = []
    result = await Migrator(db, load_directory(directory), progress=lines.append).migrate(2)
    assert result.ok and result.applied == [1, 2] and (result.start_version, result.version) == (0, 2)
    user = await db.users.find_one({"_id": "ana"})
    assert user["joined"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and user["n"] == 7 and user["email"] == "a@x"
    assert "email_1" in {index["name"] async for index in await db.users.list_indexes()}
    state = await migration_state(db)
    assert state.version == 2 and state.failed_version is None and state.last_applied_at is not None
    records = await history(db)
    assert [r["version"] for r in records] == [2, 1]
    assert records[1]["source"] == "V1__users.json" and records[1]["status"] == "applied"
    assert isinstance(records[1]["startedAt"], str) and records[1]["durationMs"] >= 0
    assert any("applying version 2 (V2__email_index.json)" in line for line in lines)


async def test_python_migrations_from_a_directory_and_a_package(db, tmp_path, monkeypatch):
    directory = scripts(tmp_path / "m", V1__first_py=python_step("one"))
    package = tmp_path / "pkg" / "app_migrations"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_shared.py").write_text("VALUE = 1\n")
    (package / "V1__first.py").write_text(python_step("pkg-one"))
    (package / "V2__second.py").write_text(python_step("pkg-two"))
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))

    assert (await Migrator(db, load_directory(directory)).migrate(1)).applied == [1]
    assert await effects(db, "one") == 1
    loaded = load_module("app_migrations")
    assert [(m.version, m.source) for m in loaded] == [
        (1, "app_migrations.V1__first"),
        (2, "app_migrations.V2__second"),
    ]
    other = db.client[db.name + "_pkg"]
    try:
        assert (await Migrator(other, loaded).migrate(2)).applied == [1, 2]
        assert await effects(other, "pkg-two") == 1
    finally:
        await db.client.drop_database(other.name)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"V1_one_json": "{}"}, "not a migration script name"),
        ({"v1__one_json": "{}"}, "not a migration script name"),
        ({"V1__one_sql": "select 1"}, "not a migration script name"),
        ({"README_md": "hi"}, "not a migration script name"),
        ({"V0__zero_json": '{"commands": [{"ping": 1}]}'}, "versions start at 1"),
        (
            {"V1__a_json": '{"commands": [{"ping": 1}]}', "V001__b_json": '{"commands": [{"ping": 1}]}'},
            "version 1 twice",
        ),
        (
            {"V1__bad_json": '{"commands": [\n  {"ping": 1},\n  oops]}'},
            "V1__bad.json: invalid JSON at line 3, column 3",
        ),
        ({"V1__bad_json": '{"commands": [{"ping": 1}], "extra": 1}'}, "unknown keys extra"),
        ({"V1__bad_json": '{"commands": []}'}, "non-empty list"),
        ({"V1__bad_json": '{"commands": [{"insert": "x", "documents": [{"d": {"$date": "soon"}}]}]}'}, "Extended JSON"),
        ({"V1__sync_py": "def up(db):\n    pass\n"}, "async def up(db)"),
        ({"V1__broken_py": "async def up(db)\n    pass\n"}, "V1__broken.py, line 1"),
    ],
)
def test_bad_scripts_are_refused_naming_the_file(tmp_path, files, message):
    with pytest.raises(MigrationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_directory(scripts(tmp_path / "m", **files))


async def test_gaps_and_unreachable_targets_are_refused_before_anything_runs(db, tmp_path):
    gap = load_directory(scripts(tmp_path / "gap", V1__a_py=python_step("a"), V3__c_py=python_step("c")))
    with pytest.raises(MigrationError, match=r"versions missing between 1 and 3: \[2\]"):
        await Migrator(db, gap).migrate(3)
    two = load_directory(scripts(tmp_path / "two", V1__a_py=python_step("a"), V2__b_py=python_step("b")))
    with pytest.raises(MigrationError, match="target version 5, but the scripts end at 2"):
        await Migrator(db, two).migrate(5)
    squashed = load_directory(scripts(tmp_path / "later", V3__c_py=python_step("c")))
    with pytest.raises(MigrationError, match="the database is at version 0, but the scripts start at 3"):
        await Migrator(db, squashed).migrate(3)
    assert await effects(db, "a") == 0 and await db[HISTORY_COLLECTION].count_documents({}) == 0


async def test_a_failing_migration_stops_there_and_a_fixed_script_is_retried(db, tmp_path):
    directory = scripts(
        tmp_path / "m",
        V1__ok_py=python_step("one"),
        V2__broken_py=python_step("two", fail="no such field; see mongodb://admin:hunter2@db.internal:27017"),
        V3__after_py=python_step("three"),
    )
    result = await Migrator(db, load_directory(directory)).migrate(3)
    assert not result.ok and result.applied == [1] and result.failed_version == 2 and result.version == 1
    assert "no such field" in (result.error or "") and "hunter2" not in (result.error or "")
    state = await migration_state(db)
    assert (state.version, state.failed_version) == (1, 2) and "RuntimeError: no such field" in (state.error or "")
    assert "hunter2" not in str(await history(db))
    assert await effects(db, "three") == 0

    scripts(directory, V2__broken_py=python_step("two"))  # fixed
    result = await Migrator(db, load_directory(directory)).migrate(3)
    assert result.ok and result.applied == [2, 3]
    state = await migration_state(db)
    assert (state.version, state.failed_version, state.error) == (3, None, None)
    records = {r["version"]: r for r in await history(db)}
    assert records[2]["attempts"] == 2 and records[2]["error"] is None


async def test_a_target_at_or_below_the_current_version_changes_nothing(db, tmp_path):
    migrations = load_directory(scripts(tmp_path / "m", V1__a_py=python_step("a"), V2__b_py=python_step("b")))
    await Migrator(db, migrations).migrate(2)
    lines: list[str] = []
    result = await Migrator(db, migrations, progress=lines.append).migrate(1)
    assert result.ok and result.applied == [] and result.version == 2
    assert any("above the target 1" in line and "nothing done" in line for line in lines)
    assert (await Migrator(db, migrations).migrate(2)).applied == []
    assert await effects(db, "a") == 1 and await effects(db, "b") == 1


async def test_a_changed_applied_script_is_warned_about_and_not_run_again(db, tmp_path):
    directory = scripts(tmp_path / "m", V1__a_py=python_step("a"))
    await Migrator(db, load_directory(directory)).migrate(1)
    scripts(directory, V1__a_py=python_step("a-edited"), V2__b_py=python_step("b"))
    result = await Migrator(db, load_directory(directory)).migrate(2)
    assert result.ok and result.applied == [2]
    assert len(result.warnings) == 1 and "V1__a.py changed since version 1 was applied" in result.warnings[0]
    assert await effects(db, "a-edited") == 0


async def test_two_runners_at_once_apply_each_version_once(db, tmp_path):
    migrations = load_directory(
        scripts(tmp_path / "m", V1__slow_py=python_step("one", sleep=1.0), V2__b_py=python_step("two"))
    )
    first, second = await asyncio.gather(
        Migrator(db, migrations, runner="a", lease=5).migrate(2),
        Migrator(db, migrations, runner="b", lease=5).migrate(2),
    )
    assert first.ok and second.ok
    assert sorted([*first.applied, *second.applied]) == [1, 2]
    assert max(first.waited_seconds, second.waited_seconds) > 0.5
    assert await effects(db, "one") == 1 and await effects(db, "two") == 1


async def test_the_lock_is_renewed_while_a_long_migration_runs(db, tmp_path):
    migrations = load_directory(scripts(tmp_path / "m", V1__slow_py=python_step("slow", sleep=3.0)))
    running = asyncio.create_task(Migrator(db, migrations, runner="long", lease=1.0).migrate(1))
    await until_running(db, 1)
    # Two leases later the other runner still finds the lock held, and gives up waiting.
    lines: list[str] = []
    late = await Migrator(db, migrations, runner="late", lease=1.0, progress=lines.append).migrate(1, wait=2.0)
    assert not late.ok and "gave up waiting for the migration lock" in (late.error or "") and "long" in late.error
    assert (await running).ok and await effects(db, "slow") == 1
    assert any("waiting for the lock held by long" in line for line in lines)


async def test_a_lapsed_lock_is_taken_over_after_its_lease(db, tmp_path):
    migrations = load_directory(scripts(tmp_path / "m", V1__a_py=python_step("a")))
    dead = LeaseLock(db, "migrations", owner="dead-runner", lease=1.5)
    assert await dead.try_acquire()  # and never renewed nor released: its process "died"
    lines: list[str] = []
    result = await Migrator(db, migrations, runner="next", lease=5, progress=lines.append).migrate(1, wait=10)
    assert result.ok and result.applied == [1] and 0.8 < result.waited_seconds < 5
    assert any("took over the lock from dead-runner" in line for line in lines)


async def test_a_runner_that_lost_the_lock_neither_records_nor_runs_the_next_version(db, tmp_path):
    migrations = load_directory(
        scripts(tmp_path / "m", V1__slow_py=python_step("one", sleep=4.0), V2__b_py=python_step("two"))
    )
    loser = Migrator(db, migrations, runner="frozen", lease=3.0)
    running = asyncio.create_task(loser.migrate(2))
    await until_running(db, 1)
    # What another runner sees when "frozen" stops renewing: its lease in the past.
    await db[LOCK_COLLECTION].update_one(
        {"owner": "frozen"}, {"$set": {"expiresAt": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    thief = LeaseLock(db, "migrations", owner="thief", lease=30)
    assert await thief.try_acquire()
    lost = await running
    assert not lost.ok and "thief took it over" in (lost.error or "") and lost.applied == []
    assert await effects(db, "one") == 0  # cancelled in its sleep, before its effect
    assert await effects(db, "two") == 0
    assert (await db[HISTORY_COLLECTION].find_one({"_id": 1}))["status"] == "running"
    await thief.release()

    lines: list[str] = []
    result = await Migrator(db, migrations, runner="next", progress=lines.append).migrate(2)
    assert result.ok and result.applied == [1, 2]
    assert any("left running by frozen" in line for line in lines)
    assert await effects(db, "one") == 1 and await effects(db, "two") == 1


async def test_a_waiting_runner_reports_the_failure_it_waited_on_instead_of_retrying(db, tmp_path):
    migrations = load_directory(scripts(tmp_path / "m", V1__bad_py=python_step("bad", sleep=1.0, fail="boom")))
    first, second = await asyncio.gather(
        Migrator(db, migrations, runner="a").migrate(1),
        Migrator(db, migrations, runner="b").migrate(1),
    )
    assert {first.failed_version, second.failed_version} == {1}
    assert "boom" in (first.error or "") and "boom" in (second.error or "")
    assert (await db[HISTORY_COLLECTION].find_one({"_id": 1}))["attempts"] == 1


async def test_lock_takeover_by_many_runners_has_one_winner(db):
    """FerretDB runs findAndModify as read-then-write (two takers of a lapsed document both
    win); the lock's insert-the-next-epoch takeover has one winner there too."""
    for _ in range(5):
        old = LeaseLock(db, "race", owner="old", lease=0.3)
        assert await old.try_acquire()
        await asyncio.sleep(0.35)
        takers = [LeaseLock(db, "race", owner=f"t{i}", lease=30) for i in range(8)]
        won = await asyncio.gather(*(taker.try_acquire() for taker in takers))
        assert sum(won) == 1
        await takers[won.index(True)].release()


async def test_a_lost_connection_is_not_a_script_failure_and_the_version_runs_again(db, tmp_path):
    directory = scripts(
        tmp_path / "m",
        V1__flaky_py="from pymongo.errors import AutoReconnect\nasync def up(db):\n    raise AutoReconnect('gone')\n",
    )
    with pytest.raises(Exception, match="gone") as raised:
        await Migrator(db, load_directory(directory)).migrate(1)
    assert type(raised.value).__name__ == "AutoReconnect"
    state = await migration_state(db)
    assert (state.version, state.failed_version, state.running_version) == (0, None, 1)
    scripts(directory, V1__flaky_py=python_step("one"))
    assert (await Migrator(db, load_directory(directory)).migrate(1)).applied == [1]


async def test_the_documented_json_example_runs_and_runs_again_harmlessly(db, tmp_path):
    directory = scripts(tmp_path / "m", V1__orders_json=documented_json_example())
    await db.orders.insert_one({"_id": 1})
    assert (await Migrator(db, load_directory(directory)).migrate(1)).applied == [1]
    await db[HISTORY_COLLECTION].delete_many({})  # as if its record had not been written
    assert (await Migrator(db, load_directory(directory)).migrate(1)).applied == [1]
    assert (await db.orders.find_one({"_id": 1}))["status"] == "open"
    assert (await db.settings.find_one({"_id": "limits"}))["maxItems"] == 500
