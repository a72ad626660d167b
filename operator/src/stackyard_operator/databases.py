"""What the operator makes for the Databases of a Stack, besides their place in the config.

Pure functions of the Stack, the Databases in force and their bodies (status and
annotations included), called by render():

- a migration Job while the version the worker reports (status.migration.version; absent
  counts as 0) is below spec.migrations.version. Its name hashes the Stack, the Database,
  the version, the Database's generation and the annotation `stackyard.dev/migrate-request`:
  a Job is immutable, so the same state gives the same name and applying it again changes
  nothing, and a new value of the annotation asks for a new run;
- a backup Schedule `<database>-backup` per Database with spec.backup, which the Stack's
  worker runs like any Schedule (function `stackyard.db.backup`);
- the Schedules made for Databases that are no longer wanted (backup section removed, the
  Database gone or moved to another Stack), for the reconciler to delete.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stackyard.resources import GROUP, VERSION
from stackyard.resources.database import BackupVolume, DatabaseSpec
from stackyard.resources.stack import StackSpec

from . import manifests

DATABASE_LABEL = "stackyard.dev/database"
"""On the objects made for one Database: its name."""
MIGRATE_REQUEST_ANNOTATION = "stackyard.dev/migrate-request"
"""On a Database: any new value asks for a new migration run (`stackyard db migrate` sets a timestamp)."""
BACKUP_FUNCTION = "stackyard.db.backup"
MIGRATIONS_DIR = "/etc/stackyard/migrations"
JOB_TTL_SECONDS = 7 * 24 * 3600
JOB_RETRIES = 3
"""Pods a migration Job may fail for a passing reason (stackyard-migrate exits 3: the lock
stayed taken, the server was unreachable, SIGTERM) before the Job fails. A failed script
(exit 1) or a wrong config (exit 2) fails the Job at once: running it again changes nothing
until someone fixes it and asks again (stackyard.dev/migrate-request)."""
BACKUP_TIMEOUT = "1h"
"""Time one backup run may take before the queue retries it (the queue's default is 5 minutes)."""


@dataclass(frozen=True)
class ObjectRef:
    """An object the reconciler deletes: by kind and name, only if its uid is still `uid`
    (an empty uid: whatever object has that name, for one the operator does not index)."""

    kind: str
    name: str
    uid: str


def backup_schedule_name(database: str) -> str:
    return f"{database}-backup"


def migration_job_name(stack: str, database: str, version: int, generation: int, request: str) -> str:
    digest = hashlib.sha256(f"{stack}/{database}/{version}/{generation}/{request}".encode()).hexdigest()
    return f"{database[:30]}-migrate-{digest[:10]}"


def reported_version(body: Mapping[str, Any]) -> int:
    """The version the worker last reported in the Database's status; 0 when unknown."""
    migration = (body.get("status") or {}).get("migration") or {}
    version = migration.get("version")
    return version if isinstance(version, int) else 0


def _labels(stack: str, component: str, database: str, version: str | None = None) -> dict[str, str]:
    return manifests.labels(stack, component, version) | {DATABASE_LABEL: database}


def _metadata(stack_body: dict[str, Any], database_body: dict[str, Any], name: str, component: str) -> dict[str, Any]:
    stack, database = stack_body["metadata"]["name"], database_body["metadata"]["name"]
    return {
        "name": name,
        "namespace": stack_body["metadata"]["namespace"],
        "labels": _labels(stack, component, database),
        "ownerReferences": [manifests.owner_reference(database_body)],
    }


def migration_job(
    stack_body: dict[str, Any], spec: StackSpec, database_body: dict[str, Any], db: DatabaseSpec
) -> dict[str, Any]:
    """The Job that runs `stackyard-migrate --database NAME` with the worker's image, as the
    Stack's ServiceAccount (it reads the config like the worker does); the ConfigMap of the
    migrations, if they come from one, mounted where the command looks for them."""
    assert db.migrations is not None
    stack, meta = stack_body["metadata"]["name"], database_body["metadata"]
    database = meta["name"]
    request = str((meta.get("annotations") or {}).get(MIGRATE_REQUEST_ANNOTATION, ""))
    name = migration_job_name(stack, database, db.migrations.version, int(meta.get("generation") or 0), request)
    container = manifests.runtime_container(spec, "migrate", "worker", spec.worker)
    container["command"] = ["stackyard-migrate", "--database", database]
    container["env"] = [{"name": "STACKYARD_STACK", "value": stack}, *manifests.pod_identity_env(None)]
    pod_spec = manifests.runtime_pod_spec(stack_body, spec, spec.worker, container)
    pod_spec["restartPolicy"] = "Never"
    if db.migrations.config_map_ref is not None:
        container["volumeMounts"].append(
            {"name": "migrations", "mountPath": f"{MIGRATIONS_DIR}/{database}", "readOnly": True}
        )
        pod_spec["volumes"].append({"name": "migrations", "configMap": {"name": db.migrations.config_map_ref.name}})
    metadata = _metadata(stack_body, database_body, name, "migrate")
    metadata["annotations"] = {"stackyard.dev/migration-version": str(db.migrations.version)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": JOB_RETRIES,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "migrate", "operator": "In", "values": [1, 2]},
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": {
                "metadata": {"labels": _labels(stack, "migrate", database, spec.image.tag)},
                "spec": pod_spec,
            },
        },
    }


