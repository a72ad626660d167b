"""`stackyard notify` and `stackyard webhooks`: trigger NotificationWorkflows, follow and
cancel their runs step by step, read and change users' notification preferences; list the
Webhooks, their deliveries, replay one, enable an endpoint that was disabled, send a test event.

Triggers, runs, another user's preferences and webhooks need the Stack's admin API key
(--admin-key or $STACKYARD_ADMIN_KEY); `notify preferences` without a user is the
preferences of $STACKYARD_API_TOKEN's user."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .context import EXIT_API_ERROR, EXIT_USAGE, Cli, admin_key_option, cli, fail
from .jobs import parse_json, read_json_file
from .output import Table, compact, emit, when

if TYPE_CHECKING:  # the SDK is imported when a command runs, so that --help and completion start fast
    from stackyard.notify.contract import Preferences, RunView, StepOutcome
    from stackyard.notify.webhook_contract import DeliverySummary, WebhookDelivery, WebhookView

app = typer.Typer(
    help="Notifications: trigger workflows, follow their runs step by step, users' preferences.",
    no_args_is_help=True,
)
webhooks = typer.Typer(
    help="Webhooks: endpoints for platform events, their deliveries, replay, enable, test.", no_args_is_help=True
)
admin_key_option(app)
admin_key_option(webhooks)

CHANNELS = ("email", "inApp", "push", "webhook")


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    waiting = "waiting"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    digested = "digested"
    throttled = "throttled"


def _admin(ctx: typer.Context, what: str) -> Cli:
    settings = cli(ctx)
    if not settings.admin_key:
        fail(f"{what} needs the Stack's admin API key: --admin-key or $STACKYARD_ADMIN_KEY", EXIT_USAGE)
    return settings


# -- tables -------------------------------------------------------------------------------------


def _detail(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else compact(v, 60)}" for k, v in detail.items()) or "-"


def run_table(run: RunView) -> Table:
    rows = [
        ["ID", run.id],
        ["TRIGGER", run.trigger_id],
        ["WORKFLOW", run.workflow],
        ["RECIPIENT", str(run.recipient)],
        ["STATUS", run.status],
        ["CREATED", when(run.created_at)],
        ["UPDATED", when(run.updated_at)],
        ["FINISHED", when(run.finished_at)],
    ]
    if run.digested_into:
        rows.append(["DIGESTED INTO", run.digested_into])
    if run.reason:
        rows.append(["REASON", run.reason])
    return Table(["FIELD", "VALUE"], rows, header=False)


def steps_table(steps: Sequence[StepOutcome]) -> Table:
    rows = [
        [s.name, s.kind, s.status, s.reason or "-", when(s.started_at), when(s.finished_at), _detail(s.detail)]
        for s in steps
    ]
    return Table(["STEP", "KIND", "STATUS", "REASON", "STARTED", "FINISHED", "DETAIL"], rows, title="Steps")


def runs_table(runs: Sequence[RunView]) -> Table:
    rows = [
        [
            r.id,
            r.workflow,
            str(r.recipient),
            r.status,
            when(r.created_at),
            " ".join(f"{s.name}:{s.status}" for s in r.steps) or "-",
        ]
        for r in runs
    ]
    return Table(["ID", "WORKFLOW", "RECIPIENT", "STATUS", "CREATED", "STEPS"], rows)


def _switches(channels: Any) -> str:
    values = channels if isinstance(channels, dict) else channels.model_dump(by_alias=True, exclude_none=True)
    shown = [f"{name}={'on' if on else 'off'}" for name, on in values.items() if on is not None]
    return ", ".join(shown) or "(defaults)"


def preferences_table(preferences: Preferences) -> Table:
    body = preferences.model_dump(mode="json", by_alias=True, exclude_none=True)
    rows = [["*", "*", _switches(body.get("channels") or {})]]
    for scope, plural in (("workflow", "workflows"), ("category", "categories")):
        for name, setting in sorted((body.get(plural) or {}).items()):
            rows.append([scope, name, _switches((setting or {}).get("channels") or {})])
    return Table(["SCOPE", "NAME", "CHANNELS"], rows)


# -- preferences --------------------------------------------------------------------------------


def parse_switches(values: Sequence[str]) -> dict[str, Any]:
    """--set options as a PreferencesUpdate body: `email=off` (every workflow),
    `workflow.<key>.inApp=on`, `category.<name>.push=off`."""
    update: dict[str, Any] = {}
    for value in values:
        where, sep, state = value.partition("=")
        if not sep or state.lower() not in ("on", "off", "true", "false"):
            raise typer.BadParameter(f"expected CHANNEL=on|off, got {value!r}", param_hint="--set")
        on = state.lower() in ("on", "true")
        scope, dot, channel = where.rpartition(".")
        if channel not in CHANNELS:
            raise typer.BadParameter(f"{value!r}: the channel is one of {', '.join(CHANNELS)}", param_hint="--set")
        if not dot:
            update.setdefault("channels", {})[channel] = on
            continue
        kind, _, name = scope.partition(".")
        plural = {"workflow": "workflows", "category": "categories"}.get(kind)
        if plural is None or not name:
            raise typer.BadParameter(
                f"{value!r}: write CHANNEL=on|off, workflow.KEY.CHANNEL=on|off or category.NAME.CHANNEL=on|off",
                param_hint="--set",
            )
        update.setdefault(plural, {}).setdefault(name, {"channels": {}})["channels"][channel] = on
    return update


# -- notify -------------------------------------------------------------------------------------


@app.command()
def trigger(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW", help="The workflow's trigger key.")],
    to: Annotated[
        list[str],
        typer.Option(
            "--to",
            help='A recipient: a user id, or an inline one as a JSON object ({"id": "ext-1", "email": ...}); '
            "repeatable.",
        ),
    ],
    data: Annotated[str | None, typer.Option("--data", help="The trigger's data, a JSON object.")] = None,
    data_file: Annotated[
        Path | None, typer.Option("--data-file", help="Read the JSON data from a file (- for stdin).")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Who caused it (a user id).")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant it belongs to.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Trigger once per key (default: a fresh one).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for each recipient's run to finish and show them.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.", min=0)] = 60.0,
) -> None:
    """Trigger a workflow for the recipients and print the trigger (its runs with --wait)."""
    if data is not None and data_file is not None:
        raise typer.BadParameter("give --data or --data-file, not both")
    body = (
        parse_json(data, "--data")
        if data is not None
        else read_json_file(data_file, "--data-file")
        if data_file is not None
        else {}
    )
    if not isinstance(body, dict):
        raise typer.BadParameter("the data is a JSON object", param_hint="--data")
    recipients = [parse_json(r, "--to") if r.lstrip().startswith("{") else r for r in to]
    settings = _admin(ctx, "triggering a workflow")
    with settings.client() as client:
        accepted = client.notify.trigger(
            workflow, recipients, data=body, actor=actor, tenant=tenant, idempotency_key=idempotency_key
        )
        if not wait:
            rows = [
                ["ID", accepted.id],
                ["WORKFLOW", accepted.workflow],
                ["RECIPIENTS", str(accepted.recipients)],
                ["STATUS", accepted.status],
            ]
            emit(settings.output, accepted, [Table(["FIELD", "VALUE"], rows, header=False)])
            return
        runs = _wait_for_trigger(client, accepted.id, accepted.recipients, timeout)
    payload = {
        "trigger": accepted.model_dump(mode="json", by_alias=True),
        "runs": [r.model_dump(mode="json", by_alias=True) for r in runs],
    }
    emit(settings.output, payload, [runs_table(runs)], text=f"trigger {accepted.id}")
    if any(r.status == "failed" for r in runs):
        raise typer.Exit(EXIT_API_ERROR)


def _wait_for_trigger(client: Any, trigger_id: str, count: int, timeout: float) -> list[RunView]:
    import time

    from stackyard.client.notify_calls import FINISHED_RUN_STATES

    deadline = time.monotonic() + timeout
    while True:
        runs = list(client.notify.iter_runs(trigger=trigger_id))
        if len(runs) >= count and all(r.status in FINISHED_RUN_STATES for r in runs):
            return runs
        if time.monotonic() >= deadline:
            left = [f"{r.id}:{r.status}" for r in runs if r.status not in FINISHED_RUN_STATES]
            waiting = ", ".join(left) or "none yet"
            fail(f"the runs of {trigger_id} did not finish within {timeout:g} s ({waiting})", EXIT_API_ERROR)
        time.sleep(0.3)


@app.command()
def runs(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w", help="Of this trigger key.")] = None,
    recipient: Annotated[str | None, typer.Option("--recipient", "-r", help="Of this recipient.")] = None,
    trigger_id: Annotated[str | None, typer.Option("--trigger", help="Of this trigger (ntr_…).")] = None,
    status: Annotated[RunStatus | None, typer.Option("--status", "-s", help="In this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Runs per page.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="The page after this cursor.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page.")] = False,
) -> None:
    """Notification runs, newest first."""
    settings = _admin(ctx, "listing runs")
    filters: dict[str, Any] = {
        "workflow": workflow,
        "recipient": recipient,
        "trigger": trigger_id,
        "status": status.value if status else None,
    }
    with settings.client() as client:
        if every:
            found = list(client.notify.iter_runs(**filters, page_size=limit))
            next_cursor = None
        else:
            page = client.notify.runs(**filters, limit=limit, cursor=cursor)
            found, next_cursor = page.items, page.next_cursor
    body = {"items": [r.model_dump(mode="json", by_alias=True) for r in found], "nextCursor": next_cursor}
    emit(settings.output, body, [runs_table(found)])
    if next_cursor and settings.output.value == "table":
        sys.stderr.write(f"more: --cursor {next_cursor}, or --all\n")


RunId = Annotated[str, typer.Argument(metavar="ID", help="The run's id (nrun_…).")]


@app.command()
def run(
    ctx: typer.Context,
    run_id: RunId,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for it to finish.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.", min=0)] = 60.0,
) -> None:
    """One run with each step's outcome."""
    settings = _admin(ctx, "reading a run")
    with settings.client() as client:
        if wait:
            from stackyard.client.notify_calls import RunWaitTimeout

            try:
                view = client.notify.wait(run_id, timeout=timeout)
            except RunWaitTimeout as exc:
                fail(str(exc), EXIT_API_ERROR)
        else:
            view = client.notify.run(run_id)
    emit(settings.output, view, [run_table(view), steps_table(view.steps)])


