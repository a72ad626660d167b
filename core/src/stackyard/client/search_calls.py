"""What each call of the search API (/v1/indexes, /v1/multi-search, /v1/search/tasks) sends,
shared by `search_async` and `search_sync`.

Searches go with the admin API key, else the search-only API key (spec.search.
searchApiKeySecretRef, $STACKYARD_SEARCH_KEY); everything else needs the admin API key
(AdminKeyMissing before anything is sent). Document writes answer at once with a task
(TaskSummary); `wait_for_task` follows it to its end."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import RootModel

from stackyard.search.contract import (
    TASK_STATUSES,
    DeleteBatch,
    DocumentPage,
    FilterInput,
    IndexList,
    IndexStats,
    MultiSearchQuery,
    MultiSearchRequest,
    MultiSearchResponse,
    SearchRequest,
    SearchResponse,
    Task,
    TaskPage,
    TaskStatus,
    TaskSummary,
    TaskType,
)

from .admin_calls import admin
from .calls import ADMIN_KEY_ENV, Call, Params, _segment

INDEXES = "/v1/indexes"
TASKS = "/v1/search/tasks"
SEARCH_KEY_ENV = "STACKYARD_SEARCH_KEY"
FINISHED_TASK_STATUSES: frozenset[TaskStatus] = frozenset({"succeeded", "failed", "canceled"})
"""The statuses a task no longer leaves."""
assert set(TASK_STATUSES) >= FINISHED_TASK_STATUSES

QueryLike = MultiSearchQuery | Mapping[str, Any]
"""One query of a multi-search: a MultiSearchQuery, or its fields as a dict ({"indexUid": "products", "q": ...})."""
TaskRef = int | TaskSummary | Task
"""A task: its uid, or the summary or task that names it."""


class Document(RootModel[dict[str, Any]]):
    """One stored document, as the api answers it."""


class Settings(RootModel[dict[str, Any]]):
    """An index's settings: its SearchIndex spec (camelCase), without stackRef."""


class SearchKeyMissing(ValueError):
    """A search without the admin API key or the search API key: nothing was sent."""

    def __init__(self) -> None:
        super().__init__(
            f"searching needs the admin API key or the search API key: admin_key=... or search_key=..., "
            f"${ADMIN_KEY_ENV} or ${SEARCH_KEY_ENV}"
        )


class TaskWaitTimeout(TimeoutError):
    """`search.wait_for_task` gave up before the task finished; `task` is the last state it read."""

    def __init__(self, task: Task, timeout: float) -> None:
        super().__init__(f"search task {task.uid} did not finish within {timeout:g} s (status: {task.status})")
        self.task = task
        self.timeout = timeout


def search_key(key: str | None) -> str | None:
    """The search API key of the argument or of $STACKYARD_SEARCH_KEY, if any."""
    return key or os.environ.get(SEARCH_KEY_ENV) or None


def searcher(admin_key: str | None, key: str | None) -> dict[str, str]:
    """The Authorization header of a search: the admin key, else the search key."""
    chosen = admin_key or key
    if not chosen:
        raise SearchKeyMissing()
    return {"Authorization": f"Bearer {chosen}"}


def task_uid(task: TaskRef) -> int:
    if isinstance(task, TaskSummary):
        return task.task_uid
    if isinstance(task, Task):
        return task.uid
    return task


def _index(uid: str, *rest: str) -> str:
    return "/".join((INDEXES, _segment(uid), *rest))


def _fields(fields: Sequence[str] | None) -> Params:
    return {} if fields is None else {"fields": ",".join(fields)}


def list_indexes(key: str | None) -> Call[IndexList]:
    return Call("GET", INDEXES, IndexList, params={"limit": 1000}, headers=admin(key), repeatable=True)


def get_index(key: str | None, uid: str) -> Call[IndexStats]:
    return Call("GET", _index(uid), IndexStats, headers=admin(key), repeatable=True)


def get_settings(key: str | None, uid: str) -> Call[Settings]:
    return Call("GET", _index(uid, "settings"), Settings, headers=admin(key), repeatable=True)


