"""/v1/databases: the Databases of the Stack as this api reaches them, for operators and
back-office tools.

Every route needs `Authorization: Bearer <admin API key>`, as the admin API does: 401
admin-key for a missing or wrong key, 503 when the Stack has no admin key.

GET /v1/databases                        every Database: server, pool, index policy, migration state
GET /v1/databases/{name}                 one Database (404 for a name the config does not hold)
GET /v1/databases/{name}/migrations      its migration history, newest first

The server is reached at each request (a ping, buildInfo): what is shown is what this api
sees now, not what the worker last wrote in the resource's status.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from stackyard.db.contract import DatabaseList, DatabaseView, MigrationHistory, MigrationView, PoolView, ServerView
from stackyard.db.migrations import history, migration_state
from stackyard.db.options import DatabaseOptionsError
from stackyard.db.probe import probe
from stackyard.problems import NotConfigured, NotFound
from stackyard.resources.database import DatabaseSpec
from stackyard.runtime import Runtime

from ..auth_deps import AdminDep
from ..deps import RuntimeDep
from ..errors import problem_responses

router = APIRouter(prefix="/v1/databases", tags=["databases"])

PROBE_TIMEOUT = 5.0
"""Longest a request waits on one Database's server (they are probed at once)."""

Name = Annotated[str, Path(min_length=1, max_length=253, description="The Database resource's name.")]


def pool_view(client: AsyncMongoClient[Any]) -> PoolView:
    pool = client.options.pool_options
    return PoolView(
        max_pool_size=pool.max_pool_size,
        min_pool_size=pool.min_pool_size,
        max_idle_time_seconds=pool.max_idle_time_seconds,
        wait_queue_timeout_seconds=pool.wait_queue_timeout,
        max_connecting=pool.max_connecting,
        connect_timeout_seconds=pool.connect_timeout,
        socket_timeout_seconds=pool.socket_timeout,
    )


async def database_view(runtime: Runtime, name: str, spec: DatabaseSpec) -> DatabaseView:
    """What this api sees of Database `name`: the server reached now, the driver's pool and,
    when the server answers and spec.migrations is set, the migration state."""
    dbname = spec.connection.database
    try:
        client = database_client(runtime, name)
    except NotConfigured as exc:
        return DatabaseView(
            name=name,
            database=dbname,
            stack=_is_stack_database(runtime, name),
            server=None,
            error=f"Misconfigured: {exc.detail}",
            pool=None,
            index_policy=spec.index_policy,
            migration=None,
        )
    result = await probe(client, dbname, timeout=PROBE_TIMEOUT)
    server = migration = None
    if result.ok and result.server is not None:
        found = result.server
        server = ServerView(version=found.version, topology=found.topology, round_trip_ms=found.round_trip_ms)
        if spec.migrations is not None:
            migration = await migration_view(client[dbname], spec.migrations.version)
    return DatabaseView(
        name=name,
        database=dbname,
        stack=_is_stack_database(runtime, name),
        server=server,
        error=None if result.ok else f"{result.reason}: {result.message}",
        pool=pool_view(client),
        index_policy=spec.index_policy,
        migration=migration,
    )


def database_client(runtime: Runtime, name: str) -> AsyncMongoClient[Any]:
    """The client of Database `name`; NotConfigured (503) when its credentials or settings
    cannot make one (the message names the key or setting, never a secret)."""
    try:
        return runtime.database_client(name)
    except (DatabaseOptionsError, KeyError) as exc:
        raise NotConfigured(f"Database {name}: {exc.args[0] if exc.args else type(exc).__name__}") from None


async def migration_view(db: AsyncDatabase[Any], desired: int) -> MigrationView:
    state = await migration_state(db)
    failed_at = None
    if state.failed_version is not None:
        failed = next((r for r in await history(db) if r["version"] == state.failed_version), {})
        failed_at = failed.get("finishedAt")
    return MigrationView(
        version=state.version,
        desired_version=desired,
        failed_version=state.failed_version,
        error=state.error,
        failed_at=failed_at,
        running_version=state.running_version,
        last_applied_at=state.last_applied_at,
    )


def _is_stack_database(runtime: Runtime, name: str) -> bool:
    ref = runtime.config.config.spec.mongodb.database_ref
    return ref is not None and ref.name == name


def _spec(runtime: Runtime, name: str) -> DatabaseSpec:
    spec = runtime.config.config.databases.get(name)
    if spec is None:
        raise NotFound(f"no Database {name!r} in this Stack's config")
    return spec


@router.get(
    "",
    response_model=DatabaseList,
    response_model_by_alias=True,
    summary="Every Database of the Stack",
    description=(
        "Each Database's server as reached now (version, topology, round trip) or why it cannot be reached, "
        "its connection pool as the driver holds it, its index policy and its migration state. Sorted by name."
    ),
    responses=problem_responses(401, 503),
)
async def list_databases(_: AdminDep, runtime: RuntimeDep) -> DatabaseList:
    databases = sorted(runtime.config.config.databases.items())
    views = await asyncio.gather(*(database_view(runtime, name, spec) for name, spec in databases))
    return DatabaseList(items=list(views))


@router.get(
    "/{name}",
    response_model=DatabaseView,
    response_model_by_alias=True,
    summary="One Database",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_database(name: Name, _: AdminDep, runtime: RuntimeDep) -> DatabaseView:
    return await database_view(runtime, name, _spec(runtime, name))


@router.get(
    "/{name}/migrations",
    response_model=MigrationHistory,
    response_model_by_alias=True,
    summary="A Database's migration history",
    description="Every version run, newest first, with its outcome, duration, runner and error.",
    responses=problem_responses(401, 404, 422, 503),
)
async def migration_history(name: Name, _: AdminDep, runtime: RuntimeDep) -> MigrationHistory:
    spec = _spec(runtime, name)
    records = await history(database_client(runtime, name)[spec.connection.database])
    return MigrationHistory.model_validate({"items": records})
