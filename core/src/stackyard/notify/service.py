"""What /v1/notify does: trigger workflows, follow and cancel their runs, read and change
users' preferences.

`trigger`: the workflow by its trigger key (WorkflowNotFound) → the idempotency key (in Redis
for the Stack's email idempotency window, 24 h: the same key with the same request answers
the first trigger, with another request a 409) → the runs: one recipient gets its run
written and its job enqueued at once; more are written to Redis and made by a fan-out job
(`stackyard.notify.fanout`), so a trigger of 10,000 recipients answers in milliseconds.
Run ids, job ids and job idempotency keys derive from the trigger id and the recipient, so
nothing runs twice whatever is retried.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from ..clients import AnyRedis
from ..config import RuntimeConfig
from ..db.indexes import IndexPolicy
from ..idempotency import IdempotencyKeys
from ..jobs import JobClient, queues_from_config
from ..jobs.contract import EnqueueRequest
from ..jobs.ids import sortable_id
from ..jobs.settings import NOTIFY_QUEUE
from ..problems import Conflict, ServiceUnavailable
from ..resources.base import duration_seconds
from .contract import (
    FINISHED_RUN_STATUSES,
    Preferences,
    PreferencesUpdate,
    Recipient,
    RunFilter,
    RunPage,
    RunView,
    TriggerAccepted,
    TriggerRequest,
)
from .preferences import PreferenceStore
from .problems import RunNotFound, WorkflowNotFound
from .recipients import normalise
from .runs import RunStore, job_id_for, new_run_document, now, run_id_for
from .workflow import FANOUT_FUNCTION, TRIGGER_TTL, enqueue_run, find_workflow, step_names, trigger_key_of

log = logging.getLogger(__name__)

IDEMPOTENCY_PREFIX = "sy:notify:idem:"


def new_trigger_id() -> str:
    return "ntr_" + sortable_id()


class NotifyService:
    def __init__(self, redis: AnyRedis, database: AsyncDatabase[Any], config: RuntimeConfig, scope: str) -> None:
        self.redis = redis
        self.database = database
        self.config = config
        self.scope = scope
        self.runs = RunStore(database)
        self.preferences = PreferenceStore(database)
        window = duration_seconds(config.spec.email.idempotency_window)
        self.keys = IdempotencyKeys(redis, prefix=IDEMPOTENCY_PREFIX, scope=scope, window=window, what="trigger")

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> None:
        """The indexes of notification_runs and notification_preferences (once per database)."""
        await self.runs.ensure_indexes(policy)

    # -- trigger ------------------------------------------------------------------------

    async def trigger(
        self, request: TriggerRequest, idempotency_key: str | None = None
    ) -> tuple[TriggerAccepted, bool]:
        """Start a run per recipient; answers the trigger and whether it replays a key's first."""
        found = find_workflow(self.config, request.workflow)
        if found is None:
            known = sorted(spec.trigger_key(name) for name, spec in self.config.notification_workflows.items())
            raise WorkflowNotFound(
                f"no NotificationWorkflow with trigger key {request.workflow!r} in this Stack", known=known
            )
        _, spec = found
        key = request.idempotency_key or idempotency_key
        if key and request.idempotency_key is None:
            request = request.model_copy(update={"idempotency_key": key})
        recipients = normalise(request.recipients)
        trigger_id = new_trigger_id()
        accepted = TriggerAccepted(id=trigger_id, workflow=request.workflow, recipients=len(recipients))
        if key:
            first = await self.keys.claim(key, request, accepted.model_dump(by_alias=True))
            if first is not None:
                return TriggerAccepted.model_validate(first), True
        try:
            await self._start(trigger_id, request, recipients, step_names(spec))
        except Exception:
            if key:
                await self.keys.release(key, trigger_id)
            raise
        return accepted, False

    async def _start(
        self,
        trigger_id: str,
        request: TriggerRequest,
        recipients: list[tuple[str, dict[str, Any] | None]],
        steps: list[tuple[str, str]],
    ) -> None:
        actor = request.actor.model_dump(exclude_none=True) if isinstance(request.actor, Recipient) else request.actor
        try:
            if len(recipients) == 1:
                recipient, inline = recipients[0]
                run_id = run_id_for(trigger_id, recipient)
                doc = new_run_document(
                    run_id,
                    trigger_id=trigger_id,
                    workflow=request.workflow,
                    recipient=recipient,
                    inline=inline,
                    data=request.data,
                    actor=actor,
                    tenant=request.tenant,
                    steps=steps,
                    at=now(),
                )
                await self.runs.create(doc)
                try:
                    await enqueue_run(self.redis, self.config, run_id)
                except Exception:  # the trigger is refused: its run must not wait for ever
                    await self.runs.finish(run_id, "failed", reason="its job could not be queued; trigger again")
                    raise
                return
            stored = {
                "workflow": request.workflow,
                "recipients": [[r, inline] for r, inline in recipients],
                "data": request.data,
                "actor": actor,
                "tenant": request.tenant,
            }
            await self.redis.set(trigger_key_of(self.scope, trigger_id), orjson.dumps(stored), ex=TRIGGER_TTL)
            queue = queues_from_config(self.config.job_queues)[NOTIFY_QUEUE]
            fan = EnqueueRequest(
                queue=NOTIFY_QUEUE,
                function=FANOUT_FUNCTION,
                payload={"triggerId": trigger_id},
                idempotency_key=trigger_id,
            )
            await JobClient(self.redis).enqueue(queue, fan, job_id=job_id_for(NOTIFY_QUEUE, trigger_id), builtin=True)
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise ServiceUnavailable(f"the trigger was not accepted: {type(exc).__name__}; try again") from None

    # -- runs ---------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunView:
        found = await self.runs.get(run_id)
        if found is None:
            raise RunNotFound(f"no notification run {run_id!r}", id=run_id)
        return found

    async def list_runs(self, filter: RunFilter, limit: int = 50, cursor: str | None = None) -> RunPage:
        return await self.runs.page(filter, limit=limit, cursor=cursor)

    async def cancel_run(self, run_id: str) -> RunView:
        """Cancel a run that has not finished: its next step does not run (a step already
        sending finishes)."""
        run = await self.get_run(run_id)
        if run.status in FINISHED_RUN_STATUSES:
            raise Conflict(f"the run has finished: it is {run.status}", id=run_id, status=run.status)
        await self.runs.finish(run_id, "cancelled", reason="cancelled through the api")
        queue = queues_from_config(self.config.job_queues)[NOTIFY_QUEUE]
        try:
            await JobClient(self.redis).cancel(job_id_for(NOTIFY_QUEUE, run_id), queue)
        except Exception as exc:  # active, or finished: the run checks its status between steps
            log.info("run %s: its job was not cancelled (%s); it stops at its next step", run_id, type(exc).__name__)
        return await self.get_run(run_id)

    # -- preferences --------------------------------------------------------------------

    async def get_preferences(self, user_id: str) -> Preferences:
        return await self.preferences.get(user_id)

    async def set_preferences(self, user_id: str, update: PreferencesUpdate) -> Preferences:
        return await self.preferences.update(user_id, update)


__all__ = ["NotifyService", "new_trigger_id"]
