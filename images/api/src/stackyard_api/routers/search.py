"""/v1/indexes, /v1/multi-search and /v1/search/tasks: the search API, in Meilisearch's shapes
(stackyard.search.contract), served by the search component over its SearchService and proxied
by the api (search_proxy).

GET    /v1/indexes                                   the indexes served, with their stats
GET    /v1/indexes/{uid}                             one index's stats
GET    /v1/indexes/{uid}/settings                    its settings (the SearchIndex spec, read-only)
POST   /v1/indexes/{uid}/documents                   add or replace documents (JSON array or NDJSON), 202
PUT    /v1/indexes/{uid}/documents                   add or update documents (fields merged), 202
GET    /v1/indexes/{uid}/documents                   stored documents, a page at a time
GET    /v1/indexes/{uid}/documents/{id}              one document
DELETE /v1/indexes/{uid}/documents/{id}              delete one document, 202
POST   /v1/indexes/{uid}/documents/delete            delete by ids or by filter, 202
DELETE /v1/indexes/{uid}/documents                   delete every document, 202
GET    /v1/indexes/{uid}/search                      search (query string)
POST   /v1/indexes/{uid}/search                      search (JSON body)
POST   /v1/multi-search                              several searches in one request
POST   /v1/indexes/{uid}/rebuild                     build a new version of the index, then swap, 202
GET    /v1/search/tasks                              tasks, newest first
GET    /v1/search/tasks/{taskUid}                    one task

Who: the Stack's admin API key may do everything; the search-only API key
(spec.search.searchApiKeySecretRef) may only search and multi-search, so that a browser can
hold it. Errors are problem+json with Meilisearch's `code` (index_not_found,
invalid_search_filter with the `position` of the error, invalid_document_id, ...).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from stackyard.config import AUTH_ADMIN_API_KEY, SEARCH_API_KEY
from stackyard.problems import NotConfigured, PayloadTooLarge, Problem
from stackyard.search.contract import (
    MAX_BATCH_DOCUMENTS,
    MAX_LIMIT,
    PRIMARY_KEY_VALUE,
    TASK_STATUSES,
    TASK_TYPES,
    DeleteBatch,
    DocumentPage,
    IndexList,
    IndexStats,
    MultiSearchRequest,
    MultiSearchResponse,
    SearchRequest,
    SearchResponse,
    Task,
    TaskPage,
    TaskSummary,
)
from stackyard.search.filter_ast import FilterError

from ..errors import problem_responses

if TYPE_CHECKING:
    from stackyard.runtime import Runtime
    from stackyard.search.service import SearchService

router = APIRouter(tags=["search"])

MAX_PAYLOAD_ENV = "STACKYARD_SEARCH_MAX_PAYLOAD"
DEFAULT_MAX_PAYLOAD = 100 * 1024 * 1024
"""Largest documents body, in bytes (Meilisearch's default http payload limit, 100 MiB)."""
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
_PRIMARY_KEY_VALUE = re.compile(PRIMARY_KEY_VALUE)


def max_payload() -> int:
    """The documents body limit: $STACKYARD_SEARCH_MAX_PAYLOAD bytes, else 100 MiB."""
    value = os.environ.get(MAX_PAYLOAD_ENV, "")
    return int(value) if value.isdigit() else DEFAULT_MAX_PAYLOAD


# -- problems ------------------------------------------------------------------------------------


class SearchProblem(Problem):
    """A problem of the search API: the body carries Meilisearch's `code` too."""

    code: ClassVar[str] = "bad_request"

    def __init__(self, detail: str, code: str | None = None, **extensions: Any) -> None:
        super().__init__(detail, code=code or self.code, **extensions)


class SearchKeyRefused(SearchProblem):
    """No API key, or one that is neither the admin API key nor the search API key."""

    status, slug, title, code = 401, "search-key", "API key refused", "invalid_api_key"


class SearchKeyForbidden(SearchProblem):
    """The search-only API key used for anything but search and multi-search."""

    status, slug, title, code = 403, "search-key-forbidden", "Not allowed with the search API key", "invalid_api_key"


class SearchKeysMissing(NotConfigured):
    """The Stack has neither an admin API key nor a search API key: nobody may call the search API."""

    slug, title = "search-keys-missing", "Search API keys not configured"

    def __init__(self) -> None:
        super().__init__(
            "the search API needs an API key: set spec.auth.adminApiKeySecretRef (and, for searches from "
            "browsers, spec.search.searchApiKeySecretRef) in the Stack",
            code="api_key_not_configured",
        )


class IndexNotFoundProblem(SearchProblem):
    status, slug, title, code = 404, "index-not-found", "Index not found", "index_not_found"


class DocumentNotFound(SearchProblem):
    status, slug, title, code = 404, "document-not-found", "Document not found", "document_not_found"


class TaskNotFound(SearchProblem):
    status, slug, title, code = 404, "task-not-found", "Task not found", "task_not_found"


class IndexFollowsSourceProblem(SearchProblem):
    status, slug, title, code = 409, "index-follows-source", "Index follows its source", "index_follows_source"


class InvalidSearchFilter(SearchProblem):
    """A filter expression that does not parse or names an attribute that is not filterable;
    `position` is the 0-based character offset of the error."""

    status, slug, title, code = 400, "invalid-search-filter", "Invalid filter", "invalid_search_filter"


class InvalidSearchSort(SearchProblem):
    status, slug, title, code = 400, "invalid-search-sort", "Invalid sort", "invalid_search_sort"


class InvalidSearchFacets(SearchProblem):
    status, slug, title, code = 400, "invalid-search-facets", "Invalid facets", "invalid_search_facets"


class InvalidDocument(SearchProblem):
    """A document without its primary key, with an id that is not a string of
    [A-Za-z0-9_-] or an integer, or that is not a JSON object."""

    status, slug, title, code = 400, "invalid-document", "Invalid document", "invalid_document"


class MalformedPayload(SearchProblem):
    status, slug, title, code = 400, "malformed-payload", "Malformed payload", "malformed_payload"


class DocumentsTooLarge(PayloadTooLarge):
    def __init__(self, detail: str) -> None:
        super().__init__(detail, code="payload_too_large")


class UnsupportedDocumentsType(SearchProblem):
    status, slug, title, code = 415, "invalid-content-type", "Unsupported content type", "invalid_content_type"


FILTER_PROBLEMS: dict[str, type[SearchProblem]] = {
    "invalid_search_filter": InvalidSearchFilter,
    "invalid_search_sort": InvalidSearchSort,
    "invalid_search_facets": InvalidSearchFacets,
}


def filter_problem(exc: FilterError) -> SearchProblem:
    """The 400 of a FilterError: its code, message and position."""
    problem = FILTER_PROBLEMS.get(exc.code, InvalidSearchFilter)
    return problem(exc.message, code=exc.code, position=exc.position)


# -- auth and the service ------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


Access = Literal["admin", "search"]


def search_access(runtime: Runtime, request: Request, *, searching: bool) -> Access:
    """Who calls: the admin API key may do everything; the search API key may only search
    (`searching`). 401 without a key or with another one, 403 for the search key elsewhere."""
    credentials = runtime.config.credentials
    admin_key = credentials.get(AUTH_ADMIN_API_KEY) or None
    search_key = credentials.get(SEARCH_API_KEY) or None
    if admin_key is None and search_key is None:
        raise SearchKeysMissing()
    presented = _bearer(request)
    if presented is None:
        raise SearchKeyRefused(
            "the search API needs an API key as a bearer token (the admin API key, or the search API key to search)",
            code="missing_authorization_header",
        )
    if admin_key is not None and hmac.compare_digest(presented.encode(), admin_key.encode()):
        return "admin"
    if search_key is not None and hmac.compare_digest(presented.encode(), search_key.encode()):
        if searching:
            return "search"
        raise SearchKeyForbidden("the search API key may only search; this needs the admin API key")
    raise SearchKeyRefused("the API key is neither the admin API key nor the search API key")


async def _admin_access(request: Request) -> Access:
    return search_access(request.app.state.runtime, request, searching=False)


async def _search_access(request: Request) -> Access:
    return search_access(request.app.state.runtime, request, searching=True)


AdminAccess = Annotated[Access, Depends(_admin_access)]
SearchAccess = Annotated[Access, Depends(_search_access)]


async def search_service(request: Request) -> SearchService:
    """The SearchService this app serves (create_search_app puts it on app.state)."""
    service: SearchService | None = getattr(request.app.state, "search_service", None)
    if service is None:
        raise NotConfigured("this process serves no search index", code="search_not_running")
    return service


# Any for FastAPI: the service module is imported only where a SearchService runs (the search component).
ServiceDep = Annotated[Any, Depends(search_service)]

IndexUid = Annotated[str, Path(min_length=1, max_length=63, description="The index: the name of its SearchIndex.")]
DocumentId = Annotated[str, Path(min_length=1, max_length=511, description="The document's primary key value.")]


def _csv(value: str | None) -> list[str] | None:
    """A comma-separated query parameter as a list (None when absent)."""
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def _accepted(task: Task) -> JSONResponse:
    return _json(task.summary(), 202)


# -- indexes -------------------------------------------------------------------------------------

ACCEPTED = {202: {"model": TaskSummary, "description": "The task was enqueued; follow it at /v1/search/tasks/{uid}"}}


@router.get(
    "/v1/indexes",
    response_model=IndexList,
    response_model_by_alias=True,
    summary="The search indexes",
    description="Every index served (one per SearchIndex of the Stack) with its document count, the version "
    "of its files and whether it is indexing. Needs the admin API key.",
    responses=problem_responses(401, 403, 503),
)
async def list_indexes(
    _access: AdminAccess,
    service: ServiceDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
) -> JSONResponse:
    names = sorted(service.index_names())
    # stats() aggregates over every document (the field distribution): in a thread, off the event loop.
    stats = await asyncio.to_thread(lambda: [service.stats(name) for name in names[offset : offset + limit]])
    page = IndexList(results=stats, offset=offset, limit=limit, total=len(names))
    return _json(page.model_dump(mode="json", by_alias=True))


@router.get(
    "/v1/indexes/{uid}",
    response_model=IndexStats,
    response_model_by_alias=True,
    summary="One search index",
    description="Its primary key, document count, field distribution, source and version. Needs the admin API key.",
    responses=problem_responses(401, 403, 404, 503),
)
async def get_index(_access: AdminAccess, uid: IndexUid, service: ServiceDep) -> JSONResponse:
    stats = await asyncio.to_thread(service.stats, uid)
    return _json(stats.model_dump(mode="json", by_alias=True))


@router.get(
    "/v1/indexes/{uid}/settings",
    summary="A search index's settings",
    description="The SearchIndex's spec (camelCase) as the index applies it: searchable, filterable, facetable, "
    "sortable and displayed attributes, typo tolerance, synonyms, stop words, language, pagination and "
    "faceting. Read-only: change the SearchIndex resource (kubectl apply). Needs the admin API key.",
    responses={200: {"description": "The settings", "content": {"application/json": {}}}}
    | problem_responses(401, 403, 404, 503),
)
async def get_settings(_access: AdminAccess, uid: IndexUid, service: ServiceDep) -> JSONResponse:
    spec = service.spec(uid)
    return _json(spec.model_dump(mode="json", by_alias=True, exclude={"stack_ref"}))


@router.post(
    "/v1/indexes/{uid}/rebuild",
    status_code=202,
    summary="Rebuild a search index",
    description="Builds the next version of the index (from the MongoDB collection, or from the current version "
    "for an api-sourced index), then swaps it in; searches keep being served by the current version until the "
    "swap. Needs the admin API key.",
    responses=ACCEPTED | problem_responses(401, 403, 404, 503),
)
async def rebuild(_access: AdminAccess, uid: IndexUid, service: ServiceDep) -> JSONResponse:
    return _accepted(await service.enqueue_rebuild(uid))


# -- documents -----------------------------------------------------------------------------------

DOCUMENTS_BODY = {
    "required": True,
    "description": f"The documents: a JSON array of objects (application/json) or one object per line "
    f"(application/x-ndjson), at most {MAX_BATCH_DOCUMENTS} documents and 100 MiB. Each has the index's primary "
    "key (a string of A-Z a-z 0-9 _ -, or an integer).",
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": {"type": "object"}},
            "example": [{"id": "p1", "title": "Espresso machine", "brand": "Acme", "price": 199}],
        },
        "application/x-ndjson": {
            "schema": {"type": "string"},
            "example": '{"id": "p1", "title": "Espresso machine"}\n',
        },
    },
}


