"""`stackyard emails` and `stackyard suppressions`: send, follow and cancel email, preview
templates, keep the suppression list."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .context import cli
from .jobs import parse_time
from .output import (
    Output,
    accepted_table,
    email_table,
    emails_table,
    emit,
    preview_table,
    suppressions_table,
    timeline_table,
)

if TYPE_CHECKING:  # the SDK is imported when a command runs, so that --help and completion start fast
    from stackyard.client import EmailPage, SuppressionPage, SuppressionReason

app = typer.Typer(
    help="Email: send, follow in the delivery log, cancel a scheduled one, preview templates.", no_args_is_help=True
)
suppressions = typer.Typer(help="The suppression list: addresses no email is sent to.", no_args_is_help=True)


class Status(StrEnum):
    scheduled = "scheduled"
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    deferred = "deferred"
    bounced = "bounced"
    complained = "complained"
    failed = "failed"
    suppressed = "suppressed"
    dead = "dead"
    cancelled = "cancelled"


class Reason(StrEnum):
    bounce = "bounce"
    complaint = "complaint"
    unsubscribe = "unsubscribe"
    manual = "manual"


class Part(StrEnum):
    text = "text"
    html = "html"
    none = "none"


def parse_pairs(values: list[str] | None, option: str, separators: str = "=") -> dict[str, str]:
    """`name=value` options (or the other separators given) as a dict; the last one wins."""
    pairs: dict[str, str] = {}
    for value in values or []:
        cut = min((i for i in (value.find(s) for s in separators) if i > 0), default=-1)
        if cut < 0:
            form = " or ".join(f"name{s}value" for s in separators)
            raise typer.BadParameter(f"expected {form}, got {value!r}", param_hint=option)
        pairs[value[:cut]] = value[cut + 1 :]
    return pairs


def read_text(path: Path, option: str) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=option) from exc


Vars = Annotated[
    list[str] | None, typer.Option("--var", help="A template variable, name=value; repeatable.", show_default=False)
]
Locale = Annotated[str | None, typer.Option(help="The template's locale (default: the template's own).")]


@app.command()
def send(
    ctx: typer.Context,
    sender: Annotated[str, typer.Option("--from", help='The From: "Name <address>" or an address.')],
    to: Annotated[list[str], typer.Option("--to", help="A recipient; repeatable.")],
    cc: Annotated[list[str] | None, typer.Option("--cc", help="A Cc recipient; repeatable.")] = None,
    bcc: Annotated[list[str] | None, typer.Option("--bcc", help="A Bcc recipient; repeatable.")] = None,
    reply_to: Annotated[list[str] | None, typer.Option("--reply-to", help="A Reply-To address; repeatable.")] = None,
    subject: Annotated[str | None, typer.Option(help="The subject (not with --template).")] = None,
    text: Annotated[str | None, typer.Option(help="The plain-text body.")] = None,
    html_file: Annotated[
        Path | None, typer.Option("--html-file", help="Read the HTML body from a file (- for stdin).")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Render this EmailTemplate instead of --subject/--text/--html-file.")
    ] = None,
    var: Vars = None,
    locale: Locale = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="A tag for the provider, name=value; repeatable.")
    ] = None,
    attach: Annotated[
        list[Path] | None,
        typer.Option("--attach", help="Attach this file; repeatable.", exists=True, dir_okay=False, readable=True),
    ] = None,
    send_at: Annotated[
        str | None, typer.Option("--send-at", help="Send at this time, ISO 8601 (local time without an offset).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Send once per key (default: a fresh one).")
    ] = None,
) -> None:
    """Hand an email to the api and print its id; a worker sends it."""
    if template is None and (var or locale):
        raise typer.BadParameter("--var and --locale go with --template")
    from stackyard.client import attachment

    html = read_text(html_file, "--html-file") if html_file is not None else None
    try:
        files = [attachment(path) for path in attach or []]
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {exc.filename}: {exc.strerror}", param_hint="--attach") from exc
    options = cli(ctx)
    with options.client() as client:
        accepted = client.emails.send(
            sender=sender,
            to=to,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            subject=subject,
            text=text,
            html=html,
            template=template,
            variables=parse_pairs(var, "--var") if template is not None else None,
            locale=locale,
            tags=parse_pairs(tag, "--tag", "=:"),
            attachments=files,
            send_at=parse_time(send_at, "--send-at") if send_at else None,
            idempotency_key=idempotency_key,
        )
    emit(options.output, accepted, [accepted_table(accepted)])


@app.command()
def get(ctx: typer.Context, email_id: Annotated[str, typer.Argument(metavar="ID", help="The email's id.")]) -> None:
    """An email as the delivery log holds it, with its timeline."""
    options = cli(ctx)
    with options.client() as client:
        email = client.emails.get(email_id)
    emit(options.output, email, [email_table(email), timeline_table(email.timeline)])


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[list[Status] | None, typer.Option("--status", help="Any of these; repeatable.")] = None,
    to: Annotated[str | None, typer.Option(help="A recipient (to, cc or bcc).")] = None,
    sender: Annotated[str | None, typer.Option("--from", help="The From address.")] = None,
    template: Annotated[str | None, typer.Option(help="Rendered from this EmailTemplate.")] = None,
    provider: Annotated[str | None, typer.Option(help="Sent by this EmailProvider.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tagged name=value; repeatable, all apply.")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after, ISO 8601.")] = None,
    until: Annotated[str | None, typer.Option(help="Created before, ISO 8601.")] = None,
    limit: Annotated[int, typer.Option(help="Emails per page.", min=1, max=100)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Where the previous page ended (its nextCursor).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
) -> None:
    """The delivery log, newest first; every filter given applies."""
    filters: dict[str, Any] = {
        "status": [s.value for s in status or []],
        "to": to,
        "sender": sender,
        "template": template,
        "provider": provider,
        "tags": parse_pairs(tag, "--tag", "=:"),
        "since": parse_time(since, "--since") if since else None,
        "until": parse_time(until, "--until") if until else None,
    }
    options = cli(ctx)
    with options.client() as client:
        page: EmailPage = client.emails.list(**filters, limit=limit, cursor=cursor)
        while every and page.next_cursor:
            more = client.emails.list(**filters, limit=limit, cursor=page.next_cursor)
            page = more.model_copy(update={"items": page.items + more.items})
    emit(options.output, page, [emails_table(page.items)])
    if page.next_cursor and options.output is Output.table:
        sys.stderr.write(f"more: --cursor {page.next_cursor}, or --all\n")


@app.command()
def cancel(ctx: typer.Context, email_id: Annotated[str, typer.Argument(metavar="ID", help="The email's id.")]) -> None:
    """Cancel an email still waiting for its --send-at time."""
    options = cli(ctx)
    with options.client() as client:
        email = client.emails.cancel(email_id)
    emit(options.output, email, [email_table(email)])


@app.command()
def preview(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="The EmailTemplate's name.")],
    var: Vars = None,
    locale: Locale = None,
    show: Annotated[Part, typer.Option(help="The body part printed under the subject, in table output.")] = Part.text,
) -> None:
    """Render an EmailTemplate with sample values, as a send would; nothing is sent."""
    options = cli(ctx)
    with options.client() as client:
        result = client.emails.preview(template, parse_pairs(var, "--var"), locale)
    emit(options.output, result, [preview_table(result)])
    if options.output is Output.table and show is not Part.none:
        body = result.text if show is Part.text else result.html
        sys.stdout.write(f"\n{body}\n" if body else f"\n(no {show.value} part)\n")


@suppressions.command("list")
def suppressions_list(
    ctx: typer.Context,
    reason: Annotated[Reason | None, typer.Option(help="Only the addresses suppressed for this reason.")] = None,
    limit: Annotated[int, typer.Option(help="Addresses per page.", min=1, max=100)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Where the previous page ended (its nextCursor).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
) -> None:
    """The suppressed addresses, in address order."""
    why: SuppressionReason | None = reason.value if reason else None
    options = cli(ctx)
    with options.client() as client:
        page: SuppressionPage = client.suppressions.list(reason=why, limit=limit, cursor=cursor)
        while every and page.next_cursor:
            more = client.suppressions.list(reason=why, limit=limit, cursor=page.next_cursor)
            page = more.model_copy(update={"items": page.items + more.items})
    emit(options.output, page, [suppressions_table(page.items)])
    if page.next_cursor and options.output is Output.table:
        sys.stderr.write(f"more: --cursor {page.next_cursor}, or --all\n")


@suppressions.command("add")
def suppressions_add(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The address to send no more email to.")],
    reason: Annotated[Reason, typer.Option(help="Why.")] = Reason.manual,
    detail: Annotated[str | None, typer.Option(help="A note kept with it.")] = None,
) -> None:
    """Suppress an address; adding it again updates its reason."""
    options = cli(ctx)
    with options.client() as client:
        added = client.suppressions.add(address, reason.value, detail)
    emit(options.output, added, [suppressions_table([added])])


@suppressions.command("remove")
def suppressions_remove(
    ctx: typer.Context, address: Annotated[str, typer.Argument(help="The address to send email to again.")]
) -> None:
    """Take an address off the suppression list (exit 1 when it is not on it)."""
    options = cli(ctx)
    with options.client() as client:
        client.suppressions.remove(address)
    emit(options.output, {"address": address, "removed": True}, [], f"removed {address} from the suppression list")
