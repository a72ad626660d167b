"""The webhook delivery log: one MongoDB document per delivery in `webhook_deliveries`.

    {_id: "whd_…", webhook, eventType, payload: '{"type", "timestamp", "data"}', status, attempts:
     [{at, httpStatus, durationMs, error, responseExcerpt}], lastError, createdAt, updatedAt,
     replayOf}

The payload is kept as its JSON text: the bytes sent on every attempt, and the caller's data
may have keys MongoDB field names cannot (`.` and `$`). `_id` is the delivery id, also the
Standard Webhooks `webhook-id` of every attempt (so a receiver deduplicates retries on it);
ids sort by creation time, so `_id` order is age order.
A delivery is created once (a second insert of the same id changes nothing: a retried publish
finds it) and its status moves pending -> succeeded | failed; paused deliveries are never sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..db.indexes import IndexPolicy
from ..db.schema import WEBHOOK_DELIVERIES, ensure_capability_indexes_once
from ..email.log import check_limit, decode_cursor, encode_cursor
from ..jobs.ids import sortable_id
from .webhook_contract import DeliveryAttempt, DeliveryPage, DeliveryStatus, DeliverySummary, WebhookDelivery

__all__ = ["DELIVERY_PREFIX", "DeliveryStore", "new_delivery_id", "now_ms"]

DELIVERY_PREFIX = "whd_"
ATTEMPTS_KEPT = 50
"""Attempts kept per delivery (the newest); maxAttempts is at most 30, replays are new deliveries."""
ERROR_CHARS = 1000

_SUMMARY = ("webhook", "eventType", "status", "attemptCount", "lastError", "createdAt", "updatedAt", "replayOf")


def new_delivery_id() -> str:
    return DELIVERY_PREFIX + sortable_id()


def now_ms() -> datetime:
    """Now, to the millisecond (what BSON keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _aware(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def _summary_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    fields = {key: _aware(doc[key]) for key in _SUMMARY if key in doc}
    fields["id"] = doc["_id"]
    fields.setdefault("attemptCount", len(doc.get("attempts") or []))
    return fields


class DeliveryStore:
    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self.collection: AsyncCollection[Any] = database[WEBHOOK_DELIVERIES]

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> None:
        """The delivery log's indexes (stackyard.db.schema), once per database in this process."""
        await ensure_capability_indexes_once(self.collection.database, [WEBHOOK_DELIVERIES], policy)

    async def create(
        self,
        delivery_id: str,
        webhook: str,
        event_type: str,
        payload: dict[str, Any],
        status: DeliveryStatus,
        *,
        replay_of: str | None = None,
    ) -> tuple[WebhookDelivery, bool]:
        """Insert the delivery; answers it and whether it was new (False: that id was there,
        and the stored one is answered)."""
        now = now_ms()
        doc: dict[str, Any] = {
            "_id": delivery_id,
            "webhook": webhook,
            "eventType": event_type,
            "payload": orjson.dumps(payload).decode(),
            "status": status,
            "attempts": [],
            "attemptCount": 0,
            "createdAt": now,
            "updatedAt": now,
        }
        if replay_of is not None:
            doc["replayOf"] = replay_of
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.collection.find_one({"_id": delivery_id})
            if existing is not None:
                return self._delivery(existing), False
            raise
        return self._delivery(doc), True

    async def get(self, delivery_id: str) -> WebhookDelivery | None:
        doc = await self.collection.find_one({"_id": delivery_id})
        return self._delivery(doc) if doc is not None else None

    async def page(
        self,
        webhook: str,
        *,
        status: DeliveryStatus | None = None,
        event_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeliveryPage:
        """A Webhook's deliveries, newest first; pass `next_cursor` as `cursor` for the next page."""
        check_limit(limit)
        query: dict[str, Any] = {"webhook": webhook}
        if status is not None:
            query["status"] = status
        if event_type is not None:
            query["eventType"] = event_type
        if cursor is not None:
            query["_id"] = {"$lt": decode_cursor(cursor)}
        projection = dict.fromkeys(_SUMMARY, 1)
        docs = await self.collection.find(query, projection).sort("_id", DESCENDING).limit(limit + 1).to_list()
        items = [DeliverySummary.model_validate(_summary_fields(doc)) for doc in docs[:limit]]
        return DeliveryPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(docs) > limit else None)

    async def record_attempt(
        self,
        delivery_id: str,
        attempt: DeliveryAttempt,
        status: DeliveryStatus,
        *,
        count: int,
        reason: str | None = None,
    ) -> None:
        """Add an attempt and set the status in one write; `count` is the attempt's number
        (absolute, so a retried write sets the same); `reason` replaces the attempt's error
        as lastError (why it was given up)."""
        entry = attempt.model_dump(by_alias=True)
        error = reason or attempt.error
        update: dict[str, Any] = {
            "$set": {
                "status": status,
                "updatedAt": now_ms(),
                "attemptCount": count,
                "lastError": error[:ERROR_CHARS] if error else None,
            },
            "$push": {"attempts": {"$each": [entry], "$slice": -ATTEMPTS_KEPT}},
        }
        await self.collection.update_one({"_id": delivery_id}, update)

    async def finish(self, delivery_id: str, status: DeliveryStatus, reason: str | None = None) -> None:
        """Set the status without an attempt (given up: disabled, gone; or paused), with why."""
        fields: dict[str, Any] = {"status": status, "updatedAt": now_ms()}
        if reason is not None:
            fields["lastError"] = reason[:ERROR_CHARS]
        await self.collection.update_one({"_id": delivery_id}, {"$set": fields})

    @staticmethod
    def _delivery(doc: Mapping[str, Any]) -> WebhookDelivery:
        fields = _summary_fields(doc)
        raw = doc.get("payload")
        fields["payload"] = orjson.loads(raw) if isinstance(raw, str) else raw or {}
        fields["attempts"] = [
            {key: _aware(value) for key, value in attempt.items()} for attempt in doc.get("attempts") or []
        ]
        return WebhookDelivery.model_validate(fields)
