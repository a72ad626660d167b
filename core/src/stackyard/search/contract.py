"""The wire contract of /v1/indexes (search): search requests and answers, document batches
and the asynchronous tasks that apply them, shared by the search component's router, the
engine, the SDK and the CLI so that they cannot drift.

The shapes follow Meilisearch's REST API (camelCase fields, the same names and meanings), so
a team moving from Meilisearch or Algolia finds the parameters it knows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

MAX_LIMIT = 1000
MAX_BATCH_DOCUMENTS = 100_000
"""Most documents one add, replace or delete request may carry."""
MAX_MULTI_QUERIES = 100
PRIMARY_KEY_VALUE = r"^[A-Za-z0-9_-]{1,511}$"
"""A document id (the primary key's value as a string): Meilisearch's rule."""

FilterInput = str | list[str | list[str]]
"""A filter expression, or an array form: items ANDed, an inner array ORed
(["genre = horror", ["year > 2000", "rating >= 4"]])."""
MatchingStrategy = Literal["last", "all"]
"""last: when too few documents match every word, drop query words from the end;
all: only documents matching every word."""


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SearchRequest(_Wire):
    q: str | None = Field(default=None, max_length=2000, description="Query text; empty: every document.")
    offset: int = Field(default=0, ge=0, description="Hits to skip.")
    limit: int = Field(default=20, ge=0, le=MAX_LIMIT, description="Most hits returned.")
    page: int | None = Field(default=None, ge=1, description="Page number (with hitsPerPage, instead of offset).")
    hits_per_page: int | None = Field(default=None, ge=0, le=MAX_LIMIT, description="Hits per page.")
    filter: FilterInput | None = Field(default=None, description="Filter expression over filterable attributes.")
    facets: list[str] | None = Field(default=None, max_length=100, description="Attributes to count values of.")
    sort: list[str] | None = Field(default=None, max_length=10, description="attr:asc or attr:desc, in order.")
    attributes_to_retrieve: list[str] = Field(default_factory=lambda: ["*"], max_length=200)
    attributes_to_highlight: list[str] | None = Field(
        default=None, max_length=200, description="Attributes whose matches are wrapped in the tags in _formatted."
    )
    highlight_pre_tag: str = Field(default="<em>", max_length=100)
    highlight_post_tag: str = Field(default="</em>", max_length=100)
    show_matches_position: bool = Field(default=False, description="Add _matchesPosition (start, length) per hit.")
    show_ranking_score: bool = Field(default=False, description="Add _rankingScore (0 to 1) per hit.")
    matching_strategy: MatchingStrategy = "last"

    @property
    def paged(self) -> bool:
        """True when the request pages by page/hitsPerPage (exhaustive totals) instead of offset/limit."""
        return self.page is not None or self.hits_per_page is not None

    @property
    def window(self) -> tuple[int, int]:
        """(offset, limit) of the hits to return, for either way of paging."""
        if not self.paged:
            return self.offset, self.limit
        per_page = self.hits_per_page if self.hits_per_page is not None else 20
        return ((self.page or 1) - 1) * per_page, per_page


class FacetStats(_Wire):
    min: float
    max: float


class SearchResponse(_Wire):
    """Meilisearch's answer: offset/limit/estimatedTotalHits, or page/hitsPerPage/totalHits/
    totalPages when the request paged. Each hit is the document (attributesToRetrieve), plus
    _formatted when highlighting, _matchesPosition and _rankingScore when asked."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    hits: list[dict[str, Any]]
    query: str
    processing_time_ms: int
    offset: int | None = None
    limit: int | None = None
    estimated_total_hits: int | None = None
    page: int | None = None
    hits_per_page: int | None = None
    total_hits: int | None = None
    total_pages: int | None = None
    facet_distribution: dict[str, dict[str, int]] | None = None
    facet_stats: dict[str, FacetStats] | None = None
    index_uid: str | None = Field(default=None, description="Set in multi-search answers.")

    def wire(self) -> dict[str, Any]:
        """The JSON answer, without the fields that do not apply to this way of paging."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class MultiSearchQuery(SearchRequest):
    index_uid: str = Field(min_length=1, max_length=63)


class MultiSearchRequest(_Wire):
    queries: list[MultiSearchQuery] = Field(min_length=1, max_length=MAX_MULTI_QUERIES)


class MultiSearchResponse(_Wire):
    results: list[dict[str, Any]]


# -- tasks -------------------------------------------------------------------------------------

TaskStatus = Literal["enqueued", "processing", "succeeded", "failed", "canceled"]
TaskType = Literal[
    "documentAdditionOrUpdate",  # POST (replace whole documents) and PUT (merge fields) of documents
    "documentDeletion",  # by ids, by filter, or every document
    "indexRebuild",  # a new version of the index built from the source (or the current one), then swapped in
]
TASK_TYPES: tuple[TaskType, ...] = ("documentAdditionOrUpdate", "documentDeletion", "indexRebuild")
TASK_STATUSES: tuple[TaskStatus, ...] = ("enqueued", "processing", "succeeded", "failed", "canceled")


class TaskError(_Wire):
    message: str
    code: str = Field(description="Meilisearch-style code: invalid_document_id, missing_document_id, …")
    type: Literal["invalid_request", "internal"] = "invalid_request"
    link: str | None = None


class Task(_Wire):
    """A write applied in the background; POST/PUT/DELETE on documents answer 202 with its
    summary (taskUid, indexUid, status, type, enqueuedAt) and GET /v1/search/tasks/<uid>
    follows it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    uid: int
    index_uid: str
    status: TaskStatus
    type: TaskType
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="receivedDocuments/indexedDocuments, providedIds/deletedDocuments, originalFilter, "
        "fromVersion/toVersion, as the type has them.",
    )
    error: TaskError | None = None
    enqueued_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def summary(self) -> dict[str, Any]:
        """The 202 answer of the request that enqueued it (Meilisearch's summarized task)."""
        return {
            "taskUid": self.uid,
            "indexUid": self.index_uid,
            "status": self.status,
            "type": self.type,
            "enqueuedAt": self.enqueued_at.isoformat(),
        }


class TaskSummary(_Wire):
    """The 202 answer of a request that enqueued a task (`Task.summary()`, as a model)."""

    task_uid: int
    index_uid: str
    status: TaskStatus
    type: TaskType
    enqueued_at: datetime


class TaskPage(_Wire):
    results: list[Task]
    limit: int
    from_: int | None = Field(default=None, alias="from")
    next: int | None = None
    total: int


class DeleteBatch(_Wire):
    """POST /v1/indexes/<uid>/documents/delete: by ids or by filter, exactly one."""

    ids: list[str | int] | None = Field(default=None, max_length=MAX_BATCH_DOCUMENTS)
    filter: FilterInput | None = None

    @model_validator(mode="after")
    def _one(self) -> DeleteBatch:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids and filter")
        return self


class IndexStats(_Wire):
    """GET /v1/indexes/<uid>: the index as served."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    uid: str
    primary_key: str
    number_of_documents: int
    is_indexing: bool
    version: int = Field(description="Version of the index files being served (a rebuild makes the next).")
    source: Literal["mongodb", "api"]
    field_distribution: dict[str, int] = Field(default_factory=dict, description="Documents having each attribute.")


class IndexList(_Wire):
    """GET /v1/indexes: the indexes served, by uid."""

    results: list[IndexStats]
    offset: int = 0
    limit: int = 20
    total: int


class DocumentPage(_Wire):
    """GET /v1/indexes/<uid>/documents: one page of stored documents (fields as asked)."""

    results: list[dict[str, Any]]
    offset: int
    limit: int
    total: int
