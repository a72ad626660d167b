"""`Stackyard.search`: the Stack's SearchIndexes — search and multi-search, documents
added, updated and deleted in the background (tasks), rebuilds. What each call sends is in
`search_calls`."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stackyard.search.contract import (
    DocumentPage,
    FilterInput,
    IndexStats,
    SearchResponse,
    Task,
    TaskPage,
    TaskStatus,
    TaskSummary,
    TaskType,
)

from . import search_calls
from .search_calls import QueryLike, TaskRef, TaskWaitTimeout

if TYPE_CHECKING:
    from collections.abc import Callable

    from .sync_client import Stackyard


class Search:
    """Searches go with the admin API key, else the search API key; everything else needs
    the admin API key (AdminKeyMissing, a ValueError, before anything is sent)."""

    def __init__(self, client: Stackyard, admin_key: str | None, search_key: str | None) -> None:
        self._client = client
        self._admin_key = admin_key
        self._search_key = search_key

    def __repr__(self) -> str:
        return "Search()"

    def search(self, index: str, q: str | None = None, **options: Any) -> SearchResponse:
        """Search `index` for `q` (None or "": every document). `options` are SearchRequest's
        fields: filter, facets, sort, offset, limit, page, hits_per_page, attributes_to_retrieve,
        attributes_to_highlight, show_matches_position, show_ranking_score, matching_strategy.
        InvalidSearch (400) for a filter that does not parse, with its `position`."""
        call = search_calls.search(self._admin_key, self._search_key, index, q, options)
        return self._client.send(call)

    def multi_search(self, queries: Sequence[QueryLike]) -> builtins.list[SearchResponse]:
        """Several searches in one request, each naming its index (index_uid / indexUid);
        the answers in the order of the queries."""
        answer = self._client.send(search_calls.multi_search(self._admin_key, self._search_key, queries))
        return [SearchResponse.model_validate(result) for result in answer.results]

    def indexes(self) -> builtins.list[IndexStats]:
        """Every index served, with its document count, version and source."""
        return (self._client.send(search_calls.list_indexes(self._admin_key))).results

    def index(self, index: str) -> IndexStats:
        """One index's stats. IndexNotFound when the Stack has no such SearchIndex."""
        return self._client.send(search_calls.get_index(self._admin_key, index))

    def settings(self, index: str) -> dict[str, Any]:
        """The index's settings: its SearchIndex spec (camelCase), as applied."""
        return (self._client.send(search_calls.get_settings(self._admin_key, index))).root

    def add_documents(self, index: str, documents: Sequence[Mapping[str, Any]], *, merge: bool = False) -> TaskSummary:
        """Add documents, each replacing the stored one of its primary key (merge=True: its
        fields update the stored document). Applied in the background: `wait_for_task`."""
        return self._client.send(search_calls.add_documents(self._admin_key, index, documents, merge))

    def update_documents(self, index: str, documents: Sequence[Mapping[str, Any]]) -> TaskSummary:
        """add_documents(merge=True): the fields given update the stored documents."""
        return self.add_documents(index, documents, merge=True)

    def documents(
        self,
        index: str,
        *,
        offset: int = 0,
        limit: int = 20,
        fields: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> DocumentPage:
        """One page of stored documents (not ranked) with the total."""
        call = search_calls.list_documents(self._admin_key, index, offset, limit, fields, filter)
        return self._client.send(call)

    def iter_documents(
        self, index: str, *, fields: Sequence[str] | None = None, filter: str | None = None, page_size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every stored document (of `filter`), a page at a time."""
        offset = 0
        while True:
            page = self.documents(index, offset=offset, limit=page_size, fields=fields, filter=filter)
            yield from page.results
            offset += len(page.results)
            if not page.results or offset >= page.total:
                return

    def document(self, index: str, document_id: str | int, *, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """One stored document. NotFound when the index has none of this id."""
        return (self._client.send(search_calls.get_document(self._admin_key, index, document_id, fields))).root

    def delete_document(self, index: str, document_id: str | int) -> TaskSummary:
        return self._client.send(search_calls.delete_document(self._admin_key, index, document_id))

    def delete_documents(
        self, index: str, *, ids: Sequence[str | int] | None = None, filter: FilterInput | None = None
    ) -> TaskSummary:
        """Delete the documents of `ids`, or those `filter` selects (exactly one of them)."""
        return self._client.send(search_calls.delete_documents(self._admin_key, index, ids, filter))

    def delete_all_documents(self, index: str) -> TaskSummary:
        return self._client.send(search_calls.delete_all_documents(self._admin_key, index))

    def rebuild(self, index: str) -> TaskSummary:
        """Build the next version of the index from its source, then swap it in; searches are
        served by the current version meanwhile."""
        return self._client.send(search_calls.rebuild(self._admin_key, index))

    def tasks(
        self,
        *,
        statuses: TaskStatus | Sequence[TaskStatus] | None = None,
        types: TaskType | Sequence[TaskType] | None = None,
        index_uids: str | Sequence[str] | None = None,
        limit: int = 20,
        from_: int | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first; pass the page's `next` as from_ for the next."""
        call = search_calls.list_tasks(
            self._admin_key, statuses=statuses, types=types, index_uids=index_uids, limit=limit, from_=from_
        )
        return self._client.send(call)

    def task(self, task: TaskRef) -> Task:
        return self._client.send(search_calls.get_task(self._admin_key, search_calls.task_uid(task)))

    def wait_for_task(
        self,
        task: TaskRef,
        *,
        timeout: float | None = 30.0,
        interval: float = 0.05,
        max_interval: float = 1.0,
        on_update: Callable[[Task], object] | None = None,
    ) -> Task:
        """Read the task until it has succeeded, failed or been canceled, and return it (a
        failed task is returned, with its `error`); the reads start `interval` seconds apart,
        doubling up to `max_interval`. TaskWaitTimeout after `timeout` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self.task(task)
            if on_update is not None:
                on_update(found)
            if found.status in search_calls.FINISHED_TASK_STATUSES:
                return found
            wait = interval
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TaskWaitTimeout(found, timeout or 0.0)
                wait = min(wait, left)
            time.sleep(wait)
            interval = search_calls.next_poll(interval, max_interval)
