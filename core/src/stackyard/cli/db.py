"""`stackyard db`: the Stack's Databases — their status and migration history through the
api (with the admin API key), a migration run asked of the operator through the Database
resource (with your kubeconfig), and, straight against a MongoDB URI, migrations from a
directory, backups and restores.

The URI of `--local`, `backup` and `restore` is best given in $STACKYARD_MONGODB_URI (a
command line is visible to every user of the machine); it is never printed, and errors are
scrubbed of it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from .context import EXIT_API_ERROR, EXIT_UNREACHABLE, EXIT_USAGE, admin_key_option, cli, fail
from .kube import kube_client, kube_message
from .output import Table, emit, millis, when, yes_no
from .users import admin

if TYPE_CHECKING:  # the SDK and the driver are imported when a command runs, so that --help starts fast
    from pymongo.asynchronous.database import AsyncDatabase

    from stackyard.db.contract import DatabaseView, MigrationRecord

app = typer.Typer(
    help="Databases: status and migration history (api), migrations (operator or --local), backup and restore.",
    no_args_is_help=True,
)
admin_key_option(app)

MIGRATE_REQUEST = "stackyard.dev/migrate-request"
"""The annotation that asks the operator for a new migrations Job (any new value does)."""
GROUP, VERSION, PLURAL = "stackyard.dev", "v1alpha1", "databases"
URI_ENV = "STACKYARD_MONGODB_URI"

Name = Annotated[str, typer.Argument(metavar="NAME", help="The Database resource's name.")]
Uri = Annotated[
    str | None,
    typer.Option("--uri", envvar=URI_ENV, help=f"MongoDB connection string (better: ${URI_ENV}).", show_default=False),
]
DbName = Annotated[str | None, typer.Option("--db", help="The MongoDB database.")]
Collections = Annotated[
    list[str] | None, typer.Option("--collection", "-c", help="Only this collection; repeatable (default: all).")
]
Result = TypeVar("Result")


# -- through the api ------------------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="One Database; all when left out.")] = None,
) -> None:
    """The Databases as the api reaches them now: server, pool, index policy, migration state."""
    settings = admin(ctx)
    with settings.client() as client:
        if name is not None:
            view = client.databases.get(name)
            emit(settings.output, view, [database_table(view)])
            return
        views = client.databases.list()
    emit(
        settings.output, {"items": [v.model_dump(mode="json", by_alias=True) for v in views]}, [databases_table(views)]
    )


@app.command()
def history(ctx: typer.Context, name: Name) -> None:
    """The migration history of a Database, newest first."""
    settings = admin(ctx)
    with settings.client() as client:
        records = client.databases.migrations(name)
    body = {"items": [r.model_dump(mode="json", by_alias=True) for r in records]}
    emit(settings.output, body, [history_table(records)])


def databases_table(views: Sequence[DatabaseView]) -> Table:
    rows = [[v.name, v.database, yes_no(v.stack), server(v), pool(v), v.index_policy, migration(v)] for v in views]
    return Table(["NAME", "DATABASE", "STACK", "SERVER", "POOL", "INDEXES", "MIGRATION"], rows)


def database_table(view: DatabaseView) -> Table:
    rows = [
        ["NAME", view.name],
        ["DATABASE", view.database],
        ["STACK", yes_no(view.stack)],
        ["SERVER", server(view)],
        ["POOL", f"{pool(view)} connections, {view.pool.max_connecting} opened at once" if view.pool else "-"],
        ["INDEX POLICY", view.index_policy],
        ["MIGRATION", migration(view)],
    ]
    if view.migration is not None and view.migration.last_applied_at is not None:
        rows.append(["LAST APPLIED", when(view.migration.last_applied_at)])
    return Table(["FIELD", "VALUE"], rows, header=False)


def pool(view: DatabaseView) -> str:
    return f"{view.pool.min_pool_size}-{view.pool.max_pool_size}" if view.pool else "-"


def server(view: DatabaseView) -> str:
    if view.server is None:
        return view.error or "-"
    return f"{view.server.version} {view.server.topology}, {view.server.round_trip_ms:g} ms"


def migration(view: DatabaseView) -> str:
    state = view.migration
    if state is None:
        return "-"
    text = f"{state.version}/{state.desired_version}"
    if state.failed_version is not None:
        text += f", {state.failed_version} failed: {state.error or '?'}"
    return text


def history_table(records: Sequence[MigrationRecord]) -> Table:
    columns = ["VERSION", "NAME", "KIND", "STATUS", "STARTED", "TOOK", "RUNNER", "ERROR"]
    return Table(columns, [history_row(r) for r in records])


def history_row(record: MigrationRecord) -> list[str]:
    started, took = when(record.started_at), millis(record.duration_ms)
    kind, runner, error = record.kind or "-", record.runner or "-", record.error or "-"
    return [str(record.version), record.name, kind, record.status, started, took, runner, error]


# -- migrate ----------------------------------------------------------------------------------


@app.command()
def migrate(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="The Database resource (not with --local).")] = (
        None
    ),
    to: Annotated[int | None, typer.Option("--to", min=0, help="The version to reach (default: the spec's).")] = None,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait for the run.")] = 600.0,
    poll: Annotated[float, typer.Option(min=0.05, help="Seconds between two reads of the state.")] = 2.0,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="The Database's namespace (default: the kubeconfig's).")
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="Run the migrations of --dir here, against --uri.")] = False,
    uri: Uri = None,
    db: DbName = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="With --local: the V<version>__<name>.json|.py files.")
    ] = None,
    wait: Annotated[float, typer.Option(min=0, help="With --local: seconds to wait for another runner's lock.")] = (
        600.0
    ),
) -> None:
    """Bring a Database to a version: its migrations Job, asked of the operator, followed until it ends; or --local."""
    if local:
        if name is not None:
            raise typer.BadParameter("give NAME, or --local with --uri, --db and --dir, not both")
        migrate_local(ctx, required(uri, "--uri"), required(db, "--db"), required(directory, "--dir"), to, wait)
        return
    if name is None:
        raise typer.BadParameter("give the Database's NAME (or --local with --uri, --db and --dir)")
    if uri is not None or db is not None or directory is not None:
        raise typer.BadParameter("--uri, --db and --dir go with --local")
    settings = admin(ctx)
    from stackyard.client import MigrationFailed, MigrationWaitTimeout

    seen: list[str] = []

    def progress(view: DatabaseView) -> None:
        line = f"{name}: {migration(view)}" if view.migration else f"{name}: {view.error or 'no migration state yet'}"
        if not seen or seen[-1] != line:
            seen.append(line)
            sys.stderr.write(line + "\n")

    with settings.client() as client:
        before = client.databases.get(name)  # a failure it shows is not the run asked for now
        target, namespace = asyncio.run(request_migration(name, namespace, to))
        sys.stderr.write(f"{name}: asked for version {target} ({namespace}/{name}, annotation {MIGRATE_REQUEST})\n")
        try:
            view = client.databases.wait_migrated(
                name, target, since=before, timeout=timeout, poll=poll, on_update=progress
            )
        except (MigrationFailed, MigrationWaitTimeout) as exc:
            fail(str(exc), EXIT_API_ERROR)
    version = view.migration.version if view.migration else target
    emit(settings.output, view, [database_table(view)], f"{name}: at version {version}")


async def request_migration(name: str, namespace: str | None, to: int | None) -> tuple[int, str]:
    """Patch Database `name`: spec.migrations.version when `to` is given, and a fresh
    migrate-request annotation. The version to reach and the namespace."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    api_client, namespace = await kube_client(namespace)
    async with api_client:
        objects = client.CustomObjectsApi(api_client)
        where = (GROUP, VERSION, namespace, PLURAL, name)
        try:
            database = await objects.get_namespaced_custom_object(*where)
            declared = (database.get("spec") or {}).get("migrations")
            if not declared:
                fail(f"Database {namespace}/{name} declares no migrations (spec.migrations)", EXIT_USAGE)
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            patch: dict[str, Any] = {"metadata": {"annotations": {MIGRATE_REQUEST: stamp}}}
            if to is not None:
                patch["spec"] = {"migrations": {"version": to}}
            await objects.patch_namespaced_custom_object(  # type: ignore[call-arg]  # _content_type is a kwarg
                *where, patch, _content_type="application/merge-patch+json"
            )
        except ApiException as exc:
            if exc.status == 404:
                fail(f"no Database {name} in namespace {namespace}", EXIT_API_ERROR)
            fail(f"the Kubernetes API refused ({exc.status} {exc.reason}): {kube_message(exc)}", EXIT_API_ERROR)
        except OSError as exc:  # aiohttp's connection errors are OSErrors
            fail(f"cannot reach the Kubernetes API: {exc}", EXIT_UNREACHABLE)
    return (to if to is not None else int(declared["version"])), namespace


