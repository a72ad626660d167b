"""The suppression list: addresses no message is sent to, in MongoDB.

One document per address in the collection `email_suppressions`, keyed by the suppression
key (the normalised address, lower-cased: `Mailbox.suppression_key`), with `reason`,
`detail`, `provider`, `emailId`, `createdAt` (when it was first added, kept by later adds)
and `updatedAt`. Hard bounces and complaints add an address (the webhooks do), people add
and remove them through /v1/suppressions; senders check the recipients before sending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, get_args

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..db.indexes import Drift, IndexPolicy
from ..db.schema import ensure_capability_indexes
from ..problems import UnprocessableContent
from .addresses import InvalidAddress, parse_mailbox
from .contract import Suppression, SuppressionPage, SuppressionReason
from .log import address_key, check_limit, decode_cursor, encode_cursor

__all__ = ["COLLECTION", "SuppressionList"]

COLLECTION = "email_suppressions"
_REASONS: Final = frozenset(get_args(SuppressionReason))


def _suppression(doc: Mapping[str, Any]) -> Suppression:
    return Suppression.model_validate(
        {
            "address": doc["_id"],
            "reason": doc["reason"],
            "detail": doc.get("detail"),
            "provider": doc.get("provider"),
            "email_id": doc.get("emailId"),
            "created_at": doc["createdAt"],
        }
    )


class SuppressionList:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.suppressions: AsyncCollection[Any] = db[COLLECTION]

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> Drift:
        """The index of the reason filter (stackyard.db.schema); idempotent."""
        return await ensure_capability_indexes(self.suppressions.database, [COLLECTION], policy)

    async def check(self, addresses: Iterable[str]) -> dict[str, Suppression]:
        """The suppressed among these addresses ("Name <a@b>" or "a@b"), by suppression key."""
        keys = sorted({address_key(a) for a in addresses})
        if not keys:
            return {}
        docs = await self.suppressions.find({"_id": {"$in": keys}}).to_list()
        return {doc["_id"]: _suppression(doc) for doc in docs}

    async def add(
        self,
        address: str,
        reason: SuppressionReason | str,
        *,
        detail: str | None = None,
        provider: str | None = None,
        email_id: str | None = None,
    ) -> Suppression:
        """Suppress an address, or update why it is (keeping when it was first added).

        A manual add of an address that is not valid is refused (UnprocessableContent); an
        address from a provider's bounce or complaint is kept as the provider wrote it,
        lower-cased, when it does not validate, so that no bounce is lost."""
        if reason not in _REASONS:
            raise UnprocessableContent(f"reason must be one of {', '.join(sorted(_REASONS))}, not {reason!r}")
        try:
            key = parse_mailbox(address).suppression_key
        except InvalidAddress as exc:
            if reason == "manual" or not address.strip():
                raise UnprocessableContent(str(exc), address=address) from None
            key = address.strip().lower()
        now = datetime.now(UTC)
        update = {
            "$set": {"reason": reason, "detail": detail, "provider": provider, "emailId": email_id, "updatedAt": now},
            "$setOnInsert": {"createdAt": now},
        }
        try:
            doc = await self._upsert(key, update)
        except DuplicateKeyError:  # two first adds at once, and the other one inserted it
            doc = await self._upsert(key, update)
        return _suppression(doc)

    async def _upsert(self, key: str, update: dict[str, Any]) -> Mapping[str, Any]:
        doc: Mapping[str, Any] | None = await self.suppressions.find_one_and_update(
            {"_id": key}, update, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None  # an upsert answers the document it wrote
        return doc

    async def remove(self, address: str) -> bool:
        """Take an address off the list; answers whether it was on it."""
        result = await self.suppressions.delete_one({"_id": address_key(address)})
        return result.deleted_count > 0

    async def page(self, *, limit: int = 50, cursor: str | None = None, reason: str | None = None) -> SuppressionPage:
        """By address; pass the answer's `next_cursor` as `cursor` for the next page."""
        check_limit(limit)
        query: dict[str, Any] = {}
        if reason is not None:
            if reason not in _REASONS:
                raise UnprocessableContent(
                    f"reason must be one of {', '.join(sorted(_REASONS))}, not {reason!r}", reason=reason
                )
            query["reason"] = reason
        if cursor is not None:
            query["_id"] = {"$gt": decode_cursor(cursor)}
        docs = await self.suppressions.find(query).sort("_id", ASCENDING).limit(limit + 1).to_list()
        items = [_suppression(doc) for doc in docs[:limit]]
        return SuppressionPage(items=items, next_cursor=encode_cursor(items[-1].address) if len(docs) > limit else None)
