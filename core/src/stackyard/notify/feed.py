"""The in-app feed: messages in MongoDB (collection `feed_messages` of the Stack's database),
every change published live through Redis (stackyard.notify.live) to the recipient's SSE
streams on every api replica.

A message is delivered once: its id is made from the run and the step, and `deliver` inserts
it under that `_id`; a retried step meets the duplicate key and gets the message already
there (FerretDB has no atomic conditional update: the unique `_id` decides the race). A
retried delivery of a message still unseen is published again (same id: a client shows a
message once per id).

Marks set or clear a timestamp: seenAt, readAt (read implies seen), archivedAt. Counts are
of the messages not archived: total, unread (no readAt), unseen (no seenAt). Listings are
newest first by delivery time (createdAt, then id), in cursor pages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..clients import AnyRedis
from ..db.indexes import Drift, IndexPolicy
from ..db.schema import FEED_MESSAGES, ensure_capability_indexes
from ..storage.problems import CursorInvalid
from .feed_contract import (
    MAX_PAGE,
    BulkAction,
    BulkResult,
    FeedAction,
    FeedCounts,
    FeedMessage,
    FeedMessageIn,
    FeedPage,
    FeedStatus,
)
from .live import publish_message, publish_update
from .problems import FeedMessageNotFound

log = logging.getLogger(__name__)

__all__ = ["COLLECTION", "FeedStore", "message_from_document"]

COLLECTION = FEED_MESSAGES
REPLAY_LIMIT = 100
"""Messages a reconnecting stream gets back at most (the newest of those it missed)."""


def _now() -> datetime:
    """Now, to the millisecond (what MongoDB keeps), so a message equals its document read back."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _aware(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def message_from_document(document: Mapping[str, Any]) -> FeedMessage:
    return FeedMessage(
        id=document["_id"],
        recipient=document["recipient"],
        workflow=document.get("workflow") or "",
        run_id=document.get("runId") or "",
        step=document.get("step") or "",
        tenant=document.get("tenant"),
        title=document.get("title") or "",
        body=document.get("body") or "",
        action_url=document.get("actionUrl"),
        data=dict(document.get("data") or {}),
        actor=document.get("actor"),
        created_at=_aware(document["createdAt"]),
        seen_at=_aware(document.get("seenAt")),
        read_at=_aware(document.get("readAt")),
        archived_at=_aware(document.get("archivedAt")),
    )


def _document(message: FeedMessageIn, now: datetime) -> dict[str, Any]:
    # Every state field is written (null when unset): the filters ask for null.
    return {
        "_id": message.id,
        "recipient": message.recipient,
        "workflow": message.workflow,
        "runId": message.run_id,
        "step": message.step,
        "tenant": message.tenant,
        "title": message.title,
        "body": message.body,
        "actionUrl": message.action_url,
        "data": message.data,
        "actor": message.actor,
        "createdAt": now,
        "seenAt": None,
        "readAt": None,
        "archivedAt": None,
    }


_STATUS_FILTERS: dict[str, dict[str, Any]] = {
    "all": {"archivedAt": None},
    "unread": {"archivedAt": None, "readAt": None},
    "unseen": {"archivedAt": None, "seenAt": None},
    "read": {"archivedAt": None, "readAt": {"$ne": None}},
    "archived": {"archivedAt": {"$ne": None}},
}