async def read_documents(request: Request, limit: int | None = None) -> list[dict[str, Any]]:
    """The request's documents, from a JSON array (or one object) or NDJSON, read within the
    size limit: 413 beyond it, 415 for another type, 400 for a body that does not parse."""
    limit = max_payload() if limit is None else limit
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in NDJSON_TYPES and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedDocumentsType(
            f"documents are sent as application/json (an array) or application/x-ndjson, not {media or 'nothing'}"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise DocumentsTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DocumentsTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    ndjson = media in NDJSON_TYPES
    if size > 1024 * 1024:  # parsing megabytes would hold up every other request of the loop
        return await asyncio.to_thread(parse_documents, body, ndjson)
    return parse_documents(body, ndjson)


def parse_documents(body: bytes, ndjson: bool) -> list[dict[str, Any]]:
    """A JSON array of objects (or one object), or NDJSON (one object per line)."""
    if ndjson:
        documents: list[Any] = []
        for number, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                documents.append(json.loads(line))
            except ValueError as exc:
                raise MalformedPayload(f"line {number} is not JSON: {exc}") from None
    else:
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError as exc:
            raise MalformedPayload(f"the body is not JSON: {exc}") from None
        if isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, list):
            raise MalformedPayload("the body is a JSON array of documents (objects)")
        documents = parsed
    for i, document in enumerate(documents):
        if not isinstance(document, dict):
            raise MalformedPayload(f"document {i} is not a JSON object", code="malformed_payload")
    if len(documents) > MAX_BATCH_DOCUMENTS:
        raise DocumentsTooLarge(f"{len(documents)} documents; a request may carry at most {MAX_BATCH_DOCUMENTS}")
    return documents


