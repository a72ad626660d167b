"""`stackyard db`, run as a process: status and history through the real api app (real Redis
and FerretDB, a config holding a Database), `migrate NAME` patching the Database resource on
the real kube-apiserver and following the run through the api (the test plays the operator's
and the migrations Job's parts: it renders the new version into the config and runs
`stackyard.db.migrations`), `migrate --local`, and backup then restore against FerretDB.
Exit codes: 0 done, 1 failed (or timed out), 2 usage, 3 unreachable."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
import yaml
from stackyard.config import RuntimeConfig, credential_key
from stackyard.db.migrations import Migrator, load_directory
from stackyard.resources.database import DatabaseSpec
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack, flushed_redis_url
from stackyard_harness.kube import KubeCluster
from stackyard_harness.programs import install_crds
from stackyard_harness.smtp import SmtpSink

STACKYARD = Path(sys.executable).with_name("stackyard")
REDIS_DATABASE = 2
SECRET = "s3cr3t-pw-never-shown"
SCRIPTS = {
    "V1__widgets.json": {"commands": [{"create": "widgets"}]},
    "V2__sku.json": {"commands": [{"createIndexes": "widgets", "indexes": [{"key": {"sku": 1}, "name": "sku_1"}]}]},
}
BROKEN = {"commands": [{"noSuchCommand": 1}]}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, mongo_server: Any) -> Iterator[AuthStack]:
    if not STACKYARD.exists():
        pytest.fail(f"no {STACKYARD.name} console script next to {sys.executable}: install core (make install)")
    with SmtpSink() as sink:
        redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
        stack = AuthStack(tmp_path_factory.mktemp("cli-db"), redis_url, mongo_server.url, sink, run_worker=False)
        yield from stack.serve()


@pytest.fixture(scope="module")
def namespace(kube: KubeCluster) -> Iterator[str]:
    install_crds(kube)
    name = f"cli-db-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def stack(running: AuthStack) -> Iterator[AuthStack]:
    """A fresh database for the Stack, and the Database `app` (migrations up to 1) in the config."""
    running.configure()
    set_version(running, 1)
    yield running
    with pymongo.MongoClient(running.mongo_url) as client:
        client.drop_database(dbname(running))


def dbname(stack: AuthStack) -> str:
    return f"{stack.database}_app"


def set_version(stack: AuthStack, version: int) -> None:
    """Render Database `app` with spec.migrations.version `version` into the config, as the
    operator would, and wait until the api applied it."""
    spec = {
        "stackRef": {"name": "demo"},
        "connection": {"uriSecretRef": {"name": "db", "key": "uri"}, "database": dbname(stack)},
        "migrations": {"version": version, "configMapRef": {"name": "app-migrations"}},
    }
    config = RuntimeConfig.model_validate_json((stack.directory / "config.json").read_text())
    stack.generation += 1
    update = {"databases": {"app": DatabaseSpec.model_validate(spec)}, "generation": stack.generation}
    stack.set_credentials(**{credential_key("Database", "app", "uri"): stack.mongo_url})
    (stack.directory / "config.json").write_text(config.model_copy(update=update).canonical_json())
    stack.wait_applied()


@pytest.fixture
def database(kube: KubeCluster, namespace: str, stack: AuthStack) -> Iterator[str]:
    """The Database resource `app` on the API server (no operator runs: the test plays it)."""
    resource = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Database",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {
            "stackRef": {"name": "demo"},
            "connection": {"uriSecretRef": {"name": "db", "key": "uri"}, "database": dbname(stack)},
            "migrations": {"version": 1, "configMapRef": {"name": "app-migrations"}},
        },
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(resource))
    yield "app"
    kube.kubectl("delete", "databases.stackyard.dev", "app", "-n", namespace, "--ignore-not-found")


def scripts(directory: Path, extra: dict[str, Any] | None = None) -> Path:
    """SCRIPTS in `directory`, with `extra` (one of the same version replaces its script)."""
    directory.mkdir(exist_ok=True)
    replaced = {name.partition("__")[0] for name in extra or {}}
    chosen = {n: body for n, body in SCRIPTS.items() if n.partition("__")[0] not in replaced} | (extra or {})
    for name, body in chosen.items():
        (directory / name).write_text(json.dumps(body))
    return directory


def migrate(stack: AuthStack, directory: Path, target: int) -> Any:
    """What the operator's migrations Job does."""

    async def run() -> Any:
        client: pymongo.AsyncMongoClient[Any] = pymongo.AsyncMongoClient(stack.mongo_url, tz_aware=True)
        try:
            return await Migrator(client[dbname(stack)], load_directory(directory), runner="job").migrate(target)
        finally:
            await client.close()

    return asyncio.run(run())


