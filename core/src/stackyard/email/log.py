"""The delivery log: every message the api accepted, its status and its timeline, in MongoDB.

One document per message in the collection `emails`, keyed by the message id (`em_…`, which
sorts by creation time, so `_id` order is newest-last). Stored next to the record's own fields
(camelCase, as the wire contract names them):

- `recipients`: the bare to, cc and bcc addresses, normalised and lower-cased (the `to` filter)
- `fromAddress`: the From address, likewise (the `from` filter)
- `tagPairs`: `"name:value"` for each tag (the `tag` filter; an index on a field path per tag
  name would need one index per name)
- `metadata`: the caller's metadata as JSON text (its keys are the caller's and may hold `.`
  or `$`, which MongoDB field names may not)
- `expiresAt`: when the record goes (a TTL index where the server has them, `sweep` else);
  every read skips expired records, so a late sweep only delays the clean-up

Attachment bytes are never stored: only name, type and size.

Statuses move by precedence, so that the worker's transitions and the providers' events can
arrive in any order: before sending (scheduled, queued, sending) < sent < deferred <
delivered < bounced = complained. A provider event moves a record only upwards; the worker's
statuses never replace a provider's report; failed, suppressed, dead and cancelled are never
moved by a provider event. Opened and clicked add a timeline event only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

import pydantic_core
from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..db.indexes import IndexPolicy
from ..db.schema import EMAIL_TTL_INDEX, ensure_capability_indexes
from ..problems import Conflict, UnprocessableContent
from .addresses import InvalidAddress, parse_mailbox
from .contract import (
    EMAIL_STATUSES,
    EmailFilter,
    EmailPage,
    EmailRecord,
    EmailStatus,
    EmailSummary,
    TimelineEvent,
    TimelineType,
)
from .webhooks import ProviderEvent

if TYPE_CHECKING:
    from ..notify.events import EventSink

__all__ = [
    "COLLECTION",
    "MAX_PAGE",
    "TIMELINE_LIMIT",
    "DeliveryLog",
    "address_key",
    "check_limit",
    "decode_cursor",
    "encode_cursor",
    "replaceable_by",
]

log = logging.getLogger(__name__)

COLLECTION = "emails"
MAX_PAGE = 100
TIMELINE_LIMIT = 200
"""Timeline events kept per message (the newest)."""

_BEFORE_SENDING: Final = ("scheduled", "queued", "sending")
_RANK: Final[dict[str, int]] = {
    **dict.fromkeys(_BEFORE_SENDING, 0),
    "sent": 1,
    "deferred": 2,
    "delivered": 3,
    "bounced": 4,
    "complained": 4,
}
"""Where a status stands in delivery; failed, suppressed, dead and cancelled are not ranked:
no provider event moves them."""
_PROVIDER_REPORTED: Final = frozenset(("deferred", "delivered", "bounced", "complained"))
_EMITTED: Final[dict[str, str]] = {
    "sent": "email.sent",
    "failed": "email.failed",
    "dead": "email.failed",
    "delivered": "email.delivered",
    "bounced": "email.bounced",
    "complained": "email.complained",
}
"""The platform event of a worker's status or a provider's event."""
_EVENT_FIELDS: Final = (
    "status",
    "from",
    "to",
    "subject",
    "template",
    "tags",
    "provider",
    "providerMessageId",
    "lastError",
)
_PROVIDER_EVENT_TYPES: Final = frozenset(("delivered", "deferred", "bounced", "complained", "opened", "clicked"))

_FIELDS: Final[dict[str, str]] = {
    "provider": "provider",
    "provider_message_id": "providerMessageId",
    "attempts": "attempts",
    "last_error": "lastError",
    "job_id": "jobId",
    "send_at": "sendAt",
    "subject": "subject",
    "template": "template",
    "locale": "locale",
}
"""What `transition` may set, and the stored names."""

_EXTRA: Final = ("_id", "expiresAt", "recipients", "fromAddress", "tagPairs")
_SUMMARY: Final = (
    "status",
    "from",
    "to",
    "subject",
    "template",
    "tags",
    "createdAt",
    "updatedAt",
    "provider",
    "lastError",
)


def address_key(value: str) -> str:
    """The normalised, lower-cased bare address of "Name <a@b>" or "a@b"; a value that does
    not parse is only stripped and lower-cased (it then matches only itself)."""
    try:
        return parse_mailbox(value).suppression_key
    except InvalidAddress:
        return value.strip().lower()


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise UnprocessableContent("the cursor is not one a previous page answered", cursor=cursor) from None


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise UnprocessableContent(f"limit must be between 1 and {MAX_PAGE}, not {limit}", limit=limit)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # what BSON keeps


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(at: datetime) -> int:
    """Milliseconds since the epoch: what a BSON date keeps of a datetime."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(milliseconds=1)


def _event(event: TimelineEvent) -> dict[str, Any]:
    return event.model_dump(by_alias=True, exclude_none=True)


def _record(doc: Mapping[str, Any]) -> EmailRecord:
    fields = {k: v for k, v in doc.items() if k not in _EXTRA}
    fields["id"] = doc["_id"]
    fields["metadata"] = json.loads(doc["metadata"]) if doc.get("metadata") else {}
    return EmailRecord.model_validate(fields)


