"""A SearchIndex that follows a MongoDB collection: the BSON -> JSON mapping (pure), and the
sync against the harness's FerretDB and the real SearchService (the initial load, inserts,
updates and deletes seen by search within the poll interval, a restart from the checkpoint,
a rebuild while writes go on, a missing collection and an unreachable server).

FerretDB 1.x has no change streams (`$changeStream` is "not implemented yet", code 238):
these tests exercise the poll, and that `auto` falls back to it; the change-stream path is
not exercised here (docs/search-sync.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, Decimal128, Int64, ObjectId
from stackyard.clients import mongo_client
from stackyard.resources.search import MongoSource, SearchIndexSpec
from stackyard.search.contract import SearchRequest
from stackyard.search.service import SearchService
from stackyard.search.sync import ChangeBatch, CollectionGone, MongoSync, UnindexableDocument, map_document

NAME = "products"


def index_spec(**sync: Any) -> SearchIndexSpec:
    settings = {"pollInterval": "200ms", "deleteScanInterval": "1s", **sync}
    return SearchIndexSpec.model_validate(
        {
            "stackRef": {"name": "demo"},
            "source": {"mongodb": {"collection": NAME, "sync": settings}},
            "searchableAttributes": ["title"],
        }
    )


# -- BSON -> JSON ----------------------------------------------------------------------------------


def test_a_document_maps_bson_types_to_json_and_takes_its_id_from_underscore_id() -> None:
    oid = ObjectId()
    at = datetime(2026, 11, 26, 15, 4, 5, 123456, tzinfo=UTC)
    source = {
        "_id": oid,
        "id": "not the primary key",
        "title": "Trail shoe",
        "price": Decimal128("129.90"),
        "stock": Int64(7),
        "updatedAt": at,
        "maker": {"name": "Acme", "ref": ObjectId(oid), "since": datetime(2001, 1, 1)},
        "tags": ["run", "trail"],
        "photo": Binary(b"\x89PNG...", 0),
        "sku": Binary(uuid.UUID("12345678-1234-5678-1234-567812345678").bytes, 4),
        "ratio": float("nan"),
    }
    document = map_document(source, MongoSource(collection=NAME), "id")
    assert document == {
        "id": str(oid),
        "title": "Trail shoe",
        "price": 129.9,
        "stock": 7,
        "updatedAt": "2026-11-26T15:04:05.123Z",
        "maker": {"name": "Acme", "ref": str(oid), "since": "2001-01-01T00:00:00.000Z"},
        "tags": ["run", "trail"],
        "sku": "12345678-1234-5678-1234-567812345678",
        "ratio": None,
    }
    assert next(iter(document)) == "id"  # the primary key first, then the document's order


def test_a_field_mapping_reads_dotted_paths_and_leaves_absent_ones_out() -> None:
    source = {
        "_id": 42,
        "name": "Lamp",
        "brand": {"label": "Lumo"},
        "variants": [{"color": "red"}, {"color": "blue"}, {"size": 3}],
    }
    spec = MongoSource(
        collection=NAME,
        fields={"title": "name", "brand": "brand.label", "colors": "variants.color", "meta.lumens": "lumens"},
    )
    assert map_document(source, spec, "sku") == {"sku": 42, "title": "Lamp", "brand": "Lumo", "colors": ["red", "blue"]}


@pytest.mark.parametrize("bad", [{"a": 1}, "has space", "x" * 600, True])
def test_an_id_that_cannot_be_a_document_id_is_refused(bad: Any) -> None:
    with pytest.raises(UnindexableDocument):
        map_document({"_id": bad, "title": "x"}, MongoSource(collection=NAME), "id")


# -- change stream events (the path FerretDB cannot exercise: it has no change streams) ------------


def test_change_events_fold_into_one_batch_where_the_last_event_of_a_document_wins() -> None:
    a, b, c, d = ObjectId(), ObjectId(), ObjectId(), ObjectId()
    batch = ChangeBatch(MongoSource(collection=NAME), "id")
    events: list[dict[str, Any]] = [
        {"operationType": "insert", "documentKey": {"_id": a}, "fullDocument": {"_id": a, "title": "one"}},
        {"operationType": "update", "documentKey": {"_id": a}, "fullDocument": {"_id": a, "title": "one, edited"}},
        {"operationType": "insert", "documentKey": {"_id": b}, "fullDocument": {"_id": b, "title": "two"}},
        {"operationType": "delete", "documentKey": {"_id": b}},
        {"operationType": "delete", "documentKey": {"_id": c}},
        {"operationType": "insert", "documentKey": {"_id": c}, "fullDocument": {"_id": c, "title": "three again"}},
        {"operationType": "update", "documentKey": {"_id": d}, "fullDocument": None},  # deleted before the lookup
        {"operationType": "createIndexes"},
        {"operationType": "insert", "documentKey": {"_id": "a b"}, "fullDocument": {"_id": "a b"}},
    ]
    for event in events:
        batch.add(event)
    assert batch.upserts == {
        str(a): {"id": str(a), "title": "one, edited"},
        str(c): {"id": str(c), "title": "three again"},
    }
    assert batch.deletes == {str(b), str(d)}
    assert [id for id, _ in batch.refused] == ["a b"]
    with pytest.raises(CollectionGone):
        batch.add({"operationType": "drop"})


# -- against FerretDB and the service -------------------------------------------------------------


async def eventually(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.1)


class Harness:
    """A SearchService on a data directory and the syncs of its index, started and stopped."""

    def __init__(self, data: Path, database: Any) -> None:
        self.data = data
        self.database = database
        self.service: SearchService | None = None
        self.sync: MongoSync | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, spec: SearchIndexSpec | None = None, database: Any = None) -> MongoSync:
        spec = spec or index_spec()
        self.service = SearchService(self.data)
        await self.service.apply_config({NAME: spec})
        await self.service.start()
        self.sync = MongoSync(NAME, spec, database if database is not None else self.database, self.service)
        self.service.set_source(NAME, self.sync)
        self._task = asyncio.create_task(self.sync.run())
        return self.sync

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.service is not None:
            await self.service.stop()
            self.service = None

    async def titles(self, q: str | None = None) -> set[str]:
        assert self.service is not None
        response = await self.service.search(NAME, SearchRequest(q=q, limit=1000))
        return {hit["title"] for hit in response.hits}

    async def ids(self) -> set[str]:
        assert self.service is not None
        return self.service.index_ids(NAME)


@pytest.fixture
async def search(tmp_path: Path, db: Any) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path / "search", db)
    yield harness
    await harness.stop()


def product(title: str, at: datetime | None = None, **more: Any) -> dict[str, Any]:
    return {"_id": ObjectId(), "title": title, "updatedAt": at or datetime.now(UTC), **more}


async def test_inserts_updates_and_deletes_show_up_in_search_within_the_poll_interval(search: Harness, db: Any) -> None:
    products = db[NAME]
    await products.insert_many([product("red kettle"), product("blue teapot")])
    sync = await search.start()
    await eventually(lambda: sync.state.synced, what="the initial load")
    assert await search.titles() == {"red kettle", "blue teapot"}
    assert sync.state.mode == "poll"  # auto on FerretDB: no change streams

    await products.insert_one(product("green saucepan"))
    await eventually(lambda: search.titles("saucepan"), what="an insert")
    await products.update_one(
        {"title": "red kettle"}, {"$set": {"title": "copper kettle", "updatedAt": datetime.now(UTC)}}
    )
    await eventually(lambda: _has(search, "copper kettle"), what="an update")
    assert "red kettle" not in await search.titles()
    await products.delete_one({"title": "blue teapot"})
    await eventually(lambda: _lacks(search, "blue teapot"), what="a delete (id scan)")
    await products.insert_one({"_id": "no-date", "title": "undated whisk"})  # written without updatedAt
    await eventually(lambda: _has(search, "undated whisk"), what="a document without updatedAt (id scan)")

    assert sync.state.lag_seconds == 0.0 and sync.state.error is None and sync.state.last_sync is not None
    assert await search.titles() == {"copper kettle", "green saucepan", "undated whisk"}


async def _has(search: Harness, title: str) -> bool:
    return title in await search.titles()


async def _lacks(search: Harness, title: str) -> bool:
    return title not in await search.titles()


async def test_many_documents_with_one_timestamp_are_all_read_across_pages(search: Harness, db: Any) -> None:
    await db.create_collection(NAME)
    sync = await search.start(index_spec(batchSize=7))
    await eventually(lambda: sync.state.synced, what="the initial load of an empty collection")
    same = datetime.now(UTC)
    await db[NAME].insert_many([{"_id": f"p{i:02d}", "title": f"item {i}", "updatedAt": same} for i in range(30)])
    await eventually(lambda: _count(search, 30), what="30 documents sharing one updatedAt")
    read = sync.state.read
    await asyncio.sleep(1.0)
    assert await search.ids() == {f"p{i:02d}" for i in range(30)}
    # Passes go on re-reading the few seconds before the checkpoint (OVERLAP) but apply nothing twice.
    assert sync.state.last_sync is not None and sync.state.read >= read


async def _count(search: Harness, count: int) -> bool:
    return len(await search.ids()) == count


async def test_a_restarted_sync_resumes_from_its_checkpoint_without_reading_everything(
    search: Harness, db: Any
) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await db[NAME].insert_many([product(f"old item {i}", an_hour_ago) for i in range(50)])
    sync = await search.start()
    await eventually(lambda: sync.state.synced, what="the initial load")
    assert sync.state.read >= 50
    assert search.service is not None
    version = search.service.version(NAME)
    await search.stop()

    await db[NAME].insert_one(product("written while stopped"))
    sync = await search.start()
    await eventually(lambda: _has(search, "written while stopped"), what="the write made during the stop")
    assert search.service.version(NAME) == version  # followed, not rebuilt
    assert sync.state.read < 10  # the new document (and the overlap's few), not the 50 old ones
    assert len(await search.ids()) == 51


async def test_a_rebuild_while_writes_go_on_ends_with_the_collections_documents(search: Harness, db: Any) -> None:
    products = db[NAME]
    await products.insert_many([product(f"item {i}") for i in range(300)])
    sync = await search.start(index_spec(batchSize=50))
    await eventually(lambda: sync.state.synced, what="the initial load")
    assert search.service is not None
    version = search.service.version(NAME)

    stop = asyncio.Event()

    async def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await products.insert_one(product(f"new item {n}"))
            await products.update_one(
                {"title": f"item {n}"}, {"$set": {"title": f"item {n} changed", "updatedAt": datetime.now(UTC)}}
            )
            await products.delete_one({"title": f"item {n + 150}"})

    writer = asyncio.create_task(write())
    task = await search.service.enqueue_rebuild(NAME)
    await search.service.wait_for_task(task.uid, timeout=60)
    await asyncio.sleep(0.5)
    stop.set()
    await writer
    assert search.service.version(NAME) > version

    expected = {str(d["_id"]) async for d in products.find({}, {"_id": 1})}
    await eventually(lambda: _ids_are(search, expected), timeout=20, what="the index equal to the collection")
    titles = {d["title"] async for d in products.find({}, {"title": 1})}
    await eventually(lambda: _ids_are_titles(search, titles), what="the index's titles equal to the collection's")


async def _ids_are(search: Harness, expected: set[str]) -> bool:
    return await search.ids() == expected


async def test_a_missing_collection_is_reported_and_the_index_kept_until_it_is_back(search: Harness, db: Any) -> None:
    await db[NAME].insert_one(product("lone lamp"))
    sync = await search.start()
    await eventually(lambda: sync.state.synced, what="the initial load")
    await db.drop_collection(NAME)
    await eventually(lambda: sync.state.reason == "CollectionMissing", what="CollectionMissing")
    assert sync.state.error is not None and NAME in sync.state.error
    assert sync.state.lag_seconds is None
    await asyncio.sleep(1.5)  # a delete scan's interval: nothing deleted from an absent collection
    assert await search.titles() == {"lone lamp"}

    await db[NAME].insert_one(product("new lamp"))
    await eventually(lambda: sync.state.synced, timeout=40, what="recovery (after backoff)")
    await eventually(
        lambda: _ids_are_titles(search, {"new lamp"}), timeout=20, what="the index equal to the collection"
    )


async def _ids_are_titles(search: Harness, titles: set[str]) -> bool:
    return await search.titles() == titles


async def test_change_streams_asked_of_a_server_without_them_say_so(search: Harness, db: Any) -> None:
    await db[NAME].insert_one(product("kettle"))
    sync = await search.start(index_spec(mode="changeStream"))
    await eventually(lambda: sync.state.reason == "ChangeStreamsUnsupported", what="ChangeStreamsUnsupported")
    assert sync.state.error is not None and "change streams" in sync.state.error
    assert not sync.state.synced


async def test_an_unreachable_server_is_reported_and_never_ends_the_sync(search: Harness) -> None:
    client = mongo_client("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300", "test-search-sync")
    try:
        sync = await search.start(database=client["absent"])
        await eventually(lambda: sync.state.reason == "SourceUnreachable", what="SourceUnreachable")
        assert sync.state.error is not None and "mongodb://" not in sync.state.error
        first = sync._attempt
        await eventually(lambda: sync._attempt > first, timeout=10, what="another attempt (with backoff)")
        assert search._task is not None and not search._task.done()
    finally:
        await client.close()