def migrate_local(ctx: typer.Context, uri: str, dbname: str, directory: Path, to: int | None, wait: float) -> None:
    from stackyard.db.migrations import MigrationError, Migrator, default_runner, load_directory

    try:
        migrations = load_directory(directory)
    except (MigrationError, OSError) as exc:
        fail(f"cannot load the migrations of {directory}: {exc}", EXIT_USAGE)
    target = to if to is not None else max((m.version for m in migrations), default=0)

    async def run(db: AsyncDatabase[Any]) -> Any:
        migrator = Migrator(db, migrations, runner=f"stackyard-cli-{default_runner()}", progress=say)
        try:
            return await migrator.migrate(target, wait=wait)
        except MigrationError as exc:  # a gap, or a target the scripts do not reach: nothing ran
            fail(str(exc), EXIT_USAGE)

    result = against(uri, dbname, run)
    body = as_json(result)
    if not result.ok:  # a script failed, or the lock could not be had or was lost
        what = f"version {result.failed_version} failed" if result.failed_version is not None else "not finished"
        emit(cli(ctx).output, body, [], f"{what}: {result.error}")
        raise typer.Exit(EXIT_API_ERROR)
    applied = ", ".join(map(str, result.applied)) or "nothing"
    emit(cli(ctx).output, body, [], f"at version {result.version} (applied: {applied})")


