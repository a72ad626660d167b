"""The console's Emails pages:

- `/console/emails`: the delivery log, newest first, filtered as GET /v1/emails filters
  (status, recipient, sender, provider, template, tags, a creation date range), paginated
  and live;
- `/console/emails/{id}`: one message: its envelope, status, the job that carries it, its
  timeline (every event in the order the log recorded it: queued, each provider attempt with
  its outcome and error, breaker skips, failovers, sent, the providers' delivered, bounced
  or complained, …), live; its bodies (the HTML in a sandboxed `<iframe srcdoc>`, which runs
  no script and has an opaque origin, and as escaped source); cancel while it is scheduled;
- `/console/suppressions`: the suppression list by address, filtered by reason, paginated;
  add an address, remove one.

The pages call the EmailService as /v1/emails and /v1/suppressions do (the same dependency,
so a Stack without the email capability shows the error page). Nothing of an EmailProvider's
spec is shown but its name: the timeline's texts never hold a credential."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, get_args

import orjson
from fastapi import APIRouter, Form, Query, Request
from stackyard.email.contract import EMAIL_STATUSES, EmailFilter, EmailRecord, SuppressionReason, TimelineEvent
from stackyard.problems import Problem
from starlette.responses import Response

from ...deps import RuntimeDep
from ...routers.emails import ServiceDep
from ..session import ConsoleDep, CsrfDep, flash, redirect, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
REASONS: tuple[str, ...] = get_args(SuppressionReason)
Text = Annotated[str | None, Query(max_length=320)]
Cursor = Annotated[str | None, Query(max_length=400)]

OUTCOMES = {
    "sent": "sent",
    "already_sent": "already sent by an earlier attempt",
    "skipped_unknown": "skipped: an earlier attempt's result is unknown",
    "rejected": "rejected (the message is wrong; no failover)",
    "retryable": "failed (retryable)",
    "rate_limited": "rate limited by the provider",
    "misconfigured": "failed: provider misconfigured",
    "skipped_breaker_open": "skipped: circuit breaker open",
    "skipped_rate_limit": "skipped: over its send rate",
}
"""How an attempt ended, in words (stackyard.email.delivery.AttemptOutcome)."""
LIVE_STATUSES = frozenset(("scheduled", "queued", "sending", "sent", "deferred"))
"""A message in these may still change (a provider's events come after `sent`)."""


def _day_or_time(value: str | None, *, end: bool) -> datetime | None:
    """A date (YYYY-MM-DD: the day's start, or the next day's for the end of a range) or a
    date and time (UTC unless it says otherwise); ValueError else."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)


@router.get("/console/emails")
async def log(
    request: Request,
    session: ConsoleDep,
    runtime: RuntimeDep,
    service: ServiceDep,
    status: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies query defaults
    to: Text = None,
    sender: Annotated[str | None, Query(alias="from", max_length=320)] = None,
    provider: Text = None,
    template: Text = None,
    tag: Annotated[str | None, Query(max_length=2000)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Cursor = None,
) -> Response:
    errors: list[str] = []
    chosen = [s for s in status if s in EMAIL_STATUSES]
    errors += [f"Unknown status {s!r} (ignored)." for s in status if s not in EMAIL_STATUSES]
    tags: dict[str, str] = {}
    for item in (tag or "").replace(",", " ").split():
        name, colon, value = item.partition(":")
        if colon and name and value:
            tags[name] = value
        else:
            errors.append(f"Tag {item!r} ignored: write it as name:value.")
    window: dict[str, datetime | None] = {}
    for bound, given, end in (("since", since, False), ("until", until, True)):
        try:
            window[bound] = _day_or_time(given, end=end)
        except ValueError:
            errors.append(f"{bound.capitalize()} {given!r} ignored: write a date as YYYY-MM-DD.")
    selector = EmailFilter.model_validate(
        {
            "status": chosen,
            "to": to or None,
            "from": sender or None,
            "provider": provider or None,
            "template": template or None,
            "tag": tags,
            **window,
        }
    )
    page = await service.log.page(selector, limit=PAGE_SIZE, cursor=cursor or None)
    config = runtime.config.config
    filters = {
        "status": chosen,
        "to": to or "",
        "from": sender or "",
        "provider": provider or "",
        "template": template or "",
        "tag": tag or "",
        "since": since or "",
        "until": until or "",
    }
    return render(
        request,
        "console/emails/log.html",
        page=page,
        filters=filters,
        filtered=any(v for v in filters.values()),
        errors=errors,
        statuses=EMAIL_STATUSES,
        providers=sorted(config.email_providers),
        templates=sorted(config.email_templates),
        cursor=cursor,
    )


def _timeline(events: list[TimelineEvent]) -> list[dict[str, Any]]:
    """Each event with its words, and whether the next attempt failed over to another provider."""
    rows = []
    for index, event in enumerate(events):
        following = events[index + 1] if index + 1 < len(events) else None
        failover = (
            event.type == "attempt"
            and event.outcome not in ("sent", "already_sent", "rejected")
            and following is not None
            and following.type == "attempt"
            and following.provider != event.provider
        )
        rows.append(
            {
                "event": event,
                "outcome": OUTCOMES.get(event.outcome or "", event.outcome)
                if event.type == "attempt"
                else event.outcome,
                "failover_to": following.provider if failover and following is not None else None,
            }
        )
    return rows


@router.get("/console/emails/{email_id}")
async def message(request: Request, email_id: str, session: ConsoleDep, service: ServiceDep) -> Response:
    record: EmailRecord = await service.get(email_id)
    return render(
        request,
        "console/emails/message.html",
        email=record,
        timeline=_timeline(record.timeline),
        refreshing=record.status in LIVE_STATUSES,
        cancellable=record.status == "scheduled" and record.job_id is not None,
        metadata=orjson.dumps(record.metadata, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        if record.metadata
        else None,
    )


@router.post("/console/emails/{email_id}/cancel")
async def cancel(request: Request, email_id: str, session: CsrfDep, service: ServiceDep) -> Response:
    try:
        await service.cancel(email_id)
    except Problem as exc:
        if exc.status == 404:
            raise
        flash(request, f"Not cancelled: {exc.detail or exc.title}", "error")
    else:
        flash(request, f"Email {email_id} cancelled: it will not be sent.")
    return redirect(f"/console/emails/{email_id}")


@router.get("/console/suppressions")
async def suppressions(
    request: Request,
    session: ConsoleDep,
    service: ServiceDep,
    reason: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Cursor = None,
) -> Response:
    chosen = reason if reason in REASONS else None
    page = await service.suppressions.page(limit=PAGE_SIZE, cursor=cursor or None, reason=chosen)
    return render(
        request,
        "console/emails/suppressions.html",
        page=page,
        reason=chosen,
        reasons=REASONS,
        cursor=cursor,
        unknown_reason=reason if reason and chosen is None else None,
    )


@router.post("/console/suppressions")
async def add_suppression(
    request: Request,
    session: CsrfDep,
    service: ServiceDep,
    address: Annotated[str, Form(max_length=320)],
    reason: Annotated[str, Form(max_length=40)] = "manual",
    detail: Annotated[str | None, Form(max_length=1000)] = None,
) -> Response:
    try:
        added = await service.suppressions.add(address.strip(), reason, detail=detail or None)
    except Problem as exc:
        flash(request, f"Not added: {exc.detail or exc.title}", "error")
    else:
        flash(request, f"{added.address} is suppressed ({added.reason}): no email will be sent to it.")
    return redirect("/console/suppressions")


@router.post("/console/suppressions/remove")
async def remove_suppression(
    request: Request, session: CsrfDep, service: ServiceDep, address: Annotated[str, Form(max_length=320)]
) -> Response:
    if await service.suppressions.remove(address):
        flash(request, f"{address} was removed from the suppression list.")
    else:
        flash(request, f"{address} is not on the suppression list.", "error")
    return redirect("/console/suppressions")
