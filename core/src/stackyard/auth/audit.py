"""The security audit log (MongoDB `auth_events`) and the platform event stream.

Every security event (logins, failures, MFA and password changes, sessions) is a document
with the user, the client's address and agent, and what happened; each is also added to
the Redis stream `sy:events:{<scope>}` (trimmed to about 10,000 entries), where other
capabilities (webhooks, notifications) read `user.created`, `session.created` and the rest.
Events expire after spec.auth.auditRetention (`expiresAt`, swept at most hourly). Each
written event also counts in the `stackyard.auth.events` metric (by type only, see metrics.py)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pymongo import DESCENDING

from ..db.indexes import Drift, IndexPolicy
from ..db.schema import ensure_capability_indexes
from ..jobs.ids import MonotonicIds
from ..problems import UnprocessableContent
from ..resources.base import duration_seconds
from .metrics import AUTH_METRICS

if TYPE_CHECKING:
    from .context import AuthContext
    from .sessions import ClientInfo

log = logging.getLogger(__name__)
COLLECTION = "auth_events"
STREAM_LENGTH = 10_000
SWEEP_EVERY = timedelta(hours=1)
_last_sweep: dict[str, datetime] = {}
EVENT_IDS = MonotonicIds()
"""Event ids increase in this process, so one request's events list in the order they happened."""


def event_stream(scope: str) -> str:
    return f"sy:events:{{{scope}}}"


class AuditLog:
    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        self.collection = ctx.db[COLLECTION]

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> Drift:
        """A user's and a type's events, newest first (stackyard.db.schema)."""
        return await ensure_capability_indexes(self.ctx.db, [COLLECTION], policy)

    async def record(
        self, event: str, *, user_id: str | None = None, client: ClientInfo | None = None, **data: Any
    ) -> str:
        now = self.ctx.clock()
        event_id = "evt_" + EVENT_IDS.next(int(now.timestamp() * 1000))
        retention = timedelta(seconds=duration_seconds(self.ctx.settings.audit_retention))
        doc = {
            "_id": event_id,
            "type": event,
            "userId": user_id,
            "ip": client.ip if client else None,
            "userAgent": client.user_agent if client else None,
            "at": now,
            "expiresAt": now + retention,
            "data": data,
        }
        await self.collection.insert_one(doc)
        AUTH_METRICS.recorded(event)
        try:
            payload = {"id": event_id, "type": event, "userId": user_id, "at": now.isoformat(), "data": data}
            await self.ctx.redis.xadd(
                event_stream(self.ctx.scope),
                {"type": event, "event": json.dumps(payload, default=str)},
                maxlen=STREAM_LENGTH,
                approximate=True,
            )
        except Exception as exc:  # the audit document is written; the stream is best effort
            log.warning("could not publish %s on the event stream: %s", event, type(exc).__name__)
        await self._sweep(now)
        return event_id

    async def _sweep(self, now: datetime) -> None:
        last = _last_sweep.get(self.ctx.scope)
        if last is not None and now - last < SWEEP_EVERY:
            return
        _last_sweep[self.ctx.scope] = now
        await self.collection.delete_many({"expiresAt": {"$lt": now}})

    async def page(
        self, *, user_id: str | None = None, type: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """Newest first; pass nextCursor back as cursor for the next page."""
        query: dict[str, Any] = {}
        if user_id:
            query["userId"] = user_id
        if type:
            query["type"] = type
        if cursor:
            try:
                query["_id"] = {"$lt": base64.urlsafe_b64decode(cursor.encode()).decode()}
            except Exception:
                raise UnprocessableContent("cursor: not a cursor from this list") from None
        docs = await self.collection.find(query).sort("_id", DESCENDING).limit(limit + 1).to_list()
        items = [
            {
                "id": d["_id"],
                "type": d["type"],
                "userId": d.get("userId"),
                "ip": d.get("ip"),
                "userAgent": d.get("userAgent"),
                "at": d["at"],
                "data": d.get("data") or {},
            }
            for d in docs[:limit]
        ]
        more = len(docs) > limit
        next_cursor = base64.urlsafe_b64encode(docs[limit - 1]["_id"].encode()).decode() if more else None
        return {"items": items, "nextCursor": next_cursor}

    async def forget_user(self, user_id: str) -> int:
        """Erase a deleted user's events (their IPs and agents are personal data)."""
        result = await self.collection.delete_many({"userId": user_id})
        return result.deleted_count
