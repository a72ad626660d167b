"""render() with Databases: their place in the config and credentials, the Stack's own
database by databaseRef, and what the operator makes for them (the migration Job, the
backup Schedule, the worker's backup volumes, the Schedules no longer wanted)."""

from __future__ import annotations

import json
import re

import pytest
from stackyard.config import MONGODB_URI, credential_key
from stackyard.resources.jobs import ScheduleSpec
from stackyard_operator.conditions import ConditionIntent, merge_conditions
from stackyard_operator.render import Observed, render
from test_render import BACKENDS, STACK, conditions

URI = "mongodb://app:s3cret@mongo-0:27017/?replicaSet=rs0"
SECRETS = {"backends": BACKENDS, "app-mongodb": {"uri": URI, "ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n"}}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def database(
    name: str = "main",
    generation: int = 1,
    status: dict | None = None,
    annotations: dict | None = None,
    **spec,
) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Database",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "generation": generation,
            "annotations": annotations or {},
        },
        "spec": {
            "stackRef": {"name": "demo"},
            "connection": {"uriSecretRef": {"name": "app-mongodb", "key": "uri"}, "database": "shop"},
        }
        | spec,
        "status": status or {},
    }


def stack_with_database_ref(name: str = "main") -> dict:
    return {**STACK, "spec": {**STACK["spec"], "mongodb": {"databaseRef": {"name": name}}}}


