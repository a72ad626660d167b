"""The search component's durable task log: tasks survive a restart and a crash, page newest
first as Meilisearch's /tasks does, and keep their payload exactly as long as it is needed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from stackyard.search.contract import TaskError
from stackyard.search.tasks import TaskStore

DOCUMENTS = [{"id": "1", "title": "Dune", "tags": ["sf"], "price": 9.5}, {"id": "2", "title": "Émile"}]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TaskStore]:
    store = TaskStore(tmp_path)
    yield store
    store.close()


def test_a_task_and_its_payload_survive_a_reopen(tmp_path: Path) -> None:
    store = TaskStore(tmp_path)
    task = store.enqueue("books", "documentAdditionOrUpdate", {"receivedDocuments": 2}, DOCUMENTS)
    assert (task.status, task.index_uid, task.type) == ("enqueued", "books", "documentAdditionOrUpdate")
    assert task.summary()["taskUid"] == task.uid
    assert (tmp_path / "tasks" / f"{task.uid}.json").is_file()
    store.close()

    reopened = TaskStore(tmp_path)
    try:
        assert reopened.get(task.uid) == task
        assert reopened.payload(task.uid) == DOCUMENTS
        assert reopened.next_enqueued("books") == task
        later = reopened.enqueue("books", "indexRebuild", {})
        assert later.uid > task.uid
    finally:
        reopened.close()


def test_a_task_left_processing_by_a_crash_is_enqueued_again(tmp_path: Path) -> None:
    crash = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from stackyard.search.tasks import TaskStore
        store = TaskStore(Path({str(tmp_path)!r}))
        first = store.enqueue("books", "documentAdditionOrUpdate", {{"receivedDocuments": 1}}, [{{"id": "1"}}])
        store.enqueue("books", "documentDeletion", {{"providedIds": 1}}, ["7"])
        store.start(first.uid)
        os._exit(9)
        """
    )
    process = subprocess.run([sys.executable, "-c", crash], check=False, timeout=60)
    assert process.returncode == 9

    store = TaskStore(tmp_path)
    try:
        (interrupted, waiting) = sorted(store.list().results, key=lambda task: task.uid)
        assert interrupted.status == "processing" and interrupted.started_at is not None
        assert store.next_enqueued("books") == waiting  # not the interrupted one until it is requeued

        assert store.requeue_processing() == 1
        again = store.next_enqueued("books")
        assert again is not None and again.uid == interrupted.uid
        assert again.status == "enqueued" and again.started_at is None
        assert store.payload(again.uid) == [{"id": "1"}]
        assert store.requeue_processing() == 0
    finally:
        store.close()


def test_a_task_goes_through_its_statuses_and_its_payload_goes_when_it_finishes(store: TaskStore) -> None:
    task = store.enqueue("books", "documentAdditionOrUpdate", {"receivedDocuments": 2}, DOCUMENTS)
    started = store.start(task.uid)
    assert started.status == "processing" and started.started_at is not None
    assert store.payload(task.uid) == DOCUMENTS
    with pytest.raises(ValueError, match="is processing, not enqueued"):
        store.start(task.uid)

    done = store.succeed(task.uid, {"indexedDocuments": 2})
    assert done.status == "succeeded"
    assert done.details == {"receivedDocuments": 2, "indexedDocuments": 2}
    assert done.finished_at is not None and done.duration_seconds is not None and done.duration_seconds >= 0
    assert store.payload(task.uid) is None
    assert not (store.payload_dir / f"{task.uid}.json").exists()
    with pytest.raises(ValueError, match="already succeeded"):
        store.fail(task.uid, TaskError(message="late", code="internal"))


def test_a_failed_task_keeps_its_error(store: TaskStore) -> None:
    task = store.enqueue("books", "documentAdditionOrUpdate", {"receivedDocuments": 1}, [{"title": "no id"}])
    store.start(task.uid)
    error = TaskError(message="document 0 has no `id`", code="missing_document_id")
    failed = store.fail(task.uid, error, {"indexedDocuments": 0})
    assert failed.status == "failed"
    assert failed.error == error
    assert failed.details == {"receivedDocuments": 1, "indexedDocuments": 0}
    assert store.get(task.uid) == failed
    assert store.payload(task.uid) is None
    assert store.get(task.uid + 100) is None
    with pytest.raises(LookupError):
        store.start(task.uid + 100)


def test_tasks_without_a_payload_have_none(store: TaskStore) -> None:
    task = store.enqueue("books", "indexRebuild", {"fromVersion": 1})
    assert store.payload(task.uid) is None
    assert list(store.payload_dir.iterdir()) == []


def test_the_queue_is_per_index_and_in_order(store: TaskStore) -> None:
    a1 = store.enqueue("books", "documentDeletion", {}, ["1"])
    m1 = store.enqueue("movies", "documentDeletion", {}, ["2"])
    a2 = store.enqueue("books", "documentDeletion", {}, ["3"])
    assert store.indexes_with_enqueued() == {"books", "movies"}
    assert store.next_enqueued("books") == a1
    store.start(a1.uid)
    assert store.next_enqueued("books") == a2
    store.succeed(a1.uid, {})
    store.start(m1.uid)
    assert store.next_enqueued("movies") is None
    assert store.indexes_with_enqueued() == {"books"}
    assert store.next_enqueued("nothing") is None


