"""The search component as it runs in its pod: the `stackyard-search` program over a config
directory and a data directory, driven over HTTP. Killed with SIGKILL it comes back with its
index and finishes the tasks it had accepted; a rebuild swaps in without a failed search; a
task with a bad document fails with its code and the tasks after it still run."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
from stackyard_harness.search_process import SearchProcess, write_search_config

from .conftest import wait_for

ADMIN_KEY = "admin-key-for-search-tests-0123456789"
PRODUCTS = {"source": {"api": {}}, "filterableAttributes": ["brand"], "sortableAttributes": ["price"]}


def _documents(count: int, start: int = 0) -> list[dict[str, Any]]:
    brands = ["acme", "globex", "initech"]
    return [
        {
            "id": f"p{i}",
            "title": f"sturdy aluminium ladder {i}",
            "brand": brands[i % 3],
            "price": i % 500,
            "description": "folds flat, holds 150 kg " * 4,
        }
        for i in range(start, start + count)
    ]


@pytest.fixture
def search(tmp_path: Path) -> Iterator[SearchProcess]:
    write_search_config(tmp_path / "config", {"products": PRODUCTS}, ADMIN_KEY)
    process = SearchProcess(tmp_path / "config", tmp_path / "data", tmp_path / "search.log").start()
    process.wait_index("products", ADMIN_KEY)
    try:
        yield process
    finally:
        process.stop()


def _client(search: SearchProcess) -> httpx.Client:
    return httpx.Client(base_url=search.url, headers=search.headers(ADMIN_KEY), timeout=30)


def _add(client: httpx.Client, documents: list[dict[str, Any]]) -> int:
    answer = client.post("/v1/indexes/products/documents", json=documents)
    assert answer.status_code == 202, answer.text
    return int(answer.json()["taskUid"])


def _finished(client: httpx.Client, uid: int, timeout: float = 60.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        task = client.get(f"/v1/search/tasks/{uid}").json()
        return task if task["status"] in ("succeeded", "failed", "canceled") else None

    finished: dict[str, Any] = wait_for(done, timeout, 0.05, f"task {uid} to finish")
    return finished


def _total(client: httpx.Client, q: str = "ladder", **params: Any) -> int:
    answer = client.post("/v1/indexes/products/search", json={"q": q, "limit": 1} | params)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["estimatedTotalHits"])


@pytest.mark.slow
def test_killed_component_keeps_its_index_and_finishes_the_tasks_it_accepted(search: SearchProcess) -> None:
    with _client(search) as client:
        first = _add(client, _documents(200))
        assert _finished(client, first)["status"] == "succeeded"
        accepted = [_add(client, _documents(1500, start=1000 + 1500 * n)) for n in range(4)]
        search.kill()  # right after the last 202: the batches are on disk, most not yet indexed
    search.start()
    with _client(search) as client:
        for uid in accepted:
            task = _finished(client, uid)
            assert task["status"] == "succeeded", task
            assert task["details"]["indexedDocuments"] == 1500
        index = client.get("/v1/indexes/products").json()
        assert index["numberOfDocuments"] == 200 + 4 * 1500
        assert client.get("/v1/indexes/products/documents/p7").json()["brand"] == "globex"
        assert _total(client, "ladder 6999") >= 1
        assert _total(client, "ladder", filter="brand = acme") > 0


@pytest.mark.slow
def test_a_rebuild_swaps_in_the_new_version_without_a_failed_search(search: SearchProcess) -> None:
    with _client(search) as client:
        assert _finished(client, _add(client, _documents(4000)))["status"] == "succeeded"
        expected = _total(client)
        answer = client.post("/v1/indexes/products/rebuild")
        assert answer.status_code == 202, answer.text
        uid = answer.json()["taskUid"]
        searched = 0
        while client.get(f"/v1/search/tasks/{uid}").json()["status"] in ("enqueued", "processing"):
            assert _total(client) == expected  # every search during the rebuild answers, in full
            searched += 1
        task = _finished(client, uid)
        assert task["status"] == "succeeded", task
        assert task["details"]["toVersion"] == 2
        assert searched > 0
        assert _total(client) == expected
        assert client.get("/v1/indexes/products").json()["version"] == 2
    wait_for(lambda: _versions(search) == ["v2"], 10, what="the old version's files removed")


def _versions(search: SearchProcess) -> list[str]:
    return sorted(path.name for path in (search.data_dir / "indexes" / "products").glob("v*"))


def test_an_integer_beyond_64_bits_is_taken_as_a_number_and_later_tasks_still_run(search: SearchProcess) -> None:
    # JSON allows it and Meilisearch takes it; it must not fail the request or the task.
    with _client(search) as client:
        big = _add(client, [*_documents(3), {"id": "huge", "title": "gold plated ladder", "price": 2**70}])
        good = _add(client, _documents(2, start=50))
        assert _finished(client, big)["status"] == "succeeded"
        assert _finished(client, good)["status"] == "succeeded"
        assert client.get("/v1/indexes/products").json()["numberOfDocuments"] == 6
        hits = client.post("/v1/indexes/products/search", json={"q": "gold", "sort": ["price:desc"]}).json()["hits"]
        assert [hit["id"] for hit in hits] == ["huge"]
        assert hits[0]["price"] == float(2**70)
        top = client.post("/v1/indexes/products/search", json={"sort": ["price:desc"], "limit": 1}).json()["hits"]
        assert top[0]["id"] == "huge"


@pytest.mark.slow
def test_a_rebuild_cut_short_by_a_kill_is_done_again_after_the_restart(search: SearchProcess) -> None:
    with _client(search) as client:
        assert _finished(client, _add(client, _documents(6000)))["status"] == "succeeded"
        uid = client.post("/v1/indexes/products/rebuild").json()["taskUid"]
        wait_for(lambda: client.get(f"/v1/search/tasks/{uid}").json()["status"] != "enqueued", 10, 0.01)
        search.kill()
    search.start()
    with _client(search) as client:
        task = _finished(client, uid)
        assert task["status"] == "succeeded", task
        assert client.get("/v1/indexes/products").json()["numberOfDocuments"] == 6000
        time.sleep(0.2)
    assert len(_versions(search)) == 1


@pytest.mark.slow
def test_a_synced_index_loads_its_collection_follows_it_and_resumes_after_a_kill(
    tmp_path: Path, mongo_server: Any
) -> None:
    database = f"search_{uuid.uuid4().hex[:10]}"
    synced = {
        "source": {
            "mongodb": {"collection": "products", "sync": {"pollInterval": "200ms", "deleteScanInterval": "1s"}}
        },
        "filterableAttributes": ["brand"],
    }
    write_search_config(
        tmp_path / "config", {"products": synced}, ADMIN_KEY, mongo_url=mongo_server.url, database=database
    )
    now = datetime.now(UTC)
    with pymongo.MongoClient(mongo_server.url) as mongo:
        collection = mongo[database]["products"]
        collection.insert_many(
            [{"_id": f"m{i}", "title": f"hiking boot {i}", "brand": "acme", "updatedAt": now} for i in range(300)]
        )
        search = SearchProcess(tmp_path / "config", tmp_path / "data", tmp_path / "search.log").start()
        try:
            with _client(search) as client:
                wait_for(lambda: _count(client) == 300, 60, 0.1, "the initial load")
                assert client.post("/v1/indexes/products/documents", json=_documents(1)).status_code == 409
                collection.insert_one({"_id": "late", "title": "trail boot", "brand": "globex", "updatedAt": now})
                wait_for(lambda: _count(client) == 301, 30, 0.1, "the insert followed")
            search.kill()
            collection.delete_one({"_id": "m0"})  # while the component is down
            collection.update_one({"_id": "m1"}, {"$set": {"title": "hiking sandal", "updatedAt": datetime.now(UTC)}})
            search.start()
            with _client(search) as client:
                wait_for(
                    lambda: client.get("/v1/indexes/products/documents/m0").status_code == 404, 30, 0.1, "the delete"
                )
                wait_for(
                    lambda: client.get("/v1/indexes/products/documents/m1").json().get("title") == "hiking sandal",
                    30,
                    0.1,
                    "the update",
                )
                assert _count(client) == 300
                assert client.get("/v1/indexes/products").json()["version"] == 2  # the load, not a second one
        finally:
            search.stop()
            mongo.drop_database(database)


def _count(client: httpx.Client) -> int:
    answer = client.get("/v1/indexes/products")
    return int(answer.json()["numberOfDocuments"]) if answer.status_code == 200 else -1


@pytest.mark.slow
def test_a_stopped_component_finishes_the_task_it_is_processing_and_keeps_the_others(search: SearchProcess) -> None:
    with _client(search) as client:
        accepted = [_add(client, _documents(3000, start=3000 * n)) for n in range(3)]
        wait_for(lambda: client.get(f"/v1/search/tasks/{accepted[0]}").json()["status"] == "processing", 30, 0.01)
    search.stop()  # SIGTERM, as Kubernetes stops a pod
    assert not search.running
    with sqlite3.connect(search.data_dir / "tasks.sqlite") as tasks:
        statuses = dict(tasks.execute("SELECT uid, status FROM tasks"))
    assert statuses[accepted[0]] == "succeeded"  # finished, not abandoned
    assert "processing" not in statuses.values()
    search.start()
    with _client(search) as client:
        assert [_finished(client, uid)["status"] for uid in accepted] == ["succeeded"] * 3
        assert _count(client) == 9000
