"""The search service over real index files and a real task store: writes applied as tasks in
order, a bad document failing only its own task, rebuilds swapped in while searches go on,
settings applied in place or by a rebuild, the sync's checkpoint kept with the version served,
and what a restart finds on disk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from stackyard.resources.search import SearchIndexSpec
from stackyard.search import layout
from stackyard.search.contract import MultiSearchQuery, SearchRequest
from stackyard.search.filter_ast import FilterError
from stackyard.search.service import IndexFollowsSource, IndexNotFound, SearchService


def _spec(**settings: Any) -> SearchIndexSpec:
    return SearchIndexSpec.model_validate(
        {"stackRef": {"name": "demo"}, "source": {"api": {}}, "filterableAttributes": ["brand", "price"]} | settings
    )


def _synced(**settings: Any) -> SearchIndexSpec:
    return _spec(source={"mongodb": {"collection": "products"}}, **settings)


def _products(count: int, start: int = 0) -> list[dict[str, Any]]:
    brands = ["acme", "globex", "initech"]
    return [
        {"id": f"p{i}", "title": f"sturdy ladder {i}", "brand": brands[i % 3], "price": i % 100}
        for i in range(start, start + count)
    ]


async def _hits(service: SearchService, name: str, q: str, **params: Any) -> list[dict[str, Any]]:
    return (await service.search(name, SearchRequest(q=q, **params))).hits


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[SearchService]:
    service = SearchService(tmp_path)
    await service.apply_config({"products": _spec()})
    await service.start()
    yield service
    await service.stop()


async def test_added_documents_are_searchable_once_their_task_succeeds(service: SearchService) -> None:
    task = await service.enqueue_documents("products", _products(3), merge=False)
    assert task.status == "enqueued" and task.type == "documentAdditionOrUpdate"
    done = await service.wait_for_task(task.uid)
    assert done.status == "succeeded"
    assert done.details == {"receivedDocuments": 3, "indexedDocuments": 3}
    assert {hit["id"] for hit in await _hits(service, "products", "ladder")} == {"p0", "p1", "p2"}
    stats = service.stats("products")
    assert stats.number_of_documents == 3 and stats.source == "api" and stats.version == 1


async def test_a_bad_document_fails_its_task_with_the_code_and_later_tasks_still_run(service: SearchService) -> None:
    bad = await service.enqueue_documents("products", [*_products(2), {"title": "no id"}], merge=False)
    good = await service.enqueue_documents("products", _products(2, start=10), merge=False)
    failed = await service.wait_for_task(bad.uid)
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.code == "missing_document_id"
    assert failed.details["indexedDocuments"] == 0
    assert (await service.wait_for_task(good.uid)).status == "succeeded"
    # Nothing of the failed batch was written; the later one was.
    assert {hit["id"] for hit in await _hits(service, "products", "ladder")} == {"p10", "p11"}


async def test_writes_apply_in_the_order_they_were_enqueued(service: SearchService) -> None:
    first = await service.enqueue_documents(
        "products", [{"id": "a", "title": "red chair", "brand": "acme"}], merge=False
    )
    await service.enqueue_documents("products", [{"id": "a", "title": "blue chair"}], merge=True)
    await service.enqueue_delete("products", ids=["a"])
    last = await service.enqueue_documents("products", [{"id": "a", "title": "green chair"}], merge=True)
    assert first.uid < last.uid
    assert (await service.wait_for_task(last.uid)).status == "succeeded"
    # Deleted, then added again by a merge: only the last write's fields.
    assert await service.get_document("products", "a") == {"id": "a", "title": "green chair"}


async def test_tasks_waiting_together_are_applied_as_if_one_by_one(tmp_path: Path) -> None:
    service = SearchService(tmp_path)
    await service.apply_config({"products": _spec()})
    try:
        # Enqueued while no worker runs, so that they wait together (and share commits).
        add = [
            await service.enqueue_documents(
                "products", [{"id": f"d{i}", "title": "lamp", "brand": "acme"}], merge=False
            )
            for i in range(50)
        ]
        merged = await service.enqueue_documents("products", [{"id": "d0", "brand": "globex"}], merge=True)
        bad = await service.enqueue_documents("products", [{"id": "ok", "title": "x"}, {"title": "no id"}], merge=False)
        by_ids = await service.enqueue_delete("products", ids=["d1", "d2"])
        by_filter = await service.enqueue_delete("products", filter="brand = acme")  # sees every write above
        last = await service.enqueue_documents("products", [{"id": "d1", "title": "lamp"}], merge=True)
        await service.start()
        assert (await service.wait_for_task(last.uid)).status == "succeeded"
        assert {(await service.wait_for_task(task.uid)).status for task in add} == {"succeeded"}
        assert (await service.wait_for_task(merged.uid)).status == "succeeded"
        failed = await service.wait_for_task(bad.uid)
        assert failed.status == "failed" and failed.error is not None and failed.error.code == "missing_document_id"
        assert (await service.wait_for_task(by_ids.uid)).details["deletedDocuments"] == 2
        assert (await service.wait_for_task(by_filter.uid)).details["deletedDocuments"] == 47
        documents, total = await service.documents("products", 0, 100)
        assert total == 2
        assert sorted(documents, key=lambda d: d["id"]) == [
            {"id": "d0", "title": "lamp", "brand": "globex"},
            {"id": "d1", "title": "lamp"},
        ]
    finally:
        await service.stop()


async def test_merge_updates_the_given_fields_and_keeps_the_others(service: SearchService) -> None:
    await service.enqueue_documents("products", [{"id": "a", "title": "red chair", "brand": "acme"}], merge=False)
    task = await service.enqueue_documents("products", [{"id": "a", "title": "blue chair"}], merge=True)
    await service.wait_for_task(task.uid)
    assert await service.get_document("products", "a") == {"id": "a", "title": "blue chair", "brand": "acme"}
    replace = await service.enqueue_documents("products", [{"id": "a", "title": "stool"}], merge=False)
    await service.wait_for_task(replace.uid)
    assert await service.get_document("products", "a") == {"id": "a", "title": "stool"}


async def test_deletes_by_ids_by_filter_and_everything(service: SearchService) -> None:
    await service.wait_for_task((await service.enqueue_documents("products", _products(9), merge=False)).uid)
    by_ids = await service.wait_for_task((await service.enqueue_delete("products", ids=["p0", "p1", "nope"])).uid)
    assert by_ids.details == {"providedIds": 3, "deletedDocuments": 2}
    by_filter = await service.wait_for_task((await service.enqueue_delete("products", filter="brand = globex")).uid)
    assert by_filter.details["originalFilter"] == "brand = globex"
    assert by_filter.details["deletedDocuments"] == 2  # p4 and p7 (p1 is gone already)
    documents, total = await service.documents("products", 0, 20)
    assert total == 5 and {d["id"] for d in documents} == {"p2", "p3", "p5", "p6", "p8"}
    everything = await service.wait_for_task((await service.enqueue_delete("products", everything=True)).uid)
    assert everything.details == {"deletedDocuments": 5}
    assert service.stats("products").number_of_documents == 0


async def test_a_bad_delete_filter_is_refused_before_any_task_exists(service: SearchService) -> None:
    before = service.tasks().total
    with pytest.raises(FilterError) as refused:
        await service.enqueue_delete("products", filter="colour = red")
    assert refused.value.code == "invalid_search_filter"
    with pytest.raises(FilterError) as syntax:
        await service.enqueue_delete("products", filter="brand = acme AND")
    assert syntax.value.position > 0
    assert service.tasks().total == before


async def test_unknown_index_and_writes_to_a_synced_index_are_refused(tmp_path: Path) -> None:
    service = SearchService(tmp_path)
    await service.apply_config({"synced": _synced()})
    try:
        with pytest.raises(IndexNotFound):
            await service.search("nope", SearchRequest(q="x"))
        with pytest.raises(IndexNotFound):
            await service.enqueue_documents("nope", [], merge=False)
        with pytest.raises(IndexFollowsSource):
            await service.enqueue_documents("synced", _products(1), merge=False)
        with pytest.raises(IndexFollowsSource):
            await service.enqueue_delete("synced", everything=True)
        assert service.stats("synced").source == "mongodb"
    finally:
        await service.stop()


async def test_a_rebuild_swaps_in_a_new_version_while_searches_keep_answering(
    service: SearchService, tmp_path: Path
) -> None:
    await service.wait_for_task((await service.enqueue_documents("products", _products(3000), merge=False)).uid)
    rebuild = await service.enqueue_rebuild("products")
    answers: list[int] = []
    seen_rebuilding = False
    while (task := service.task(rebuild.uid)) is not None and task.status not in ("succeeded", "failed"):
        seen_rebuilding = seen_rebuilding or service.rebuilding("products")
        response = await service.search("products", SearchRequest(q="ladder", limit=1))
        answers.append(response.estimated_total_hits or 0)
    done = await service.wait_for_task(rebuild.uid)
    assert done.status == "succeeded", done.error
    assert done.details["fromVersion"] == 1 and done.details["toVersion"] == 2
    assert seen_rebuilding and len(answers) > 1  # searched during the rebuild, every one answered
    assert all(total == min(3000, 1000) for total in answers)  # capped by pagination.maxTotalHits
    assert service.version("products") == 2 and not service.rebuilding("products")
    assert service.stats("products").number_of_documents == 3000
    await _until(lambda: not (tmp_path / "indexes" / "products" / "v1").exists())
    assert (tmp_path / "indexes" / "products" / "current").read_text().strip() == "2"


async def test_settings_that_change_the_files_rebuild_others_apply_in_place(service: SearchService) -> None:
    await service.wait_for_task((await service.enqueue_documents("products", _products(30), merge=False)).uid)
    await service.apply_config({"products": _spec(synonyms={"stepladder": ["ladder"]})})
    assert service.version("products") == 1
    assert len(await _hits(service, "products", "stepladder", limit=50)) == 30
    with pytest.raises(FilterError):
        await service.search("products", SearchRequest(filter="rating > 3"))
    await service.apply_config({"products": _spec(filterableAttributes=["brand", "price", "rating"])})
    rebuild = service.tasks(types=["indexRebuild"]).results[0]
    assert rebuild.details["reason"] == "layoutChanged"
    assert (await service.wait_for_task(rebuild.uid)).status == "succeeded"
    assert service.version("products") == 2
    assert await _hits(service, "products", "", filter="rating > 3") == []
    assert service.stats("products").number_of_documents == 30


async def test_an_index_removed_from_the_config_is_closed_and_its_files_removed(
    service: SearchService, tmp_path: Path
) -> None:
    await service.apply_config({"products": _spec(), "other": _spec()})
    await service.wait_for_task((await service.enqueue_documents("other", _products(2), merge=False)).uid)
    assert (tmp_path / "indexes" / "other").is_dir()
    await service.apply_config({"products": _spec()})
    assert service.index_names() == ["products"]
    assert not (tmp_path / "indexes" / "other").exists()
    with pytest.raises(IndexNotFound):
        await service.search("other", SearchRequest(q="ladder"))


async def test_multi_search_answers_each_query_with_its_index(service: SearchService) -> None:
    await service.apply_config({"products": _spec(), "other": _spec()})
    await service.wait_for_task((await service.enqueue_documents("other", _products(2), merge=False)).uid)
    answers = await service.multi_search(
        [MultiSearchQuery(index_uid="products", q="ladder"), MultiSearchQuery(index_uid="other", q="ladder")]
    )
    assert [(a.index_uid, len(a.hits)) for a in answers] == [("products", 0), ("other", 2)]


async def test_tasks_enqueued_before_a_restart_are_processed_after_it(tmp_path: Path) -> None:
    first = SearchService(tmp_path)
    await first.apply_config({"products": _spec()})
    await first.start()
    done = await first.wait_for_task((await first.enqueue_documents("products", _products(5), merge=False)).uid)
    await first.stop()
    assert done.status == "succeeded"
    # Enqueued while no worker runs (as when the process dies after the 202).
    second = SearchService(tmp_path)
    await second.apply_config({"products": _spec()})
    pending = await second.enqueue_documents("products", _products(5, start=100), merge=False)
    await second.stop()
    third = SearchService(tmp_path)
    await third.apply_config({"products": _spec()})
    await third.start()
    try:
        assert (await third.wait_for_task(pending.uid)).status == "succeeded"
        assert third.stats("products").number_of_documents == 10
        assert third.version("products") == 1
    finally:
        await third.stop()


class _ListSource:
    """A FullSource over a list (what the MongoSync gives a rebuild): the checkpoint of the
    moment, then the documents in batches, slowly enough to search in between."""

    def __init__(self, documents: list[dict[str, Any]], checkpoint: dict[str, Any]) -> None:
        self.documents = documents
        self.position = checkpoint

    async def checkpoint_now(self) -> dict[str, Any]:
        return dict(self.position)

    async def full_load(self) -> AsyncIterator[list[dict[str, Any]]]:
        for start in range(0, len(self.documents), 100):
            await asyncio.sleep(0.005)
            yield self.documents[start : start + 100]


async def test_a_synced_index_is_built_from_its_source_and_keeps_the_checkpoint_with_the_version(
    tmp_path: Path,
) -> None:
    service = SearchService(tmp_path)
    await service.apply_config({"synced": _synced()})
    await service.start()
    try:
        assert service.checkpoint("synced") is None
        build = await service.enqueue_rebuild("synced")
        await asyncio.sleep(0.1)
        assert service.task(build.uid).status == "enqueued"  # type: ignore[union-attr]  # waits for its source
        service.set_source("synced", _ListSource(_products(1000), {"resumeToken": "t1"}))
        assert (await service.wait_for_task(build.uid)).status == "succeeded"
        assert service.checkpoint("synced") == {"resumeToken": "t1"} and service.version("synced") == 2
        await service.apply_sync("synced", [{"id": "new", "title": "folding ladder"}], ["p0"], {"resumeToken": "t2"})
        assert service.checkpoint("synced") == {"resumeToken": "t2"}
        assert "new" in service.index_ids("synced") and "p0" not in service.index_ids("synced")
    finally:
        await service.stop()
    again = SearchService(tmp_path)
    await again.apply_config({"synced": _synced()})
    try:
        assert again.checkpoint("synced") == {"resumeToken": "t2"}
        assert again.stats("synced").number_of_documents == 1000
    finally:
        await again.stop()


async def test_a_layout_change_of_a_synced_index_copies_its_documents_and_keeps_its_checkpoint(
    tmp_path: Path,
) -> None:
    service = SearchService(tmp_path)
    await service.apply_config({"synced": _synced()})
    await service.start()
    try:
        service.set_source("synced", _ListSource(_products(300), {"resumeToken": "t1"}))
        await service.wait_for_task((await service.enqueue_rebuild("synced")).uid)
        service.set_source("synced", None)  # the sync is away (MongoDB down): the copy needs none
        await service.apply_config({"synced": _synced(sortableAttributes=["price"])})
        rebuild = service.tasks(types=["indexRebuild"], statuses=["enqueued", "processing"]).results[0]
        assert (await service.wait_for_task(rebuild.uid)).status == "succeeded"
        assert service.version("synced") == 3 and service.checkpoint("synced") == {"resumeToken": "t1"}
        cheapest = await _hits(service, "synced", "", sort=["price:asc"], limit=1)
        assert cheapest[0]["price"] == 0
    finally:
        await service.stop()


async def test_a_rebuild_abandoned_by_a_stop_is_done_again_after_the_restart(tmp_path: Path) -> None:
    service = SearchService(tmp_path)
    await service.apply_config({"synced": _synced()})
    await service.start()
    service.set_source("synced", _ListSource(_products(5000), {"at": 1}))
    build = await service.enqueue_rebuild("synced")
    await _until(lambda: service.rebuilding("synced"))
    await service.stop()
    assert sorted(p.name for p in (tmp_path / "indexes" / "synced").glob("v*")) == ["v1"]
    again = SearchService(tmp_path)
    await again.apply_config({"synced": _synced()})
    again.set_source("synced", _ListSource(_products(50), {"at": 2}))
    await again.start()
    try:
        assert (await again.wait_for_task(build.uid)).status == "succeeded"
        assert again.checkpoint("synced") == {"at": 2}
        assert again.stats("synced").number_of_documents == 50
    finally:
        await again.stop()


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_version_that_cannot_be_opened_is_set_aside_and_the_index_starts_empty(tmp_path: Path) -> None:
    first = SearchService(tmp_path)
    await first.apply_config({"products": _spec()})
    await first.start()
    await first.wait_for_task((await first.enqueue_documents("products", _products(3), merge=False)).uid)
    await first.stop()
    for path in (tmp_path / "indexes" / "products" / "v1" / "engine").iterdir():
        if path.suffix == ".json":
            path.write_text("{not json")  # a disk that lost the engine's files
    again = SearchService(tmp_path)
    await again.apply_config({"products": _spec()})
    try:
        assert again.stats("products").number_of_documents == 0 and again.version("products") == 2
        kept = list((tmp_path / "indexes" / "products").glob("unreadable-v1-*"))
        assert len(kept) == 1 and (kept[0] / "engine").is_dir()
        lost = again.tasks(types=["indexRebuild"]).results[0]  # the loss is in the task log, and why
        assert lost.status == "failed" and lost.details["reason"] == "layoutUpgraded"
        assert lost.error is not None and kept[0].name in lost.error.message
    finally:
        await again.stop()


async def test_a_synced_index_forgets_its_checkpoint_for_another_collection_not_for_another_poll_interval(
    tmp_path: Path,
) -> None:
    service = SearchService(tmp_path)
    await service.apply_config({"synced": _synced()})
    await service.start()
    try:
        service.set_source("synced", _ListSource(_products(10), {"resumeToken": "t1"}))
        await service.wait_for_task((await service.enqueue_rebuild("synced")).uid)
        slower = _spec(source={"mongodb": {"collection": "products", "sync": {"pollInterval": "10s"}}})
        await service.apply_config({"synced": slower})
        assert service.checkpoint("synced") == {"resumeToken": "t1"}
        await service.apply_config({"synced": _spec(source={"mongodb": {"collection": "articles"}})})
        assert service.checkpoint("synced") is None  # its sync loads the new collection
        assert service.stats("synced").number_of_documents == 10  # served until that load swaps in
    finally:
        await service.stop()


async def test_an_index_written_under_an_older_layout_is_carried_over_and_served_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine upgrade that changes the layout version: the files on disk open under no spec
    of the new engine, and the documents of an API-fed index (which no source can reload) are
    carried over from their stored sources into the new layout."""
    spec = _spec(sortableAttributes=["price"], pagination={"maxTotalHits": 5000})
    old_layout = layout.LAYOUT_VERSION
    monkeypatch.setattr(layout, "LAYOUT_VERSION", old_layout - 1)  # the engine before the upgrade
    first = SearchService(tmp_path)
    await first.apply_config({"products": spec})
    await first.start()
    task = await first.enqueue_documents("products", _products(2500), merge=False)
    assert (await first.wait_for_task(task.uid)).status == "succeeded"
    await first.wait_for_task((await first.enqueue_delete("products", ids=["p7"])).uid)
    await first.stop()
    monkeypatch.setattr(layout, "LAYOUT_VERSION", old_layout)  # the upgraded engine

    again = SearchService(tmp_path)
    await again.apply_config({"products": spec})
    await again.start()
    try:
        assert again.version("products") == 2 and again.document_count("products") == 2499
        assert again.stats("products").field_distribution == {"brand": 2499, "id": 2499, "price": 2499, "title": 2499}
        every = await again.search("products", SearchRequest(q="sturdy ladder", limit=1))
        assert every.estimated_total_hits == 2499
        assert [hit["id"] for hit in await _hits(again, "products", "ladder 1234")][:1] == ["p1234"]
        acme = await again.search("products", SearchRequest(q="", filter="brand = acme AND price < 3", limit=100))
        assert {hit["id"] for hit in acme.hits} == {f"p{i}" for i in range(2500) if i % 3 == 0 and i % 100 < 3}
        assert await again.get_document("products", "p7") is None
        cheapest = await _hits(again, "products", "", sort=["price:desc"], limit=1)
        assert cheapest[0]["price"] == 99
        upgrade = again.tasks(types=["indexRebuild"]).results[0]
        assert upgrade.status == "succeeded"
        assert upgrade.details == {"fromVersion": 1, "toVersion": 2, "reason": "layoutUpgraded"}
        index_dir = tmp_path / "indexes" / "products"
        assert sorted(p.name for p in index_dir.iterdir() if p.is_dir()) == ["v2"]  # nothing set aside
        done = await again.wait_for_task((await again.enqueue_documents("products", _products(1), merge=False)).uid)
        assert done.status == "succeeded"  # written to as any index
    finally:
        await again.stop()
    third = SearchService(tmp_path)  # the carried-over version opens as it is: no second upgrade
    await third.apply_config({"products": spec})
    try:
        assert third.version("products") == 2 and third.document_count("products") == 2499
    finally:
        await third.stop()


async def test_a_synced_index_written_under_an_older_layout_keeps_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_layout = layout.LAYOUT_VERSION
    monkeypatch.setattr(layout, "LAYOUT_VERSION", old_layout - 1)
    first = SearchService(tmp_path)
    await first.apply_config({"synced": _synced()})
    await first.start()
    first.set_source("synced", _ListSource(_products(300), {"resumeToken": "t1"}))
    await first.wait_for_task((await first.enqueue_rebuild("synced")).uid)
    await first.stop()
    monkeypatch.setattr(layout, "LAYOUT_VERSION", old_layout)
    again = SearchService(tmp_path)
    await again.apply_config({"synced": _synced()})
    try:
        assert again.checkpoint("synced") == {"resumeToken": "t1"}  # the sync follows on, no reload
        assert again.document_count("synced") == 300 and again.version("synced") == 3
    finally:
        await again.stop()