def test_the_enqueued_tasks_of_a_removed_index_are_canceled(store: TaskStore) -> None:
    first = store.enqueue("books", "documentDeletion", {}, ["1"])
    second = store.enqueue("books", "documentAdditionOrUpdate", {}, DOCUMENTS)
    other = store.enqueue("movies", "documentDeletion", {}, ["2"])
    store.start(first.uid)
    assert store.cancel_index("books") == 1
    canceled = store.get(second.uid)
    assert canceled is not None and canceled.status == "canceled" and canceled.finished_at is not None
    assert not (store.payload_dir / f"{second.uid}.json").exists()
    assert store.payload(other.uid) == ["2"]
    assert store.next_enqueued("books") is None
    assert store.cancel_index("books") == 0


def test_tasks_page_newest_first_with_from_and_next(store: TaskStore) -> None:
    uids = [store.enqueue(f"index{i % 2}", "documentDeletion", {"n": i}).uid for i in range(7)]
    page = store.list(limit=3)
    assert [task.uid for task in page.results] == uids[::-1][:3]
    assert (page.limit, page.from_, page.next, page.total) == (3, uids[6], uids[3], 7)
    page = store.list(limit=3, from_=page.next)
    assert [task.uid for task in page.results] == uids[3:0:-1]
    assert page.next == uids[0]
    page = store.list(limit=3, from_=page.next)
    assert [task.uid for task in page.results] == [uids[0]]
    assert page.next is None
    assert page.total == 7
    wire = store.list(limit=1).model_dump(mode="json", by_alias=True)
    assert set(wire) == {"results", "limit", "from", "next", "total"}
    assert store.list(limit=0).results == []


def test_tasks_filter_by_status_type_and_index(store: TaskStore) -> None:
    deletion = store.enqueue("books", "documentDeletion", {})
    addition = store.enqueue("books", "documentAdditionOrUpdate", {}, DOCUMENTS)
    rebuild = store.enqueue("movies", "indexRebuild", {})
    store.start(deletion.uid)
    store.succeed(deletion.uid, {"deletedDocuments": 0})

    def uids(**filters: object) -> list[int]:
        return [task.uid for task in store.list(**filters).results]  # type: ignore[arg-type]

    assert uids(statuses=["succeeded"]) == [deletion.uid]
    assert uids(statuses=["enqueued", "succeeded"]) == [rebuild.uid, addition.uid, deletion.uid]
    assert uids(types=["indexRebuild", "documentAdditionOrUpdate"]) == [rebuild.uid, addition.uid]
    assert uids(index_uids=["books"]) == [addition.uid, deletion.uid]
    assert uids(index_uids=["books"], statuses=["enqueued"], types=["documentAdditionOrUpdate"]) == [addition.uid]
    assert uids(index_uids=["nothing"]) == []
    assert store.list(index_uids=["books"]).total == 2


def test_prune_removes_the_oldest_finished_tasks_only(store: TaskStore) -> None:
    tasks = [store.enqueue("books", "documentDeletion", {}, [str(i)]) for i in range(6)]
    for task in tasks[:4]:
        store.start(task.uid)
        store.succeed(task.uid, {})
    assert store.prune(keep=1) == 3
    assert [task.uid for task in store.list().results] == [task.uid for task in tasks[3:]][::-1]
    assert store.payload(tasks[5].uid) == ["5"]
    assert store.prune(keep=0) == 1
    assert store.list().total == 2
    after = store.enqueue("books", "indexRebuild", {})
    assert after.uid > tasks[-1].uid  # a uid is never reused


def test_a_payload_file_without_its_task_is_removed_at_open(tmp_path: Path) -> None:
    store = TaskStore(tmp_path)
    kept = store.enqueue("books", "documentDeletion", {}, ["1"])
    store.close()
    (tmp_path / "tasks" / "999.json").write_text("[]")  # a crash between the file and the commit
    (tmp_path / "tasks" / "998.json.tmp").write_text("[")
    reopened = TaskStore(tmp_path)
    try:
        assert sorted(path.name for path in (tmp_path / "tasks").iterdir()) == [f"{kept.uid}.json"]
    finally:
        reopened.close()


def test_concurrent_enqueues_from_threads_get_unique_uids(store: TaskStore) -> None:
    uids: list[int] = []
    guard = threading.Lock()

    def enqueue(worker: int) -> None:
        for i in range(25):
            task = store.enqueue(f"index{worker}", "documentDeletion", {"i": i}, [f"{worker}-{i}"])
            with guard:
                uids.append(task.uid)
            store.list(limit=5)

    threads = [threading.Thread(target=enqueue, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(uids) == len(set(uids)) == 100
    assert store.list().total == 100
    assert all(store.payload(uid) is not None for uid in uids)