def env(stack: AuthStack | None = None, kube: KubeCluster | None = None, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_") and k != "KUBECONFIG"}
    if stack is not None:
        base |= {"STACKYARD_API_URL": stack.url, "STACKYARD_ADMIN_KEY": ADMIN_API_KEY}
    if kube is not None:
        base["KUBECONFIG"] = str(kube.kubeconfig)
    return base | extra


def run(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STACKYARD), *args], capture_output=True, text=True, env=environment, timeout=120, stdin=subprocess.DEVNULL
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- status and history -----------------------------------------------------------------------


def test_status_prints_each_database_as_a_table_json_and_yaml(stack: AuthStack, tmp_path: Path):
    migrate(stack, scripts(tmp_path / "m"), 1)
    header, *rows = ok(run("db", "status", environment=env(stack))).splitlines()
    assert header.split() == ["NAME", "DATABASE", "STACK", "SERVER", "POOL", "INDEXES", "MIGRATION"]
    assert len(rows) == 1 and rows[0].split()[:3] == ["app", dbname(stack), "no"]
    assert rows[0].split()[-2:] == ["enforce", "1/1"]
    listed = json.loads(ok(run("-o", "json", "db", "status", environment=env(stack))))
    assert [d["name"] for d in listed["items"]] == ["app"]
    one = yaml.safe_load(ok(run("-o", "yaml", "db", "status", "app", environment=env(stack))))
    assert one["migration"]["version"] == 1 and one["server"]["topology"] == "Single"
    assert one["pool"]["maxPoolSize"] == 100


def test_history_lists_the_runs_newest_first(stack: AuthStack, tmp_path: Path):
    migrate(stack, scripts(tmp_path / "m", {"V3__broken.json": BROKEN}), 3)
    header, *rows = ok(run("db", "history", "app", environment=env(stack))).splitlines()
    assert header.split()[:4] == ["VERSION", "NAME", "KIND", "STATUS"]
    assert [row.split()[:4] for row in rows] == [
        ["3", "broken", "json", "failed"],
        ["2", "sku", "json", "applied"],
        ["1", "widgets", "json", "applied"],
    ]
    items = json.loads(ok(run("-o", "json", "db", "history", "app", environment=env(stack))))["items"]
    assert items[0]["error"] and items[0]["runner"] == "job"


def test_status_of_an_unknown_database_and_without_the_admin_key(stack: AuthStack):
    unknown = run("db", "status", "nope", environment=env(stack))
    assert unknown.returncode == 1 and "nope" in unknown.stderr
    keyless = run("db", "status", environment=env(stack) | {"STACKYARD_ADMIN_KEY": ""})
    assert keyless.returncode == 2 and "admin API key" in keyless.stderr


# -- migrate NAME -----------------------------------------------------------------------------


