"""The Database status a worker process writes (as the Stack's ServiceAccount) next to the
operator's Ready: Connected with the server's version, topology and round trip, index drift
listed under indexPolicy report and fixed under enforce after an index is dropped by hand,
Migrated from the history collection the real Migrator wrote, and Connected=False when the
Database's URI points nowhere, without its password and keeping the other conditions."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from stackyard.db.migrations import Migrator, load_directory
from stackyard_harness.process import free_port

from .conftest import stack_manifest, wait_for
from .test_jobs_resources_live import ready

pytestmark = pytest.mark.usefixtures("operator")

PASSWORD = "db-live-pass-3c2b1a"
BY_EMAIL = {"collection": "things", "name": "by_email", "keys": [{"field": "email"}], "unique": True}


def database(dbname: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Database",
        "metadata": {"name": "main"},
        "spec": {
            "stackRef": {"name": "demo"},
            "connection": {"uriSecretRef": {"name": "main-db", "key": "uri"}, "database": dbname},
            "indexes": [BY_EMAIL],
        }
        | spec,
    }


def conditions(namespace: Any) -> dict[str, dict[str, Any]]:
    obj = namespace.get("database", "main") or {}
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def condition_is(namespace: Any, type_: str, status: str, reason: str) -> dict[str, Any] | None:
    found = conditions(namespace).get(type_)
    return found if found and (found["status"], found["reason"]) == (status, reason) else None


async def migrate(uri: str, dbname: str, directory: Path, target: int) -> Any:
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    try:
        return await Migrator(client[dbname], load_directory(directory)).migrate(target)
    finally:
        await client.close()


async def test_the_worker_reports_connection_indexes_and_migrations(
    namespace: Any, backends: Any, services: Any, mongo_server: Any, tmp_path: Path
) -> None:
    dbname = f"live_{uuid.uuid4().hex[:10]}"
    scripts = tmp_path / "migrations"
    scripts.mkdir()
    (scripts / "V1__widgets.json").write_text(json.dumps({"commands": [{"create": "widgets"}]}))
    (scripts / "V2__broken.json").write_text(json.dumps({"commands": [{"noSuchCommand": 1}]}))
    result = await migrate(mongo_server.url, dbname, scripts, 2)
    assert (result.version, result.failed_version) == (1, 2)
    mongo = MongoClient(mongo_server.url, serverSelectionTimeoutMS=3000)[dbname]

    namespace.secret("main-db", uri=mongo_server.url)
    migrations = {"version": 2, "configMapRef": {"name": "main-migrations"}}
    namespace.apply([stack_manifest(), database(dbname, indexPolicy="report", migrations=migrations)])
    wait_for(lambda: ready(namespace, "database", "main"), what="Database main Ready")
    services("worker", namespace)

    connected = wait_for(lambda: condition_is(namespace, "Connected", "True", "Connected"), 30, what="Connected")
    status = namespace.get("database", "main")["status"]
    version = mongo.command("buildInfo")["version"]
    assert status["server"]["version"] == version and status["server"]["topology"] == "Single"
    assert status["server"]["roundTripMs"] >= 0 and status["server"]["checkedAt"].endswith("Z")
    assert connected["message"].startswith(f"MongoDB {version}, Single, ")
    drift = conditions(namespace)["IndexesInSync"]
    assert (drift["status"], drift["reason"]) == ("False", "Drift")
    assert drift["message"] == "missing: things.by_email; indexPolicy report: nothing changed"
    assert status["indexes"]["missing"] == ["things.by_email"] and status["indexes"]["inSync"] is False
    assert "by_email" not in {i["name"] for i in mongo["things"].list_indexes()}  # report changes nothing
    failed = conditions(namespace)["Migrated"]
    assert (failed["status"], failed["reason"]) == ("False", "Failed")
    assert failed["message"].startswith("version 2 (V2__broken.json) failed: ")
    assert failed["message"].endswith("; the database stays at 1")
    assert status["migration"] | {"error": None, "lastAppliedAt": None} == {
        "version": 1,
        "desiredVersion": 2,
        "failedVersion": 2,
        "error": None,
        "lastAppliedAt": None,
    }
    assert conditions(namespace)["Ready"]["reason"] == "InForce"  # the operator's, kept
    row = namespace.kubectl("get", "database", "main").stdout.splitlines()[1]
    assert "True" in row.split() and version in row.split()

    # enforce (a new config: checked at once) recreates the index; version 1 is what is wanted now
    namespace.apply(database(dbname, indexPolicy="enforce", migrations=migrations | {"version": 1}))
    wait_for(lambda: condition_is(namespace, "IndexesInSync", "True", "InSync"), 30, what="IndexesInSync")
    assert "by_email" in {i["name"] for i in mongo["things"].list_indexes()}
    at = wait_for(lambda: condition_is(namespace, "Migrated", "True", "AtVersion"), 30, what="Migrated")
    assert at["message"] == "at version 1"

    # dropped by hand: the next check (a config change here) puts it back
    mongo["things"].drop_index("by_email")
    namespace.apply(
        database(dbname, indexPolicy="enforce", migrations=migrations | {"version": 1}, pool={"maxPoolSize": 7})
    )
    wait_for(lambda: "by_email" in {i["name"] for i in mongo["things"].list_indexes()}, 30, what="the index recreated")

    # the URI changed to nowhere: Connected=False says why; the other conditions stay
    port = free_port()
    namespace.secret("main-db", uri=f"mongodb://app:{PASSWORD}@127.0.0.1:{port}/")
    lost = wait_for(lambda: condition_is(namespace, "Connected", "False", "Unreachable"), 60, what="Unreachable")
    assert f"127.0.0.1:{port}" in lost["message"]
    obj = namespace.get("database", "main")
    assert PASSWORD not in json.dumps(obj)
    assert {"Ready", "Connected", "IndexesInSync", "Migrated"} <= set(conditions(namespace))
