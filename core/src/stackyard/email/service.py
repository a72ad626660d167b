"""Accepting email: what `POST /v1/emails` does, and the other calls of /v1/emails.

`send`: compose (addresses, template, attachments) → idempotency key → suppression list →
delivery-log record (`queued`, or `scheduled` with a send-at) → a job on the `email` queue
that sends it. The answer comes at once, with the message id; a worker does the sending
(stackyard.email.sending). Nothing is lost on the way: the record is written before the job,
and a job that cannot be queued turns the record `failed` and the request into a 503 that
may be retried with the same idempotency key.

Idempotency keys live in Redis for the Stack's `email.idempotencyWindow` (24 h): the same key
with the same request answers the first message (`replayed`); with another request, a 409.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..clients import AnyRedis
from ..idempotency import IdempotencyKeys
from ..jobs import JobClient, QueueSettings
from ..jobs.contract import EnqueueRequest
from ..jobs.ids import new_job_id
from ..jobs.settings import EMAIL_QUEUE
from ..problems import Conflict, NotFound, ServiceUnavailable, UnprocessableContent
from ..resources.base import duration_seconds
from ..resources.email import EmailTemplateSpec
from .compose import TemplateNotFound, compose, initial_record, new_message_id, render, to_payload
from .contract import EmailAccepted, EmailRecord, PreviewRequest, PreviewResult, SendEmailRequest, TimelineEvent
from .log import DeliveryLog
from .sending import SEND_FUNCTION
from .suppressions import SuppressionList
from .templates import CompiledTemplate, compile_template

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from ..config import RuntimeConfig

log = logging.getLogger(__name__)

IDEMPOTENCY_PREFIX = "sy:email:idem:"


class RecipientSuppressed(UnprocessableContent):
    slug, title = "recipient-suppressed", "Recipient on the suppression list"


class TemplateCache:
    """The compiled EmailTemplates of the config in force, compiled once per config hash."""

    def __init__(self) -> None:
        self._hash: str | None = None
        self._templates: dict[str, CompiledTemplate] = {}

    def get(self, config_hash: str, specs: Mapping[str, EmailTemplateSpec]) -> dict[str, CompiledTemplate]:
        if config_hash != self._hash:
            compiled = {}
            for name, spec in specs.items():
                try:
                    compiled[name] = compile_template(spec.template_source())
                except Exception:  # the operator only admits templates that compile
                    log.exception("EmailTemplate %s does not compile; it is left out", name)
            self._templates, self._hash = compiled, config_hash
        return self._templates


class EmailService:
    def __init__(
        self,
        *,
        redis: AnyRedis,
        log: DeliveryLog,
        suppressions: SuppressionList,
        queue: QueueSettings,
        templates: Mapping[str, CompiledTemplate],
        retention: float,
        idempotency_window: float,
        scope: str = "",
    ) -> None:
        """`scope` (the Stack's namespace/name) keeps Stacks that share a Redis from sharing
        idempotency keys."""
        self.redis = redis
        self.scope = scope
        self.log = log
        self.suppressions = suppressions
        self.queue = queue
        self.templates = templates
        self.retention = retention
        self.keys = IdempotencyKeys(
            redis, prefix=IDEMPOTENCY_PREFIX, scope=scope, window=idempotency_window, what="message"
        )

    # -- sending -------------------------------------------------------------------------

    async def send(self, request: SendEmailRequest, idempotency_key: str | None = None) -> tuple[EmailAccepted, bool]:
        """Accept a message; answers it and whether it is a replay of an idempotency key's first."""
        key = request.idempotency_key or idempotency_key
        if key and request.idempotency_key is None:
            request = request.model_copy(update={"idempotency_key": key})
        now = datetime.now(UTC)
        message_id = new_message_id()
        composed = compose(request, message_id, self.templates, now=now)  # refuse bad input before the key
        if key:
            first = await self.keys.claim(key, request, {"id": message_id})
            if first is not None:
                return await self._replay(first["id"]), True
        try:
            return await self._accept(request, composed, now), False
        except (ServiceUnavailable, OSError, ConnectionError, TimeoutError):
            if key:
                await self.keys.release(key, message_id)
            raise

    async def _accept(self, request: SendEmailRequest, composed: Any, now: datetime) -> EmailAccepted:
        message = composed.message
        refused = await self.suppressions.check(m.address for m in composed.recipients)
        if refused:
            detail = "; ".join(f"{address} ({s.reason})" for address, s in refused.items())
            record = initial_record(request, composed, job_id=None, now=now, status="suppressed", detail=detail)
            await self.log.create(record, retention=self.retention)
            raise _suppressed(message.id, refused.items())
        job_id = new_job_id(EMAIL_QUEUE)
        status = "scheduled" if composed.send_at else "queued"
        record = initial_record(request, composed, job_id=job_id, now=now, status=status, detail=None)
        await self.log.create(record, retention=self.retention)
        payload = to_payload(message)
        if composed.send_at is not None:
            payload["waited"] = True
        enqueue = EnqueueRequest(
            queue=EMAIL_QUEUE,
            function=SEND_FUNCTION,
            payload=payload,
            run_at=composed.send_at,
            idempotency_key=message.id,
        )
        try:
            await JobClient(self.redis).enqueue(self.queue, enqueue, job_id=job_id, builtin=True)
        except Exception as exc:
            why = f"it could not be queued: {type(exc).__name__}"
            event = TimelineEvent(at=datetime.now(UTC), type="failed", detail=why)
            try:
                await self.log.transition(message.id, "failed", [event], last_error=why)
            except Exception:
                log.exception("email %s: the log could not say that queuing failed", message.id)
            raise ServiceUnavailable(f"the email was not accepted: {why}; try again", id=message.id) from None
        return EmailAccepted(id=message.id, status=status, send_at=composed.send_at)

    async def _replay(self, message_id: str) -> EmailAccepted:
        record = await self.log.get(message_id)
        if record is None:
            raise Conflict(
                "a request with this idempotency key is being processed; try again in a moment", id=message_id
            )
        if record.status == "suppressed":
            why = record.timeline[0].detail if record.timeline else None
            raise RecipientSuppressed(f"not sent: on the suppression list: {why}", id=record.id)
        return EmailAccepted(id=record.id, status=record.status, send_at=record.send_at)

    # -- the other calls -------------------------------------------------------------------

    async def get(self, message_id: str) -> EmailRecord:
        record = await self.log.get(message_id)
        if record is None:
            raise NotFound(f"no email {message_id!r} in the delivery log", id=message_id)
        return record

    async def cancel(self, message_id: str) -> EmailRecord:
        """Cancel a scheduled message before its time."""
        record = await self.get(message_id)
        if record.status != "scheduled" or record.job_id is None:
            raise Conflict(f"only a scheduled email can be cancelled; this one is {record.status}", id=message_id)
        job = await JobClient(self.redis).cancel(record.job_id, self.queue)
        if job.state != "cancelled":
            raise Conflict(f"too late to cancel: its job is {job.state}", id=message_id)
        event = TimelineEvent(at=datetime.now(UTC), type="cancelled")
        await self.log.transition(message_id, "cancelled", [event])
        return await self.get(message_id)

    async def record_provider_events(self, provider: str, events: Iterable[Any]) -> int:
        """A provider's webhook events: each updates its message in the log; a hard bounce or a
        complaint suppresses its recipient. Answers how many events matched a message."""
        matched = 0
        for event in events:
            email_id = await self.log.apply_provider_event(provider, event)
            matched += email_id is not None
            reason = (
                "complaint"
                if event.type == "complained"
                else "bounce"
                if event.type == "bounced" and event.permanent
                else None
            )
            if reason is not None and event.recipient:
                await self.suppressions.add(
                    event.recipient, reason, detail=event.detail, provider=provider, email_id=email_id or event.email_id
                )
        return matched

    def preview(self, name: str, request: PreviewRequest) -> PreviewResult:
        compiled = self.templates.get(name)
        if compiled is None:
            raise NotFound(f"no EmailTemplate {name!r} is in force in this Stack", template=name)
        rendered = render(name, compiled, {**_declared_samples(compiled), **request.variables}, request.locale)
        return PreviewResult(
            template=name, locale=rendered.locale, subject=rendered.subject, html=rendered.html, text=rendered.text
        )


def email_service_for(
    redis: AnyRedis, database: AsyncDatabase[Any], config: RuntimeConfig, templates: Mapping[str, CompiledTemplate]
) -> EmailService:
    """The EmailService of a Stack's config (the api's /v1/emails and the worker's
    notification workflows): its delivery log and suppression list in `database`, the email
    queue, retention and idempotency window of the config. Ensuring the indexes is the caller's."""
    from ..jobs import queues_from_config

    return EmailService(
        redis=redis,
        log=DeliveryLog(database),
        suppressions=SuppressionList(database),
        queue=queues_from_config(config.job_queues)[EMAIL_QUEUE],
        templates=templates,
        retention=duration_seconds(config.spec.email.log_retention),
        idempotency_window=duration_seconds(config.spec.email.idempotency_window),
        scope=f"{config.namespace}/{config.stack}",
    )


def _declared_samples(compiled: CompiledTemplate) -> dict[str, Any]:
    """A preview without values shows each required variable as its own name in braces."""
    return {
        name: f"{{{name}}}"
        for name, spec in compiled.source.variables.items()
        if spec.required and spec.default is None
    }


def _suppressed(message_id: str, refused: Iterable[tuple[str, Any]]) -> RecipientSuppressed:
    items = [{"address": address, "reason": s.reason} for address, s in refused]
    listed = "; ".join(f"{i['address']} ({i['reason']})" for i in items)
    return RecipientSuppressed(
        f"not sent: on the suppression list: {listed}. Remove an address with DELETE /v1/suppressions/{{address}}",
        id=message_id,
        suppressed=items,
    )


__all__ = ["EmailService", "RecipientSuppressed", "TemplateCache", "TemplateNotFound", "email_service_for"]