# -- backup and restore -----------------------------------------------------------------------


@app.command()
def backup(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="The backups' directory; each goes in a new one in it.")],
    uri: Uri = None,
    db: DbName = None,
    collections: Collections = None,
) -> None:
    """Back a database up to a directory (mongodump's layout, gzipped), with progress on stderr."""
    from stackyard.db.backup import backup as run_backup

    async def run(database: AsyncDatabase[Any]) -> Any:
        return await run_backup(database, out, collections=collections or (), progress=say)

    result = against(required(uri, "--uri"), required(db, "--db"), run)
    text = f"backup {result.name}: {result.documents} documents, {result.bytes} bytes in {result.seconds:.1f}s"
    emit(cli(ctx).output, as_json(result), [documents_table(result.collections)], f"{text}\n{result.path}")


@app.command()
def restore(
    ctx: typer.Context,
    source: Annotated[Path, typer.Option("--from", help="One backup's directory (as `backup` printed it).")],
    uri: Uri = None,
    db: DbName = None,
    drop: Annotated[bool, typer.Option("--drop", help="Empty each collection before restoring it.")] = False,
    collections: Collections = None,
) -> None:
    """Restore a backup into a database; refused for a collection that holds documents, unless --drop."""
    from stackyard.db.backup import BackupError
    from stackyard.db.backup import restore as run_restore

    async def run(database: AsyncDatabase[Any]) -> Any:
        return await run_restore(database, source, drop=drop, collections=collections or (), progress=say)

    try:
        result = against(required(uri, "--uri"), required(db, "--db"), run)
    except BackupError as exc:
        fail(str(exc), EXIT_API_ERROR)
    text = f"restored {result.documents} documents and {result.indexes} indexes in {result.seconds:.1f}s"
    emit(cli(ctx).output, as_json(result), [documents_table(result.collections)], text)


def documents_table(collections: dict[str, int]) -> Table:
    return Table(["COLLECTION", "DOCUMENTS"], [[name, str(count)] for name, count in sorted(collections.items())])


# -- shared -----------------------------------------------------------------------------------


def against(uri: str, dbname: str, work: Callable[[AsyncDatabase[Any]], Awaitable[Result]]) -> Result:
    """`work` on database `dbname` of `uri`; a driver error ends the command with its
    message scrubbed of the URI (exit 3 when the server cannot be reached, else 1)."""
    from pymongo.errors import ConnectionFailure, PyMongoError

    from stackyard.clients import mongo_client
    from stackyard.db.options import scrub

    async def run() -> Result:
        client = mongo_client(uri, "stackyard-cli")
        try:
            return await work(client[dbname])
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except ConnectionFailure as exc:
        fail(f"cannot reach MongoDB: {scrub(str(exc), uri)}", EXIT_UNREACHABLE)
    except PyMongoError as exc:
        fail(f"MongoDB refused: {scrub(str(exc), uri)}", EXIT_API_ERROR)
    except ValueError as exc:  # a malformed URI
        fail(f"bad --uri: {scrub(str(exc), uri)}", EXIT_USAGE)


def say(line: str) -> None:
    sys.stderr.write(line.rstrip("\n") + "\n")


def required(value: Result | None, option: str) -> Result:
    if value is None or value == "":
        raise typer.BadParameter("required here", param_hint=option)
    return value


def as_json(result: Any) -> dict[str, Any]:
    """A result dataclass as JSON-safe data (paths and times as text)."""
    data = asdict(result) if is_dataclass(result) and not isinstance(result, type) else dict(result)
    return {key: str(value) if isinstance(value, Path | datetime) else value for key, value in data.items()}
