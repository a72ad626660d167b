"""The job functions that run notification workflows.

`stackyard.notify.run` `{"runId": ...}` runs one workflow for one recipient: the steps in
order, each inside a JobContext step, so that an attempt that died (a killed worker, a
timeout) replays the steps already done from their stored results and never sends one
twice. Channel steps first check the recipient's preferences and the step's conditions
(decided once, and kept), then send: email through EmailService with the idempotency key
`notify:<run>:<step>`, in-app through FeedStore.deliver with the message id
`msg_<run>.<step>`, web push through PushSender, webhook through PlatformEvents.send_to
with that key. A delay is a durable sleep; a digest step ends the run `digested` (its data
joins an open digest) or makes it wait for the window's end and take the items; a throttle
step ends it `throttled` over the limit. Each step's outcome is written to the run as it
ends; at the end `notification.completed` or `notification.failed` is published.

A step that cannot succeed (the recipient has no email address, the address is suppressed,
a template names a missing variable) fails on its own and the run goes on; a step that fails
on a server (MongoDB, Redis, a provider) fails the attempt, which the notify queue retries;
after the last attempt the run fails with that error.

`stackyard.notify.fanout` `{"triggerId": ...}` makes the runs of a trigger with several
recipients (read from Redis, where the trigger put them): batches of FANOUT_BATCH, each a
JobContext step that inserts the runs (those not there yet) and enqueues their jobs (job id
and idempotency key derived from the trigger and the recipient), so a retry makes no run
twice.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from ..clients import AnyRedis
from ..jobs import JobClient, JobContext, NonRetryable, queues_from_config
from ..jobs.contract import EnqueueRequest
from ..jobs.settings import NOTIFY_QUEUE
from ..problems import Problem, ServiceUnavailable
from ..resources.base import duration_seconds
from ..resources.notify import NotificationWorkflowSpec, WorkflowStep
from .conditions import conditions_hold
from .contract import FINISHED_RUN_STATUSES, Preferences, StepOutcome
from .digest import Digests, Throttles
from .preferences import PreferenceStore, channel_allowed
from .recipients import resolve, resolve_actor
from .render import RenderError, render_text
from .runs import RunStore, job_id_for, new_run_document, now, run_id_for

if TYPE_CHECKING:
    from ..config import RuntimeConfig
    from ..email.service import EmailService

log = logging.getLogger(__name__)

RUN_FUNCTION = "stackyard.notify.run"
FANOUT_FUNCTION = "stackyard.notify.fanout"
FANOUT_BATCH = 500
TRIGGER_PREFIX = "sy:notify:"
TRIGGER_TTL = 7 * 86400
"""Seconds the recipients of a fanned-out trigger stay in Redis for its fan-out job."""


@dataclass
class NotifyEnvironment:
    """What the job functions work with, from the config in force (the worker makes one per job)."""

    redis: AnyRedis
    database: AsyncDatabase[Any]
    config: RuntimeConfig
    credentials: Mapping[str, str]
    email: Callable[[], Awaitable[EmailService]]
    http: httpx.AsyncClient
    config_getter: Callable[[], RuntimeConfig]

    @property
    def scope(self) -> str:
        return f"{self.config.namespace}/{self.config.stack}"


def find_workflow(config: RuntimeConfig, key: str) -> tuple[str, NotificationWorkflowSpec] | None:
    """The NotificationWorkflow (name, spec) whose trigger key is `key`."""
    for name, spec in sorted(config.notification_workflows.items()):
        if spec.trigger_key(name) == key:
            return name, spec
    return None


def trigger_key_of(scope: str, trigger_id: str) -> str:
    return f"{TRIGGER_PREFIX}{scope}:trigger:{trigger_id}"


def step_names(spec: NotificationWorkflowSpec) -> list[tuple[str, str]]:
    return [(step.name, step.kind) for step in spec.steps]


async def enqueue_run(redis: AnyRedis, config: RuntimeConfig, run_id: str) -> None:
    queue = queues_from_config(config.job_queues)[NOTIFY_QUEUE]
    request = EnqueueRequest(
        queue=NOTIFY_QUEUE, function=RUN_FUNCTION, payload={"runId": run_id}, idempotency_key=run_id
    )
    await JobClient(redis).enqueue(queue, request, job_id=job_id_for(NOTIFY_QUEUE, run_id), builtin=True)


# -- fan-out ------------------------------------------------------------------------------


async def fanout(ctx: JobContext, payload: Any, env: NotifyEnvironment) -> dict[str, Any]:
    trigger_id = payload.get("triggerId") if isinstance(payload, dict) else None
    if not isinstance(trigger_id, str):
        raise NonRetryable('the payload must be {"triggerId": "ntr_…"}')
    raw = await env.redis.get(trigger_key_of(env.scope, trigger_id))
    if raw is None:
        raise NonRetryable(f"trigger {trigger_id} is no longer in Redis (kept {TRIGGER_TTL // 86400} days)")
    trigger = orjson.loads(raw)
    found = find_workflow(env.config, trigger["workflow"])
    steps = step_names(found[1]) if found else []
    recipients: list[list[Any]] = trigger["recipients"]
    runs = RunStore(env.database)

    async def batch(start: int) -> int:
        at = now()
        docs = [
            new_run_document(
                run_id_for(trigger_id, recipient),
                trigger_id=trigger_id,
                workflow=trigger["workflow"],
                recipient=recipient,
                inline=inline,
                data=trigger["data"],
                actor=trigger["actor"],
                tenant=trigger["tenant"],
                steps=steps,
                at=at,
            )
            for recipient, inline in recipients[start : start + FANOUT_BATCH]
        ]
        await runs.create_many(docs)
        for offset in range(0, len(docs), 50):
            await asyncio.gather(*(enqueue_run(env.redis, env.config, d["_id"]) for d in docs[offset : offset + 50]))
        return len(docs)

    made = 0
    for index, start in enumerate(range(0, len(recipients), FANOUT_BATCH)):
        count: int = await ctx.step(f"batch-{index}", batch, start)
        made += count
    return {"triggerId": trigger_id, "runs": made}


# -- a run --------------------------------------------------------------------------------


def _iso() -> str:
    return datetime.now(UTC).isoformat()


def _outcome(step: WorkflowStep, status: str, **fields: Any) -> dict[str, Any]:
    """A StepOutcome as JSON (a JobContext step result) ..."""
    return {"name": step.name, "kind": step.kind, "status": status, **fields}


def _stored(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """... and as the run document keeps it (BSON dates)."""
    return StepOutcome.model_validate(outcome).model_dump(by_alias=True)


_TAG = re.compile(r"[^A-Za-z0-9_-]")


class StepFailed(Exception):
    """A step that cannot succeed however often it is tried: the step fails, the run goes on."""


class RunFinished(Exception):
    """The run ended before its last step (digested, throttled, cancelled)."""


class WorkflowRun:
    def __init__(self, ctx: JobContext, env: NotifyEnvironment, doc: dict[str, Any], spec: NotificationWorkflowSpec):
        self.ctx, self.env, self.doc, self.spec = ctx, env, doc, spec
        self.run_id: str = doc["_id"]
        self.key: str = doc["workflow"]
        self.runs = RunStore(env.database)
        self.variables: dict[str, Any] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.current: int | None = None
        self.unfinished = True
        """Whether the run record was unfinished at its last write (False: cancelled meanwhile)."""
        self._preferences: Preferences | None = None

    async def execute(self) -> dict[str, Any]:
        recipient: dict[str, Any] | None = await self.ctx.step(
            "recipient", resolve, self.env.database, self.doc["recipient"], self.doc.get("recipientInline")
        )
        if recipient is None:
            return await self.finish("failed", f"no user {self.doc['recipient']!r} in the Stack")
        actor: dict[str, Any] | None = await self.ctx.step(
            "actor", resolve_actor, self.env.database, self.doc.get("actor")
        )
        self.variables = {
            "data": self.doc.get("data") or {},
            "recipient": recipient,
            "actor": actor,
            "tenant": self.doc.get("tenant"),
            "workflow": self.key,
        }
        self.unfinished = await self.runs.set_status(self.run_id, "running")
        try:
            for index, step in enumerate(self.spec.steps):
                self.current = index
                if not self.unfinished:
                    raise RunFinished(await self._final_status())
                outcome = await self.run_step(index, step)
                self.outcomes[step.name] = outcome
                self.unfinished = await self.runs.set_step(self.run_id, index, _stored(outcome), status="running")
        except RunFinished as finished:
            return {"runId": self.run_id, "status": str(finished)}
        self.current = None
        failed = [name for name, o in self.outcomes.items() if o["status"] == "failed"]
        if failed:
            return await self.finish("failed", f"step {failed[0]} failed: {self.outcomes[failed[0]].get('reason')}")
        return await self.finish("completed")

    async def _final_status(self) -> str:
        """The status of a run found finished (cancelled meanwhile, or by an earlier attempt)."""
        doc = await self.runs.runs.find_one({"_id": self.run_id}, {"status": 1})
        return str(doc.get("status")) if doc is not None else "cancelled"

    async def finish(self, status: str, reason: str | None = None, digested_into: str | None = None) -> dict[str, Any]:
        await self.runs.finish(self.run_id, status, reason=reason, digested_into=digested_into)
        if status in ("completed", "failed"):
            deliveries: list[str] = await self.ctx.step("event", self._publish, status, reason)
            log.debug("run %s: %s published to %d webhooks", self.run_id, status, len(deliveries))
        return {"runId": self.run_id, "status": status} | ({"reason": reason} if reason else {})

    async def _publish(self, status: str, reason: str | None) -> list[str]:
        try:
            from .events import PlatformEvents
        except ImportError:  # the webhooks part is not there
            return []
        data = {
            "runId": self.run_id,
            "triggerId": self.doc["triggerId"],
            "workflow": self.key,
            "recipient": self.doc["recipient"],
            "tenant": self.doc.get("tenant"),
            "status": status,
            "reason": reason,
            "steps": [{"name": name, "status": o["status"]} for name, o in self.outcomes.items()],
        }
        events = PlatformEvents.fixed(self.env.redis, self.env.database, self.env.config_getter)
        return await events.publish(f"notification.{status}", data, idempotency_key=f"{self.run_id}:{status}")

    # -- steps ------------------------------------------------------------------------------

    async def run_step(self, index: int, step: WorkflowStep) -> dict[str, Any]:
        if step.delay is not None:
            return await self._delay(index, step, duration_seconds(step.delay.duration))
        if step.digest is not None:
            return await self._digest(index, step)
        if step.throttle is not None:
            return await self._throttle(step)
        decision: dict[str, Any] = await self.ctx.step(f"{step.name}:check", self._check, step)
        if not decision["run"]:
            return _outcome(
                step, "skipped", reason=decision["reason"], startedAt=decision["at"], finishedAt=decision["at"]
            )
        outcome: dict[str, Any] = await self.ctx.step(step.name, self._send, step)
        return outcome

    async def _wait(self, index: int, step: WorkflowStep, name: str, until: float, detail: dict[str, Any]) -> None:
        if until > time.time():
            started = datetime.fromtimestamp(until, UTC).isoformat()
            waiting = _outcome(step, "waiting", detail=detail | {"until": started})
            await self.runs.set_step(self.run_id, index, _stored(waiting), status="waiting")
        await self.ctx.sleep_until(name, until)

    async def _delay(self, index: int, step: WorkflowStep, seconds: float) -> dict[str, Any]:
        started = await self.ctx.step(f"{step.name}:start", time.time)
        await self._wait(index, step, step.name, started + seconds, {"seconds": seconds})
        return _outcome(
            step,
            "done",
            startedAt=datetime.fromtimestamp(started, UTC).isoformat(),
            finishedAt=datetime.fromtimestamp(started + seconds, UTC).isoformat(),
            detail={"seconds": seconds},
        )

    def _render_key(self, source: str | None) -> str | None:
        if source is None:
            return None
        try:
            return render_text(source, self.variables)
        except RenderError as exc:
            raise NonRetryable(f"the key does not render: {exc}") from None

    async def _digest(self, index: int, step: WorkflowStep) -> dict[str, Any]:
        assert step.digest is not None
        digests = Digests(self.env.redis, self.env.scope)
        window = duration_seconds(step.digest.window)
        key = self._render_key(step.digest.key)
        recipient = self.doc["recipient"]
        started = _iso()

        async def join() -> dict[str, Any]:
            joined = await digests.join(
                workflow=self.key,
                recipient=recipient,
                key=key,
                run_id=self.run_id,
                data=self.variables["data"],
                window=window,
                max_items=step.digest.max_items,  # type: ignore[union-attr]
            )
            return {"owner": joined.owner, "until": joined.until, "owns": joined.owns, "at": started}

        joined: dict[str, Any] = await self.ctx.step(f"{step.name}:join", join)
        if not joined["owns"]:
            outcome = _outcome(
                step, "done", startedAt=joined["at"], finishedAt=joined["at"], detail={"digestedInto": joined["owner"]}
            )
            await self.runs.set_step(self.run_id, index, _stored(outcome))
            await self.finish("digested", digested_into=joined["owner"])
            raise RunFinished("digested")
        await self._wait(index, step, f"{step.name}:window", joined["until"], {"window": window})
        taken: dict[str, Any] = await self.ctx.step(
            f"{step.name}:take", digests.take, workflow=self.key, recipient=recipient, key=key, run_id=self.run_id
        )
        if not taken["total"]:  # the digest outlived its grace before the owner came back
            taken = {"total": 1, "items": [self.variables["data"]]}
        self.variables["digest"] = taken
        return _outcome(
            step,
            "done",
            startedAt=joined["at"],
            finishedAt=datetime.fromtimestamp(max(joined["until"], 0), UTC).isoformat(),
            detail={"total": taken["total"], "items": len(taken["items"])},
        )

    async def _throttle(self, step: WorkflowStep) -> dict[str, Any]:
        assert step.throttle is not None
        throttles = Throttles(self.env.redis, self.env.scope)
        limit, window = step.throttle.limit, duration_seconds(step.throttle.window)
        key = self._render_key(step.throttle.key)
        at = _iso()
        place: int = await self.ctx.step(
            step.name,
            throttles.place,
            workflow=self.key,
            recipient=self.doc["recipient"],
            key=key,
            run_id=self.run_id,
            window=window,
        )
        detail = {"place": place, "limit": limit}
        if place > limit:
            outcome = _outcome(step, "done", startedAt=at, finishedAt=at, detail=detail, reason="over the limit")
            await self.runs.set_step(self.run_id, self.current or 0, _stored(outcome))
            await self.finish("throttled", f"{place} runs in the window of step {step.name}; the limit is {limit}")
            raise RunFinished("throttled")
        return _outcome(step, "done", startedAt=at, finishedAt=at, detail=detail)

    async def _check(self, step: WorkflowStep) -> dict[str, Any]:
        """Whether a channel step runs: the recipient's preferences, then its conditions."""
        at = _iso()
        channel = step.channel
        assert channel is not None
        if not self.spec.preferences.required:
            if self._preferences is None:  # read once per attempt, not once per channel step
                self._preferences = await PreferenceStore(self.env.database).get(self.doc["recipient"])
            if not channel_allowed(self.spec, self.key, self.spec.category, self._preferences, channel):
                return {"run": False, "reason": f"the recipient's preferences turn {channel} off", "at": at}
        messages: dict[str, Mapping[str, Any] | None] = {}
        for rule in step.conditions.rules if step.conditions else []:
            if rule.step is not None and rule.step not in messages:
                messages[rule.step] = await self._message_state(rule.step)
        holds, why = conditions_hold(step.conditions, self.variables, messages)
        return {"run": holds, "reason": why, "at": at}

    async def _message_state(self, step_name: str) -> Mapping[str, Any] | None:
        outcome = self.outcomes.get(step_name)
        if outcome is None or outcome["status"] != "done":
            return None
        from .feed import FeedStore

        message = await FeedStore(self.env.database, self.env.redis, self.env.scope).get(self._message_id(step_name))
        if message is None:
            return None
        return {"seenAt": message.seen_at, "readAt": message.read_at, "archivedAt": message.archived_at}

    def _message_id(self, step_name: str) -> str:
        return f"msg_{self.run_id}.{step_name}"

    def _render(self, field: str, source: str | None) -> str | None:
        if source is None:
            return None
        try:
            return render_text(source, self.variables)
        except RenderError as exc:
            raise StepFailed(f"{field} does not render: {exc}") from None

    async def _send(self, step: WorkflowStep) -> dict[str, Any]:
        started = _iso()
        send = {"email": self._email, "in_app": self._in_app, "push": self._push, "webhook": self._webhook}[step.kind]
        try:
            status, detail, reason = await send(step)
        except StepFailed as exc:
            status, detail, reason = "failed", {}, str(exc)
        except Problem as exc:
            if isinstance(exc, ServiceUnavailable):
                raise  # a server away: the attempt fails and is retried
            status, detail, reason = "failed", {}, f"{exc.title}: {exc.detail}"
        return _outcome(step, status, reason=reason, detail=detail, startedAt=started, finishedAt=_iso())

    async def _email(self, step: WorkflowStep) -> tuple[str, dict[str, Any], str | None]:
        from ..email.contract import SendEmailRequest, TemplateRef

        assert step.email is not None
        recipient = self.variables["recipient"]
        if not recipient.get("email"):
            return "skipped", {}, "the recipient has no email address"
        sender = step.email.from_ or self.env.config.spec.auth.email_from
        if not sender:
            raise StepFailed("no sender: set `from` on the step or the Stack's spec.auth.emailFrom")
        if step.email.variables:
            variables: dict[str, Any] = {
                name: self._render(f"email.variables.{name}", source) for name, source in step.email.variables.items()
            }
        else:  # the template's declared variables out of the data, then recipient, actor, ..., digest
            compiled = (await self.env.email()).templates.get(step.email.template)
            declared = compiled.source.variables if compiled is not None else {}
            offered = {k: v for k, v in self.variables.items() if k != "data"} | dict(self.variables["data"])
            variables = {name: value for name, value in offered.items() if name in declared}
        try:
            request = SendEmailRequest.model_validate(
                {
                    "from": sender,
                    "to": [recipient["email"]],
                    "template": TemplateRef(
                        name=step.email.template, variables=variables, locale=recipient.get("locale")
                    ),
                    "tags": {"notify": _TAG.sub("_", self.key)[:256]},
                    "metadata": {"notifyRun": self.run_id, "workflow": self.key, "step": step.name},
                }
            )
        except ValidationError as exc:
            raise StepFailed(f"the email is not valid: {exc.errors()[0]['msg']}") from None
        service = await self.env.email()
        try:
            accepted, _ = await service.send(request, idempotency_key=f"notify:{self.run_id}:{step.name}")
        except (LookupError, ValueError) as exc:  # a template missing or not rendering
            raise StepFailed(f"{type(exc).__name__}: {exc}") from None
        return "done", {"emailId": accepted.id}, None

    async def _in_app(self, step: WorkflowStep) -> tuple[str, dict[str, Any], str | None]:
        from .feed import FeedStore
        from .feed_contract import FeedMessageIn

        assert step.in_app is not None
        message = FeedMessageIn(
            id=self._message_id(step.name),
            recipient=self.doc["recipient"],
            workflow=self.key,
            run_id=self.run_id,
            step=step.name,
            tenant=self.doc.get("tenant"),
            title=self._render("inApp.title", step.in_app.title) or "",
            body=self._render("inApp.body", step.in_app.body) or "",
            action_url=self._render("inApp.actionUrl", step.in_app.action_url),
            data=step.in_app.data or {},
            actor=self.variables["actor"],
        )
        stored = await FeedStore(self.env.database, self.env.redis, self.env.scope).deliver(message)
        return "done", {"messageId": stored.id}, None

    async def _push(self, step: WorkflowStep) -> tuple[str, dict[str, Any], str | None]:
        from .push import PushSender
        from .push_contract import PushMessage

        assert step.push is not None
        message = PushMessage(
            title=self._render("push.title", step.push.title) or "",
            body=self._render("push.body", step.push.body) or "",
            url=self._render("push.url", step.push.url),
            icon=step.push.icon,
            data={"runId": self.run_id, "workflow": self.key},
        )
        from .problems import PushNotConfigured

        sender = PushSender(self.env.database, self.env.credentials, self.env.http)
        try:
            sent = await sender.send_to_user(
                self.doc["recipient"],
                message,
                int(duration_seconds(step.push.ttl)),
                step.push.urgency,
                topic=f"{self.run_id}.{step.name}",
            )
        except PushNotConfigured as exc:  # no VAPID keys: the step fails, the later steps still run
            raise StepFailed(exc.detail) from None
        detail = {"sent": sent.sent, "removed": sent.removed, "failed": sent.failed}
        if sent.retryable and not sent.sent and self.ctx.attempt < self.ctx.max_attempts:
            raise ConnectionError(f"push: {sent.retryable} subscriptions may take it later")
        if sent.sent:
            return "done", detail, None
        if sent.failed:
            return "failed", detail, "no push service took the message"
        return "skipped", detail, "the recipient has no push subscription"

    async def _webhook(self, step: WorkflowStep) -> tuple[str, dict[str, Any], str | None]:
        from .events import PlatformEvents

        assert step.webhook is not None
        data = {
            "workflow": self.key,
            "runId": self.run_id,
            "triggerId": self.doc["triggerId"],
            "step": step.name,
            "recipient": self.variables["recipient"],
            "actor": self.variables["actor"],
            "tenant": self.doc.get("tenant"),
            "data": self.variables["data"],
        }
        if "digest" in self.variables:
            data["digest"] = self.variables["digest"]
        events = PlatformEvents.fixed(self.env.redis, self.env.database, self.env.config_getter)
        delivery = await events.send_to(
            step.webhook.webhook, f"notification.{self.key}", data, idempotency_key=f"notify:{self.run_id}:{step.name}"
        )
        return "done", {"deliveryIds": [delivery]}, None