def check_ids(documents: list[dict[str, Any]], primary_key: str) -> None:
    """Every document has its primary key, a string of [A-Za-z0-9_-] or an integer (400 with
    Meilisearch's missing_document_id or invalid_document_id, before any task exists)."""
    for i, document in enumerate(documents):
        if primary_key not in document:
            raise InvalidDocument(f"document {i} has no primary key `{primary_key}`", code="missing_document_id")
        value = document[primary_key]
        valid = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and _PRIMARY_KEY_VALUE.match(value) is not None
        )
        if not valid:
            raise InvalidDocument(
                f"document {i}: `{primary_key}` is {json.dumps(value)[:100]}; a document id is an integer or a "
                "string of 1 to 511 characters among A-Z a-z 0-9 - _",
                code="invalid_document_id",
            )


async def _write_documents(request: Request, uid: str, service: SearchService, merge: bool) -> JSONResponse:
    spec = service.spec(uid)
    if spec.source.mongodb is not None:
        raise IndexFollowsSourceProblem(
            f"index {uid} follows the MongoDB collection {spec.source.mongodb.collection}: change that instead"
        )
    documents = await read_documents(request)
    check_ids(documents, spec.primary_key)
    return _accepted(await service.enqueue_documents(uid, documents, merge=merge))


@router.post(
    "/v1/indexes/{uid}/documents",
    status_code=202,
    summary="Add or replace documents",
    description="Each document replaces the stored one of the same primary key, whole. Applied in the background: "
    "the answer is the task (202); GET /v1/search/tasks/{taskUid} follows it. 409 for an index whose source is a "
    "MongoDB collection. Needs the admin API key.",
    responses=ACCEPTED | problem_responses(400, 401, 403, 404, 409, 413, 503),
    openapi_extra={"requestBody": DOCUMENTS_BODY},
)
async def add_documents(_access: AdminAccess, uid: IndexUid, request: Request, service: ServiceDep) -> JSONResponse:
    return await _write_documents(request, uid, service, merge=False)