def backup_schedule(stack_body: dict[str, Any], database_body: dict[str, Any], db: DatabaseSpec) -> dict[str, Any]:
    assert db.backup is not None
    database = database_body["metadata"]["name"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Schedule",
        "metadata": _metadata(stack_body, database_body, backup_schedule_name(database), "backup"),
        "spec": {
            "stackRef": {"name": stack_body["metadata"]["name"]},
            "cron": db.backup.schedule,
            "timeZone": db.backup.time_zone,
            "paused": db.backup.paused,
            "overlapPolicy": "skip",
            "job": {
                "queue": "default",
                "function": BACKUP_FUNCTION,
                "payload": {"database": database},
                "timeout": BACKUP_TIMEOUT,
            },
        },
    }


@dataclass(frozen=True)
class DatabaseObjects:
    objects: list[dict[str, Any]]
    """Migration Jobs and backup Schedules to apply."""
    obsolete: list[ObjectRef]
    """Schedules made for Databases that no longer want them."""
    backups: dict[str, BackupVolume]
    """Backup volumes by Database name, for the worker's Deployment."""


def render_database_objects(
    stack_body: dict[str, Any],
    spec: StackSpec,
    databases: Mapping[str, DatabaseSpec],
    members: Sequence[dict[str, Any]],
) -> DatabaseObjects:
    """`databases`: the Databases in force (by name); `members`: every member body of the
    Stack, the Schedules made earlier among them."""
    bodies = {m["metadata"]["name"]: m for m in members if m["kind"] == "Database"}
    objects: list[dict[str, Any]] = []
    backups: dict[str, BackupVolume] = {}
    for name, db in sorted(databases.items()):
        body = bodies.get(name)
        if body is None:
            continue
        if db.migrations is not None and reported_version(body) < db.migrations.version:
            objects.append(migration_job(stack_body, spec, body, db))
        if db.backup is not None:
            objects.append(backup_schedule(stack_body, body, db))
            backups[name] = db.backup.volume
    wanted = {o["metadata"]["name"] for o in objects if o["kind"] == "Schedule"}
    obsolete = [
        ObjectRef("Schedule", m["metadata"]["name"], m["metadata"].get("uid", ""))
        for m in members
        if m["kind"] == "Schedule" and is_made_for_a_database(m) and m["metadata"]["name"] not in wanted
    ]
    return DatabaseObjects(objects, obsolete, backups)


def is_made_for_a_database(body: Mapping[str, Any]) -> bool:
    labels = body["metadata"].get("labels") or {}
    return labels.get("app.kubernetes.io/managed-by") == manifests.MANAGER and DATABASE_LABEL in labels
