"""The email job: one message sent through the providers, its outcome in the delivery log.

`POST /v1/emails` puts the rendered message on the `email` queue as a job of the built-in
function `stackyard.email.send`; every worker runs it. An attempt:

1. re-checks the suppression list when the message waited (a send-at, a retry);
2. calls `deliver` with a ledger kept in the job's steps, and marks the message `sending`
   in the log when the providers take longer than half a second (a fast send writes the
   log once, with its outcome);
3. writes the attempts to the message's timeline and its status: `sent`; `failed` when a
   provider refused the message itself (no retry); else `queued` again with a retry at the
   backoff (or the providers' Retry-After), and `dead` after the queue's last attempt, when
   the job goes to the email queue's dead letters (a replay sends it again).

The ledger makes a retry after a crash safe: before a provider is asked, the job records the
send as in flight; after, as sent (with the provider's id) or failed. A retry that finds a
send already recorded completes without sending; one that finds a send in flight (the worker
died during it) asks that provider again only if it takes an idempotency key (Resend), and
otherwise fails over to the next provider. The window in which a message can go out twice is
docs/email-delivery.md's: a crash after a provider without idempotency keys accepted it and
before the ledger said so, or a timeout on a provider that accepted it late; each is then
sent once more by the next provider, never twice by the same one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..jobs.context import JobContext
from ..jobs.errors import NonRetryable, RetryAfter
from ..ratelimit import RateLimiter
from .addresses import parse_mailbox
from .compose import from_payload
from .contract import Suppression, TimelineEvent
from .delivery import AttemptRecord, Breakers, Claim, DeliveryReport, Provider, Providers, deliver
from .log import DeliveryLog
from .message import OutgoingEmail, Sent
from .suppressions import SuppressionList

SEND_FUNCTION = "stackyard.email.send"
LEDGER_STEP = "email.provider:"
SENDING_AFTER = 0.5
"""Seconds a send may take before the log shows the message as `sending`."""
IDEMPOTENT_PROVIDERS = frozenset({"resend"})
"""Provider types whose send API takes an idempotency key (the message id): a send cut off
by a crash can be asked again of the same provider without risk of a second message."""


@dataclass
class EmailSending:
    """What the email job uses; the worker keeps it current with the config."""

    providers: Providers
    breakers: Breakers
    log: DeliveryLog
    suppressions: SuppressionList
    rate_limiter: RateLimiter | None = None
    note: Callable[[AttemptRecord], None] | None = None
    """Told of every provider attempt (the EmailProvider status reporter)."""


class JobLedger:
    """The `Ledger` of one email job, in its steps (kept and removed with the job)."""

    def __init__(self, ctx: JobContext, known: dict[str, Any]) -> None:
        self.ctx = ctx
        self.known = known

    async def claim(self, provider: Provider) -> tuple[Claim, str | None]:
        earlier = self.known.get(LEDGER_STEP + provider.name) or {}
        state = earlier.get("state")
        if state == "sent":
            return "already_sent", earlier.get("id")
        if state == "sending" and provider.spec.type not in IDEMPOTENT_PROVIDERS:
            return "unknown", None
        await self._save(provider, {"state": "sending", "attempt": self.ctx.attempt, "at": time.time()})
        return "go", None

    async def settle(self, provider: Provider, sent: Sent | None) -> None:
        if sent is not None:
            await self._save(provider, {"state": "sent", "id": sent.provider_message_id, "at": time.time()})
        else:
            await self._save(provider, {"state": "failed", "at": time.time()})

    async def _save(self, provider: Provider, entry: dict[str, Any]) -> None:
        self.known[LEDGER_STEP + provider.name] = entry
        await self.ctx.client.save_step(self.ctx.job_id, LEDGER_STEP + provider.name, entry)


def _timeline(report: DeliveryReport) -> list[TimelineEvent]:
    return [
        TimelineEvent(
            at=a.started_at,
            type="attempt",
            provider=a.provider,
            outcome=a.outcome,
            status=a.status,
            detail=a.error,
            duration_ms=round(a.duration * 1000, 3),
        )
        for a in report.attempts
    ]


async def send_email(ctx: JobContext, payload: dict[str, Any], sending: EmailSending) -> dict[str, Any]:
    """The body of `stackyard.email.send` (see the module's docstring)."""
    message = from_payload(payload)
    waited = ctx.attempt > 1 or bool(payload.get("waited"))
    if waited and (refused := await _suppressed(message, sending.suppressions)):
        detail = "; ".join(f"{address} ({s.reason})" for address, s in refused.items())
        event = TimelineEvent(at=datetime.now(UTC), type="suppressed", detail=detail)
        await sending.log.transition(message.id, "suppressed", [event], last_error=f"suppressed: {detail}")
        return {"status": "suppressed", "suppressed": sorted(refused)}
    known = await ctx.client.step_results(ctx.job_id, LEDGER_STEP)
    async with _sending_after(sending.log, message.id, ctx.attempt):
        ledger = JobLedger(ctx, known)
        report = await deliver(message, sending.providers, sending.breakers, sending.rate_limiter, ledger)
    if sending.note is not None:
        for attempt in report.attempts:
            sending.note(attempt)
    events = _timeline(report)
    finished = report.finished_at or datetime.now(UTC)
    if report.outcome == "sent":
        events.append(TimelineEvent(at=finished, type="sent", provider=report.provider))
        await sending.log.transition(
            message.id,
            "sent",
            events,
            provider=report.provider,
            provider_message_id=report.provider_message_id,
            last_error=None,
            attempts=ctx.attempt,
        )
        return {"status": "sent", "provider": report.provider, "providerMessageId": report.provider_message_id}
    if report.outcome == "rejected":
        events.append(TimelineEvent(at=finished, type="failed", provider=report.provider, detail=report.reason))
        await sending.log.transition(
            message.id, "failed", events, provider=report.provider, last_error=report.reason, attempts=ctx.attempt
        )
        return {"status": "failed", "provider": report.provider, "reason": report.reason}
    reason = report.reason or "no provider sent it"
    cut_off = bool(report.attempts) and all(a.outcome == "skipped_unknown" for a in report.attempts)
    if cut_off or ctx.attempt >= ctx.max_attempts:
        why = reason if not cut_off else "every provider that could send it was cut off mid-send: " + reason
        events.append(TimelineEvent(at=finished, type="dead", detail=why))
        await sending.log.transition(message.id, "dead", events, last_error=why, attempts=ctx.attempt)
        raise NonRetryable(f"not sent after {ctx.attempt} attempts: {why}")
    retry_in = report.retry_after or None
    events.append(
        TimelineEvent(
            at=finished,
            type="retry",
            detail=reason + (f"; next attempt in {retry_in:.3g}s at the earliest" if retry_in else ""),
        )
    )
    await sending.log.transition(message.id, "queued", events, last_error=reason, attempts=ctx.attempt)
    raise RetryAfter(reason, retry_in)


@contextlib.asynccontextmanager
async def _sending_after(log: DeliveryLog, message_id: str, attempt: int) -> Any:
    """Mark the message `sending` if the block runs longer than SENDING_AFTER; a write that
    began is awaited before the block's own outcome is written, so it never lands after it."""
    began = asyncio.Event()

    async def mark() -> None:
        await asyncio.sleep(SENDING_AFTER)
        began.set()
        await log.transition(message_id, "sending", [], attempts=attempt)

    marker = asyncio.create_task(mark())
    try:
        yield
    finally:
        if not began.is_set():
            marker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await marker


async def _suppressed(message: OutgoingEmail, suppressions: SuppressionList) -> dict[str, Suppression]:
    return await suppressions.check(parse_mailbox(r).address for r in message.recipients)


def email_function(current: Callable[[], Awaitable[EmailSending]]) -> Callable[[JobContext, Any], Awaitable[Any]]:
    """The job function `stackyard.email.send`, bound to the worker's current `EmailSending`."""

    async def send(ctx: JobContext, payload: Any) -> Any:
        return await send_email(ctx, payload, await current())

    return send
