"""`stackyard jobs`: enqueue, inspect and cancel jobs; queues and their dead letters."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from .context import EXIT_API_ERROR, EXIT_USAGE, cli, fail, interactive
from .output import Output, Table, emit, errors_table, job_state, job_table, jobs_table, queues_table

if TYPE_CHECKING:  # the SDK is imported when a command runs, so that --help and completion start fast
    from stackyard.client import DeadLetterResult, Job, JobPage, Stackyard

app = typer.Typer(
    help="Background jobs: enqueue, inspect, cancel; queues and their dead letters.", no_args_is_help=True
)
dead = typer.Typer(help="A queue's dead letters: the jobs whose every attempt failed.", no_args_is_help=True)
app.add_typer(dead, name="dead")


class HttpMethod(StrEnum):
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    GET = "GET"


def parse_json(value: str, option: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=option) from exc


def read_json_file(path: Path, option: str) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=option) from exc
    return parse_json(text, option)


def parse_time(value: str, option: str) -> datetime:
    """An ISO 8601 time; one without an offset is local time."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=option) from exc
    return parsed if parsed.tzinfo else parsed.astimezone()


def parse_header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise typer.BadParameter(f"expected 'Name: value', got {value!r}", param_hint="--http-header")
    return name.strip(), content.strip()


@app.command()
def enqueue(
    ctx: typer.Context,
    function: Annotated[
        str | None, typer.Argument(help="A function a worker registered; leave out with --http-url.")
    ] = None,
    queue: Annotated[str, typer.Option("--queue", "-q", help="The JobQueue.")] = "default",
    payload: Annotated[str | None, typer.Option(help="The payload, as JSON.")] = None,
    payload_file: Annotated[
        Path | None, typer.Option("--payload-file", help="Read the JSON payload from a file (- for stdin).")
    ] = None,
    delay: Annotated[float | None, typer.Option(help="Seconds to wait before it runs.", min=0)] = None,
    run_at: Annotated[
        str | None, typer.Option("--run-at", help="When it may run, ISO 8601 (local time without an offset).")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="0-9, higher runs first.", min=0, max=9)] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds one attempt may run.")] = None,
    max_attempts: Annotated[int | None, typer.Option("--max-attempts", help="Attempts before it is dead.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Enqueue once per key (default: a fresh one).")
    ] = None,
    http_url: Annotated[str | None, typer.Option("--http-url", help="An HTTP-target job: the URL to call.")] = None,
    http_method: Annotated[HttpMethod, typer.Option("--http-method", help="The HTTP target's method.")] = (
        HttpMethod.POST
    ),
    http_header: Annotated[
        list[str] | None, typer.Option("--http-header", help="'Name: value' for the HTTP target; repeatable.")
    ] = None,
) -> None:
    """Put a job on a queue and print it."""
    if (function is None) == (http_url is None):
        raise typer.BadParameter("give a FUNCTION or --http-url, not both and not neither")
    if payload is not None and payload_file is not None:
        raise typer.BadParameter("give --payload or --payload-file, not both")
    if delay is not None and run_at is not None:
        raise typer.BadParameter("give --delay or --run-at, not both")
    if http_url is None and (http_header or http_method is not HttpMethod.POST):
        raise typer.BadParameter("--http-method and --http-header go with --http-url")
    body = (
        parse_json(payload, "--payload")
        if payload is not None
        else read_json_file(payload_file, "--payload-file")
        if payload_file is not None
        else None
    )
    http = None
    if http_url is not None:
        headers = dict(parse_header(h) for h in http_header or [])
        http = {"url": http_url, "method": http_method.value, "headers": headers}
    options = cli(ctx)
    with options.client() as client:
        job = client.jobs.enqueue(
            function,
            http=http,
            payload=body,
            queue=queue,
            priority=priority,
            delay=delay,
            run_at=parse_time(run_at, "--run-at") if run_at else None,
            timeout=timeout,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
        )
    emit(options.output, job, [job_table(job)])


@app.command()
def get(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Show its progress until it has finished.")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds (exit 1).", min=0)
    ] = None,
    poll: Annotated[float, typer.Option(help="With --wait: seconds between reads.", min=0.05)] = 0.5,
) -> None:
    """Print a job; with --wait, once it is completed, cancelled or dead."""
    options = cli(ctx)
    with options.client() as client:
        job = wait_for(client, job_id, timeout, poll) if wait else client.jobs.get(job_id)
    emit(options.output, job, [job_table(job), *([errors_table(job)] if job.errors else [])])