def start_migrate(stack: AuthStack, kube: KubeCluster, namespace: str, *args: str) -> subprocess.Popen[str]:
    command = [str(STACKYARD), "db", "migrate", "app", "-n", namespace, "--poll", "0.1", *args]
    environment = env(stack, kube)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def requested(
    kube: KubeCluster, namespace: str, process: subprocess.Popen[str] | None = None, before: str | None = None
) -> dict[str, Any]:
    """The Database once it carries a migrate request other than `before` (the CLI's
    `process` must still be running by then)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the CLI ended ({process.returncode}): {process.communicate()}")
        found: dict[str, Any] = kube.kubectl_json(
            "get", "databases.stackyard.dev", "app", "-n", namespace, "-o", "json"
        )
        stamp = found["metadata"].get("annotations", {}).get("stackyard.dev/migrate-request")
        if stamp and stamp != before:
            return found
        time.sleep(0.1)
    raise AssertionError("the CLI did not annotate the Database")


def progress_until(process: subprocess.Popen[str], line: str) -> list[str]:
    """The CLI's progress lines up to `line`, read as it writes them."""
    assert process.stderr is not None
    lines: list[str] = []
    while not lines or lines[-1] != line:
        read = process.stderr.readline()
        assert read, f"the CLI ended before {line!r}: {lines}"
        lines.append(read.rstrip("\n"))
    return lines


def test_migrate_asks_for_the_version_and_follows_the_run_until_it_is_reached(
    stack: AuthStack, kube: KubeCluster, namespace: str, database: str, tmp_path: Path
):
    migrate(stack, scripts(tmp_path / "m"), 1)
    process = start_migrate(stack, kube, namespace, "--to", "2", "--timeout", "60")
    found = requested(kube, namespace, process)
    assert found["spec"]["migrations"] == {"version": 2, "configMapRef": {"name": "app-migrations"}, "lockLease": "60s"}
    asked = f"app: asked for version 2 ({namespace}/app, annotation stackyard.dev/migrate-request)"
    assert progress_until(process, "app: 1/1") == [asked, "app: 1/1"]
    set_version(stack, 2)  # the operator renders the new version into the config...
    assert progress_until(process, "app: 1/2") == ["app: 1/2"], "a line for each change"
    migrate(stack, tmp_path / "m", 2)  # ...and its Job runs
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert err.splitlines() == ["app: 2/2"]
    assert out.splitlines()[0] == "app: at version 2"


def test_migrate_without_to_asks_again_for_the_spec_version(
    stack: AuthStack, kube: KubeCluster, namespace: str, database: str, tmp_path: Path
):
    process = start_migrate(stack, kube, namespace, "--timeout", "60")
    first = requested(kube, namespace, process)
    requested_stamp = first["metadata"]["annotations"]["stackyard.dev/migrate-request"]
    assert first["spec"]["migrations"]["version"] == 1, "unchanged without --to"
    migrate(stack, scripts(tmp_path / "m"), 1)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    again = run("db", "migrate", "app", "-n", namespace, environment=env(stack, kube))
    assert again.returncode == 0 and again.stdout.startswith("app: at version 1"), again.stderr
    assert requested(kube, namespace, before=requested_stamp), "a new request each time"


def test_migrate_ends_with_the_error_of_a_failed_version(
    stack: AuthStack, kube: KubeCluster, namespace: str, database: str, tmp_path: Path
):
    directory = scripts(tmp_path / "m", {"V2__broken.json": BROKEN})
    migrate(stack, directory, 1)
    process = start_migrate(stack, kube, namespace, "--to", "2", "--timeout", "60")
    requested(kube, namespace, process)
    assert migrate(stack, directory, 2).failed_version == 2
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert "error: Database app: version 2 failed:" in err and "the database stays at 1" in err
    timed_out = run(
        "db", "migrate", "app", "-n", namespace, "--to", "2", "--timeout", "1", environment=env(stack, kube)
    )
    assert timed_out.returncode == 1, "an earlier failure is not this run's"
    assert "did not reach version 2 within 1 s; it is at 1" in timed_out.stderr