MIGRATIONS = {"version": 3, "configMapRef": {"name": "main-migrations"}}
BACKUP = {"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "volume": {"claimName": "db-backups", "subPath": "shop"}}


def objects(desired, kind: str) -> list[dict]:
    return [o for o in desired.objects if o["kind"] == kind]


def worker_pod(desired) -> dict:
    return next(o for o in desired.objects if o["metadata"]["name"] == "demo-worker")["spec"]["template"]["spec"]


def test_database_is_in_the_config_and_its_secrets_only_in_the_credentials():
    tls = {"enabled": True, "caSecretRef": {"name": "app-mongodb", "key": "ca.crt"}}
    members = [database(connection={**database()["spec"]["connection"], "tls": tls}, pool={"maxPoolSize": 20})]
    desired = render(Observed(STACK, members, SECRETS))
    assert desired.config.databases["main"].pool.max_pool_size == 20
    assert desired.credentials[credential_key("Database", "main", "uri")] == URI
    assert desired.credentials[credential_key("Database", "main", "tlsCa")].startswith("-----BEGIN CERTIFICATE-----")
    config_map = next(o for o in desired.objects if o["kind"] == "ConfigMap")
    assert "s3cret" not in json.dumps(config_map) and "BEGIN CERTIFICATE" not in json.dumps(config_map)
    ready = conditions(desired, "Database", "main")["Ready"]
    assert (ready.status, ready.reason) == ("True", "InForce")
    assert desired.stack_status.fields["members"]["Database"] == 1
    assert desired.credentials[MONGODB_URI] == BACKENDS["mongodb"], "without databaseRef the Stack's URI is as before"
    assert desired.config.stack_database is None


def test_stack_with_a_database_ref_uses_that_database_and_sets_no_mongodb_uri():
    desired = render(Observed(stack_with_database_ref(), [database()], SECRETS))
    assert conditions(desired, "Stack", "demo")["Ready"].status == "True"
    assert MONGODB_URI not in desired.credentials
    assert desired.config.stack_database is desired.config.databases["main"]
    assert desired.config.stack_database_name == "shop"


def test_stack_with_a_missing_database_ref_is_not_ready_and_the_config_in_force_stays():
    previous = render(Observed(STACK, [database()], SECRETS)).config
    other_stack = database("elsewhere")
    desired = render(Observed(stack_with_database_ref("gone"), [other_stack], SECRETS, previous_config=previous))
    assert desired.config is None and desired.objects == [] and desired.obsolete == []
    ready = conditions(desired, "Stack", "demo")["Ready"]
    assert (ready.status, ready.reason) == ("False", "DatabaseNotFound")
    assert "Database gone" in ready.message and f"config {previous.hash} stays in force" in ready.message
    assert conditions(desired, "Database", "elsewhere")["Ready"].reason == "StackNotReady"


def test_stack_with_an_invalid_database_ref_is_not_ready_and_the_database_says_why():
    desired = render(Observed(stack_with_database_ref(), [database()], {"backends": BACKENDS}))
    assert desired.config is None
    ready = conditions(desired, "Stack", "demo")["Ready"]
    assert (ready.status, ready.reason) == ("False", "DatabaseInvalid")
    assert "Secret app-mongodb not found" in ready.message and "no config is in force yet" in ready.message
    own = conditions(desired, "Database", "main")["Ready"]
    assert (own.status, own.reason, own.message) == ("False", "SecretNotFound", "Secret app-mongodb not found")


def test_migration_job_runs_the_worker_image_with_the_stacks_account_and_the_config_map():
    desired = render(Observed(STACK, [database(migrations=MIGRATIONS)], SECRETS))
    (job,) = objects(desired, "Job")
    assert DNS_LABEL.match(job["metadata"]["name"]) and job["metadata"]["name"].startswith("main-migrate-")
    assert job["metadata"]["labels"]["stackyard.dev/database"] == "main"
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Database", "main", "uid-main", True)
    assert (job["spec"]["backoffLimit"], job["spec"]["ttlSecondsAfterFinished"]) == (3, 604800)
    fail_at_once, evicted = job["spec"]["podFailurePolicy"]["rules"]
    assert (fail_at_once["action"], fail_at_once["onExitCodes"]["values"]) == ("FailJob", [1, 2])
    assert fail_at_once["onExitCodes"]["containerName"] == "migrate" and evicted["action"] == "Ignore"
    pod = job["spec"]["template"]["spec"]
    assert (pod["restartPolicy"], pod["serviceAccountName"]) == ("Never", "demo-stackyard")
    (container,) = pod["containers"]
    assert container["image"] == worker_pod(desired)["containers"][0]["image"]
    assert container["command"] == ["stackyard-migrate", "--database", "main"]
    env = {e["name"]: e for e in container["env"]}
    assert env["STACKYARD_STACK"]["value"] == "demo"
    assert env["STACKYARD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "STACKYARD_DEPLOYMENT" not in env
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["migrations"]["mountPath"] == "/etc/stackyard/migrations/main"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["migrations"]["configMap"] == {"name": "main-migrations"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and "tmp" in mounts


def test_migration_job_from_a_module_mounts_no_config_map():
    desired = render(Observed(STACK, [database(migrations={"version": 2, "module": "shop.migrations"})], SECRETS))
    (job,) = objects(desired, "Job")
    assert [v["name"] for v in job["spec"]["template"]["spec"]["volumes"]] == ["tmp"]


@pytest.mark.parametrize(
    ("status", "wanted"),
    [
        ({}, True),  # nothing reported yet
        ({"migration": {"version": 2, "desiredVersion": 3}}, True),
        ({"migration": {"version": 2, "failedVersion": 3, "error": "boom"}}, True),
        ({"migration": {"version": 3, "desiredVersion": 3}}, False),
        ({"migration": {"version": 4, "desiredVersion": 4}}, False),
    ],
)
def test_migration_job_is_wanted_while_the_reported_version_is_below_the_spec(status, wanted):
    desired = render(Observed(STACK, [database(migrations=MIGRATIONS, status=status)], SECRETS))
    assert len(objects(desired, "Job")) == (1 if wanted else 0)


def test_no_job_at_version_zero_or_without_migrations():
    for member in (database(migrations={**MIGRATIONS, "version": 0}), database()):
        assert objects(render(Observed(STACK, [member], SECRETS)), "Job") == []


def test_migration_job_name_is_stable_and_moves_with_version_generation_and_request():
    def job_name(**changes) -> str:
        member = database(**({"migrations": MIGRATIONS} | changes))
        (job,) = objects(render(Observed(STACK, [member], SECRETS)), "Job")
        return job["metadata"]["name"]

    first = job_name()
    assert job_name() == first, "the same state, the same Job: applying it again changes nothing"
    others = {
        job_name(migrations={**MIGRATIONS, "version": 4}),
        job_name(generation=2),
        job_name(annotations={"stackyard.dev/migrate-request": "2026-11-26T06:00:00Z"}),
        job_name(annotations={"stackyard.dev/migrate-request": "2026-11-26T06:05:00Z"}),
    }
    assert first not in others and len(others) == 4


def test_long_database_names_give_valid_job_and_volume_names():
    name = "a-database-with-a-name-much-longer-than-a-label-allows-" + "x" * 40
    desired = render(Observed(STACK, [database(name, migrations=MIGRATIONS, backup=BACKUP)], SECRETS))
    (job,) = objects(desired, "Job")
    assert len(job["metadata"]["name"]) <= 63 and DNS_LABEL.match(job["metadata"]["name"])
    for volume in worker_pod(desired)["volumes"]:
        assert len(volume["name"]) <= 63 and DNS_LABEL.match(volume["name"])


def test_backup_schedule_runs_the_backup_function_for_the_database():
    desired = render(Observed(STACK, [database(backup=BACKUP | {"paused": True})], SECRETS))
    (schedule,) = objects(desired, "Schedule")
    assert schedule["metadata"]["name"] == "main-backup"
    assert schedule["metadata"]["labels"]["stackyard.dev/database"] == "main"
    assert schedule["metadata"]["ownerReferences"][0]["kind"] == "Database"
    spec = ScheduleSpec.model_validate(schedule["spec"])
    assert (spec.stack_ref.name, spec.cron, spec.time_zone, spec.paused) == ("demo", "0 3 * * *", "Europe/Paris", True)
    assert spec.overlap_policy == "skip"
    assert (spec.job.queue, spec.job.function, spec.job.payload) == (
        "default",
        "stackyard.db.backup",
        {"database": "main"},
    )


def test_the_worker_mounts_each_backup_volume_and_the_api_none():
    members = [database(backup=BACKUP), database("audit", backup={**BACKUP, "volume": {"claimName": "audit-backups"}})]
    desired = render(Observed(STACK, members, SECRETS))
    pod = worker_pod(desired)
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/var/lib/stackyard/backups/main"]["subPath"] == "shop"
    assert "subPath" not in mounts["/var/lib/stackyard/backups/audit"]
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert claims == {mounts["/var/lib/stackyard/backups/main"]["name"]: "db-backups", "backup-audit": "audit-backups"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STACKYARD_BACKUP_ROOT"] == "/var/lib/stackyard/backups"
    api = next(o for o in desired.objects if o["metadata"]["name"] == "demo-api")["spec"]["template"]["spec"]
    assert [v["name"] for v in api["volumes"]] == ["tmp"]
    plain = worker_pod(render(Observed(STACK, [database()], SECRETS)))
    assert [v["name"] for v in plain["volumes"]] == ["tmp"], "no backups, no change to the worker"
    assert "STACKYARD_BACKUP_ROOT" not in {e["name"] for e in plain["containers"][0]["env"]}


def made_schedule(desired) -> dict:
    """The backup Schedule as it comes back from the API server: a member of the Stack."""
    (schedule,) = objects(desired, "Schedule")
    metadata = {**schedule["metadata"], "uid": "uid-schedule", "generation": 1}
    return {**schedule, "metadata": metadata, "status": {}}


def test_backup_schedule_once_made_is_in_force_like_any_schedule():
    first = render(Observed(STACK, [database(backup=BACKUP)], SECRETS))
    desired = render(Observed(STACK, [database(backup=BACKUP), made_schedule(first)], SECRETS))
    assert desired.config.schedules["main-backup"].job.function == "stackyard.db.backup"
    assert conditions(desired, "Schedule", "main-backup")["Ready"].reason == "InForce"
    assert desired.obsolete == []


def test_schedules_made_for_a_database_that_no_longer_wants_them_are_obsolete():
    made = made_schedule(render(Observed(STACK, [database(backup=BACKUP)], SECRETS)))
    user_schedule = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "nightly", "namespace": "shop", "uid": "uid-nightly", "generation": 1},
        "spec": {"stackRef": {"name": "demo"}, "cron": "0 1 * * *", "job": {"function": "reports.nightly"}},
    }
    for members in ([database(), made, user_schedule], [made, user_schedule]):  # backup removed; Database gone
        desired = render(Observed(STACK, members, SECRETS))
        assert [(o.kind, o.name, o.uid) for o in desired.obsolete] == [("Schedule", "main-backup", "uid-schedule")]
        assert set(desired.config.schedules) == {"nightly"}, "the obsolete one is no longer in force"
        assert ("Schedule", "main-backup") not in desired.statuses
        assert objects(desired, "Schedule") == []


def test_a_database_whose_edit_is_broken_keeps_its_backup_schedule():
    good = render(Observed(STACK, [database(backup=BACKUP)], SECRETS))
    made = made_schedule(good)
    broken = database(generation=2, backup=BACKUP, connection={"uriSecretRef": {"name": "gone", "key": "uri"}})
    desired = render(
        Observed(
            STACK,
            [broken, made],
            SECRETS,
            previous_config=good.config,
            previous_credentials=good.credentials,
            previous_credentials_revision=good.credentials_revision,
        )
    )
    assert "last good version stays in force" in conditions(desired, "Database", "main")["Ready"].message
    assert desired.obsolete == [] and [o["metadata"]["name"] for o in objects(desired, "Schedule")] == ["main-backup"]
    assert desired.credentials[credential_key("Database", "main", "uri")] == URI


def test_operator_status_writes_keep_the_conditions_the_worker_reports_on_a_database():
    existing = [
        {"type": "Ready", "status": "True", "reason": "InForce", "lastTransitionTime": "t0"},
        {"type": "Connected", "status": "True", "reason": "Connected", "lastTransitionTime": "t0"},
        {"type": "IndexesInSync", "status": "False", "reason": "Drift", "lastTransitionTime": "t0"},
        {"type": "Migrated", "status": "True", "reason": "AtVersion", "lastTransitionTime": "t0"},
    ]
    merged = merge_conditions(existing, [ConditionIntent("Ready", "False", "SecretNotFound", "x")], 2, "t1")
    assert [c["type"] for c in merged] == ["Ready", "Connected", "IndexesInSync", "Migrated"]
    assert merged[0]["lastTransitionTime"] == "t1" and merged[1] == existing[1]