@router.put(
    "/v1/indexes/{uid}/documents",
    status_code=202,
    summary="Add or update documents",
    description="The fields given update the stored document of the same primary key; its other fields stay. "
    "A new primary key adds a document. Applied in the background (202 and the task). Needs the admin API key.",
    responses=ACCEPTED | problem_responses(400, 401, 403, 404, 409, 413, 503),
    openapi_extra={"requestBody": DOCUMENTS_BODY},
)
async def update_documents(_access: AdminAccess, uid: IndexUid, request: Request, service: ServiceDep) -> JSONResponse:
    return await _write_documents(request, uid, service, merge=True)


@router.get(
    "/v1/indexes/{uid}/documents",
    response_model=DocumentPage,
    response_model_by_alias=True,
    summary="Stored documents",
    description="A page of the documents as stored (not ranked), with the total; `filter` selects (filterable "
    "attributes), `fields` picks attributes. Needs the admin API key.",
    responses=problem_responses(400, 401, 403, 404, 503),
)
async def list_documents(
    _access: AdminAccess,
    uid: IndexUid,
    service: ServiceDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = 20,
    fields: Annotated[str | None, Query(max_length=4000, description="Attributes, comma-separated.")] = None,
    filter: Annotated[str | None, Query(max_length=4000, description="A filter expression.")] = None,
) -> JSONResponse:
    documents, total = await service.documents(uid, offset, limit, _csv(fields), filter)
    page = DocumentPage(results=documents, offset=offset, limit=limit, total=total)
    return _json(page.model_dump(mode="json", by_alias=True))


