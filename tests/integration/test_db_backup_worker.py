"""The job function `stackyard.db.backup` in a real worker process (`stackyard-worker`) with a
file config holding a Database and the Schedule the operator would render for it: backups
appear under STACKYARD_BACKUP_ROOT, retention keeps the last ones, the newest restores to
the same documents; a backup that cannot reach its server fails the job without showing
the password."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from stackyard.clients import mongo_client, redis_client
from stackyard.config import RuntimeConfig, credential_key
from stackyard.db.backup import list_backups, restore
from stackyard.jobs import JobClient
from stackyard.resources.database import DatabaseSpec
from stackyard.resources.jobs import JobQueueSpec, ScheduleSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.kube import KubeCluster
from stackyard_harness.process import ManagedProcess, free_port

from .test_jobs_workers import registered, until

WORKER = str(Path(sys.executable).parent / "stackyard-worker")
FUNCTION = "stackyard.db.backup"
STACK_SPEC = StackSpec.model_validate(
    {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
)
ONE_ATTEMPT = JobQueueSpec.model_validate({"stackRef": {"name": "demo"}, "retry": {"maxAttempts": 1}})
RAW = CodecOptions(document_class=RawBSONDocument)


def database_spec(dbname: str, **backup: Any) -> DatabaseSpec:
    return DatabaseSpec.model_validate(
        {
            "stackRef": {"name": "demo"},
            "connection": {"uriSecretRef": {"name": "db", "key": "uri"}, "database": dbname},
            "client": {"serverSelectionTimeout": "1s", "connectTimeout": "1s"},
            "backup": {"schedule": "@daily", "volume": {"claimName": "backups"}} | backup,
        }
    )


def backup_schedule(database: str, queue: str) -> ScheduleSpec:
    """What the operator renders for a Database's backup section, ticking every second."""
    return ScheduleSpec.model_validate(
        {
            "stackRef": {"name": "demo"},
            "interval": "1s",
            "overlapPolicy": "skip",
            "job": {"queue": queue, "function": FUNCTION, "payload": {"database": database}},
        }
    )


class BackupWorker:
    """A config directory with Databases and their backup Schedules, and one worker process."""

    def __init__(self, directory: Path, redis_url: str, mongo_url: str) -> None:
        self.directory = directory
        self.namespace = "ns"
        self.backups = directory / "backups"
        self.redis_url, self.mongo_url = redis_url, mongo_url
        self.process: ManagedProcess | None = None

    def apply(self, queue: str, databases: dict[str, tuple[DatabaseSpec, str]]) -> None:
        """`databases`: name -> (spec, its connection string)."""
        config = RuntimeConfig(
            stack="demo",
            namespace=self.namespace,
            generation=1,
            spec=STACK_SPEC,
            databases={name: spec for name, (spec, _) in databases.items()},
            job_queues={
                queue: JobQueueSpec.model_validate({"stackRef": {"name": "demo"}, "retry": {"maxAttempts": 1}})
            },
            schedules={f"{name}-backup": backup_schedule(name, queue) for name in databases},
        )
        secrets = {"stack.redis.url": self.redis_url, "stack.mongodb.uri": self.mongo_url} | {
            credential_key("Database", name, "uri"): uri for name, (_, uri) in databases.items()
        }
        (self.directory / "credentials.json").write_text(json.dumps(secrets))
        (self.directory / "config.json").write_text(config.canonical_json())

    def start(self, cluster: dict[str, str] | None = None) -> ManagedProcess:
        """Start it; `cluster` (STACKYARD_STACK and KUBECONFIG) makes it write status."""
        port = free_port()
        env = (cluster or {}) | {
            "STACKYARD_CONFIG_DIR": str(self.directory),
            "STACKYARD_BACKUP_ROOT": str(self.backups),
            "STACKYARD_PORT": str(port),
            "STACKYARD_HOST": "127.0.0.1",
        }
        env.setdefault("STACKYARD_STACK", "")
        self.process = ManagedProcess("worker", [WORKER], self.directory / "worker.log", env=env)
        self.process.start().wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 30, "ready"
        )
        return self.process

    def log(self) -> str:
        return self.process.log_path.read_text() if self.process else ""

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@pytest.fixture
def worker(tmp_path: Path, redis_server: Any, mongo_server: Any) -> Iterator[BackupWorker]:
    running = BackupWorker(tmp_path, redis_server.url, mongo_server.url)
    yield running
    running.stop()


@pytest.fixture
async def mongo(mongo_server: Any) -> AsyncIterator[Any]:
    client = mongo_client(mongo_server.url, "test-db-backup-worker")
    client.created = []
    yield client
    for name in client.created:
        await client.drop_database(name)
    await client.close()


@pytest.fixture
async def jobs(redis_server: Any) -> AsyncIterator[JobClient]:
    redis = redis_client(redis_server.url)
    yield JobClient(redis)
    await redis.aclose()


def fresh(mongo: Any) -> Any:
    name = f"bkw_{uuid.uuid4().hex[:12]}"
    mongo.created.append(name)
    return mongo[name]


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*"))


