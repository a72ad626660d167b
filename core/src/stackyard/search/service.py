"""The search component's core: the indexes of the config in force, their writes applied as
tasks, their searches, and the rebuilds that replace an index without a pause in service.

Threads. Each index has one writer thread: its engine is created, written, committed and
closed there only, and its writes (tasks, sync batches, settings, a rebuild) take the index's
lane (an asyncio lock, first come first served) so they run one at a time in the order they
came. Searches run in a shared pool, concurrently with the writes, on the version being served
(an engine sees its last commit). A version taken out of service is closed once the searches
still running on it are done.

Tasks. A write through the API is a task in the TaskStore (`<data>/tasks.sqlite`, its
documents in `<data>/tasks/<uid>.json`, written before the 202): one loop per index takes its
enqueued tasks in order. A task a crash left `processing` is processed again at start (a
write by primary key is idempotent). `stop()` lets the task being processed finish, except a
rebuild, which is abandoned (its half-built version removed) and done again after the restart.

Rebuild. The next version is made beside the current one (`versions.IndexVersions`): from the
source for a MongoDB-sourced index (`FullSource`: the change feed's checkpoint taken first,
then every document), else copied from the current version; it is committed, its meta gets the
checkpoint, `current` is swapped and the old version removed. Searches are served from the old
version until the swap. A config whose `SearchEngine.layout_key` differs from the files'
enqueues a rebuild; other setting changes are applied in place (`update_settings`).

Upgrade. A version the engine cannot open (files written by an engine with another layout
version, which no spec opens) is carried over when the index is opened at start: the next
version is built, in the current layout, from the documents' stored sources
(`SearchEngine.stored_documents`, which needs no layout), keeps the checkpoint, and is swapped
in before the index is served; an indexRebuild task with reason layoutUpgraded records it. Only
a version whose documents cannot be read either is set aside (`unreadable-v<N>-<time>`) and the
index starts empty.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..resources.search import SearchIndexSpec
from .contract import (
    FilterInput,
    IndexStats,
    MultiSearchQuery,
    SearchRequest,
    SearchResponse,
    Task,
    TaskError,
    TaskPage,
    TaskStatus,
    TaskType,
)
from .engine import DocumentError, SearchEngine
from .filter_ast import Filter, FilterError
from .filters import parse_filter
from .tasks import TaskStore
from .versions import IndexVersions, VersionMeta

log = logging.getLogger(__name__)

T = TypeVar("T")

FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
COPY_BATCH = 1000
"""Documents per batch when a rebuild copies the current version."""
SEARCH_THREADS = max(4, 2 * (os.cpu_count() or 2))
REQUESTED, LAYOUT_CHANGED, LAYOUT_UPGRADED = "requested", "layoutChanged", "layoutUpgraded"
"""Why a rebuild was made (its details' `reason`): asked for, the config changed what the files
hold, or the files were written by an engine with another layout (carried over at start)."""
BATCH_TASKS = 100
BATCH_DOCUMENTS = 50_000
"""Most tasks, and about the most documents, applied in one commit (Meilisearch's autobatching):
many small writes (a document per request) cost one commit, not one each."""
PRUNE_EVERY = 1000
"""Finished tasks between two prunes of the task log."""
KEEP_TASKS = 100_000
"""Finished tasks kept in the log (Meilisearch keeps up to a million)."""


class IndexNotFound(LookupError):
    """No index of that name in the config in force (404, code index_not_found)."""

    code = "index_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"Index `{name}` not found.")
        self.name = name
        self.message = str(self)


class IndexFollowsSource(RuntimeError):
    """Documents written to an index that follows a MongoDB collection (409): its documents
    change in the collection only."""

    code = "index_follows_source"

    def __init__(self, name: str) -> None:
        super().__init__(f"Index `{name}` follows a MongoDB collection: write to the collection, or rebuild the index.")
        self.name = name
        self.message = str(self)


class FullSource(Protocol):
    """Where a rebuild of a MongoDB-sourced index reads every document (the index's MongoSync)."""

    async def checkpoint_now(self) -> dict[str, Any]:
        """Where the change feed is now: the new version follows on from here."""
        ...

    def full_load(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Every document of the source, mapped, in batches."""
        ...


class _Stopping(Exception):
    """The service stops: a rebuild is abandoned, its task processed again after the restart."""


class _Served:
    """One open version of an index: its engine, its meta, and who is searching it. Retired at
    a swap or a removal, it is closed (in the writer thread) when its last search is done."""

    def __init__(
        self, engine: SearchEngine, meta: VersionMeta, spec: SearchIndexSpec, writer: concurrent.futures.Executor
    ) -> None:
        self.engine = engine
        self.meta = meta
        self.spec = spec
        self._writer = writer
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False
        self._after: Callable[[], None] | None = None
        self.closed: concurrent.futures.Future[None] = concurrent.futures.Future()

    @property
    def version(self) -> int:
        return self.meta.version

    def acquire(self) -> bool:
        with self._lock:
            if self._retired:
                return False
            self._users += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._retired and self._users == 0
        if last:
            self._close()

    def retire(self, after: Callable[[], None] | None = None) -> concurrent.futures.Future[None]:
        """No new searches; closed (then `after` runs) once the running ones are done."""
        with self._lock:
            if self._retired:
                return self.closed
            self._retired, self._after = True, after
            last = self._users == 0
        if last:
            self._close()
        return self.closed

    def _close(self) -> None:
        def close() -> None:
            try:
                self.engine.close()
            except Exception:
                log.exception("closing version %s failed", self.meta.version)
            if self._after is not None:
                self._after()
            self.closed.set_result(None)

        try:
            self._writer.submit(close)
        except RuntimeError:  # the writer is shut down already
            close()


@dataclass
class _Index:
    name: str
    spec: SearchIndexSpec
    versions: IndexVersions
    writer: concurrent.futures.ThreadPoolExecutor
    served: _Served
    lane: asyncio.Lock
    wake: asyncio.Event
    loop: asyncio.Task[None] | None = None
    source: FullSource | None = None
    rebuilding: bool = False
    processing: bool = False
    removed: bool = False

    @property
    def follows_source(self) -> bool:
        return self.spec.source.mongodb is not None


class SearchService:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        (data_dir / "indexes").mkdir(parents=True, exist_ok=True)
        self._indexes: dict[str, _Index] = {}
        self._search_pool = concurrent.futures.ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="search")
        self._store = TaskStore(data_dir)
        self._config_lock = asyncio.Lock()
        self._finished = asyncio.Event()
        self._started = False
        self._stopping = False
        self._configured = False
        self._finished_count = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Process the tasks: those a crash left processing first, then the enqueued ones."""
        if self._started:
            return
        requeued = await self._tasks(self._store.requeue_processing)
        await self._tasks(self._store.prune, KEEP_TASKS)
        if requeued:
            log.info("search: %s task(s) interrupted by a stop are processed again", requeued)
        self._started = True
        for index in self._indexes.values():
            self._start_loop(index)

    async def stop(self) -> None:
        """Stop after the task being processed (a rebuild is abandoned), close every index."""
        if self._stopping:
            return
        self._stopping = True
        for index in self._indexes.values():
            index.wake.set()
        loops = [index.loop for index in self._indexes.values() if index.loop is not None]
        if loops:
            await asyncio.gather(*loops, return_exceptions=True)
        for index in list(self._indexes.values()):
            async with index.lane:
                await asyncio.wrap_future(index.served.retire())
            index.writer.shutdown(wait=True)
        self._indexes.clear()
        self._store.close()
        self._search_pool.shutdown(wait=False)

    @property
    def configured(self) -> bool:
        """Whether a config has been applied (before, every index is unknown)."""
        return self._configured

    # -- config --------------------------------------------------------------------------

    async def apply_config(self, indexes: Mapping[str, SearchIndexSpec]) -> None:
        """Make the indexes those of `indexes`: new ones created (empty), changed settings
        applied in place or by a rebuild when the files depend on them, gone ones closed and
        their files and tasks removed."""
        async with self._config_lock:
            for name in [name for name in self._indexes if name not in indexes]:
                await self._remove(name)
            if not self._configured:
                await self._remove_leftovers(set(indexes))
            for name, spec in indexes.items():
                index = self._indexes.get(name)
                if index is None:
                    await self._open(name, spec)
                elif spec != index.spec:
                    await self._change(index, spec)
            self._configured = True

    async def _open(self, name: str, spec: SearchIndexSpec) -> None:
        versions = IndexVersions(self.data_dir / "indexes" / name)
        writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"search-writer-{name}")
        opened = await asyncio.wrap_future(writer.submit(_open_or_create, versions, name, spec))
        engine, meta, served = opened.engine, opened.meta, opened.spec
        index = _Index(
            name=name,
            spec=spec,
            versions=versions,
            writer=writer,
            served=_Served(engine, meta, served, writer),
            lane=asyncio.Lock(),
            wake=asyncio.Event(),
        )
        self._indexes[name] = index
        log.info("search: index %s serves version %s", name, meta.version)
        if opened.upgrade is not None:
            await self._record_upgrade(name, opened.upgrade)
        if meta.layout_key != SearchEngine.layout_key(spec):
            await self._enqueue_rebuild(index, reason=LAYOUT_CHANGED)
        if self._started:
            self._start_loop(index)

    async def _change(self, index: _Index, spec: SearchIndexSpec) -> None:
        old, index.spec = index.spec, spec
        if _documents_from(old) != _documents_from(spec) and spec.source.mongodb is not None:
            # Another collection or field mapping (or a collection for the first time): the
            # checkpoint is of no use; the index's sync starts over with a full load (a rebuild
            # from the new source). A change of sync settings only (poll interval...) keeps it.
            async with index.lane:
                served = index.served
                meta = replace(served.meta, checkpoint=None)
                await self._write(index, index.versions.write_meta, meta)
                served.meta = meta
        if SearchEngine.layout_key(spec) != index.served.meta.layout_key:
            await self._enqueue_rebuild(index, reason=LAYOUT_CHANGED)
            return
        async with index.lane:
            served = index.served

            def update() -> None:
                served.engine.update_settings(spec)
                meta = replace(served.meta, spec=_spec_json(spec))
                index.versions.write_meta(meta)
                served.meta, served.spec = meta, spec

            await self._write(index, update)

    async def _remove(self, name: str) -> None:
        index = self._indexes.pop(name)
        index.removed = True
        index.wake.set()
        canceled = await self._tasks(self._store.cancel_index, name)
        if index.loop is not None:
            await asyncio.gather(index.loop, return_exceptions=True)
        async with index.lane:
            await asyncio.wrap_future(index.served.retire())
            await self._write(index, index.versions.remove_all)
        index.writer.shutdown(wait=False)
        log.info("search: index %s removed (no longer in the config; %s task(s) canceled)", name, canceled)

    async def _remove_leftovers(self, keep: set[str]) -> None:
        """At the first config: the files and tasks of indexes removed while the component was
        not running."""
        root = self.data_dir / "indexes"
        for directory in root.iterdir():
            if directory.is_dir() and directory.name not in keep:
                log.info("search: removing the files of index %s (not in the config)", directory.name)
                await asyncio.to_thread(IndexVersions(directory).remove_all)
        for name in await self._tasks(self._store.indexes_with_enqueued):
            if name not in keep:
                await self._tasks(self._store.cancel_index, name)

    # -- reads ---------------------------------------------------------------------------

    def index_names(self) -> list[str]:
        return sorted(self._indexes)

    def spec(self, name: str) -> SearchIndexSpec:
        return self._get(name).spec

    def document_count(self, name: str) -> int:
        """The documents of the version being served: a count the searcher keeps (cheap, unlike
        `stats`, whose field distribution aggregates over every document)."""
        with self._using(self._get(name)) as served:
            return served.engine.count()

    def stats(self, name: str) -> IndexStats:
        """Counts, version and the field distribution (an aggregation over the whole index:
        call it from a thread, not the event loop)."""
        index = self._get(name)
        with self._using(index) as served:
            count = served.engine.count()
            distribution = served.engine.field_distribution()
            version = served.version
        return IndexStats(
            uid=name,
            primary_key=index.spec.primary_key,
            number_of_documents=count,
            is_indexing=index.processing or index.rebuilding,
            version=version,
            source="mongodb" if index.follows_source else "api",
            field_distribution=distribution,
        )

    async def search(self, name: str, request: SearchRequest) -> SearchResponse:
        return await self._read(self._get(name), lambda served: served.engine.search(request))

    async def multi_search(self, queries: Sequence[MultiSearchQuery]) -> list[SearchResponse]:
        """Every query, at once; an error in one (unknown index, bad filter) fails them all."""
        for query in queries:
            self._get(query.index_uid)

        async def one(query: MultiSearchQuery) -> SearchResponse:
            request = SearchRequest.model_validate(query.model_dump(exclude={"index_uid"}))
            response = await self.search(query.index_uid, request)
            return response.model_copy(update={"index_uid": query.index_uid})

        return list(await asyncio.gather(*(one(query) for query in queries)))

    async def get_document(self, name: str, id: str, fields: Sequence[str] | None = None) -> dict[str, Any] | None:
        return await self._read(self._get(name), lambda served: served.engine.get_document(id, fields))

    async def documents(
        self,
        name: str,
        offset: int,
        limit: int,
        fields: Sequence[str] | None = None,
        filter: FilterInput | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        def read(served: _Served) -> tuple[list[dict[str, Any]], int]:
            parsed = parse_filter(filter, served.spec.filter_attributes) if filter is not None else None
            return served.engine.documents(offset, limit, fields, parsed)

        return await self._read(self._get(name), read)

    def index_ids(self, name: str) -> set[str]:
        with self._using(self._get(name)) as served:
            return served.engine.ids()

    def rebuilding(self, name: str) -> bool:
        return self._get(name).rebuilding

    def version(self, name: str) -> int:
        return self._get(name).served.version

    def checkpoint(self, name: str) -> dict[str, Any] | None:
        """Where the change feed was when the version being served last took its changes (None:
        never loaded from its source)."""
        return self._get(name).served.meta.checkpoint

    # -- tasks ---------------------------------------------------------------------------

    async def enqueue_documents(self, name: str, documents: list[dict[str, Any]], *, merge: bool) -> Task:
        """Add or replace (merge: add or update) documents; 202 with the task once the
        documents are on disk."""
        index = self._writable(name)
        details = {"receivedDocuments": len(documents), "indexedDocuments": None}
        payload = {"documents": documents, "merge": merge}
        return await self._enqueue(index, "documentAdditionOrUpdate", details, payload)

    async def enqueue_delete(
        self,
        name: str,
        *,
        ids: Sequence[str] | None = None,
        filter: FilterInput | None = None,
        everything: bool = False,
    ) -> Task:
        """Delete by ids, by filter (checked now: a bad one raises FilterError and no task is
        made) or every document."""
        index = self._writable(name)
        if sum((ids is not None, filter is not None, everything)) != 1:
            raise ValueError("give exactly one of ids, filter and everything")
        details: dict[str, Any]
        if ids is not None:
            ids = [str(id) for id in ids]
            details = {"providedIds": len(ids), "deletedDocuments": None}
            payload: dict[str, Any] = {"ids": ids}
        elif filter is not None:
            parse_filter(filter, index.served.spec.filter_attributes)
            details = {"originalFilter": filter, "deletedDocuments": None}
            payload = {"filter": filter}
        else:
            details = {"deletedDocuments": None}
            payload = {"everything": True}
        return await self._enqueue(index, "documentDeletion", details, payload)

    async def enqueue_rebuild(self, name: str) -> Task:
        """A new version from the source (a MongoDB-sourced index: read again through its
        FullSource; else a copy of the current version), then a swap. A requested rebuild
        already waiting for this index is returned instead of a second one."""
        return await self._enqueue_rebuild(self._get(name), reason=REQUESTED)

    async def _enqueue_rebuild(self, index: _Index, *, reason: str) -> Task:
        """`reason` REQUESTED (by a user or the sync) or LAYOUT_CHANGED (the config changed what
        the files hold: the current version's documents are copied into the new layout, and a
        synced index keeps its checkpoint). A waiting rebuild that does as much is returned."""
        waiting = await self._tasks(
            self._store.list, statuses=["enqueued"], types=["indexRebuild"], index_uids=[index.name], limit=100
        )
        for task in waiting.results:
            if reason == LAYOUT_CHANGED or task.details.get("reason") == reason:
                return task
        details = {"fromVersion": index.served.version, "toVersion": None, "reason": reason}
        return await self._enqueue(index, "indexRebuild", details, None)

    async def _record_upgrade(self, name: str, upgrade: _Upgrade) -> None:
        """The carry-over (or loss) of a version written under another layout, as a finished
        indexRebuild task (reason layoutUpgraded) in the task log, for people to find."""
        details = {"fromVersion": upgrade.from_version, "toVersion": None, "reason": LAYOUT_UPGRADED}

        def record() -> None:
            task = self._store.enqueue(name, "indexRebuild", details)
            self._store.start(task.uid)
            if upgrade.error is None:
                self._store.succeed(task.uid, details | {"toVersion": upgrade.to_version})
            else:
                self._store.fail(task.uid, TaskError(message=upgrade.error[:1000], code="internal", type="internal"))

        try:
            await self._tasks(record)
        except Exception:
            log.exception("search: recording the upgrade of %s in the task log failed", name)

    async def _enqueue(self, index: _Index, type: TaskType, details: dict[str, Any], payload: Any) -> Task:
        task = await self._tasks(self._store.enqueue, index.name, type, details, payload)
        index.wake.set()
        return task

    def task(self, uid: int) -> Task | None:
        return self._store.get(uid)

    def tasks(
        self,
        *,
        statuses: Sequence[TaskStatus] | None = None,
        types: Sequence[TaskType] | None = None,
        index_uids: Sequence[str] | None = None,
        limit: int = 20,
        from_: int | None = None,
    ) -> TaskPage:
        return self._store.list(statuses=statuses, types=types, index_uids=index_uids, limit=limit, from_=from_)

    async def wait_for_task(self, uid: int, timeout: float = 30.0) -> Task:
        """The task once it has finished (succeeded, failed or canceled); TimeoutError after
        `timeout` seconds, LookupError for a uid that does not exist."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            finished = self._finished
            task = await self._tasks(self._store.get, uid)
            if task is None:
                raise LookupError(f"no task {uid}")
            if task.status in FINISHED:
                return task
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"task {uid} is still {task.status} after {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), min(left, 0.5))

    # -- sync (the MongoSync of a MongoDB-sourced index) ----------------------------------

    def set_source(self, name: str, source: FullSource | None) -> None:
        """Where a rebuild of `name` reads every document; a rebuild waiting for one goes on."""
        index = self._get(name)
        index.source = source
        index.wake.set()

    async def apply_sync(
        self, name: str, upserts: list[dict[str, Any]], deletes: list[str], checkpoint: dict[str, Any]
    ) -> None:
        """Changes read from the source, applied in the index's write order: the deletes, then
        the upserts (so an id deleted and inserted again is present), one commit, then
        `checkpoint` stored with the version served. A bad document raises DocumentError and
        nothing of the batch is applied."""
        index = self._get(name)
        async with index.lane:
            if index.removed:
                raise IndexNotFound(name)
            served = index.served

            def write() -> None:
                if deletes:
                    served.engine.delete_documents(deletes)
                if upserts:
                    served.engine.add_documents(upserts)
                served.engine.commit()
                meta = replace(served.meta, checkpoint=checkpoint)
                index.versions.write_meta(meta)
                served.meta = meta

            await self._write(index, write)

    # -- processing ----------------------------------------------------------------------

    def _start_loop(self, index: _Index) -> None:
        if index.loop is None:
            index.loop = asyncio.create_task(self._run(index), name=f"search tasks {index.name}")

    async def _run(self, index: _Index) -> None:
        while not (self._stopping or index.removed):
            index.wake.clear()
            try:
                task = await self._tasks(self._store.next_enqueued, index.name)
            except Exception:
                log.exception("search: reading the tasks of %s failed; trying again", index.name)
                await asyncio.sleep(1.0)
                continue
            if task is None or (_from_source(index, task) and index.source is None):
                # Nothing to do, or a rebuild that waits for the index's sync to give its source.
                await index.wake.wait()
                continue
            try:
                if _batchable(task):
                    await self._process_batch(index, await self._batch(index, task))
                else:
                    await self._process(index, task)
            except Exception:
                log.exception(
                    "search: recording the outcome of task %s of %s failed; trying again", task.uid, index.name
                )
                await asyncio.sleep(1.0)

    async def _process(self, index: _Index, task: Task) -> None:
        await self._tasks(self._store.start, task.uid)
        index.processing = True
        try:
            async with index.lane:
                details = await self._apply(index, task)
        except _Stopping:
            if index.removed:
                error = TaskError(message=f"Index `{index.name}` was removed from the config.", code="index_not_found")
                await self._fail(task, error, _zeroed(task.details))
            else:
                log.info("search: task %s of %s abandoned by the stop; done again at start", task.uid, index.name)
            return
        except DocumentError as exc:
            await self._fail(task, TaskError(message=exc.message, code=exc.code), _zeroed(task.details))
        except FilterError as exc:
            await self._fail(task, TaskError(message=exc.message, code=exc.code), _zeroed(task.details))
        except Exception as exc:
            log.exception("search: task %s of %s failed", task.uid, index.name)
            error = TaskError(message=f"{type(exc).__name__}: {exc}"[:1000], code="internal", type="internal")
            await self._fail(task, error, _zeroed(task.details))
        else:
            await self._tasks(self._store.succeed, task.uid, details)
        finally:
            index.processing = False
            self._pulse()
        await self._count_finished(1)

    async def _batch(self, index: _Index, first: Task) -> list[Task]:
        """`first` and the enqueued tasks right after it that can be applied with it in one
        commit (document additions and deletions by id; at most BATCH_TASKS tasks and about
        BATCH_DOCUMENTS documents), in their order."""
        page = await self._tasks(
            self._store.list,
            statuses=["enqueued"],
            index_uids=[index.name],
            from_=first.uid + BATCH_TASKS - 1,
            limit=BATCH_TASKS,
        )
        batch: list[Task] = []
        documents = 0
        for task in sorted(page.results, key=lambda task: task.uid):
            if task.uid < first.uid:
                continue
            if not _batchable(task):
                break
            size = int(task.details.get("receivedDocuments") or task.details.get("providedIds") or 0)
            if batch and documents + size > BATCH_DOCUMENTS:
                break
            batch.append(task)
            documents += size
        return batch if batch and batch[0].uid == first.uid else [first]

    async def _process_batch(self, index: _Index, batch: list[Task]) -> None:
        """Tasks applied one after the other in the writer and committed once: each succeeds
        or fails on its own (a bad document writes nothing of its task), as if one by one."""
        for task in batch:
            await self._tasks(self._store.start, task.uid)
        index.processing = True
        try:
            async with index.lane:
                payloads = [await self._tasks(self._store.payload, task.uid) for task in batch]
                outcomes = await self._write(index, _apply_batch, index.served.engine, batch, payloads)
        except Exception as exc:
            log.exception("search: tasks %s of %s failed", [task.uid for task in batch], index.name)
            error = TaskError(message=f"{type(exc).__name__}: {exc}"[:1000], code="internal", type="internal")
            outcomes = [error] * len(batch)
        try:
            for task, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, TaskError):
                    await self._fail(task, outcome, _zeroed(task.details))
                else:
                    await self._tasks(self._store.succeed, task.uid, outcome)
        finally:
            index.processing = False
            self._pulse()
        await self._count_finished(len(batch))

    async def _count_finished(self, count: int) -> None:
        before, self._finished_count = self._finished_count, self._finished_count + count
        if before // PRUNE_EVERY != self._finished_count // PRUNE_EVERY:
            await self._tasks(self._store.prune, KEEP_TASKS)

    async def _fail(self, task: Task, error: TaskError, details: dict[str, Any]) -> None:
        await self._tasks(self._store.fail, task.uid, error, details)

    async def _apply(self, index: _Index, task: Task) -> dict[str, Any]:
        """Apply one task that is not batched (a rebuild, a deletion by filter or of every
        document), the lane held: the details it finished with."""
        if task.type == "indexRebuild":
            to_version = await self._rebuild(index, from_source=_from_source(index, task))
            return task.details | {"toVersion": to_version}
        payload = await self._tasks(self._store.payload, task.uid)
        if not isinstance(payload, dict):
            raise RuntimeError(f"the payload of task {task.uid} is missing from {self.data_dir / 'tasks'}")
        served = index.served
        if "filter" in payload:
            parsed = parse_filter(payload["filter"], served.spec.filter_attributes)
            deleted = await self._write(index, _delete_filter, served.engine, parsed)
        elif payload.get("everything"):
            deleted = await self._write(index, _clear, served.engine)
        else:
            raise RuntimeError(f"task {task.uid} ({task.type}) is applied in a batch")
        return task.details | {"deletedDocuments": deleted}

    async def _rebuild(self, index: _Index, *, from_source: bool) -> int:
        """Build the next version, then swap it in (the lane held): its number. From the source
        (its checkpoint first, then every document), or a copy of the current version that
        keeps its checkpoint."""
        old = index.served
        spec = index.spec
        versions = index.versions
        version = await self._write(index, versions.next_version)
        checkpoint = old.meta.checkpoint
        source = index.source if from_source else None
        if from_source and source is None:
            raise RuntimeError(f"index {index.name} has no source to rebuild from yet")
        index.rebuilding = True
        log.info("search: rebuilding %s as version %s", index.name, version)
        try:
            path = await self._write(index, versions.prepare, version)
            engine = await self._write(index, SearchEngine.create, path, index.name, spec)
        except BaseException:
            index.rebuilding = False
            await self._write(index, versions.remove_version, version)
            raise
        try:
            if source is not None:
                checkpoint = await source.checkpoint_now()
                async for batch in source.full_load():
                    if self._stopping or index.removed:
                        raise _Stopping
                    if batch:
                        await self._write(index, engine.add_documents, batch)
            else:
                await self._write(index, self._copy, index, old.engine, engine)
            meta = _meta(version, spec, checkpoint)

            def swap() -> None:
                engine.commit()
                versions.write_meta(meta)
                versions.swap(version)

            await self._write(index, swap)
        except BaseException:
            await self._write(index, engine.close)
            await self._write(index, versions.remove_version, version)
            raise
        finally:
            index.rebuilding = False
        index.served = _Served(engine, meta, spec, index.writer)
        old.retire(after=lambda: versions.remove_version(old.version))
        log.info("search: %s serves version %s (was %s)", index.name, version, old.version)
        return version

    def _copy(self, index: _Index, source: SearchEngine, target: SearchEngine) -> None:
        for batch in source.iter_documents(COPY_BATCH):
            if self._stopping or index.removed:
                raise _Stopping
            target.add_documents(batch)

    # -- plumbing ------------------------------------------------------------------------

    def _get(self, name: str) -> _Index:
        index = self._indexes.get(name)
        if index is None:
            raise IndexNotFound(name)
        return index

    def _writable(self, name: str) -> _Index:
        index = self._get(name)
        if index.follows_source:
            raise IndexFollowsSource(name)
        return index

    async def _tasks(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A TaskStore call (it may write and fsync a payload, or read one) in a thread."""
        return await asyncio.to_thread(call, *args, **kwargs)

    async def _write(self, index: _Index, call: Callable[..., T], *args: Any) -> T:
        """A call in the index's writer thread."""
        return await asyncio.wrap_future(index.writer.submit(call, *args))

    async def _read(self, index: _Index, read: Callable[[_Served], T]) -> T:
        def run() -> T:
            with self._using(index) as served:
                return read(served)

        return await asyncio.wrap_future(self._search_pool.submit(run))

    @contextlib.contextmanager
    def _using(self, index: _Index) -> Iterator[_Served]:
        """The version being served, kept open while the block runs."""
        while True:
            if index.removed:
                raise IndexNotFound(index.name)
            served = index.served
            if served.acquire():
                break
        try:
            yield served
        finally:
            served.release()

    def _pulse(self) -> None:
        """Wake whoever waits for a task to finish."""
        self._finished.set()
        self._finished = asyncio.Event()


@dataclass(frozen=True)
class _Upgrade:
    """A version written under another layout: carried over into `to_version`, or (`error`)
    set aside."""

    from_version: int
    to_version: int
    error: str | None = None


@dataclass(frozen=True)
class _Opened:
    engine: SearchEngine
    meta: VersionMeta
    spec: SearchIndexSpec
    """The spec it is served with (that of its files until a layoutChanged rebuild)."""
    upgrade: _Upgrade | None = None


def _open_or_create(versions: IndexVersions, name: str, spec: SearchIndexSpec) -> _Opened:
    """The version being served (leftovers of an unfinished rebuild removed), or a first empty
    one. A version whose layout differs from `spec` is opened with the spec it was built with,
    until its rebuild; one that no spec opens (written by an engine with another layout
    version) is carried over into a new version from its documents' stored sources, and only
    when even that fails is it set aside and the index starts empty."""
    versions.root.mkdir(parents=True, exist_ok=True)
    current = versions.current()
    removed = versions.remove_others()
    if removed:
        log.info("search: index %s: removed the unfinished or old version(s) %s", name, removed)
    if current is None:
        return _Opened(*_create_first(versions, name, spec), spec)
    meta: VersionMeta | None = None
    try:
        meta = versions.read_meta(current)
        served = spec
        if meta.layout_key != SearchEngine.layout_key(spec) and meta.spec is not None:
            served = SearchIndexSpec.model_validate(meta.spec)
        engine = SearchEngine.open(versions.engine_dir(current), name, served)
        if served is spec and meta.spec != _spec_json(spec):
            meta = replace(meta, spec=_spec_json(spec))
            versions.write_meta(meta)
        return _Opened(engine, meta, served)
    except Exception as exc:
        log.warning(
            "search: index %s: version %s cannot be opened (%s: %s); carrying its documents over to a new version",
            name,
            current,
            type(exc).__name__,
            exc,
        )
    try:
        engine, meta, carried = _carry_over(versions, name, spec, current, meta)
    except Exception as exc:
        kept = versions.set_aside(current)
        log.exception(
            "search: index %s: the documents of version %s cannot be read either; it is kept in %s and the index "
            "starts empty (a synced index loads its collection again)",
            name,
            current,
            kept,
        )
        engine, meta = _create_first(versions, name, spec)
        error = f"version {current} could not be carried over ({type(exc).__name__}: {exc}); it is kept in {kept.name}"
        return _Opened(engine, meta, spec, _Upgrade(current, meta.version, error))
    log.info(
        "search: index %s: %s document(s) of version %s carried over to version %s",
        name,
        carried,
        current,
        meta.version,
    )
    return _Opened(engine, meta, spec, _Upgrade(current, meta.version))


def _create_first(versions: IndexVersions, name: str, spec: SearchIndexSpec) -> tuple[SearchEngine, VersionMeta]:
    """A new empty version, served from now on."""
    version = versions.next_version()
    engine = SearchEngine.create(versions.prepare(version), name, spec)
    engine.commit()
    meta = _meta(version, spec, None)
    versions.write_meta(meta)
    versions.swap(version)
    return engine, meta


def _carry_over(
    versions: IndexVersions, name: str, spec: SearchIndexSpec, current: int, old: VersionMeta | None
) -> tuple[SearchEngine, VersionMeta, int]:
    """The next version built in `spec`'s layout from the stored documents of `current` (which
    no spec opens), keeping its checkpoint, swapped in; `current` removed. (engine, meta,
    documents carried.) On failure the new version is removed and `current` left as it was."""
    version = versions.next_version()
    engine = SearchEngine.create(versions.prepare(version), name, spec)
    carried = 0
    try:
        for batch in SearchEngine.stored_documents(versions.engine_dir(current), COPY_BATCH):
            carried += engine.add_documents(batch)
        engine.commit()
        meta = _meta(version, spec, old.checkpoint if old is not None else None)
        versions.write_meta(meta)
        versions.swap(version)
    except BaseException:
        engine.close()
        versions.remove_version(version)
        raise
    versions.remove_version(current)
    return engine, meta, carried


def _meta(version: int, spec: SearchIndexSpec, checkpoint: dict[str, Any] | None) -> VersionMeta:
    return VersionMeta(
        version=version, layout_key=SearchEngine.layout_key(spec), checkpoint=checkpoint, spec=_spec_json(spec)
    )


def _spec_json(spec: SearchIndexSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True)


def _from_source(index: _Index, task: Task) -> bool:
    """Whether `task` rebuilds `index` from its MongoDB source (and so waits for one)."""
    return (
        task.type == "indexRebuild"
        and index.follows_source
        and task.details.get("reason") not in (LAYOUT_CHANGED, LAYOUT_UPGRADED)
    )


def _documents_from(spec: SearchIndexSpec) -> tuple[Any, ...]:
    """What decides which documents a synced index holds: its database, collection and field
    mapping (not how often it polls)."""
    source = spec.source.mongodb
    if source is None:
        return ("api",)
    database = source.database_ref.name if source.database_ref is not None else None
    return (database, source.collection, sorted(source.fields.items()))


def _batchable(task: Task) -> bool:
    """Whether a task can share a commit with its neighbours: it needs no committed state of
    theirs (a deletion by filter and a clear read the index; a rebuild replaces it)."""
    if task.type == "documentAdditionOrUpdate":
        return True
    return task.type == "documentDeletion" and "providedIds" in task.details


def _apply_batch(engine: SearchEngine, batch: list[Task], payloads: list[Any]) -> list[dict[str, Any] | TaskError]:
    """In the writer thread: each task's writes in order, then one commit; per task its
    finished details or its error."""
    outcomes: list[dict[str, Any] | TaskError] = []
    for task, payload in zip(batch, payloads, strict=True):
        try:
            if not isinstance(payload, dict):
                raise RuntimeError(f"the payload of task {task.uid} is missing")
            if task.type == "documentAdditionOrUpdate":
                indexed = engine.add_documents(payload["documents"], merge=bool(payload.get("merge", False)))
                outcomes.append(task.details | {"indexedDocuments": indexed})
            else:
                outcomes.append(task.details | {"deletedDocuments": engine.delete_documents(payload["ids"])})
        except DocumentError as exc:
            outcomes.append(TaskError(message=exc.message, code=exc.code))
        except Exception as exc:
            log.exception("search: task %s failed", task.uid)
            outcomes.append(TaskError(message=f"{type(exc).__name__}: {exc}"[:1000], code="internal", type="internal"))
    engine.commit()
    return outcomes


def _delete_filter(engine: SearchEngine, filter: Filter) -> int:
    deleted = engine.delete_by_filter(filter)
    engine.commit()
    return deleted


def _clear(engine: SearchEngine) -> int:
    deleted = engine.clear()
    engine.commit()
    return deleted


def _zeroed(details: dict[str, Any]) -> dict[str, Any]:
    """A failed task's details: nothing indexed or deleted."""
    return {
        key: (0 if value is None and key in ("indexedDocuments", "deletedDocuments") else value)
        for key, value in details.items()
    }