@router.get(
    "/v1/indexes/{uid}/documents/{id}",
    summary="One document",
    description="The document of this primary key as stored; `fields` picks attributes. Needs the admin API key.",
    responses={200: {"description": "The document", "content": {"application/json": {}}}}
    | problem_responses(401, 403, 404, 503),
)
async def get_document(
    _access: AdminAccess,
    uid: IndexUid,
    id: DocumentId,
    service: ServiceDep,
    fields: Annotated[str | None, Query(max_length=4000, description="Attributes, comma-separated.")] = None,
) -> JSONResponse:
    document = await service.get_document(uid, id, _csv(fields))
    if document is None:
        raise DocumentNotFound(f"index {uid} has no document {id!r}")
    return _json(document)


@router.delete(
    "/v1/indexes/{uid}/documents/{id}",
    status_code=202,
    summary="Delete one document",
    description="Applied in the background (202 and the task). Needs the admin API key.",
    responses=ACCEPTED | problem_responses(401, 403, 404, 409, 503),
)
async def delete_document(_access: AdminAccess, uid: IndexUid, id: DocumentId, service: ServiceDep) -> JSONResponse:
    _check_writable(service, uid)
    return _accepted(await service.enqueue_delete(uid, ids=[id]))


@router.post(
    "/v1/indexes/{uid}/documents/delete",
    status_code=202,
    summary="Delete documents by ids or by filter",
    description='{"ids": [...]} or {"filter": "..."} (exactly one). A bad filter is refused at once (400 with its '
    "position); otherwise the deletion is applied in the background (202 and the task). Needs the admin API key.",
    responses=ACCEPTED | problem_responses(400, 401, 403, 404, 409, 422, 503),
)
async def delete_documents(_access: AdminAccess, uid: IndexUid, body: DeleteBatch, service: ServiceDep) -> JSONResponse:
    _check_writable(service, uid)
    if body.ids is not None:
        task = await service.enqueue_delete(uid, ids=[str(i) for i in body.ids])
    else:
        task = await service.enqueue_delete(uid, filter=body.filter)
    return _accepted(task)