def wait_for(client: Stackyard, job_id: str, timeout: float | None, poll: float) -> Job:
    """Wait for the job, telling on stderr each state it goes through (a spinner on a terminal)."""
    seen: list[str] = []

    def describe(job: Job) -> str:
        return f"{job.id}: {job_state(job)}, attempt {job.attempts}/{job.max_attempts}"

    def tell(job: Job) -> None:
        line = describe(job)
        if not seen or seen[-1] != line:
            seen.append(line)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    if not sys.stderr.isatty():
        return client.jobs.wait(job_id, timeout=timeout, poll=poll, on_update=tell)
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - typer brings rich
        return client.jobs.wait(job_id, timeout=timeout, poll=poll, on_update=tell)
    with Console(stderr=True).status(f"waiting for {job_id}") as status:
        return client.jobs.wait(
            job_id, timeout=timeout, poll=poll, on_update=lambda job: status.update(f"waiting for {describe(job)}")
        )


@app.command()
def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")]) -> None:
    """Cancel a job: a waiting one at once; a running one is asked to stop."""
    options = cli(ctx)
    with options.client() as client:
        job = client.jobs.cancel(job_id)
    emit(options.output, job, [job_table(job)])


@app.command()
def queues(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this queue.")] = None,
) -> None:
    """The queues with their depth, counters and mean wait and run times."""
    options = cli(ctx)
    with options.client() as client:
        if name is None:
            listed = client.queues.list()
            data: Any = {"items": [q.model_dump(mode="json", by_alias=True) for q in listed]}
        else:
            listed = [client.queues.get(name)]
            data = listed[0]
    emit(options.output, data, [queues_table(listed)])


@dead.command("list")
def dead_list(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    limit: Annotated[int, typer.Option(help="Dead letters per page.", min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Where the previous page ended (its nextCursor).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, not only the first.")] = False,
) -> None:
    """The queue's dead letters, newest first."""
    options = cli(ctx)
    with options.client() as client:
        if every:
            page: JobPage = client.queues.dead(queue, limit, cursor)
            while page.next_cursor:
                more = client.queues.dead(queue, limit, page.next_cursor)
                page = more.model_copy(update={"items": page.items + more.items})
        else:
            page = client.queues.dead(queue, limit, cursor)
    emit(options.output, page, [jobs_table(page.items)])
    if page.next_cursor and options.output is Output.table:
        sys.stderr.write(f"more: --cursor {page.next_cursor}, or --all\n")


@dead.command("show")
def dead_show(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID", help="The job's id.")]) -> None:
    """A dead letter with the error of each attempt."""
    options = cli(ctx)
    with options.client() as client:
        job = client.jobs.get(job_id)
    emit(options.output, job, [job_table(job), errors_table(job)])


Ids = Annotated[list[str] | None, typer.Option("--id", help="A dead letter's id; repeatable.")]
OfFunction = Annotated[str | None, typer.Option("--function", help="Every dead letter of this function.")]
Every = Annotated[bool, typer.Option("--all", help="Every dead letter of the queue (asks first).")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@dead.command("replay")
def dead_replay(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    ids: Ids = None,
    function: OfFunction = None,
    every: Every = False,
    yes: Yes = False,
) -> None:
    """Enqueue dead letters again, with their attempts reset."""
    act(ctx, "replay", queue, ids, function, every, yes)


@dead.command("purge")
def dead_purge(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue.")],
    ids: Ids = None,
    function: OfFunction = None,
    every: Every = False,
    yes: Yes = False,
) -> None:
    """Delete dead letters for good."""
    act(ctx, "purge", queue, ids, function, every, yes)


PAST = {"replay": "replayed", "purge": "purged"}


def act(
    ctx: typer.Context,
    action: Literal["replay", "purge"],
    queue: str,
    ids: list[str] | None,
    function: str | None,
    every: bool,
    yes: bool,
) -> None:
    if sum((bool(ids), function is not None, every)) != 1:
        raise typer.BadParameter("give exactly one of --id (repeatable), --function and --all")
    options = cli(ctx)
    with options.client() as client:
        if every and not yes:
            confirm(client, action, queue)
        run = client.queues.replay if action == "replay" else client.queues.purge
        result: DeadLetterResult = run(queue, ids=ids or None, function=function, all=every)
    text = f"{PAST[action]} {result.count} dead letter{'' if result.count == 1 else 's'} of queue {queue}"
    emit(options.output, result, [Table(["ID"], [[i] for i in result.ids])] if result.ids else [], text)


def confirm(client: Stackyard, action: str, queue: str) -> None:
    """Ask before acting on every dead letter; without a person to ask, refuse."""
    if not interactive():
        fail(
            f"--all would {action} every dead letter of queue {queue}; nobody can confirm "
            "(stdin is not a terminal, or CI is set): add --yes",
            EXIT_USAGE,
        )
    count = client.queues.get(queue).counts.dead
    if not typer.confirm(f"{action.capitalize()} all {count} dead letters of queue {queue}?", err=True):
        fail(f"nothing {PAST[action]}", EXIT_API_ERROR)