async def run(ctx: JobContext, payload: Any, env: NotifyEnvironment) -> dict[str, Any]:
    run_id = payload.get("runId") if isinstance(payload, dict) else None
    if not isinstance(run_id, str):
        raise NonRetryable('the payload must be {"runId": "nrun_…"}')
    runs = RunStore(env.database)
    doc = await runs.document(run_id)
    if doc is None:
        raise NonRetryable(f"no notification run {run_id}")
    if doc["status"] in FINISHED_RUN_STATUSES:
        return {"runId": run_id, "status": doc["status"]}
    found = find_workflow(env.config, doc["workflow"])
    if found is None:
        await runs.finish(run_id, "failed", reason=f"no NotificationWorkflow with key {doc['workflow']!r} in the Stack")
        return {"runId": run_id, "status": "failed"}
    workflow = WorkflowRun(ctx, env, doc, found[1])
    try:
        return await workflow.execute()
    except Exception as exc:
        if ctx.attempt < ctx.max_attempts and not isinstance(exc, NonRetryable):
            raise
        why = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("notification run %s failed for good: %s", run_id, why)
        if workflow.current is not None:
            step = found[1].steps[workflow.current]
            failed = _outcome(step, "failed", reason=why, finishedAt=_iso())
            await runs.set_step(run_id, workflow.current, _stored(failed))
        return await workflow.finish("failed", why)


__all__ = [
    "FANOUT_BATCH",
    "FANOUT_FUNCTION",
    "RUN_FUNCTION",
    "NotifyEnvironment",
    "enqueue_run",
    "fanout",
    "find_workflow",
    "run",
    "step_names",
    "trigger_key_of",
]