@router.delete(
    "/v1/indexes/{uid}/documents",
    status_code=202,
    summary="Delete every document",
    description="Empties the index, in the background (202 and the task). Needs the admin API key.",
    responses=ACCEPTED | problem_responses(401, 403, 404, 409, 503),
)
async def delete_all_documents(_access: AdminAccess, uid: IndexUid, service: ServiceDep) -> JSONResponse:
    _check_writable(service, uid)
    return _accepted(await service.enqueue_delete(uid, everything=True))


def _check_writable(service: SearchService, uid: str) -> None:
    spec = service.spec(uid)
    if spec.source.mongodb is not None:
        raise IndexFollowsSourceProblem(
            f"index {uid} follows the MongoDB collection {spec.source.mongodb.collection}: change that instead"
        )


# -- search --------------------------------------------------------------------------------------

SEARCH_DESCRIPTION = (
    "Typo-tolerant, prefix (as you type) search, ranked by words matched, typos, proximity, attribute order and "
    "exactness, then `sort`. `filter` over filterable attributes (Meilisearch's syntax: = != > >= < <= TO IN "
    "EXISTS IS NULL IS EMPTY AND OR NOT); a bad one answers 400 with the `position` of the error. `facets` counts "
    "values (facetDistribution, facetStats). Page with offset/limit (estimatedTotalHits) or page/hitsPerPage "
    "(totalHits, totalPages). Needs the admin API key or the search API key."
)


def _search_answer(response: SearchResponse) -> JSONResponse:
    return _json(response.wire())


@router.post(
    "/v1/indexes/{uid}/search",
    response_model=SearchResponse,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Search an index",
    description=SEARCH_DESCRIPTION,
    responses=problem_responses(400, 401, 403, 404, 422, 503),
)
async def search(_access: SearchAccess, uid: IndexUid, body: SearchRequest, service: ServiceDep) -> JSONResponse:
    return _search_answer(await service.search(uid, body))


@router.get(
    "/v1/indexes/{uid}/search",
    response_model=SearchResponse,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Search an index (query string)",
    description=SEARCH_DESCRIPTION + " The list parameters (facets, sort, attributesToRetrieve, "
    "attributesToHighlight) are comma-separated.",
    responses=problem_responses(400, 401, 403, 404, 422, 503),
)
async def search_get(
    _access: SearchAccess,
    uid: IndexUid,
    service: ServiceDep,
    q: Annotated[str | None, Query(max_length=2000)] = None,
    offset: Annotated[int | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
    page: Annotated[int | None, Query()] = None,
    hits_per_page: Annotated[int | None, Query(alias="hitsPerPage")] = None,
    filter: Annotated[str | None, Query(max_length=4000)] = None,
    facets: Annotated[str | None, Query(max_length=4000)] = None,
    sort: Annotated[str | None, Query(max_length=4000)] = None,
    attributes_to_retrieve: Annotated[str | None, Query(alias="attributesToRetrieve", max_length=4000)] = None,
    attributes_to_highlight: Annotated[str | None, Query(alias="attributesToHighlight", max_length=4000)] = None,
    highlight_pre_tag: Annotated[str | None, Query(alias="highlightPreTag", max_length=100)] = None,
    highlight_post_tag: Annotated[str | None, Query(alias="highlightPostTag", max_length=100)] = None,
    show_matches_position: Annotated[bool | None, Query(alias="showMatchesPosition")] = None,
    show_ranking_score: Annotated[bool | None, Query(alias="showRankingScore")] = None,
    matching_strategy: Annotated[Literal["last", "all"] | None, Query(alias="matchingStrategy")] = None,
) -> JSONResponse:
    given: dict[str, Any] = {
        "q": q,
        "offset": offset,
        "limit": limit,
        "page": page,
        "hitsPerPage": hits_per_page,
        "filter": filter,
        "facets": _csv(facets),
        "sort": _csv(sort),
        "attributesToRetrieve": _csv(attributes_to_retrieve),
        "attributesToHighlight": _csv(attributes_to_highlight),
        "highlightPreTag": highlight_pre_tag,
        "highlightPostTag": highlight_post_tag,
        "showMatchesPosition": show_matches_position,
        "showRankingScore": show_ranking_score,
        "matchingStrategy": matching_strategy,
    }
    try:
        request = SearchRequest.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in exc.errors()]) from None
    return _search_answer(await service.search(uid, request))


