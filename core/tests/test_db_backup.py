"""Backups and restore against the real MongoDB wire-protocol server of the harness: the
documents come back byte for byte, indexes too, a non-empty target is refused, retention
keeps what it should, and a backup that did not finish is never listed."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bson import BSON, Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.binary import UuidRepresentation
from stackyard.clients import mongo_client
from stackyard.db import backup as backups
from stackyard.db.backup import BackupError, backup, list_backups, prune, restore

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


@pytest.fixture
async def client(mongo_server: Any) -> AsyncIterator[Any]:
    client = mongo_client(mongo_server.url, "test-db-backup")
    created: list[str] = []
    client.created = created
    yield client
    for name in created:
        await client.drop_database(name)
    await client.close()


def database(client: Any) -> Any:
    name = f"bk_{uuid.uuid4().hex[:12]}"
    client.created.append(name)
    return client[name]


@pytest.fixture
async def source(client: Any) -> Any:
    """A database with the BSON types FerretDB 1.x stores, indexes, and an empty collection.
    (Decimal128, MinKey, MaxKey, Code and NaN make FerretDB drop the connection, and it stores
    -0.0 as 0.0: they go
    through the file format in test_the_files_keep_every_bson_type_byte_for_byte.)"""
    db = database(client)
    documents = [
        {
            "_id": ObjectId(),
            "at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            "stamp": Timestamp(1_790_000_000, i),
            "pattern": Regex("^user[0-9]+@", "i"),
            "blob": Binary(bytes(range(256))),
            "uuid": Binary.from_uuid(uuid.uuid4(), UuidRepresentation.STANDARD),
            "big": Int64(2**40),
            "small": 7,
            "ratio": 0.25,
            "nested": {"list": [1, "two", {"three": [3.0, None, True]}], "empty": {}},
            "email": f"user{i}@example.com",
            "country": "fr" if i % 2 else "de",
        }
        for i in range(5)
    ]
    await db.users.insert_many(documents)
    await db.users.create_index("email", unique=True, name="email_unique")
    await db.users.create_index([("country", 1), ("at", -1)], name="country_at")
    await db.events.insert_many([{"_id": i, "n": i, "pad": "x" * 300} for i in range(2500)])
    await db.create_collection("empty")
    return db


def entries(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


async def raw_documents(db: Any, collection: str) -> list[bytes]:
    cursor = db.get_collection(collection, codec_options=backups.RAW).find({}, sort=[("_id", 1)])
    return [document.raw async for document in cursor]


async def index_specs(db: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {
        index["name"]: {k: v for k, v in index.items() if k not in ("v", "ns")}
        async for index in await db[collection].list_indexes()
    }


async def test_backup_then_restore_into_an_empty_database_gives_the_same_documents_and_indexes(
    client: Any, source: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backups, "CHUNK_BYTES", 4096)  # many chunks through gzip
    await source["_stackyard_locks"].insert_one({"_id": "migrations.1", "owner": "a runner long gone"})
    lines: list[str] = []
    result = await backup(source, tmp_path, now=T0, progress=lines.append)

    assert result.name == "20261126T050000Z"
    assert result.path == tmp_path / result.name
    assert result.collections == {"empty": 0, "events": 2500, "users": 5}
    assert result.documents == 2505
    assert any("events: 2500 documents" in line for line in lines)

    target = database(client)
    restored = await restore(target, result.path)

    assert restored.collections == {"empty": 0, "events": 2500, "users": 5}
    assert restored.documents == 2505
    assert restored.indexes == 2
    for collection in ("users", "events"):
        assert await raw_documents(target, collection) == await raw_documents(source, collection)
        assert await index_specs(target, collection) == await index_specs(source, collection)
    assert "empty" in await target.list_collection_names()
    copied = await target.users.find_one({"email": "user1@example.com"})
    assert isinstance(copied["big"], Int64) and copied["at"] == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert copied["stamp"] == Timestamp(1_790_000_000, 1)
    with pytest.raises(Exception, match="duplicate key"):
        await target.users.insert_one({"email": "user1@example.com"})  # the unique index is back


async def test_a_backup_is_in_mongodumps_gzip_layout_with_a_manifest(source: Any, tmp_path: Path) -> None:
    result = await backup(source, tmp_path, collections=["users", "empty"], now=T0)

    files = sorted(p.relative_to(result.path).as_posix() for p in result.path.rglob("*") if p.is_file())
    db = source.name
    assert files == [
        f"{db}/empty.bson.gz",
        f"{db}/empty.metadata.json.gz",
        f"{db}/users.bson.gz",
        f"{db}/users.metadata.json.gz",
        "stackyard-backup.json",
    ]
    data = gzip.decompress((result.path / db / "users.bson.gz").read_bytes())
    assert data == b"".join(await raw_documents_in_natural_order(source, "users"))
    assert gzip.decompress((result.path / db / "empty.bson.gz").read_bytes()) == b""
    metadata = json_util.loads(gzip.decompress((result.path / db / "users.metadata.json.gz").read_bytes()))
    assert (metadata["collectionName"], metadata["type"], metadata["options"]) == ("users", "collection", {})
    assert sorted(index["name"] for index in metadata["indexes"]) == ["_id_", "country_at", "email_unique"]
    manifest = json.loads((result.path / "stackyard-backup.json").read_text())
    assert (manifest["format"], manifest["database"]) == (1, db)
    assert manifest["createdAt"] == "2026-11-26T05:00:00.000Z"
    assert manifest["collections"]["users"]["documents"] == 5
    assert manifest["collections"]["users"]["bytes"] == (result.path / db / "users.bson.gz").stat().st_size
    assert manifest["bytes"] == result.bytes > 0
    assert entries(tmp_path) == [result.name]


async def raw_documents_in_natural_order(db: Any, collection: str) -> list[bytes]:
    cursor = db.get_collection(collection, codec_options=backups.RAW).find({})
    return [document.raw async for document in cursor]


async def test_restore_refuses_a_collection_with_documents_unless_drop(
    client: Any, source: Any, tmp_path: Path
) -> None:
    result = await backup(source, tmp_path, now=T0)
    target = database(client)
    await target.users.insert_one({"email": "someone@example.com"})

    with pytest.raises(BackupError, match="already have documents: users"):
        await restore(target, result.path)
    assert "events" not in await target.list_collection_names()  # nothing written before the check
    assert await target.users.count_documents({}) == 1

    restored = await restore(target, result.path, drop=True)
    assert restored.collections["users"] == 5
    assert await raw_documents(target, "users") == await raw_documents(source, "users")


async def test_restore_of_chosen_collections_and_unknown_ones_refused(client: Any, source: Any, tmp_path: Path) -> None:
    result = await backup(source, tmp_path, now=T0)
    target = database(client)

    with pytest.raises(BackupError, match="not in backup 20261126T050000Z: nope"):
        await restore(target, result.path, collections=["users", "nope"])
    restored = await restore(target, result.path, collections=["users"])
    assert restored.collections == {"users": 5}
    assert await target.list_collection_names() == ["users"]


async def test_a_truncated_backup_file_fails_the_restore(client: Any, source: Any, tmp_path: Path) -> None:
    result = await backup(source, tmp_path, collections=["users"], now=T0)
    path = result.path / source.name / "users.bson.gz"
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-10]))

    with pytest.raises(BackupError, match="ends inside a document"):
        await restore(database(client), result.path)


async def test_backing_up_a_collection_that_does_not_exist_is_refused(source: Any, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"no such collection .*: nope"):
        await backup(source, tmp_path, collections=["users", "nope"])
    assert entries(tmp_path) == []


async def test_a_backup_that_fails_midway_leaves_nothing_listed(source: Any, tmp_path: Path) -> None:
    def fail(line: str) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        await backup(source, tmp_path, now=T0, progress=fail)
    assert list_backups(tmp_path) == []
    assert entries(tmp_path) == []


async def test_two_backups_in_the_same_second_get_their_own_names(source: Any, tmp_path: Path) -> None:
    first = await backup(source, tmp_path, collections=["users"], now=T0)
    second = await backup(source, tmp_path, collections=["users"], now=T0)

    assert (first.name, second.name) == ("20261126T050000Z", "20261126T050000Z-1")
    assert [info.name for info in list_backups(tmp_path)] == [second.name, first.name]


async def backups_at(db: Any, root: Path, *moments: datetime) -> list[str]:
    return [(await backup(db, root, collections=["users"], now=moment)).name for moment in moments]


async def test_retention_keeps_the_newest_keep_last(source: Any, tmp_path: Path) -> None:
    names = await backups_at(source, tmp_path, *(T0 + timedelta(days=d) for d in range(4)))

    deleted = prune(tmp_path, keep_last=2, max_age=None, now=T0 + timedelta(days=4))

    assert sorted(deleted) == names[:2]
    assert [info.name for info in list_backups(tmp_path)] == names[:1:-1]
    assert entries(tmp_path) == names[2:]


async def test_retention_by_age_always_keeps_the_newest(source: Any, tmp_path: Path) -> None:
    names = await backups_at(source, tmp_path, T0, T0 + timedelta(days=1), T0 + timedelta(days=2))

    deleted = prune(tmp_path, keep_last=10, max_age=timedelta(days=1, hours=12), now=T0 + timedelta(days=2, hours=1))
    assert deleted == [names[0]]

    deleted = prune(tmp_path, keep_last=10, max_age=timedelta(hours=1), now=T0 + timedelta(days=30))
    assert deleted == [names[1]]
    assert [info.name for info in list_backups(tmp_path)] == [names[2]]


async def test_a_partial_backup_is_never_listed_and_pruned_after_an_hour(source: Any, tmp_path: Path) -> None:
    (done,) = await backups_at(source, tmp_path, T0)
    partial = tmp_path / "20261126T060000Z.partial"
    (partial / source.name).mkdir(parents=True)
    (partial / source.name / "users.bson.gz").write_bytes(b"")
    (tmp_path / "20261126T070000Z").mkdir()  # a backup's name without a manifest

    assert [info.name for info in list_backups(tmp_path)] == [done]
    assert prune(tmp_path, keep_last=1, max_age=None, now=datetime.now(UTC)) == []

    an_hour_ago = datetime.now(UTC).timestamp() - 3700
    for path in [partial, *partial.rglob("*")]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert prune(tmp_path, keep_last=1, max_age=None, now=datetime.now(UTC)) == [partial.name]
    assert entries(tmp_path) == [done, "20261126T070000Z"]


async def test_restore_needs_a_complete_backup(client: Any, tmp_path: Path) -> None:
    partial = tmp_path / "20261126T060000Z.partial"
    partial.mkdir()
    with pytest.raises(BackupError, match=r"no stackyard-backup\.json, not a complete backup"):
        await restore(database(client), partial)


def test_the_files_keep_every_bson_type_byte_for_byte(tmp_path: Path) -> None:
    documents = [
        BSON.encode({"_id": 1, "price": Decimal128(Decimal("1234.5600")), "low": MinKey(), "high": MaxKey()}),
        BSON.encode({"_id": 2, "code": Code("return 1"), "nan": float("nan"), "zero": -0.0, "big": Int64(-1)}),
        BSON.encode({"_id": 3, "blob": Binary(b"\x00" * 100_000, 128), "deep": {"a": [{"b": [[]]}]}}),
    ]
    path = tmp_path / "c.bson.gz"
    writer = backups._GzipWriter(path)
    writer.write(b"".join(documents))
    assert writer.close() == path.stat().st_size

    reader = backups._BsonReader(path)
    read = reader.batch()
    assert reader.batch() == []
    reader.close()
    assert [document.raw for document in read] == documents


async def test_backup_and_restore_stream_a_collection_larger_than_their_memory(client: Any, tmp_path: Path) -> None:
    """32 documents of 1 MiB: neither side holds more than a fraction of them at once
    (and the cursor's batches stay bounded where the server does not cap them)."""
    source = database(client)
    for start in range(0, 32, 8):
        await source.blobs.insert_many([{"_id": i, "data": os.urandom(1 << 20)} for i in range(start, start + 8)])

    tracemalloc.start()
    try:
        result = await backup(source, tmp_path)
        backup_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        restored = await restore(database(client), result.path)
        restore_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert (result.documents, restored.documents) == (32, 32)
    assert result.bytes > 32 << 20  # random bytes do not compress
    assert backup_peak < 12 << 20, f"backup peaked at {backup_peak >> 20} MiB"
    assert restore_peak < 16 << 20, f"restore peaked at {restore_peak >> 20} MiB"
