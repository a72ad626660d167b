"""The runs of notification workflows in MongoDB (`notification_runs`): one document per
trigger and recipient, keyed by the run id (`nrun_…`, which sorts by the trigger's time),
with each step's outcome. The run job reads the trigger's data, recipient, actor and tenant
from it and writes the outcomes as it goes; GET /v1/notify/runs/{id} reads it back.

Document (camelCase): _id, triggerId, workflow (trigger key), recipient (the id),
recipientInline (an inline recipient as given, else absent), data, actor, tenant, status,
steps [StepOutcome], reason, digestedInto, createdAt, updatedAt, finishedAt."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING, InsertOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ..db.indexes import IndexPolicy
from ..db.schema import NOTIFICATION_RUNS, ensure_capability_indexes
from ..jobs.ids import _ALPHABET, _encode
from .contract import FINISHED_RUN_STATUSES, RunFilter, RunPage, RunView, StepOutcome
from .problems import TriggerInvalid

MAX_PAGE = 100


def now() -> datetime:
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)  # what BSON keeps


def run_suffix(trigger_id: str, recipient: str) -> str:
    """26 characters: the trigger's time (its id's first 10) then 80 bits of a hash of the
    trigger and the recipient: the same run id (and job id) whoever computes it, however often."""
    stamp = trigger_id.removeprefix("ntr_")[:10]
    digest = hashlib.sha256(f"{trigger_id}\0{recipient}".encode()).digest()[:10]
    return stamp + _encode(int.from_bytes(digest, "big"))[-16:]


def run_id_for(trigger_id: str, recipient: str) -> str:
    return "nrun_" + run_suffix(trigger_id, recipient)


def job_id_for(queue: str, id_: str) -> str:
    """The job of a run (nrun_…) or of a trigger's fan-out (ntr_…): the queue and the id's 26 characters."""
    return f"{queue}.{id_.partition('_')[2]}"


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        key = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not key.startswith("nrun_") or any(c not in _ALPHABET for c in key[5:]):
        raise TriggerInvalid("the cursor is not one a previous page answered", cursor=cursor)
    return key


def view(doc: Mapping[str, Any]) -> RunView:
    fields = {k: doc.get(k) for k in ("triggerId", "workflow", "recipient", "status", "steps", "reason")}
    fields |= {k: doc.get(k) for k in ("createdAt", "updatedAt", "finishedAt", "digestedInto")}
    for key in ("createdAt", "updatedAt", "finishedAt"):
        at = fields[key]
        if isinstance(at, datetime) and at.tzinfo is None:
            fields[key] = at.replace(tzinfo=UTC)
    for step in fields["steps"] or []:
        for key in ("startedAt", "finishedAt"):
            if isinstance(step.get(key), datetime) and step[key].tzinfo is None:
                step[key] = step[key].replace(tzinfo=UTC)
    return RunView.model_validate({"id": doc["_id"], **fields})


def new_run_document(
    run_id: str,
    *,
    trigger_id: str,
    workflow: str,
    recipient: str,
    inline: dict[str, Any] | None,
    data: dict[str, Any],
    actor: str | dict[str, Any] | None,
    tenant: str | None,
    steps: Iterable[tuple[str, str]],
    at: datetime,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": run_id,
        "triggerId": trigger_id,
        "workflow": workflow,
        "recipient": recipient,
        "data": data,
        "actor": actor,
        "tenant": tenant,
        "status": "queued",
        "steps": [StepOutcome(name=n, kind=k).model_dump(by_alias=True) for n, k in steps],
        "createdAt": at,
        "updatedAt": at,
        "finishedAt": None,
        "digestedInto": None,
        "reason": None,
    }
    if inline is not None:
        doc["recipientInline"] = inline
    return doc


class RunStore:
    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self.runs = database[NOTIFICATION_RUNS]

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> None:
        await ensure_capability_indexes(self.runs.database, [NOTIFICATION_RUNS], policy)

    async def create_many(self, docs: list[dict[str, Any]]) -> int:
        """Insert the runs that are not there yet (a retried batch inserts the rest); answers
        how many were new."""
        if not docs:
            return 0
        try:
            result = await self.runs.bulk_write([InsertOne(doc) for doc in docs], ordered=False)
            return int(result.inserted_count)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))

    async def create(self, doc: dict[str, Any]) -> bool:
        try:
            await self.runs.insert_one(doc)
            return True
        except DuplicateKeyError:
            return False

    async def document(self, run_id: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self.runs.find_one({"_id": run_id})
        return doc

    async def get(self, run_id: str) -> RunView | None:
        doc = await self.document(run_id)
        return view(doc) if doc is not None else None

    async def set_step(self, run_id: str, index: int, outcome: dict[str, Any], status: str | None = None) -> bool:
        """Record a step's outcome; False when the run had finished (cancelled meanwhile)."""
        changes: dict[str, Any] = {f"steps.{index}": outcome, "updatedAt": now()}
        if status is not None:
            changes["status"] = status
        result = await self.runs.update_one(
            {"_id": run_id, "status": {"$nin": list(FINISHED_RUN_STATUSES)}}, {"$set": changes}
        )
        return bool(result.matched_count)

    async def set_status(self, run_id: str, status: str) -> bool:
        """False when the run had finished (cancelled before it started)."""
        result = await self.runs.update_one(
            {"_id": run_id, "status": {"$nin": list(FINISHED_RUN_STATUSES)}},
            {"$set": {"status": status, "updatedAt": now()}},
        )
        return bool(result.matched_count)

    async def finish(
        self, run_id: str, status: str, *, reason: str | None = None, digested_into: str | None = None
    ) -> bool:
        """Move an unfinished run to a final status; False when it had finished already
        (cancelled meanwhile, or finished by an earlier attempt)."""
        at = now()
        changes: dict[str, Any] = {"status": status, "updatedAt": at, "finishedAt": at, "reason": reason}
        if digested_into is not None:
            changes["digestedInto"] = digested_into
        result = await self.runs.update_one(
            {"_id": run_id, "status": {"$nin": list(FINISHED_RUN_STATUSES)}}, {"$set": changes}
        )
        return bool(result.modified_count)

    async def page(self, filter: RunFilter, *, limit: int = 50, cursor: str | None = None) -> RunPage:
        """Newest first; pass the answer's `next_cursor` as `cursor` for the next page."""
        if not 1 <= limit <= MAX_PAGE:
            raise TriggerInvalid(f"limit must be between 1 and {MAX_PAGE}, not {limit}", limit=limit)
        query: dict[str, Any] = {}
        if cursor is not None:
            query["_id"] = {"$lt": decode_cursor(cursor)}
        if filter.workflow is not None:
            query["workflow"] = filter.workflow
        if filter.recipient is not None:
            query["recipient"] = filter.recipient
        if filter.trigger is not None:
            query["triggerId"] = filter.trigger
        if filter.status:
            query["status"] = {"$in": list(filter.status)}
        projection = {"data": 0, "actor": 0, "recipientInline": 0}
        docs = await self.runs.find(query, projection).sort("_id", DESCENDING).limit(limit + 1).to_list()
        items = [view(doc) for doc in docs[:limit]]
        return RunPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(docs) > limit else None)


__all__ = ["RunStore", "job_id_for", "new_run_document", "run_id_for", "view"]