@router.post(
    "/v1/multi-search",
    response_model=MultiSearchResponse,
    response_model_by_alias=True,
    summary="Several searches in one request",
    description="Each query names its index (indexUid); the answers come in the order of the queries, each with "
    "its indexUid. Needs the admin API key or the search API key.",
    responses=problem_responses(400, 401, 403, 404, 422, 503),
)
async def multi_search(_access: SearchAccess, body: MultiSearchRequest, service: ServiceDep) -> JSONResponse:
    answers = await service.multi_search(body.queries)
    results = []
    for query, answer in zip(body.queries, answers, strict=True):
        if answer.index_uid is None:
            answer = answer.model_copy(update={"index_uid": query.index_uid})
        results.append(answer.wire())
    return _json({"results": results})


# -- tasks ---------------------------------------------------------------------------------------


def _choices(value: str | None, allowed: tuple[str, ...], name: str) -> list[str] | None:
    items = _csv(value)
    if not items:
        return None
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise SearchProblem(
            f"{name}: unknown {', '.join(unknown)}; one of {', '.join(allowed)}", code=f"invalid_task_{name.lower()}"
        )
    return items


@router.get(
    "/v1/search/tasks",
    response_model=TaskPage,
    response_model_by_alias=True,
    summary="Search tasks",
    description="The document writes and rebuilds, newest first; statuses, types and indexUids are comma-separated "
    "filters. Pass `next` as `from` for the next page. Needs the admin API key.",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_tasks(
    _access: AdminAccess,
    service: ServiceDep,
    statuses: Annotated[
        str | None, Query(max_length=200, description="enqueued, processing, succeeded, failed")
    ] = None,
    types: Annotated[str | None, Query(max_length=200, description=", ".join(TASK_TYPES))] = None,
    index_uids: Annotated[str | None, Query(alias="indexUids", max_length=4000)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    from_: Annotated[int | None, Query(alias="from", ge=0, description="The uid to start at (newest first).")] = None,
) -> JSONResponse:
    page = service.tasks(
        statuses=_choices(statuses, TASK_STATUSES, "statuses"),
        types=_choices(types, TASK_TYPES, "types"),
        index_uids=_csv(index_uids),
        limit=limit,
        from_=from_,
    )
    return _json(page.model_dump(mode="json", by_alias=True))


@router.get(
    "/v1/search/tasks/{taskUid}",
    response_model=Task,
    response_model_by_alias=True,
    summary="One search task",
    description="Its status (enqueued, processing, succeeded, failed), details (receivedDocuments, "
    "indexedDocuments, deletedDocuments, ...), error and times. Needs the admin API key.",
    responses=problem_responses(401, 403, 404, 503),
)
async def get_task(
    _access: AdminAccess,
    service: ServiceDep,
    task_uid: Annotated[int, Path(alias="taskUid", ge=0)],
) -> JSONResponse:
    task = service.task(task_uid)
    if task is None:
        raise TaskNotFound(f"no search task {task_uid}")
    return _json(task.model_dump(mode="json", by_alias=True))
