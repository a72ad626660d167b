"""/v1/databases through HTTP and the SDK against the real api app, real Redis and FerretDB:
each Database of the config as the api reaches it (server, the driver's pool, index policy,
migration state read from the history the migrations leave), one that cannot be reached
(its error, never its password), the migration history, 404 for an unknown name, the admin
key; the SDK's `databases` calls and its wait for a migration run.
Migrations are run here with `stackyard.db.migrations` (the part the operator's Job plays)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
from auth_http import check_operations, problem, route_labels
from stackyard.client import (
    AdminKeyMissing,
    AdminKeyRefused,
    AsyncStackyard,
    DatabaseView,
    MigrationFailed,
    MigrationWaitTimeout,
    NotFound,
    Stackyard,
)
from stackyard.config import RuntimeConfig, credential_key
from stackyard.db.migrations import Migrator, load_directory
from stackyard.resources.database import DatabaseSpec
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack

REDIS_DATABASE = 1
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
SECRET = "s3cr3t-pw-never-shown"
CREATE_WIDGETS = {"commands": [{"create": "widgets"}]}
INDEX_WIDGETS = {"commands": [{"createIndexes": "widgets", "indexes": [{"key": {"sku": 1}, "name": "sku_1"}]}]}
BROKEN = {"commands": [{"noSuchCommand": 1}]}


def with_databases(stack: AuthStack, databases: dict[str, dict[str, Any]], uris: dict[str, str]) -> None:
    """Put Databases (spec fields, camelCase, stackRef added) with their URIs in the config in
    force, as the operator renders them, and wait until the api applied it."""
    config = RuntimeConfig.model_validate_json((stack.directory / "config.json").read_text())
    stack.generation += 1
    specs = {n: DatabaseSpec.model_validate({"stackRef": {"name": "demo"}} | d) for n, d in databases.items()}
    config = config.model_copy(update={"databases": specs, "generation": stack.generation})
    stack.set_credentials(**{credential_key("Database", n, "uri"): uri for n, uri in uris.items()})
    (stack.directory / "config.json").write_text(config.canonical_json())
    stack.wait_applied()


def app_database(dbname: str, version: int = 2, **fields: Any) -> dict[str, Any]:
    connection = {"uriSecretRef": {"name": "db", "key": "uri"}, "database": dbname}
    migrations = {"version": version, "configMapRef": {"name": "app-migrations"}}
    return {"connection": connection, "migrations": migrations} | fields


def write_migrations(directory: Path, scripts: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, body in scripts.items():
        (directory / name).write_text(json.dumps(body))
    return directory


def migrate(mongo_url: str, dbname: str, directory: Path, target: int) -> Any:
    """What the migrations Job does: run the scripts of `directory` up to `target`."""

    async def run() -> Any:
        client: pymongo.AsyncMongoClient[Any] = pymongo.AsyncMongoClient(mongo_url, tz_aware=True)
        try:
            return await Migrator(client[dbname], load_directory(directory), runner="test").migrate(target, wait=10)
        finally:
            await client.close()

    return asyncio.run(run())


@pytest.fixture
def dbname(auth: AuthStack) -> Iterator[str]:
    name = f"{auth.database}_app"
    yield name
    with pymongo.MongoClient(auth.mongo_url) as client:
        client.drop_database(name)


@pytest.fixture
def app(auth: AuthStack, dbname: str) -> AuthStack:
    """The config holds Database `app` (pool 1-7, report policy, migrations up to 2) and
    `gone`, whose server does not answer."""
    gone = {
        "connection": {"uriSecretRef": {"name": "db", "key": "gone"}, "database": "gone"},
        "client": {"serverSelectionTimeout": "300ms", "connectTimeout": "300ms"},
    }
    app = app_database(dbname, pool={"maxPoolSize": 7, "minPoolSize": 1}, indexPolicy="report")
    uris = {"app": auth.mongo_url, "gone": f"mongodb://stackyard:{SECRET}@127.0.0.1:9/gone?authSource=admin"}
    with_databases(auth, {"app": app, "gone": gone}, uris)
    return auth


def test_every_database_with_its_server_pool_and_migration_state(app: AuthStack, http: httpx.Client, tmp_path: Path):
    migrate(
        app.mongo_url, f"{app.database}_app", write_migrations(tmp_path / "m", {"V1__widgets.json": CREATE_WIDGETS}), 1
    )
    answer = http.get("/v1/databases", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    items = {item["name"]: item for item in answer.json()["items"]}
    assert list(items) == ["app", "gone"], "sorted by name"
    found = items["app"]
    assert found["database"] == f"{app.database}_app" and found["stack"] is False
    assert found["server"]["topology"] == "Single" and found["server"]["version"]
    assert found["server"]["roundTripMs"] >= 0 and found["error"] is None
    assert (found["pool"]["maxPoolSize"], found["pool"]["minPoolSize"]) == (7, 1), "as the driver holds it"
    assert found["indexPolicy"] == "report"
    migration = found["migration"]
    assert (migration["version"], migration["desiredVersion"], migration["failedVersion"]) == (1, 2, None)
    assert migration["lastAppliedAt"]
    assert http.get("/v1/databases/app", headers=ADMIN).json() | {"server": None} == found | {"server": None}


def test_a_database_that_cannot_be_reached_says_why_without_its_password(app: AuthStack, http: httpx.Client):
    answer = http.get("/v1/databases/gone", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    gone = answer.json()
    assert gone["server"] is None and gone["migration"] is None
    assert gone["error"].split(":")[0] in ("Unreachable", "Timeout"), gone["error"]
    assert SECRET not in answer.text and "stackyard:" not in answer.text
    assert SECRET not in http.get("/v1/databases", headers=ADMIN).text


def test_the_history_of_an_unreachable_database_is_a_503_problem(app: AuthStack, http: httpx.Client):
    answer = http.get("/v1/databases/gone/migrations", headers=ADMIN)
    problem(answer, 503, "database-unavailable")
    assert answer.headers["retry-after"] and SECRET not in answer.text


def test_a_database_without_its_credential_says_so(app: AuthStack, http: httpx.Client, dbname: str):
    with_databases(app, {"app": app_database(dbname), "nouri": app_database("nouri")}, {"app": app.mongo_url})
    nouri = http.get("/v1/databases", headers=ADMIN).json()["items"][1]
    assert (nouri["name"], nouri["server"], nouri["pool"], nouri["migration"]) == ("nouri", None, None, None)
    assert (
        nouri["error"]
        == "Misconfigured: Database nouri: credential 'database.nouri.uri' is not in the Stack's credentials Secret"
    )
    body = problem(http.get("/v1/databases/nouri/migrations", headers=ADMIN), 503, "not-configured")
    assert "database.nouri.uri" in body["detail"]


def test_the_history_lists_each_run_newest_first_with_a_failure_and_its_error(
    app: AuthStack, http: httpx.Client, tmp_path: Path
):
    scripts = {"V1__widgets.json": CREATE_WIDGETS, "V2__sku.json": INDEX_WIDGETS, "V3__broken.json": BROKEN}
    result = migrate(app.mongo_url, f"{app.database}_app", write_migrations(tmp_path / "m", scripts), 3)
    assert (result.version, result.failed_version) == (2, 3)
    records = http.get("/v1/databases/app/migrations", headers=ADMIN).json()["items"]
    assert [(r["version"], r["name"], r["status"]) for r in records] == [
        (3, "broken", "failed"),
        (2, "sku", "applied"),
        (1, "widgets", "applied"),
    ]
    assert records[0]["error"] and records[1]["error"] is None and records[1]["kind"] == "json"
    migration = http.get("/v1/databases/app", headers=ADMIN).json()["migration"]
    assert (migration["version"], migration["failedVersion"]) == (2, 3)
    assert migration["error"] == records[0]["error"]
    assert datetime.fromisoformat(migration["failedAt"]) == datetime.fromisoformat(records[0]["finishedAt"])


def test_an_unknown_database_is_a_404_problem(app: AuthStack, http: httpx.Client):
    for path in ("/v1/databases/nope", "/v1/databases/nope/migrations"):
        body = problem(http.get(path, headers=ADMIN), 404, "not-found")
        assert "nope" in body["detail"]


def test_the_routes_need_the_admin_key(app: AuthStack, http: httpx.Client):
    for path in ("/v1/databases", "/v1/databases/app", "/v1/databases/app/migrations"):
        for headers in ({}, {"Authorization": "Bearer not-the-key"}):
            problem(http.get(path, headers=headers), 401, "admin-key")


def test_the_stack_database_is_flagged(auth: AuthStack, http: httpx.Client, dbname: str):
    config = RuntimeConfig.model_validate_json((auth.directory / "config.json").read_text())
    mongodb = {"databaseRef": {"name": "app"}}
    spec = config.spec.model_copy(update={"mongodb": type(config.spec.mongodb).model_validate(mongodb)})
    (auth.directory / "config.json").write_text(config.model_copy(update={"spec": spec}).canonical_json())
    with_databases(auth, {"app": app_database(dbname)}, {"app": auth.mongo_url})
    assert http.get("/v1/databases/app", headers=ADMIN).json()["stack"] is True


def test_the_routes_answer_what_their_openapi_says(app: AuthStack):
    """schemathesis over routers/databases.py (valid and invalid requests, with the admin
    key unless the case brings its own header): never a server error, always a declared
    answer, the unreachable Database's included."""
    from stackyard_api.routers import databases

    check_operations(app.url, r"^/v1/databases", route_labels(databases.router), lambda case: ADMIN)