def test_migrate_refuses_what_it_cannot_ask(stack: AuthStack, kube: KubeCluster, namespace: str, database: str):
    unknown = run("db", "migrate", "other", "-n", namespace, environment=env(stack, kube))
    assert unknown.returncode == 1 and "no Database 'other' in this Stack's config" in unknown.stderr
    elsewhere = run("db", "migrate", "app", "-n", "default", environment=env(stack, kube))
    assert elsewhere.returncode == 1 and "no Database app in namespace default" in elsewhere.stderr
    kube.kubectl(
        "patch",
        "databases.stackyard.dev",
        "app",
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/spec/migrations"}]',
    )
    bare = run("db", "migrate", "app", "-n", namespace, environment=env(stack, kube))
    assert bare.returncode == 2 and "declares no migrations" in bare.stderr
    for wrong in (["migrate"], ["migrate", "app", "--uri", "mongodb://x"], ["migrate", "app", "--local"]):
        assert run("db", *wrong, environment=env(stack, kube)).returncode == 2, wrong


# -- against a URI ----------------------------------------------------------------------------


def test_local_migrate_runs_a_directory_once(stack: AuthStack, tmp_path: Path):
    directory = scripts(tmp_path / "m")
    local = ["db", "migrate", "--local", "--db", dbname(stack), "--dir", str(directory)]
    environment = env(STACKYARD_MONGODB_URI=stack.mongo_url)
    result = run("-o", "json", *local, environment=environment)
    assert json.loads(ok(result))["applied"] == [1, 2]
    assert ok(run(*local, environment=environment)).startswith("at version 2 (applied: nothing)")
    (directory / "V3__broken.json").write_text(json.dumps(BROKEN))
    failed = run(*local, environment=environment)
    assert failed.returncode == 1 and failed.stdout.startswith("version 3 failed:"), failed.stderr
    with pymongo.MongoClient(stack.mongo_url) as client:
        assert "sku_1" in client[dbname(stack)]["widgets"].index_information()
        runners = {record["runner"] for record in client[dbname(stack)]["_stackyard_migrations"].find()}
    assert all(runner.startswith("stackyard-cli-") and len(runner) > len("stackyard-cli-") for runner in runners)
    beyond = run(*local, "--to", "9", environment=environment)
    assert beyond.returncode == 2 and "error: " in beyond.stderr and "Traceback" not in beyond.stderr, beyond.stderr


def test_backup_then_restore_into_another_database(stack: AuthStack, tmp_path: Path):
    source, target = dbname(stack), f"{stack.database}_copy"
    with pymongo.MongoClient(stack.mongo_url) as client:
        client[source]["widgets"].insert_many([{"_id": i, "sku": f"w-{i}"} for i in range(50)])
        client[source]["widgets"].create_index("sku", unique=True)
        environment = env(STACKYARD_MONGODB_URI=stack.mongo_url)
        backup = run(
            "-o", "json", "db", "backup", "--db", source, "--out", str(tmp_path / "b"), environment=environment
        )
        made = json.loads(ok(backup))
        assert made["documents"] == 50 and made["collections"] == {"widgets": 50}
        restore = ["db", "restore", "--db", target, "--from", made["path"]]
        assert ok(run(*restore, environment=environment)).startswith("restored 50 documents")
        assert list(client[target]["widgets"].find(sort=[("_id", 1)])) == list(
            client[source]["widgets"].find(sort=[("_id", 1)])
        )
        assert "sku_1" in client[target]["widgets"].index_information()
        refused = run(*restore, environment=environment)
        assert refused.returncode == 1 and "widgets" in refused.stderr
        ok(run(*restore, "--drop", environment=environment))
        assert client[target]["widgets"].count_documents({}) == 50
        client.drop_database(target)


def test_an_unreachable_server_fails_without_showing_the_password(tmp_path: Path):
    uri = f"mongodb://app:{SECRET}@127.0.0.1:9/app?serverSelectionTimeoutMS=300"
    result = run("db", "backup", "--db", "app", "--out", str(tmp_path), environment=env(STACKYARD_MONGODB_URI=uri))
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("error: cannot reach MongoDB") and SECRET not in result.stderr + result.stdout
    missing = run("db", "backup", "--db", "app", "--out", str(tmp_path), environment=env())
    assert missing.returncode == 2 and "--uri" in missing.stderr
