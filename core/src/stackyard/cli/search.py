"""`stackyard search`: the Stack's SearchIndexes — list them, search, add documents from a file
(a JSON array or NDJSON, sent in batches with a progress line), read and delete documents,
follow the tasks that apply writes, rebuild an index.

Everything needs the Stack's admin API key (--admin-key or $STACKYARD_ADMIN_KEY), except
`search`, which also takes the search-only API key ($STACKYARD_SEARCH_KEY)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .context import EXIT_API_ERROR, EXIT_USAGE, Cli, admin_key_option, cli, fail
from .output import Table, compact, emit, when

if TYPE_CHECKING:  # the SDK is imported when a command runs, so that --help and completion start fast
    from stackyard.search.contract import IndexStats, Task, TaskSummary

app = typer.Typer(
    help="Search: indexes, search, add documents from a file, tasks, rebuild.",
    no_args_is_help=True,
)
admin_key_option(app)

IndexArg = Annotated[str, typer.Argument(metavar="INDEX", help="The index (its SearchIndex's name).")]
WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the task to finish.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.", min=0)]


def _admin(ctx: typer.Context, what: str) -> Cli:
    settings = cli(ctx)
    if not settings.admin_key:
        fail(f"{what} needs the Stack's admin API key: --admin-key or $STACKYARD_ADMIN_KEY", EXIT_USAGE)
    return settings


# -- tables -------------------------------------------------------------------------------------


def indexes_table(indexes: Sequence[IndexStats]) -> Table:
    rows = [
        [i.uid, i.source, str(i.number_of_documents), str(i.version), "yes" if i.is_indexing else "no", i.primary_key]
        for i in indexes
    ]
    return Table(["INDEX", "SOURCE", "DOCUMENTS", "VERSION", "INDEXING", "PRIMARY KEY"], rows)


def index_table(index: IndexStats) -> Table:
    rows = [
        ["INDEX", index.uid],
        ["SOURCE", index.source],
        ["PRIMARY KEY", index.primary_key],
        ["DOCUMENTS", str(index.number_of_documents)],
        ["VERSION", str(index.version)],
        ["INDEXING", "yes" if index.is_indexing else "no"],
        ["FIELDS", ", ".join(f"{k}={v}" for k, v in sorted(index.field_distribution.items())) or "-"],
    ]
    return Table(["FIELD", "VALUE"], rows, header=False)


def tasks_table(tasks: Sequence[Task]) -> Table:
    rows = [
        [
            str(t.uid),
            t.index_uid,
            t.type,
            t.status,
            when(t.enqueued_at),
            "-" if t.duration_seconds is None else f"{t.duration_seconds:.2f}s",
            compact(t.details, 60) if t.details else "-",
            f"{t.error.code}: {t.error.message}" if t.error else "-",
        ]
        for t in tasks
    ]
    return Table(["UID", "INDEX", "TYPE", "STATUS", "ENQUEUED", "TOOK", "DETAILS", "ERROR"], rows)


def _finished(settings: Cli, client: Any, summary: TaskSummary, wait: bool, timeout: float) -> None:
    """Print the task (its end with --wait); exit 1 when it failed."""
    if not wait:
        emit(settings.output, summary, [Table(["FIELD", "VALUE"], _summary_rows(summary), header=False)])
        return
    task = _wait(client, summary.task_uid, timeout)
    emit(settings.output, task, [tasks_table([task])])
    if task.status != "succeeded":
        reason = f"{task.error.code}: {task.error.message}" if task.error else task.status
        fail(f"task {task.uid} {task.status}: {reason}", EXIT_API_ERROR)


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else "-" if value is None else compact(value, 60)


def _summary_rows(summary: TaskSummary) -> list[list[str]]:
    return [
        ["TASK", str(summary.task_uid)],
        ["INDEX", summary.index_uid],
        ["TYPE", summary.type],
        ["STATUS", summary.status],
    ]


def _wait(client: Any, uid: int, timeout: float) -> Task:
    from stackyard.client.search_calls import TaskWaitTimeout

    try:
        task: Task = client.search.wait_for_task(uid, timeout=timeout)
    except TaskWaitTimeout as exc:
        fail(str(exc), EXIT_API_ERROR)
    return task


# -- documents from a file ----------------------------------------------------------------------


def read_documents(path: Path) -> Iterator[dict[str, Any]]:
    """The documents of `path` (- for stdin): a JSON array (or one object), or NDJSON (one
    object per line), told apart by the first character."""
    text = sys.stdin.read() if str(path) == "-" else _read(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise typer.BadParameter(f"{path} is not JSON: {exc}", param_hint="FILE") from None
        for i, document in enumerate(parsed):
            if not isinstance(document, dict):
                raise typer.BadParameter(f"{path}: item {i} is not a JSON object", param_hint="FILE")
            yield document
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except ValueError as exc:
            raise typer.BadParameter(f"{path}: line {number} is not JSON: {exc}", param_hint="FILE") from None
        if not isinstance(document, dict):
            raise typer.BadParameter(f"{path}: line {number} is not a JSON object", param_hint="FILE")
        yield document


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint="FILE") from None


def _batches(documents: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for document in documents:
        batch.append(document)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- commands -----------------------------------------------------------------------------------


@app.command()
def indexes(ctx: typer.Context) -> None:
    """The indexes served: source, documents, version, whether indexing."""
    settings = _admin(ctx, "listing indexes")
    with settings.client() as client:
        found = client.search.indexes()
    body = {"results": [i.model_dump(mode="json", by_alias=True) for i in found]}
    emit(settings.output, body, [indexes_table(found)])


@app.command("get")
def get_index(ctx: typer.Context, index: IndexArg) -> None:
    """One index: its stats (and field distribution)."""
    settings = _admin(ctx, "reading an index")
    with settings.client() as client:
        found = client.search.index(index)
    emit(settings.output, found, [index_table(found)])


@app.command("search")
def search_(
    ctx: typer.Context,
    index: IndexArg,
    query: Annotated[str, typer.Argument(metavar="QUERY", help='The query text ("" for every document).')] = "",
    filter: Annotated[str | None, typer.Option("--filter", "-f", help="A filter expression.")] = None,
    facets: Annotated[
        list[str] | None, typer.Option("--facet", help="Count this attribute's values; repeatable.")
    ] = None,
    sort: Annotated[list[str] | None, typer.Option("--sort", help="attr:asc or attr:desc; repeatable.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, max=1000, help="Most hits.")] = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Hits to skip.")] = 0,
    fields: Annotated[list[str] | None, typer.Option("--field", help="Show only this attribute (repeatable).")] = None,
    search_key: Annotated[
        str | None,
        typer.Option(
            "--search-key", envvar="STACKYARD_SEARCH_KEY", help="The search-only API key.", show_default=False
        ),
    ] = None,
) -> None:
    """Search an index: the hits, their total, and the facet counts asked for."""
    settings = cli(ctx)
    if not settings.admin_key and not search_key:
        fail("searching needs an API key: --admin-key, --search-key, $STACKYARD_ADMIN_KEY or $STACKYARD_SEARCH_KEY", 2)
    options: dict[str, Any] = {"limit": limit, "offset": offset}
    if filter is not None:
        options["filter"] = filter
    if facets:
        options["facets"] = facets
    if sort:
        options["sort"] = sort
    if fields:
        options["attributes_to_retrieve"] = fields
    from stackyard.client import Stackyard

    with Stackyard(settings.api, admin_key=settings.admin_key, search_key=search_key) as client:
        answer = client.search.search(index, query or None, **options)
    columns = list(dict.fromkeys(key for hit in answer.hits for key in hit if not key.startswith("_")))
    rows = [
        [compact(hit.get(c), 60) if not isinstance(hit.get(c), str) else hit[c] for c in columns] for hit in answer.hits
    ]
    tables = [Table([c.upper() for c in columns] or ["HITS"], rows)]
    for attribute, counts in (answer.facet_distribution or {}).items():
        tables.append(Table(["VALUE", "COUNT"], [[v, str(n)] for v, n in counts.items()], title=f"Facet {attribute}"))
    total = answer.estimated_total_hits if answer.estimated_total_hits is not None else answer.total_hits
    emit(
        settings.output,
        answer.wire(),
        tables,
        text=f"{len(answer.hits)} of {total} hits in {answer.processing_time_ms} ms",
    )


@app.command()
def add(
    ctx: typer.Context,
    index: IndexArg,
    path: Annotated[
        Path, typer.Argument(metavar="FILE", help="A JSON array or NDJSON file of documents (- for stdin).")
    ],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000, help="Documents per request.")] = 1000,
    merge: Annotated[bool, typer.Option("--merge", help="Update the fields given; keep the others.")] = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Add (or replace) documents from a file, in batches; each batch is a task.

    A progress line per batch on stderr; with --wait (the default) every task is followed to
    its end."""
    settings = _admin(ctx, "adding documents")
    summaries: list[TaskSummary] = []
    sent = 0
    with settings.client() as client:
        for batch in _batches(read_documents(path), batch_size):
            summaries.append(client.search.add_documents(index, batch, merge=merge))
            sent += len(batch)
            sys.stderr.write(f"sent {sent} documents ({len(summaries)} batches) to {index}\n")
        if not summaries:
            fail(f"{path} holds no documents", EXIT_USAGE)
        if not wait:
            accepted = {"tasks": [s.model_dump(mode="json", by_alias=True) for s in summaries]}
            emit(
                settings.output, accepted, [Table(["TASK", "STATUS"], [[str(s.task_uid), s.status] for s in summaries])]
            )
            return
        tasks = []
        for done, summary in enumerate(summaries, 1):
            tasks.append(_wait(client, summary.task_uid, timeout))
            sys.stderr.write(f"indexed {done}/{len(summaries)} batches\n")
    body: dict[str, Any] = {"documents": sent, "tasks": [t.model_dump(mode="json", by_alias=True) for t in tasks]}
    emit(settings.output, body, [tasks_table(tasks)], text=f"{sent} documents sent to {index}")
    failed = [t for t in tasks if t.status != "succeeded"]
    if failed:
        first = failed[0]
        reason = f"{first.error.code}: {first.error.message}" if first.error else first.status
        fail(f"{len(failed)} of {len(tasks)} tasks failed; task {first.uid}: {reason}", EXIT_API_ERROR)