def _summary(doc: Mapping[str, Any]) -> EmailSummary:
    return EmailSummary.model_validate({"id": doc["_id"], **{k: doc[k] for k in _SUMMARY if k in doc}})


def replaceable_by(status: str) -> list[str]:
    """The statuses a record may have for `status` to replace it."""
    if status in _PROVIDER_REPORTED:
        return [s for s, rank in _RANK.items() if rank < _RANK[status]]
    return [s for s in EMAIL_STATUSES if s not in _PROVIDER_REPORTED]


class DeliveryLog:
    def __init__(
        self, db: AsyncDatabase[Any], *, timeline_limit: int = TIMELINE_LIMIT, events: EventSink | None = None
    ) -> None:
        self.emails: AsyncCollection[Any] = db[COLLECTION]
        self.timeline_limit = timeline_limit
        self.events = events
        """Where email.sent, .failed, .delivered, .bounced and .complained go (platform events)."""
        self.ttl_supported: bool | None = None
        """Whether the server expires records itself (None: `ensure_indexes` not called yet)."""
        self._indexes = asyncio.Lock()

    # -- indexes and retention -------------------------------------------------------

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> None:
        """Keep the indexes the filters use and the TTL index on `expiresAt` (stackyard.db.schema;
        a plain index where the server has no TTL indexes: then `sweep` must run on a schedule)."""
        async with self._indexes:
            if self.ttl_supported is not None:
                return
            drift = await ensure_capability_indexes(self.emails.database, [COLLECTION], policy)
            self.ttl_supported = f"{COLLECTION}.{EMAIL_TTL_INDEX}" not in drift.ttl_unsupported
            if not self.ttl_supported:
                log.info("the server has no TTL indexes: expired emails go when the sweep runs")

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete the records whose retention has passed (what the TTL index does where the
        server has one); answers how many went."""
        result = await self.emails.delete_many({"expiresAt": {"$lte": now or _now()}})
        return result.deleted_count

    # -- records ---------------------------------------------------------------------

    async def create(self, record: EmailRecord, *, retention: float) -> None:
        """Store a new record, kept `retention` seconds from its creation; the same id twice
        is a Conflict."""
        if retention <= 0:
            raise ValueError(f"retention must be positive, not {retention}")
        doc = record.model_dump(by_alias=True, exclude={"id", "metadata"}, exclude_none=True)
        doc["_id"] = record.id
        doc["metadata"] = pydantic_core.to_json(record.metadata).decode() if record.metadata else None
        doc["expiresAt"] = record.created_at + timedelta(seconds=retention)
        doc["recipients"] = list(dict.fromkeys(address_key(a) for a in [*record.to, *record.cc, *record.bcc]))
        doc["fromAddress"] = address_key(record.sender)
        doc["tagPairs"] = [f"{name}:{value}" for name, value in record.tags.items()]
        try:
            await self.emails.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"an email with id {record.id} is already in the delivery log", id=record.id) from None

    async def get(self, id: str) -> EmailRecord | None:
        doc = await self.emails.find_one({"_id": id, "expiresAt": {"$gt": _now()}})
        return _record(doc) if doc is not None else None

    async def page(self, filter: EmailFilter, *, limit: int = 50, cursor: str | None = None) -> EmailPage:
        """Newest first; pass the answer's `next_cursor` as `cursor` for the next page."""
        check_limit(limit)
        query: dict[str, Any] = {"expiresAt": {"$gt": _now()}}
        if cursor is not None:
            query["_id"] = {"$lt": decode_cursor(cursor)}
        if filter.status:
            query["status"] = {"$in": list(filter.status)}
        if filter.to is not None:
            query["recipients"] = address_key(filter.to)
        if filter.sender is not None:
            query["fromAddress"] = address_key(filter.sender)
        if filter.template is not None:
            query["template"] = filter.template
        if filter.provider is not None:
            query["provider"] = filter.provider
        if filter.tag:
            query["tagPairs"] = {"$all": [f"{name}:{value}" for name, value in filter.tag.items()]}
        created: dict[str, datetime] = {}
        if filter.since is not None:
            created["$gte"] = filter.since
        if filter.until is not None:
            created["$lt"] = filter.until
        if created:
            query["createdAt"] = created
        docs = (
            await self.emails.find(query, dict.fromkeys(_SUMMARY, 1)).sort("_id", DESCENDING).limit(limit + 1).to_list()
        )
        items = [_summary(doc) for doc in docs[:limit]]
        return EmailPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(docs) > limit else None)

    # -- changes ---------------------------------------------------------------------

    async def transition(
        self, id: str, status: EmailStatus | None, events: Iterable[TimelineEvent] = (), **fields: Any
    ) -> bool:
        """Record what the worker did: the new status (None: keep it), timeline events and
        fields among provider, provider_message_id, attempts, last_error, job_id, send_at,
        subject, template, locale (absolute values, so a retried call sets the same).

        A worker's status never replaces a provider's report (a webhook may arrive before
        the worker writes "sent"): then only the events and fields are written. Answers
        whether the record exists."""
        unknown = fields.keys() - _FIELDS.keys()
        if unknown:
            raise TypeError(f"transition cannot set {', '.join(sorted(unknown))}")
        update: dict[str, Any] = {"$set": {"updatedAt": _now(), **{_FIELDS[k]: v for k, v in fields.items()}}}
        pushed = [_event(e) for e in events]
        if pushed:
            update["$push"] = {"timeline": {"$each": pushed, "$slice": -self.timeline_limit}}
        if status is not None:
            with_status = {**update, "$set": {**update["$set"], "status": status}}
            result = await self.emails.update_one({"_id": id, "status": {"$in": replaceable_by(status)}}, with_status)
            if result.matched_count:
                if status in _EMITTED:
                    await self._emit(_EMITTED[status], id)
                return True
        result = await self.emails.update_one({"_id": id}, update)
        return result.matched_count > 0

    async def apply_provider_event(self, provider: str, event: ProviderEvent) -> str | None:
        """Record a provider's webhook event on its message, found by `email_id` or else by
        (provider, provider message id): a timeline event, and the status moved by precedence.
        The same event twice is recorded once. Answers the message id, or None when no
        record matched or the event type is not one this log knows."""
        if event.type not in _PROVIDER_EVENT_TYPES:
            return None
        new_status = _status_of(event)
        entry = TimelineEvent(
            at=event.at or _now(),
            type=cast(TimelineType, event.type),
            provider=provider,
            outcome=event.raw_type,
            recipient=event.recipient,
            detail=event.detail,
        )
        for _ in range(5):  # compare-and-set on the status; retried when a concurrent change won
            doc = await self._find_for_event(provider, event)
            if doc is None:
                return None
            timeline = doc.get("timeline") or []
            if any(_same_event(entry, seen) for seen in timeline):
                return str(doc["_id"])
            update: dict[str, Any] = {
                "$set": {"updatedAt": _now()},
                "$push": {"timeline": {"$each": [_event(entry)], "$slice": -self.timeline_limit}},
            }
            current = doc.get("status")
            if new_status is not None and current in _RANK and _RANK[new_status] > _RANK[current]:
                update["$set"]["status"] = new_status
            result = await self.emails.update_one({"_id": doc["_id"], "status": current}, update)
            if result.matched_count:
                await self._trim(doc["_id"], len(timeline) + 1 - self.timeline_limit)
                if event.type in _EMITTED:
                    await self._emit(_EMITTED[event.type], str(doc["_id"]), entry)
                return str(doc["_id"])
        raise Conflict("the email changed too often while a provider event was recorded; try again")

    async def _find_for_event(self, provider: str, event: ProviderEvent) -> Mapping[str, Any] | None:
        projection = {"status": 1, "timeline": 1}
        live = {"$gt": _now()}
        doc = None
        if event.email_id:
            doc = await self.emails.find_one({"_id": event.email_id, "expiresAt": live}, projection)
        if doc is None and event.provider_message_id:
            query = {"providerMessageId": event.provider_message_id, "provider": provider, "expiresAt": live}
            doc = await self.emails.find_one(query, projection)
        return doc

    async def _emit(self, event_type: str, id: str, entry: TimelineEvent | None = None) -> None:
        """Publish the platform event of a transition (the record read only when a Webhook
        subscribes); a failure is logged, never raised."""
        if self.events is None:
            return
        from ..notify.events import emit

        async def data() -> dict[str, Any] | None:
            doc = await self.emails.find_one({"_id": id}, dict.fromkeys(_EVENT_FIELDS, 1))
            if doc is None:
                return None
            body = {"id": id, **{k: doc[k] for k in _EVENT_FIELDS if k in doc}}
            if entry is not None:
                body["event"] = _event(entry)
            return body

        key = f"{event_type}:{id}" + (f":{_ms(entry.at)}:{entry.recipient or ''}" if entry is not None else "")
        await emit(self.events, event_type, data, idempotency_key=key)

    async def _trim(self, id: str, excess: int) -> None:
        """Drop the oldest timeline events past the limit where the server ignored `$slice`
        (FerretDB 1.x does); matches nothing on a server that honoured it."""
        for _ in range(max(0, excess)):
            result = await self.emails.update_one(
                {"_id": id, f"timeline.{self.timeline_limit}": {"$exists": True}}, {"$pop": {"timeline": -1}}
            )
            if not result.modified_count:
                return


def _status_of(event: ProviderEvent) -> str | None:
    if event.type == "bounced" and not event.permanent:
        return "deferred"  # a soft bounce (or one the provider did not call permanent): it may still arrive
    return event.type if event.type in _RANK else None


def _same_event(entry: TimelineEvent, seen: Mapping[str, Any]) -> bool:
    at = seen.get("at")
    return (
        isinstance(at, datetime)
        and _ms(at) == _ms(entry.at)
        and seen.get("type") == entry.type
        and seen.get("provider") == entry.provider
        and seen.get("recipient") == entry.recipient
        and seen.get("outcome") == entry.outcome
    )