# -- the SDK ----------------------------------------------------------------------------------


def test_the_sdk_reads_databases_and_their_history(app: AuthStack, tmp_path: Path):
    migrate(
        app.mongo_url, f"{app.database}_app", write_migrations(tmp_path / "m", {"V1__widgets.json": CREATE_WIDGETS}), 1
    )
    with Stackyard(app.url, admin_key=ADMIN_API_KEY) as stackyard:
        assert [d.name for d in stackyard.databases.list()] == ["app", "gone"]
        found = stackyard.databases.get("app")
        assert found.migration is not None and found.migration.version == 1
        assert found.pool is not None and found.pool.max_pool_size == 7 and found.server is not None
        assert [(r.version, r.status) for r in stackyard.databases.migrations("app")] == [(1, "applied")]
        with pytest.raises(NotFound):
            stackyard.databases.get("nope")
    with Stackyard(app.url, admin_key="wrong") as stackyard, pytest.raises(AdminKeyRefused):
        stackyard.databases.list()
    with Stackyard(app.url) as stackyard, pytest.raises(AdminKeyMissing):
        stackyard.databases.list()

    async def read() -> tuple[list[str], DatabaseView]:
        async with AsyncStackyard(app.url, admin_key=ADMIN_API_KEY) as stackyard:
            names = [d.name for d in await stackyard.databases.list()]
            return names, await stackyard.databases.get("gone")

    names, gone = asyncio.run(read())
    assert names == ["app", "gone"] and gone.server is None and gone.error


