"""SearchIndex: a typo-tolerant, faceted, instant search index over documents synced from a
MongoDB collection or pushed through the API, in the manner of Meilisearch and Algolia.

These models only declare and validate: `stackyard.search` indexes, ranks and syncs.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints, field_validator, model_validator

from .base import (
    AGE_COLUMN,
    READY_COLUMN,
    REASON_COLUMN,
    CamelModel,
    ConditionInfo,
    CustomResource,
    Duration,
    KindInfo,
    ObjectName,
    Pair,
    PairedModel,
    PrinterColumn,
    ResourceStatus,
    StackRef,
    member_ready,
)
from .stack import DatabaseRef

# A document attribute, dotted for a nested one (author.name); `*` means every attribute.
ATTRIBUTE = r"^(\*|[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*)$"
Attribute = Annotated[str, StringConstraints(pattern=ATTRIBUTE, max_length=200)]
Word = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# A structural schema has no propertyNames or patternProperties: map keys are checked by CEL
# rules in the CRD and by validators here. A key names one attribute (never `*`).
ATTRIBUTE_KEY = r"^[A-Za-z_][A-Za-z0-9_-]*([.][A-Za-z_][A-Za-z0-9_-]*)*$"
ATTRIBUTE_KEYS_RULE: dict[str, JsonValue] = {
    "x-kubernetes-validations": [
        {
            "rule": f"self.all(k, size(k) <= 200 && k.matches('{ATTRIBUTE_KEY}'))",
            "message": "every key must be an attribute name (title, author.name)",
        }
    ]
}
WORD_KEYS_RULE: dict[str, JsonValue] = {
    "x-kubernetes-validations": [
        {"rule": "self.all(k, size(k) >= 1 && size(k) <= 100)", "message": "every key must be 1 to 100 characters"}
    ]
}
Language = Literal[
    "none", "arabic", "danish", "dutch", "english", "finnish", "french", "german", "greek", "hungarian",
    "italian", "norwegian", "portuguese", "romanian", "russian", "spanish", "swedish", "tamil", "turkish",
]  # fmt: skip
LANGUAGES: tuple[str, ...] = Language.__args__  # type: ignore[attr-defined]
COLLECTION_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$"


class MinWordSizeForTypos(CamelModel):
    one_typo: int = Field(default=5, ge=1, le=255, description="Shortest word that may match with one typo.")
    two_typos: int = Field(default=9, ge=1, le=255, description="Shortest word that may match with two typos.")

    @model_validator(mode="after")
    def _ordered(self) -> MinWordSizeForTypos:
        if self.two_typos < self.one_typo:
            raise ValueError("twoTypos must be at least oneTypo")
        return self

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.twoTypos >= self.oneTypo", "message": "twoTypos must be at least oneTypo"}
            ]
        }
    }


class TypoTolerance(CamelModel):
    enabled: bool = Field(default=True, description="Let query words match with typos (edit distance 1 or 2).")
    min_word_size_for_typos: MinWordSizeForTypos = Field(
        default=MinWordSizeForTypos(), description="How long a query word must be before one or two typos are allowed."
    )
    disable_on_words: list[Word] = Field(
        default_factory=list, max_length=1000, description="Query words that must match exactly (brand names, codes)."
    )
    disable_on_attributes: list[Attribute] = Field(
        default_factory=list, max_length=100, description="Attributes matched only exactly (SKUs, ids)."
    )


class SyncSettings(CamelModel):
    mode: Literal["auto", "changeStream", "poll"] = Field(
        default="auto",
        description="How changes are followed: a change stream (needs a replica set), a poll of updatedAtField, "
        "or auto (a change stream where the server has them, else the poll).",
    )
    updated_at_field: Attribute = Field(
        default="updatedAt",
        description="Field the application sets to the time of each insert and update (a date); the poll reads "
        "documents whose value is newer than the last one seen.",
    )
    poll_interval: Duration = Field(default="2s", description="How often the poll reads new and changed documents.")
    delete_scan_interval: Duration = Field(
        default="60s",
        description="How often the poll compares the ids in the collection with those in the index to find "
        "deletes (a change stream sees deletes at once).",
    )
    batch_size: int = Field(default=1000, ge=1, le=10_000, description="Documents read and indexed per batch.")


class MongoSource(CamelModel):
    database_ref: DatabaseRef | None = Field(
        default=None, description="A Database of this Stack holding the collection; the Stack's own when absent."
    )
    collection: Annotated[str, StringConstraints(pattern=COLLECTION_NAME)] = Field(
        description="Collection whose documents are indexed."
    )
    fields: dict[str, Attribute] = Field(
        default_factory=dict,
        max_length=200,
        description="Index attribute -> source field (dotted path). When empty, every field of the source "
        "document is indexed under its own name. The primary key always comes from `_id`.",
        json_schema_extra=ATTRIBUTE_KEYS_RULE,
    )
    sync: SyncSettings = Field(default=SyncSettings(), description="How inserts, updates and deletes are followed.")

    @field_validator("fields")
    @classmethod
    def _attribute_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if len(key) > 200 or not re.fullmatch(ATTRIBUTE_KEY, key):
                raise ValueError(f"{key!r} is not an attribute name (title, author.name)")
        return value


class ApiSource(CamelModel):
    """Documents are added, replaced and deleted through /v1/indexes/<name>/documents."""


class SearchSource(PairedModel):
    pairs = (Pair("mongodb", "api", "exactly one of source.mongodb and source.api"),)

    mongodb: MongoSource | None = Field(default=None, description="Index a MongoDB collection and follow it.")
    api: ApiSource | None = Field(default=None, description="Documents are pushed through the API.")


class Pagination(CamelModel):
    max_total_hits: int = Field(
        default=1000, ge=1, le=100_000, description="Most hits a search can page through (Meilisearch's default)."
    )


class Faceting(CamelModel):
    max_values_per_facet: int = Field(
        default=100, ge=1, le=10_000, description="Most values returned per facet in facetDistribution."
    )


class SearchIndexSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack that serves this index.")
    primary_key: Attribute = Field(
        default="id",
        description="Attribute that identifies a document (a string or an integer). A MongoDB source fills it "
        "from `_id`.",
    )
    source: SearchSource = Field(description="Where the documents come from.")
    searchable_attributes: list[Attribute] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=100,
        description="Attributes searched, in ranking order: a match in an earlier one ranks higher. `*`: every "
        "string attribute, in document order.",
    )
    filterable_attributes: list[Attribute] = Field(
        default_factory=list, max_length=100, description="Attributes usable in `filter` expressions."
    )
    facetable_attributes: list[Attribute] = Field(
        default_factory=list,
        max_length=100,
        description="Attributes whose value counts a search can ask for (`facets`); they are filterable too.",
    )
    sortable_attributes: list[Attribute] = Field(
        default_factory=list, max_length=100, description="Attributes usable in `sort` (attr:asc, attr:desc)."
    )
    displayed_attributes: list[Attribute] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=200, description="Attributes a hit returns."
    )
    typo_tolerance: TypoTolerance = Field(default=TypoTolerance(), description="How typos are forgiven.")
    synonyms: dict[str, list[Word]] = Field(
        default_factory=dict,
        max_length=10_000,
        description="A word or phrase -> its synonyms (one way; list both directions for mutual synonyms).",
        json_schema_extra=WORD_KEYS_RULE,
    )
    stop_words: list[Word] = Field(
        default_factory=list, max_length=10_000, description="Words ignored in queries (the, a, of)."
    )
    language: Language = Field(default="english", description="Stemming language, or none.")
    pagination: Pagination = Field(default=Pagination(), description="How deep a search can page.")
    faceting: Faceting = Field(default=Faceting(), description="How many values a facet returns.")

    @field_validator("searchable_attributes", "displayed_attributes")
    @classmethod
    def _star_alone(cls, value: list[str]) -> list[str]:
        if "*" in value and len(value) > 1:
            raise ValueError("`*` stands alone: it already means every attribute")
        if len(set(value)) != len(value):
            raise ValueError("an attribute is listed twice")
        return value

    @field_validator("synonyms")
    @classmethod
    def _word_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for key in value:
            if not 1 <= len(key) <= 100:
                raise ValueError(f"synonym key {key[:20]!r} must be 1 to 100 characters")
        return value

    @field_validator("filterable_attributes", "facetable_attributes", "sortable_attributes")
    @classmethod
    def _no_star(cls, value: list[str]) -> list[str]:
        if "*" in value:
            raise ValueError("name the attributes: `*` is not allowed here")
        if len(set(value)) != len(value):
            raise ValueError("an attribute is listed twice")
        return value

    @property
    def filter_attributes(self) -> list[str]:
        """Filterable attributes, facetable ones included, in a stable order."""
        return list(dict.fromkeys([*self.filterable_attributes, *self.facetable_attributes]))

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                # Absent lists (their defaults are not in the schema) pass: has() first.
                {
                    "rule": "!has(self.searchableAttributes) || !self.searchableAttributes.exists(a, a == '*') "
                    "|| size(self.searchableAttributes) == 1",
                    "message": "`*` stands alone in searchableAttributes: it already means every attribute",
                },
                {
                    "rule": "!has(self.displayedAttributes) || !self.displayedAttributes.exists(a, a == '*') "
                    "|| size(self.displayedAttributes) == 1",
                    "message": "`*` stands alone in displayedAttributes: it already means every attribute",
                },
                {
                    "rule": "(!has(self.filterableAttributes) || !self.filterableAttributes.exists(a, a == '*')) && "
                    "(!has(self.facetableAttributes) || !self.facetableAttributes.exists(a, a == '*')) && "
                    "(!has(self.sortableAttributes) || !self.sortableAttributes.exists(a, a == '*'))",
                    "message": "name the attributes: `*` is not allowed in filterable, facetable or sortable ones",
                },
            ]
        }
    }


class SyncStatus(CamelModel):
    mode: Literal["changeStream", "poll", "api"] = Field(description="How the index follows its source.")
    last_sync: str | None = Field(
        default=None, description="When changes were last applied.", json_schema_extra={"format": "date-time"}
    )
    lag_seconds: float | None = Field(
        default=None, ge=0, description="Age of the oldest source change not yet searchable (0 when caught up)."
    )
    error: str | None = Field(default=None, max_length=2048, description="Why the last sync attempt failed.")


class SearchIndexStatus(ResourceStatus):
    """Ready and observedGeneration come from the operator; the fields below and the Synced
    condition from the search component, which holds the index."""

    documents: int | None = Field(default=None, ge=0, description="Documents in the index being served.")
    sync: SyncStatus | None = Field(default=None, description="How far the index is behind its source.")
    rebuilding: bool = Field(default=False, description="A new version of the index is being built.")
    index_version: int | None = Field(default=None, ge=0, description="Version of the index files being served.")


class SearchIndex(CustomResource):
    info = KindInfo(
        kind="SearchIndex",
        plural="searchindexes",
        short_names=["sysearch"],
        description="A search index: source, searchable/filterable/sortable attributes, typo tolerance, synonyms.",
        columns=[
            PrinterColumn("Documents", ".status.documents", "integer"),
            PrinterColumn("Lag", ".status.sync.lagSeconds", "number", description="Seconds behind the source"),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[
            member_ready(
                DatabaseNotFound="False: source.mongodb.databaseRef names no Database of the Stack.",
                DatabaseInvalid="False: the Database source.mongodb.databaseRef names is not in force.",
                AttributeConflict="False: source.mongodb.fields maps the primaryKey, which always comes from _id.",
                AttributeNotMapped="False: a setting names an attribute that source.mongodb.fields does not map.",
            ),
            ConditionInfo(
                "Synced",
                "The search component follows the source collection; only for an index sourced from MongoDB.",
                {
                    "Following": "True: the sync follows the collection (change stream or poll).",
                    "Starting": "False: the sync has not started yet.",
                    "InitialLoad": "False: the first version of the index is being built.",
                    "Rebuilding": "False: the index is rebuilt (the change feed lost its place).",
                    "SourceUnreachable": "False: MongoDB did not answer.",
                    "CollectionMissing": "False: the collection does not exist (or was dropped or renamed).",
                    "ChangeStreamsUnsupported": "False: sync changeStream, where the server has no change streams.",
                    "RebuildFailed": "False: a rebuild failed.",
                    "SyncFailed": "False: anything else went wrong; the sync tries again with backoff.",
                },
                set_by="search",
            ),
        ],
    )
    kind: Literal["SearchIndex"] = "SearchIndex"
    spec: SearchIndexSpec
    status: SearchIndexStatus = Field(default_factory=SearchIndexStatus)


IndexName = ObjectName
"""An index is named after its SearchIndex (metadata.name); that name is its uid in the API."""
