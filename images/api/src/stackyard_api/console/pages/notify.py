"""The console's Notifications and Webhooks pages:

- `/console/notifications`: the runs of notification workflows, newest first, filtered by
  workflow, recipient, trigger and status, paginated and live;
- `/console/notifications/runs/{id}`: one run: its trigger's data, actor and tenant, its
  recipient, each step with its state, what it sent per channel (email, in-app message,
  push, webhook deliveries) and why it failed; live while unfinished; cancel while running;
- `/console/webhooks`: each Webhook (url without credentials, events, enabled, failing since,
  last delivery), live; `/console/webhooks/{name}`: its deliveries, paginated, live, filtered
  by status; enable an endpoint disabled for failing; send a test event;
- `/console/webhooks/deliveries/{id}`: one delivery: event, payload, every attempt (status
  code, response excerpt, error, duration); replay.

The pages call what /v1/notify and /v1/webhooks call (NotifyService, PlatformEvents,
EndpointState). A Webhook's signing secret and headers are never read here."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import orjson
from fastapi import APIRouter, Query, Request
from stackyard.notify.contract import FINISHED_RUN_STATUSES, RUN_STATUSES, RunFilter, RunStatus
from stackyard.notify.problems import DeliveryNotFound
from stackyard.notify.webhook_contract import DELIVERY_STATUSES, DeliveryStatus
from starlette.responses import Response

from ...deps import RuntimeDep
from ...routers.notify import notify_service
from ...routers.webhooks import _events, _state, _view
from ..session import ConsoleDep, CsrfDep, flash, redirect, render

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_SIZE = 25
Cursor = Annotated[str | None, Query(max_length=200)]
Text = Annotated[str | None, Query(max_length=200)]


def _pretty(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def public_url(url: str) -> str:
    """The URL without credentials: no user or password, query values hidden (a token may
    ride in one)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    query = "&".join(f"{quote(key)}=…" for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@router.get("/notify")
async def notify_home(session: ConsoleDep) -> Response:
    return redirect("/console/notifications")


# --- runs -----------------------------------------------------------------------------------


@router.get("/notifications")
async def runs(
    request: Request,
    session: ConsoleDep,
    runtime: RuntimeDep,
    workflow: Text = None,
    recipient: Text = None,
    trigger: Text = None,
    status: Annotated[RunStatus | Literal[""] | None, Query()] = None,
    cursor: Cursor = None,
) -> Response:
    """`status=` (the form's "any") is no filter."""
    service = await notify_service(runtime)
    selector = RunFilter(
        workflow=workflow or None,
        recipient=recipient or None,
        trigger=trigger or None,
        status=[status] if status else None,
    )
    page = await service.list_runs(selector, PAGE_SIZE, cursor)
    workflows = sorted(spec.trigger_key(name) for name, spec in runtime.config.config.notification_workflows.items())
    return render(
        request,
        "console/notify/runs.html",
        page=page,
        workflows=workflows,
        statuses=RUN_STATUSES,
        chosen={
            "workflow": workflow or "",
            "recipient": recipient or "",
            "trigger": trigger or "",
            "status": status or "",
        },
    )


@router.get("/notifications/runs/{run_id}")
async def run(request: Request, run_id: str, session: ConsoleDep, runtime: RuntimeDep) -> Response:
    service = await notify_service(runtime)
    found = await service.get_run(run_id)
    doc = await service.runs.document(run_id) or {}
    trigger = {key: doc.get(key) for key in ("data", "actor", "tenant")}
    return render(
        request,
        "console/notify/run.html",
        run=found,
        finished=found.status in FINISHED_RUN_STATUSES,
        data=_pretty(trigger["data"] or {}),
        actor=_pretty(trigger["actor"]) if trigger["actor"] is not None else None,
        tenant=trigger["tenant"],
        inline=_pretty(doc["recipientInline"]) if doc.get("recipientInline") else None,
    )


@router.post("/notifications/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: str, session: CsrfDep, runtime: RuntimeDep) -> Response:
    service = await notify_service(runtime)
    cancelled = await service.cancel_run(run_id)
    flash(request, f"Run {run_id} is {cancelled.status}: its remaining steps will not run.")
    return redirect(f"/console/notifications/runs/{run_id}")


# --- webhooks -------------------------------------------------------------------------------


@router.get("/webhooks")
async def webhooks(request: Request, session: ConsoleDep, runtime: RuntimeDep) -> Response:
    state = _state(runtime)
    views = [await _view(state, name, spec) for name, spec in sorted(runtime.config.config.webhooks.items())]
    rows = [(view, public_url(str(view.url))) for view in views]
    return render(request, "console/notify/webhooks.html", webhooks=rows)


@router.get("/webhooks/deliveries/{delivery_id}")
async def delivery(request: Request, delivery_id: str, session: ConsoleDep, runtime: RuntimeDep) -> Response:
    found = await (await _events(runtime).store()).get(delivery_id)
    if found is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id}", id=delivery_id)
    return render(
        request,
        "console/notify/delivery.html",
        delivery=found,
        payload=_pretty(found.payload),
        webhook_exists=found.webhook in runtime.config.config.webhooks,
    )


@router.post("/webhooks/deliveries/{delivery_id}/replay")
async def replay(request: Request, delivery_id: str, session: CsrfDep, runtime: RuntimeDep) -> Response:
    replayed = await _events(runtime).replay(delivery_id)
    flash(request, f"Delivery {delivery_id} replayed as {replayed.id} ({replayed.status}).")
    return redirect(f"/console/webhooks/deliveries/{replayed.id}")


@router.get("/webhooks/{name}")
async def webhook(
    request: Request,
    name: str,
    session: ConsoleDep,
    runtime: RuntimeDep,
    status: Annotated[DeliveryStatus | Literal[""] | None, Query()] = None,
    cursor: Cursor = None,
) -> Response:
    """`status=` (the form's "any") is no filter."""
    events = _events(runtime)
    spec = events.spec(name)
    view = await _view(_state(runtime), name, spec)
    page = await (await events.store()).page(name, status=status or None, limit=PAGE_SIZE, cursor=cursor)
    return render(
        request,
        "console/notify/webhook.html",
        webhook=view,
        url=public_url(str(view.url)),
        page=page,
        statuses=DELIVERY_STATUSES,
        chosen_status=status or "",
    )


@router.post("/webhooks/{name}/enable")
async def enable(request: Request, name: str, session: CsrfDep, runtime: RuntimeDep) -> Response:
    _events(runtime).spec(name)
    was_disabled = await _state(runtime).enable(name)
    flash(request, f"Webhook {name} enabled." if was_disabled else f"Webhook {name} was not disabled.")
    return redirect(f"/console/webhooks/{name}")


@router.post("/webhooks/{name}/test")
async def send_test(request: Request, name: str, session: CsrfDep, runtime: RuntimeDep) -> Response:
    events = _events(runtime)
    delivery_id = await events.send_to(
        name, "webhook.test", {"webhook": name, "message": "a test event"}, idempotency_key=None
    )
    flash(request, f"Test event sent to {name} as delivery {delivery_id}.")
    return redirect(f"/console/webhooks/deliveries/{delivery_id}")
