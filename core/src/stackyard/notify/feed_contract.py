"""The wire contract of /v1/feed (the in-app feed): messages, pages with counts, marks and
bulk actions, shared by the api's router, the engine (which delivers messages), the SDK and
the CLI so that they cannot drift."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

FeedStatus = Literal["all", "unread", "unseen", "read", "archived"]
"""Which messages a listing gives: all (not archived), unread, unseen, read (each not
archived), archived."""
FeedAction = Literal["seen", "read", "unread", "archive", "unarchive"]
"""What a mark does: seen (sets seenAt), read (sets readAt, and seenAt when unset), unread
(clears readAt), archive (sets archivedAt), unarchive (clears it)."""
FEED_ACTIONS: tuple[FeedAction, ...] = ("seen", "read", "unread", "archive", "unarchive")
MAX_BULK_IDS = 1000
MAX_PAGE = 100


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class FeedMessageIn(_Wire):
    """What the engine's inApp step delivers (rendered already). `id` is deterministic from
    the run and the step (`msg_<run id>.<step>`), so a retried step finds its message."""

    id: str = Field(min_length=1, max_length=200)
    recipient: str = Field(min_length=1, max_length=200, description="The user id.")
    workflow: str = Field(description="The workflow's trigger key.")
    run_id: str
    step: str
    tenant: str | None = None
    title: str
    body: str = ""
    action_url: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    actor: dict[str, Any] | None = None


class FeedMessage(_Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "msg_nrun_01jq3v7k2m8n4p5r6s7t8v9w0x.in-app",
                    "recipient": "u_42",
                    "workflow": "comment-created",
                    "runId": "nrun_01jq3v7k2m8n4p5r6s7t8v9w0x",
                    "step": "in-app",
                    "tenant": None,
                    "title": "Ana commented on Roadmap",
                    "body": "Looks good to me",
                    "actionUrl": "https://app.acme.dev/docs/roadmap#c12",
                    "data": {"commentId": "c12"},
                    "actor": {"id": "u_7", "name": "Ana"},
                    "createdAt": "2026-11-25T10:00:00Z",
                    "seenAt": None,
                    "readAt": None,
                    "archivedAt": None,
                }
            ]
        }
    )

    id: str = Field(description="`msg_<run id>.<step>`: one message per run and inApp step.")
    recipient: str = Field(description="The user it is for.")
    workflow: str = Field(description="The trigger key of the workflow that sent it.")
    run_id: str = Field(description="The notification run (GET /v1/notify/runs/{id}).")
    step: str = Field(description="The workflow's inApp step.")
    tenant: str | None = Field(default=None, description="The trigger's tenant, if any.")
    title: str
    body: str = ""
    action_url: str | None = Field(default=None, description="Where a click on the message leads.")
    data: dict[str, Any] = Field(default_factory=dict, description="The step's extra fields, as they are.")
    actor: dict[str, Any] | None = Field(default=None, description="Who caused it (the trigger's actor).")
    created_at: datetime = Field(description="When it was delivered to the feed.")
    seen_at: datetime | None = Field(default=None, description="When it was first seen (shown in a feed).")
    read_at: datetime | None = Field(default=None, description="When it was read (clicked or marked).")
    archived_at: datetime | None = Field(default=None, description="When it was archived (left out of `all`).")


class FeedCounts(_Wire):
    """Counts of the recipient's messages that are not archived (of the tenant, when one is given)."""

    total: int = Field(ge=0, description="Messages not archived.")
    unread: int = Field(ge=0, description="Of those, not read.")
    unseen: int = Field(ge=0, description="Of those, not seen.")


class FeedPage(_Wire):
    items: list[FeedMessage] = Field(description="Newest first.")
    next_cursor: str | None = Field(default=None, description="Opaque: give it as `cursor` for the next page.")
    counts: FeedCounts


class BulkAction(_Wire):
    """POST /v1/feed/bulk: one action on the messages named by `ids`, or on all of the
    caller's messages (of `tenant`, when given) with `all: true`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"action": "read", "all": True}]})

    action: FeedAction
    ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_BULK_IDS)
    all: bool = Field(default=False, description="Every message of the caller (that the action changes).")
    tenant: str | None = Field(default=None, description="With `all`: only the messages of this tenant.")

    @model_validator(mode="after")
    def _ids_or_all(self) -> BulkAction:
        if (self.ids is not None) == self.all:
            raise ValueError("give either ids or all: true")
        if self.tenant is not None and not self.all:
            raise ValueError("tenant goes with all: true (ids name the messages already)")
        return self


class BulkResult(_Wire):
    action: FeedAction
    updated: int = Field(ge=0, description="Messages the action changed.")
    counts: FeedCounts = Field(description="The caller's counts afterwards (of `tenant`, when given).")
