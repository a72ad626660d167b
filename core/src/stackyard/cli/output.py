"""How the CLI prints: json and yaml are the api's bodies (camelCase, as on the wire);
table is for people, drawn with rich when it is installed, else as plain aligned text."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from stackyard.auth.contract import SessionView, User
    from stackyard.client.admin_wire import AuditEvent, UserDetail
    from stackyard.email.contract import (
        EmailAccepted,
        EmailRecord,
        EmailSummary,
        PreviewResult,
        Suppression,
        TimelineEvent,
    )
    from stackyard.jobs.contract import Job, QueueInfo


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


@dataclass
class Table:
    """Rows of text under upper-case column names; `header=False` for a name/value list."""

    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str | None = None
    header: bool = True


def emit(output: Output, data: BaseModel | dict[str, Any], tables: Sequence[Table] = (), text: str = "") -> None:
    """Print `data` as json or yaml, or, for a table, `text` then `tables`."""
    body = data.model_dump(mode="json", by_alias=True) if isinstance(data, BaseModel) else data
    if output is Output.json:
        sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    elif output is Output.yaml:
        import yaml

        sys.stdout.write(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    else:
        if text:
            sys.stdout.write(text + "\n")
        print_tables(tables)


def print_tables(tables: Sequence[Table]) -> None:
    """With rich on a terminal; as plain aligned text when piped (for grep and awk) or
    when rich is missing."""
    console = _terminal()
    if console is None:
        sys.stdout.write("\n".join(plain(table) for table in tables))
        return
    for i, table in enumerate(tables):
        if i:
            console.print()
        console.print(_rich(table))


def _terminal() -> Any:
    """A rich Console on stdout when stdout is a terminal and rich is installed, else None."""
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - typer brings rich; typer-slim does not
        return None
    console = Console(highlight=False)
    return console if console.is_terminal else None


def _rich(table: Table) -> Any:
    from rich import box
    from rich.markup import escape
    from rich.table import Table as RichTable

    drawn = RichTable(
        title=table.title,
        title_justify="left",
        title_style="bold",
        show_header=table.header,
        header_style="bold",
        box=box.SIMPLE_HEAD if table.header else None,
        pad_edge=False,
    )
    for i, column in enumerate(table.columns):
        drawn.add_column(column, style="bold" if i == 0 and not table.header else None, overflow="fold")
    for row in table.rows:
        drawn.add_row(*(escape(cell) for cell in row))
    return drawn


def plain(table: Table) -> str:
    """The table as aligned text, columns two spaces apart, as kubectl prints; a line
    break inside a cell shows as \\n, so that every row stays one line."""
    lines = [table.columns] if table.header else []
    lines += [[cell.replace("\r", "").replace("\n", "\\n") for cell in row] for row in table.rows]
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(len(table.columns))]
    text = [table.title.upper() + ":"] if table.title else []
    text += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join(text) + "\n"


# What a job, a queue and a list of them look like in a table.


def when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def millis(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}ms" if value < 1000 else f"{value / 1000:.1f}s"


def compact(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def target(job: Job) -> str:
    if job.http is not None:
        return f"{job.http.method} {job.http.url}"
    return job.function or "-"


def job_state(job: Job) -> str:
    return job.state + (" (cancel requested)" if job.cancel_requested else "")


def job_table(job: Job) -> Table:
    rows = [
        ["ID", job.id],
        ["QUEUE", job.queue],
        ["TARGET", target(job)],
        ["STATE", job_state(job)],
        ["ATTEMPTS", f"{job.attempts}/{job.max_attempts}"],
        ["PRIORITY", str(job.priority)],
        ["TIMEOUT", f"{job.timeout:g}s"],
        ["CREATED", when(job.created_at)],
        ["RUN AT", when(job.run_at)],
        ["STARTED", when(job.started_at)],
        ["FINISHED", when(job.finished_at)],
    ]
    if job.idempotency_key:
        rows.append(["IDEMPOTENCY KEY", job.idempotency_key])
    if job.payload is not None:
        rows.append(["PAYLOAD", compact(job.payload)])
    if job.result is not None:
        rows.append(["RESULT", compact(job.result)])
    if job.last_error:
        rows.append(["LAST ERROR", job.last_error])
    return Table(["FIELD", "VALUE"], rows, header=False)


def errors_table(job: Job) -> Table:
    rows = [[str(e.attempt), when(e.at), e.worker or "-", e.error] for e in job.errors]
    return Table(["ATTEMPT", "AT", "WORKER", "ERROR"], rows, title="Errors")


def jobs_table(jobs: Sequence[Job]) -> Table:
    rows = [
        [job.id, target(job), f"{job.attempts}/{job.max_attempts}", when(job.finished_at), _line(job.last_error)]
        for job in jobs
    ]
    return Table(["ID", "TARGET", "ATTEMPTS", "FINISHED", "LAST ERROR"], rows)


def queues_table(queues: Sequence[QueueInfo]) -> Table:
    columns = [
        "NAME",
        "PAUSED",
        "QUEUED",
        "SCHEDULED",
        "ACTIVE",
        "DEAD",
        "COMPLETED",
        "FAILED",
        "MEAN WAIT",
        "MEAN RUN",
    ]
    rows = []
    for q in queues:
        c = q.counts
        counts = [c.queued, c.scheduled, c.active, c.dead, c.completed, c.failed]
        rows.append(
            [q.name, "yes" if q.paused else "no", *map(str, counts), millis(c.mean_wait_ms), millis(c.mean_run_ms)]
        )
    return Table(columns, rows)


# What an email, its timeline, the delivery log and the suppression list look like in a table.


def addresses(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "-"


def accepted_table(accepted: EmailAccepted) -> Table:
    rows = [["ID", accepted.id], ["STATUS", accepted.status]]
    if accepted.send_at:
        rows.append(["SEND AT", when(accepted.send_at)])
    return Table(["FIELD", "VALUE"], rows, header=False)


def email_table(email: EmailRecord) -> Table:
    rows = [
        ["ID", email.id],
        ["STATUS", email.status],
        ["FROM", email.sender],
        ["TO", addresses(email.to)],
    ]
    rows += [[name, addresses(values)] for name, values in (("CC", email.cc), ("BCC", email.bcc)) if values]
    if email.reply_to:
        rows.append(["REPLY TO", addresses(email.reply_to)])
    rows.append(["SUBJECT", email.subject])
    if email.template:
        rows.append(["TEMPLATE", f"{email.template} ({email.locale})" if email.locale else email.template])
    if email.attachments:
        files = ", ".join(f"{a.filename} ({a.content_type}, {a.size} B)" for a in email.attachments)
        rows.append(["ATTACHMENTS", files])
    if email.tags:
        rows.append(["TAGS", tags(email.tags)])
    if email.metadata:
        rows.append(["METADATA", compact(email.metadata)])
    rows += [
        ["CREATED", when(email.created_at)],
        ["SEND AT", when(email.send_at)],
        ["PROVIDER", email.provider or "-"],
        ["ATTEMPTS", str(email.attempts)],
    ]
    if email.provider_message_id:
        rows.append(["PROVIDER MESSAGE ID", email.provider_message_id])
    if email.idempotency_key:
        rows.append(["IDEMPOTENCY KEY", email.idempotency_key])
    if email.job_id:
        rows.append(["JOB", email.job_id])
    if email.last_error:
        rows.append(["LAST ERROR", email.last_error])
    return Table(["FIELD", "VALUE"], rows, header=False)


def timeline_table(events: Sequence[TimelineEvent]) -> Table:
    rows = [
        [
            when(e.at),
            e.type,
            e.provider or "-",
            e.outcome or "-",
            "-" if e.status is None else str(e.status),
            e.recipient or "-",
            millis(e.duration_ms),
            _line(e.detail),
        ]
        for e in events
    ]
    return Table(
        ["AT", "EVENT", "PROVIDER", "OUTCOME", "STATUS", "RECIPIENT", "TOOK", "DETAIL"], rows, title="Timeline"
    )


def emails_table(emails: Sequence[EmailSummary]) -> Table:
    rows = [
        [
            e.id,
            e.status,
            when(e.created_at),
            addresses(e.to),
            _line(e.subject, 60),
            e.provider or "-",
            _line(e.last_error),
        ]
        for e in emails
    ]
    return Table(["ID", "STATUS", "CREATED", "TO", "SUBJECT", "PROVIDER", "LAST ERROR"], rows)


def preview_table(preview: PreviewResult) -> Table:
    rows = [["TEMPLATE", preview.template], ["LOCALE", preview.locale], ["SUBJECT", preview.subject]]
    return Table(["FIELD", "VALUE"], rows, header=False)


def suppressions_table(suppressions: Sequence[Suppression]) -> Table:
    rows = [[s.address, s.reason, when(s.created_at), s.provider or "-", _line(s.detail)] for s in suppressions]
    return Table(["ADDRESS", "REASON", "ADDED", "PROVIDER", "DETAIL"], rows)


# What a user, their sessions and the audit log look like in a table.


def yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def users_table(users: Sequence[User]) -> Table:
    rows = [
        [
            u.id,
            u.email,
            yes_no(u.email_verified),
            yes_no(u.disabled),
            yes_no(u.mfa_enabled),
            when(u.created_at),
            when(u.last_login_at),
        ]
        for u in users
    ]
    return Table(["ID", "EMAIL", "VERIFIED", "DISABLED", "MFA", "CREATED", "LAST LOGIN"], rows)


def user_table(user: User | UserDetail) -> Table:
    rows = [
        ["ID", user.id],
        ["EMAIL", user.email],
        ["VERIFIED", yes_no(user.email_verified)],
        ["DISABLED", yes_no(user.disabled)],
        ["PASSWORD", yes_no(user.has_password)],
        ["MFA", yes_no(user.mfa_enabled)],
        ["PASSKEYS", str(user.passkeys)],
    ]
    mfa = getattr(user, "mfa", None)
    if mfa is not None:
        rows.append(["RECOVERY CODES LEFT", str(mfa.recovery_codes_left)])
    if user.profile:
        rows.append(["PROFILE", compact(user.profile)])
    if user.metadata:
        rows.append(["METADATA", compact(user.metadata)])
    if user.app_metadata:
        rows.append(["APP METADATA", compact(user.app_metadata)])
    if user.identities:
        rows.append(["IDENTITIES", ", ".join(str(i.get("provider")) for i in user.identities)])
    rows += [["CREATED", when(user.created_at)], ["UPDATED", when(user.updated_at)]]
    rows.append(["LAST LOGIN", when(user.last_login_at)])
    return Table(["FIELD", "VALUE"], rows, header=False)


def user_sessions_table(sessions: Sequence[SessionView]) -> Table:
    rows = [
        [s.id, s.device, s.ip or "-", ",".join(s.amr), when(s.created_at), when(s.last_seen_at), when(s.expires_at)]
        for s in sessions
    ]
    return Table(["SESSION", "DEVICE", "IP", "AMR", "CREATED", "LAST SEEN", "EXPIRES"], rows, title="Sessions")


def audit_table(events: Sequence[AuditEvent]) -> Table:
    rows = [[when(e.at), e.type, e.user_id or "-", e.ip or "-", compact(e.data, 80) if e.data else "-"] for e in events]
    return Table(["AT", "TYPE", "USER", "IP", "DATA"], rows)


def tags(values: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in sorted(values.items()))


def _line(text: str | None, limit: int = 80) -> str:
    if not text:
        return "-"
    first = text.strip().splitlines()[0] if text.strip() else "-"
    return first if len(first) <= limit else first[: limit - 1] + "…"