@app.command()
def cancel(ctx: typer.Context, run_id: RunId) -> None:
    """Cancel a run: the steps not yet done are not done."""
    settings = _admin(ctx, "cancelling a run")
    with settings.client() as client:
        view = client.notify.cancel(run_id)
    emit(settings.output, view, [run_table(view), steps_table(view.steps)])


@app.command()
def preferences(
    ctx: typer.Context,
    user: Annotated[
        str | None,
        typer.Argument(metavar="[USER]", help="A user id (admin API key); yours ($STACKYARD_API_TOKEN) without."),
    ] = None,
    switches: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="CHANNEL=on|off (email, inApp, push, webhook), workflow.KEY.CHANNEL=on|off or "
            "category.NAME.CHANNEL=on|off; repeatable.",
        ),
    ] = None,
) -> None:
    """A user's notification preferences; --set changes them (merged into the stored ones)."""
    update = parse_switches(switches or [])
    settings = _admin(ctx, "another user's preferences") if user is not None else cli(ctx)
    with settings.client() as client:
        found = client.notify.set_preferences(update, user_id=user) if update else client.notify.preferences(user)
    emit(settings.output, found, [preferences_table(found)])


# -- webhooks -----------------------------------------------------------------------------------


class DeliveryState(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    paused = "paused"


def _status_code(value: int | None) -> str:
    return "-" if value is None else str(value)


def webhooks_table(views: Sequence[WebhookView]) -> Table:
    rows = []
    for v in views:
        last = v.last_delivery
        rows.append(
            [
                v.name,
                v.url,
                ",".join(v.events),
                "yes" if v.enabled else "no",
                "yes" if v.paused else "no",
                when(v.failing_since),
                f"{when(last.at)} {last.event_type} {_status_code(last.http_status)}" if last else "-",
            ]
        )
    return Table(["NAME", "URL", "EVENTS", "ENABLED", "PAUSED", "FAILING SINCE", "LAST DELIVERY"], rows)


def webhook_table(view: WebhookView) -> Table:
    rows = [
        ["NAME", view.name],
        ["URL", view.url],
        ["EVENTS", ", ".join(view.events)],
        ["ENABLED", "yes" if view.enabled else "no"],
        ["PAUSED", "yes" if view.paused else "no"],
        ["FAILING SINCE", when(view.failing_since)],
    ]
    if view.disabled_reason:
        rows.append(["DISABLED", f"{when(view.disabled_at)}: {view.disabled_reason}"])
    return Table(["FIELD", "VALUE"], rows, header=False)


def deliveries_table(items: Sequence[DeliverySummary]) -> Table:
    rows = [
        [d.id, d.event_type, d.status, str(d.attempt_count), when(d.created_at), d.last_error or "-"] for d in items
    ]
    return Table(["ID", "EVENT", "STATUS", "ATTEMPTS", "CREATED", "LAST ERROR"], rows)


def delivery_tables(delivery: WebhookDelivery) -> list[Table]:
    rows = [
        ["ID", delivery.id],
        ["WEBHOOK", delivery.webhook],
        ["EVENT", delivery.event_type],
        ["STATUS", delivery.status],
        ["ATTEMPTS", str(delivery.attempt_count)],
        ["CREATED", when(delivery.created_at)],
        ["UPDATED", when(delivery.updated_at)],
    ]
    if delivery.replay_of:
        rows.append(["REPLAY OF", delivery.replay_of])
    if delivery.last_error:
        rows.append(["LAST ERROR", delivery.last_error])
    attempts = [
        [str(i), when(a.at), _status_code(a.http_status), f"{a.duration_ms:.0f}ms", a.error or "-"]
        for i, a in enumerate(delivery.attempts, 1)
    ]
    return [
        Table(["FIELD", "VALUE"], rows, header=False),
        Table(["ATTEMPT", "AT", "STATUS", "TOOK", "ERROR"], attempts, title="Attempts"),
    ]


WebhookName = Annotated[str, typer.Argument(metavar="NAME", help="The Webhook's name.")]
DeliveryId = Annotated[str, typer.Argument(metavar="ID", help="The delivery's id (whd_…).")]


@webhooks.command("list")
def list_webhooks(ctx: typer.Context) -> None:
    """The Webhooks of the Stack: enabled, failing since when, the last delivery."""
    settings = _admin(ctx, "the webhooks")
    with settings.client() as client:
        views = client.webhooks.list()
    emit(settings.output, {"items": [v.model_dump(mode="json", by_alias=True) for v in views]}, [webhooks_table(views)])


@webhooks.command()
def deliveries(
    ctx: typer.Context,
    name: WebhookName,
    status: Annotated[DeliveryState | None, typer.Option("--status", "-s", help="In this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Deliveries per page.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="The page after this cursor.")] = None,
) -> None:
    """A Webhook's deliveries, newest first."""
    settings = _admin(ctx, "the webhooks")
    with settings.client() as client:
        page = client.webhooks.deliveries(name, status=status.value if status else None, limit=limit, cursor=cursor)
    emit(settings.output, page, [deliveries_table(page.items)])
    if page.next_cursor and settings.output.value == "table":
        sys.stderr.write(f"more: --cursor {page.next_cursor}\n")


@webhooks.command()
def delivery(ctx: typer.Context, delivery_id: DeliveryId) -> None:
    """One delivery with its payload and every attempt."""
    settings = _admin(ctx, "the webhooks")
    with settings.client() as client:
        found = client.webhooks.delivery(delivery_id)
    emit(settings.output, found, delivery_tables(found))


@webhooks.command()
def replay(ctx: typer.Context, delivery_id: DeliveryId) -> None:
    """Send a delivery's payload again: a new delivery."""
    settings = _admin(ctx, "the webhooks")
    with settings.client() as client:
        found = client.webhooks.replay(delivery_id)
    emit(settings.output, found, delivery_tables(found))


@webhooks.command()
def enable(ctx: typer.Context, name: WebhookName) -> None:
    """Enable an endpoint that was disabled for failing too long."""
    settings = _admin(ctx, "the webhooks")
    with settings.client() as client:
        view = client.webhooks.enable(name)
    emit(settings.output, view, [webhook_table(view)])


@webhooks.command("test")
def test_(ctx: typer.Context, name: WebhookName) -> None:
    """Send a webhook.test event to the endpoint: the new delivery."""
    settings = _admin(ctx, "the webhooks")
    with settings.client() as client:
        found = client.webhooks.test(name)
    emit(settings.output, found, delivery_tables(found))