@app.command()
def delete(
    ctx: typer.Context,
    index: IndexArg,
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Documents to delete.")] = None,
    filter: Annotated[str | None, typer.Option("--filter", "-f", help="Delete the documents it selects.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Delete every document.")] = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Delete documents: by ids, by --filter, or --all."""
    if sum([bool(ids), filter is not None, every]) != 1:
        raise typer.BadParameter("give ids, --filter or --all (one of them)")
    settings = _admin(ctx, "deleting documents")
    with settings.client() as client:
        if every:
            summary = client.search.delete_all_documents(index)
        elif filter is not None:
            summary = client.search.delete_documents(index, filter=filter)
        else:
            summary = client.search.delete_documents(index, ids=ids)
        _finished(settings, client, summary, wait, timeout)


@app.command()
def tasks(
    ctx: typer.Context,
    index: Annotated[str | None, typer.Option("--index", "-i", help="Of this index.")] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="enqueued, processing, succeeded, failed; repeatable.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Tasks per page.")] = 20,
    start: Annotated[int | None, typer.Option("--from", help="Start at this task uid (newest first).")] = None,
) -> None:
    """Tasks (document writes and rebuilds), newest first."""
    settings = _admin(ctx, "listing tasks")
    with settings.client() as client:
        page = client.search.tasks(statuses=status or None, index_uids=index, limit=limit, from_=start)  # type: ignore[arg-type]
    emit(settings.output, page, [tasks_table(page.results)])
    if page.next is not None and settings.output.value == "table":
        sys.stderr.write(f"more: --from {page.next}\n")


@app.command()
def task(
    ctx: typer.Context,
    uid: Annotated[int, typer.Argument(metavar="UID", help="The task's uid.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for it to finish.")] = False,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """One task: status, details, error."""
    settings = _admin(ctx, "reading a task")
    with settings.client() as client:
        found = _wait(client, uid, timeout) if wait else client.search.task(uid)
    emit(settings.output, found, [tasks_table([found])])


@app.command()
def rebuild(ctx: typer.Context, index: IndexArg, wait: WaitOpt = False, timeout: TimeoutOpt = 600.0) -> None:
    """Build the next version of an index from its source, then swap it in (searches go on)."""
    settings = _admin(ctx, "rebuilding an index")
    with settings.client() as client:
        summary = client.search.rebuild(index)
        _finished(settings, client, summary, wait, timeout)