def test_wait_migrated_follows_a_run_to_its_version(app: AuthStack, tmp_path: Path):
    directory = write_migrations(tmp_path / "m", {"V1__widgets.json": CREATE_WIDGETS, "V2__sku.json": INDEX_WIDGETS})
    seen: list[int | None] = []

    def run_the_job(view: DatabaseView) -> None:
        seen.append(view.migration.version if view.migration else None)
        if len(seen) == 1:
            migrate(app.mongo_url, view.database, directory, 2)

    with Stackyard(app.url, admin_key=ADMIN_API_KEY) as stackyard:
        reached = stackyard.databases.wait_migrated("app", timeout=20, poll=0.05, on_update=run_the_job)
    assert reached.migration is not None and reached.migration.version == 2
    assert seen == [0, 2]


def test_wait_migrated_raises_on_a_new_failure_but_not_on_an_earlier_one(app: AuthStack, tmp_path: Path):
    directory = write_migrations(tmp_path / "m", {"V1__widgets.json": CREATE_WIDGETS, "V2__broken.json": BROKEN})
    dbname = f"{app.database}_app"
    assert migrate(app.mongo_url, dbname, directory, 2).failed_version == 2
    with Stackyard(app.url, admin_key=ADMIN_API_KEY) as stackyard:
        with pytest.raises(MigrationWaitTimeout, match="did not reach version 2"):
            stackyard.databases.wait_migrated("app", timeout=0.5, poll=0.05)

        def run_again(view: DatabaseView) -> None:
            migrate(app.mongo_url, dbname, directory, 2)

        with pytest.raises(MigrationFailed, match="version 2 failed") as failed:
            stackyard.databases.wait_migrated("app", timeout=20, poll=0.05, on_update=run_again)
    assert failed.value.database.migration is not None and failed.value.database.migration.version == 1