async def raw_documents(db: Any, collection: str) -> list[bytes]:
    cursor = db.get_collection(collection, codec_options=RAW).find({}, sort=[("_id", 1)])
    return [document.raw async for document in cursor]


async def test_the_worker_backs_up_a_database_on_its_schedule_and_keeps_the_last_two(
    worker: BackupWorker, mongo: Any, jobs: JobClient
) -> None:
    source = fresh(mongo)
    await source.orders.insert_many([{"_id": i, "item": f"item-{i}", "lines": [{"n": i}]} for i in range(300)])
    await source.orders.create_index("item", unique=True, name="item_unique")
    queue = f"backups-{uuid.uuid4().hex[:6]}"
    worker.apply(queue, {"appdb": (database_spec(source.name, retention={"keepLast": 2}), worker.mongo_url)})
    worker.start()
    await registered(jobs, queue, FUNCTION)

    def finished() -> list[str]:
        return re.findall(r"backup of Database appdb: backup (\S+):", worker.log())

    async def three_done() -> bool:
        return len(finished()) >= 3

    await until(three_done, 30, "three scheduled backups")
    worker.stop()  # no backup half-way while we look

    names = finished()
    listed = list_backups(worker.backups / "appdb")
    assert [info.name for info in listed] == sorted(names, reverse=True)[:2]
    assert all(info.collections == {"orders": 300} and info.database == source.name for info in listed)
    assert entries(worker.backups / "appdb") == sorted(info.name for info in listed)
    job_ids = re.findall(r"schedule appdb-backup: tick \S+ started job (\S+)\"", worker.log())
    results = [job.result for job in [await jobs.get(job_id) for job_id in job_ids] if job and job.result]
    assert sorted(result["name"] for result in results) == sorted(names)
    assert all(result["documents"] == 300 and result["collections"] == {"orders": 300} for result in results)
    assert sorted(name for result in results for name in result["pruned"]) == sorted(names)[:-2]

    target = fresh(mongo)
    restored = await restore(target, listed[0].path)
    assert restored.collections == {"orders": 300} and restored.indexes == 1
    assert await raw_documents(target, "orders") == await raw_documents(source, "orders")


async def test_a_backup_that_cannot_reach_its_server_fails_the_job_without_the_password(
    worker: BackupWorker, jobs: JobClient
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    nowhere = f"mongodb://backup:{password}@127.0.0.1:{free_port()}/?authSource=admin"
    queue = f"backups-{uuid.uuid4().hex[:6]}"
    worker.apply(queue, {"down": (database_spec("app"), nowhere)})
    worker.start()
    await registered(jobs, queue, FUNCTION)

    async def dead() -> list[Any]:
        return (await jobs.dead_page(queue)).items

    (job, *_) = await until(dead, 30, "the failed backup job in the dead letters")
    assert job.function == FUNCTION and job.last_error is not None
    assert "BackupError" in job.last_error and "ServerSelectionTimeoutError" in job.last_error
    assert password not in job.last_error
    assert "backup of Database down failed" in worker.log() and password not in worker.log()
    assert entries(worker.backups / "down") == []  # nothing half-written is left


def manifest(kind: str, name: str, spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


async def test_the_worker_records_each_backup_in_the_databases_status(
    worker: BackupWorker, mongo: Any, jobs: JobClient, cluster: KubeCluster, namespace: Any
) -> None:
    """With STACKYARD_STACK set, status.lastBackup of each Database says how its latest backup
    went: succeeded with counts, or failed with an error that holds no password."""
    source = fresh(mongo)
    await source.items.insert_many([{"_id": i} for i in range(40)])
    password = f"pw-{uuid.uuid4().hex}"
    nowhere = f"mongodb://backup:{password}@127.0.0.1:{free_port()}/?authSource=admin"
    queue = f"backups-{uuid.uuid4().hex[:6]}"
    databases = {"appdb": (database_spec(source.name), worker.mongo_url), "down": (database_spec("app"), nowhere)}
    worker.namespace = namespace.name
    worker.apply(queue, databases)
    for name, (spec, _) in databases.items():
        namespace.apply(
            [manifest("Database", name, spec), manifest("Schedule", f"{name}-backup", backup_schedule(name, queue))]
        )
    worker.start({"STACKYARD_STACK": "demo", "KUBECONFIG": str(cluster.kubeconfig)})

    def last_backup(name: str) -> dict[str, Any] | None:
        return ((namespace.get("databases.stackyard.dev", name) or {}).get("status") or {}).get("lastBackup")

    async def recorded() -> bool:
        return all(last_backup(name) for name in databases)

    await until(recorded, 30, "status.lastBackup of both Databases")
    ok, failed = last_backup("appdb"), last_backup("down")
    assert ok is not None and failed is not None
    assert (ok["outcome"], ok["documents"], ok.get("error")) == ("succeeded", 40, None)
    assert ok["bytes"] > 0 and ok["name"] in entries(worker.backups / "appdb")
    assert failed["outcome"] == "failed" and "ServerSelectionTimeoutError" in failed["error"]
    assert password not in json.dumps(failed)