def add_documents(key: str | None, uid: str, documents: Sequence[Mapping[str, Any]], merge: bool) -> Call[TaskSummary]:
    """POST (replace whole documents) or PUT (merge fields): repeatable, since writing the
    same documents again leaves the index as the first write did."""
    body = [dict(document) for document in documents]
    method: Literal["PUT", "POST"] = "PUT" if merge else "POST"
    return Call(method, _index(uid, "documents"), TaskSummary, json=body, headers=admin(key), repeatable=True)


def list_documents(
    key: str | None,
    uid: str,
    offset: int,
    limit: int,
    fields: Sequence[str] | None,
    filter: str | None,
) -> Call[DocumentPage]:
    params: Params = {"offset": offset, "limit": limit} | _fields(fields)
    if filter is not None:
        params["filter"] = filter
    return Call("GET", _index(uid, "documents"), DocumentPage, params=params, headers=admin(key), repeatable=True)


def get_document(key: str | None, uid: str, document_id: str | int, fields: Sequence[str] | None) -> Call[Document]:
    path = _index(uid, "documents", _segment(str(document_id)))
    return Call("GET", path, Document, params=_fields(fields), headers=admin(key), repeatable=True)


def delete_document(key: str | None, uid: str, document_id: str | int) -> Call[TaskSummary]:
    path = _index(uid, "documents", _segment(str(document_id)))
    return Call("DELETE", path, TaskSummary, headers=admin(key), repeatable=True)


def delete_documents(
    key: str | None, uid: str, ids: Sequence[str | int] | None, filter: FilterInput | None
) -> Call[TaskSummary]:
    """POST /documents/delete; ValidationError unless exactly one of ids and filter is given."""
    batch = DeleteBatch(ids=None if ids is None else list(ids), filter=filter)
    body = batch.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Call("POST", _index(uid, "documents", "delete"), TaskSummary, json=body, headers=admin(key), repeatable=True)


def delete_all_documents(key: str | None, uid: str) -> Call[TaskSummary]:
    return Call("DELETE", _index(uid, "documents"), TaskSummary, headers=admin(key), repeatable=True)


def search(
    admin_key: str | None, key: str | None, uid: str, q: str | None, options: Mapping[str, Any]
) -> Call[SearchResponse]:
    """POST /search. `options` are SearchRequest's fields, snake_case or camelCase
    (filter, facets, sort, limit, attributes_to_highlight, ...); ValidationError for an
    unknown one or a bad value, before anything is sent."""
    request = SearchRequest.model_validate({"q": q, **options})
    body = request.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
    headers = searcher(admin_key, key)
    return Call("POST", _index(uid, "search"), SearchResponse, json=body, headers=headers, repeatable=True)


def multi_search(admin_key: str | None, key: str | None, queries: Sequence[QueryLike]) -> Call[MultiSearchResponse]:
    checked = [q if isinstance(q, MultiSearchQuery) else MultiSearchQuery.model_validate(dict(q)) for q in queries]
    body = MultiSearchRequest(queries=checked).model_dump(
        mode="json", by_alias=True, exclude_unset=True, exclude_none=True
    )
    headers = searcher(admin_key, key)
    return Call("POST", "/v1/multi-search", MultiSearchResponse, json=body, headers=headers, repeatable=True)


def rebuild(key: str | None, uid: str) -> Call[TaskSummary]:
    """Not repeatable: each call starts another rebuild."""
    return Call("POST", _index(uid, "rebuild"), TaskSummary, headers=admin(key))


def list_tasks(
    key: str | None,
    *,
    statuses: TaskStatus | Sequence[TaskStatus] | None,
    types: TaskType | Sequence[TaskType] | None,
    index_uids: str | Sequence[str] | None,
    limit: int,
    from_: int | None,
) -> Call[TaskPage]:
    params: Params = {"limit": limit}
    for name, value in (("statuses", statuses), ("types", types), ("indexUids", index_uids)):
        items = [value] if isinstance(value, str) else list(value or ())
        if items:
            params[name] = ",".join(items)
    if from_ is not None:
        params["from"] = from_
    return Call("GET", TASKS, TaskPage, params=params, headers=admin(key), repeatable=True)


def get_task(key: str | None, uid: int) -> Call[Task]:
    return Call("GET", f"{TASKS}/{uid}", Task, headers=admin(key), repeatable=True)


def next_poll(interval: float, max_interval: float) -> float:
    """The wait after `interval` while a task is not done: doubled, up to `max_interval`."""
    return min(max_interval, interval * 2)