def _changes(action: FeedAction, document: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The fields `action` sets on a message in the state of `document` (none when it is
    in that state already: the first seen and read times stay)."""
    changes: dict[str, Any] = {}
    if action in ("seen", "read") and document.get("seenAt") is None:
        changes["seenAt"] = now
    if action == "read" and document.get("readAt") is None:
        changes["readAt"] = now
    if action == "unread" and document.get("readAt") is not None:
        changes["readAt"] = None
    if action == "archive" and document.get("archivedAt") is None:
        changes["archivedAt"] = now
    if action == "unarchive" and document.get("archivedAt") is not None:
        changes["archivedAt"] = None
    return changes


def _bulk_updates(action: FeedAction, now: datetime) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(filter, $set) pairs that apply `action` to the messages it changes; the last one's
    modified count is the action's."""
    if action == "seen":
        return [({"seenAt": None}, {"seenAt": now})]
    if action == "read":
        return [({"seenAt": None}, {"seenAt": now}), ({"readAt": None}, {"readAt": now})]
    if action == "unread":
        return [({"readAt": {"$ne": None}}, {"readAt": None})]
    if action == "archive":
        return [({"archivedAt": None}, {"archivedAt": now})]
    return [({"archivedAt": {"$ne": None}}, {"archivedAt": None})]


def encode_cursor(message: FeedMessage) -> str:
    ms = int(message.created_at.timestamp() * 1000)
    raw = json.dumps({"t": ms, "id": message.id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        ms, message_id = data["t"], data["id"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise CursorInvalid("the cursor was not made by this api") from None
    if not isinstance(ms, int) or not isinstance(message_id, str):
        raise CursorInvalid("the cursor was not made by this api")
    return datetime.fromtimestamp(ms / 1000, UTC), message_id


def _older_than(created_at: datetime, message_id: str) -> dict[str, Any]:
    return {"$or": [{"createdAt": {"$lt": created_at}}, {"createdAt": created_at, "_id": {"$lt": message_id}}]}


def _newer_than(created_at: datetime, message_id: str) -> dict[str, Any]:
    return {"$or": [{"createdAt": {"$gt": created_at}}, {"createdAt": created_at, "_id": {"$gt": message_id}}]}


class FeedStore:
    """The feeds of one Stack (`scope` = "namespace/name", the prefix of its Redis channels)."""

    def __init__(self, database: AsyncDatabase[Any], redis: AnyRedis, scope: str) -> None:
        self.messages: AsyncCollection[Any] = database[COLLECTION]
        self.redis = redis
        self.scope = scope

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> Drift:
        return await ensure_capability_indexes(self.messages.database, [COLLECTION], policy)

    # -- delivery ---------------------------------------------------------------------------

    async def deliver(self, message: FeedMessageIn) -> FeedMessage:
        """Store `message` (or find it stored already under its id) and publish it live."""
        document = _document(message, _now())
        try:
            await self.messages.insert_one(document)
        except DuplicateKeyError:
            found = await self.messages.find_one({"_id": message.id})
            if found is None:  # removed in between: nothing to return but what was asked
                raise
            stored = message_from_document(found)
            if stored.seen_at is None and stored.archived_at is None:
                await self._publish(publish_message(self.redis, self.scope, stored))
            return stored
        stored = message_from_document(document)
        await self._publish(publish_message(self.redis, self.scope, stored))
        return stored

    async def _publish(self, publishing: Any) -> None:
        """Publish, but never fail the change for it: the message is stored, and a stream
        that missed it reads it back (the counts of its next event are right again)."""
        try:
            await publishing
        except Exception as exc:
            log.warning("feed: a live event could not be published (%s)", type(exc).__name__)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, message_id: str) -> FeedMessage | None:
        document = await self.messages.find_one({"_id": message_id})
        return None if document is None else message_from_document(document)

    async def get_for(self, recipient: str, message_id: str) -> FeedMessage:
        """The recipient's message; FeedMessageNotFound also when it is someone else's."""
        document = await self.messages.find_one({"_id": message_id, "recipient": recipient})
        if document is None:
            raise FeedMessageNotFound(f"no feed message {message_id}", id=message_id)
        return message_from_document(document)

    async def list(
        self,
        recipient: str,
        status: FeedStatus = "all",
        *,
        tenant: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> FeedPage:
        """A page of the recipient's messages in `status`, newest first, with the counts."""
        limit = max(1, min(limit, MAX_PAGE))
        query: dict[str, Any] = {"recipient": recipient, **_STATUS_FILTERS[status]}
        if tenant is not None:
            query["tenant"] = tenant
        if cursor:
            query.update(_older_than(*decode_cursor(cursor)))
        found, counts = await asyncio.gather(
            self.messages.find(query).sort([("createdAt", -1), ("_id", -1)]).limit(limit + 1).to_list(limit + 1),
            self.counts(recipient, tenant=tenant),
        )
        items = [message_from_document(d) for d in found[:limit]]
        next_cursor = encode_cursor(items[-1]) if len(found) > limit else None
        return FeedPage(items=items, next_cursor=next_cursor, counts=counts)

    async def counts(self, recipient: str, *, tenant: str | None = None) -> FeedCounts:
        base: dict[str, Any] = {"recipient": recipient, "archivedAt": None}
        if tenant is not None:
            base["tenant"] = tenant
        total, unread, unseen = await asyncio.gather(
            self.messages.count_documents(base),
            self.messages.count_documents(base | {"readAt": None}),
            self.messages.count_documents(base | {"seenAt": None}),
        )
        return FeedCounts(total=total, unread=unread, unseen=unseen)

    async def since(
        self, recipient: str, created_at: datetime, message_id: str, *, tenant: str | None = None
    ) -> builtins.list[FeedMessage]:
        """The recipient's messages delivered after (created_at, message_id), oldest first:
        what a reconnecting stream missed (the newest REPLAY_LIMIT of them)."""
        query: dict[str, Any] = {"recipient": recipient, **_newer_than(created_at, message_id)}
        if tenant is not None:
            query["tenant"] = tenant
        found = (
            await self.messages.find(query)
            .sort([("createdAt", -1), ("_id", -1)])
            .limit(REPLAY_LIMIT)
            .to_list(REPLAY_LIMIT)
        )
        return [message_from_document(d) for d in reversed(found)]

    # -- marks ------------------------------------------------------------------------------

    async def mark(self, recipient: str, message_id: str, action: FeedAction) -> FeedMessage:
        """Apply `action` to one of the recipient's messages; the message as it is now.
        Published live when it changed something."""
        document = await self.messages.find_one({"_id": message_id, "recipient": recipient})
        if document is None:
            raise FeedMessageNotFound(f"no feed message {message_id}", id=message_id)
        changes = _changes(action, document, _now())
        if not changes:
            return message_from_document(document)
        # Setting a timestamp twice (two marks at once) is harmless: no condition is needed.
        await self.messages.update_one({"_id": message_id, "recipient": recipient}, {"$set": changes})
        await self._publish(publish_update(self.redis, self.scope, recipient, action, [message_id]))
        return message_from_document({**document, **changes})

    async def bulk(self, recipient: str, request: BulkAction) -> BulkResult:
        """Apply an action to the messages named, or to all of the recipient's (of a tenant)."""
        base: dict[str, Any] = {"recipient": recipient}
        if request.ids is not None:
            base["_id"] = {"$in": sorted(set(request.ids))}
        elif request.tenant is not None:
            base["tenant"] = request.tenant
        updated, changed = 0, False
        for condition, changes in _bulk_updates(request.action, _now()):
            result = await self.messages.update_many(base | condition, {"$set": changes})
            updated = result.modified_count
            changed = changed or updated > 0
        if changed:
            ids = None if request.ids is None else sorted(set(request.ids))
            await self._publish(
                publish_update(self.redis, self.scope, recipient, request.action, ids, tenant=request.tenant)
            )
        return BulkResult(
            action=request.action, updated=updated, counts=await self.counts(recipient, tenant=request.tenant)
        )
