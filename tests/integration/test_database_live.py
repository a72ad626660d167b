"""Databases applied with kubectl and reconciled by the operator process: the API server
refuses what a CEL rule can say, a Database is Ready and in the Stack's config with its URI
only in the credentials, a Stack's databaseRef must name a Database of the Stack (else the
config in force stays), raising spec.migrations.version (or the migrate-request
annotation) makes a migration Job, and a backup section makes a Schedule that goes with it."""

from __future__ import annotations

import base64
import json

import pytest
from stackyard_harness.programs import service_account_kubeconfig

from .conftest import stack_manifest, wait_for
from .test_jobs_resources_live import EXAMPLES, config, ready

pytestmark = pytest.mark.usefixtures("operator")

BACKUP = {"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "volume": {"claimName": "db-backups", "subPath": "main"}}


def database(name: str = "main", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Database",
        "metadata": {"name": name},
        "spec": {
            "stackRef": {"name": "demo"},
            "connection": {"uriSecretRef": {"name": "backends", "key": "mongodb"}, "database": "shop"},
        }
        | spec,
    }


def credentials(namespace):
    data = namespace.get("secret", "demo-credentials")["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def migration_jobs(namespace, database="main"):
    out = namespace.kubectl("get", "jobs", "-l", f"stackyard.dev/database={database}", "-o", "json").stdout
    return {job["metadata"]["name"]: job for job in json.loads(out)["items"]}


def test_database_is_ready_and_in_the_config_with_its_uri_only_in_the_credentials(namespace, backends, mongo_server):
    namespace.apply(
        [
            stack_manifest(),
            database(
                pool={"maxPoolSize": 20, "minPoolSize": 2},
                indexes=[{"collection": "carts", "keys": [{"field": "updatedAt"}], "expireAfter": "72h"}],
            ),
        ]
    )
    obj = wait_for(lambda: ready(namespace, "database", "main"), what="Database main Ready")
    assert obj["status"]["conditions"][0]["reason"] == "InForce"
    applied = config(namespace)
    assert applied["databases"]["main"]["pool"]["maxPoolSize"] == 20
    assert applied["databases"]["main"]["indexes"][0]["expireAfter"] == "72h"
    assert credentials(namespace)["database.main.uri"] == mongo_server.url
    assert mongo_server.url not in json.dumps(namespace.get("configmap", "demo-config"))
    members = wait_for(
        lambda: (m := (namespace.get("stack", "demo") or {}).get("status", {}).get("members")) and m["Database"] and m,
        what="the Stack's member counts",
    )
    assert members["Database"] == 1
    listing = namespace.kubectl("get", "databases").stdout.splitlines()
    assert listing[0].split()[:4] == ["NAME", "DATABASE", "CONNECTED", "SERVER"]
    assert listing[1].split()[:2] == ["main", "shop"]


def test_the_api_server_rejects_what_the_cel_rules_say(namespace):
    rejected = {
        "minPoolSize must not exceed maxPoolSize": database(pool={"maxPoolSize": 5, "minPoolSize": 10}),
        "a TTL index (expireAfter) has exactly one key": database(
            indexes=[{"collection": "carts", "keys": [{"field": "a"}, {"field": "b"}], "expireAfter": "1h"}]
        ),
        "exactly one of migrations.configMapRef and migrations.module must be set": database(
            migrations={"version": 1, "configMapRef": {"name": "m"}, "module": "app.migrations"}
        ),
        "maxStaleness needs a readPreference other than primary": database(client={"maxStaleness": "120s"}),
        "maxStaleness must be at least 90s": database(
            client={"maxStaleness": "30s", "readPreference": "secondaryPreferred"}
        ),
        "writeConcern.journal cannot be true with w 0": database(client={"writeConcern": {"w": "0", "journal": True}}),
    }
    for message, manifest in rejected.items():
        result = namespace.try_apply(manifest)
        assert result.returncode != 0 and message in result.stderr, (message, result.stderr)
    both = stack_manifest()
    both["spec"]["mongodb"]["databaseRef"] = {"name": "main"}
    result = namespace.try_apply(both)
    assert "exactly one of mongodb.uriSecretRef and mongodb.databaseRef must be set" in result.stderr
    assert namespace.get("database", "main") is None and namespace.get("stack", "demo") is None


def test_stack_with_a_database_ref_uses_it_and_a_missing_one_keeps_the_config_in_force(namespace, backends):
    stack = stack_manifest(mongodb={"databaseRef": {"name": "main"}})
    namespace.apply([stack, database()])
    wait_for(lambda: ready(namespace, "stack", "demo"), what="the Stack Ready with its databaseRef")
    applied = config(namespace)
    assert applied["spec"]["mongodb"]["databaseRef"] == {"name": "main"} and "main" in applied["databases"]
    assert "stack.mongodb.uri" not in credentials(namespace), "the Database's URI, not the Stack's"
    assert "database.main.uri" in credentials(namespace)
    in_force = namespace.get("configmap", "demo-config")["metadata"]["annotations"]["stackyard.dev/config-hash"]

    namespace.apply(stack_manifest(mongodb={"databaseRef": {"name": "gone"}}))
    broken = wait_for(lambda: ready(namespace, "stack", "demo", "False"), what="the Stack Ready=False")
    condition = broken["status"]["conditions"][0]
    assert condition["reason"] == "DatabaseNotFound"
    assert "Database gone" in condition["message"] and f"config {in_force} stays in force" in condition["message"]
    assert namespace.get("configmap", "demo-config")["metadata"]["annotations"]["stackyard.dev/config-hash"] == in_force

    namespace.apply(database("gone", connection={"uriSecretRef": {"name": "nowhere", "key": "uri"}}))
    invalid = wait_for(
        lambda: (
            (o := ready(namespace, "stack", "demo", "False"))
            and o["status"]["conditions"][0]["reason"] == "DatabaseInvalid"
            and o
        ),
        what="the Stack Ready=False with DatabaseInvalid",
    )
    assert "Secret nowhere not found" in invalid["status"]["conditions"][0]["message"]
    gone = wait_for(lambda: ready(namespace, "database", "gone", "False"), what="Database gone Ready=False")
    assert gone["status"]["conditions"][0]["reason"] == "SecretNotFound"

    namespace.secret("nowhere", uri="mongodb://127.0.0.1:1/")
    wait_for(lambda: ready(namespace, "stack", "demo"), what="the Stack Ready again once its Database resolves")
    assert config(namespace)["spec"]["mongodb"]["databaseRef"] == {"name": "gone"}


def test_raising_the_migration_version_or_asking_again_makes_a_new_job(namespace, backends, cluster, operator):
    migrations = {"version": 1, "configMapRef": {"name": "main-migrations"}}
    namespace.apply([stack_manifest(), database(migrations=migrations)])
    wait_for(lambda: ready(namespace, "database", "main"), what="Database main Ready")
    (first,) = wait_for(lambda: migration_jobs(namespace), what="the first migration Job").values()
    pod = first["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["stackyard-migrate", "--database", "main"]
    assert pod["serviceAccountName"] == "demo-stackyard" and pod["restartPolicy"] == "Never"
    assert {"name": "migrations", "configMap": {"name": "main-migrations", "defaultMode": 420}} in pod["volumes"]
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Database"
    assert first["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [1, 2], "a failed script: no rerun"

    # The worker reports the version reached, with the rights of the Stack's ServiceAccount.
    kubeconfig = service_account_kubeconfig(cluster, namespace.name, "demo-stackyard")
    connected = {"type": "Connected", "status": "True", "reason": "Connected", "message": "MongoDB 7.0.77, Single"}
    connected |= {"lastTransitionTime": "2026-11-26T06:00:00Z", "observedGeneration": 1}
    conditions = namespace.get("database", "main")["status"]["conditions"] + [connected]
    status = {"status": {"migration": {"version": 1, "desiredVersion": 1}, "conditions": conditions}}
    as_worker = ("-n", namespace.name, "--type=merge", "--subresource=status", "-p", json.dumps(status))
    reported = cluster.kubectl("patch", "database", "main", *as_worker, kubeconfig=kubeconfig, check=False)
    assert reported.returncode == 0, reported.stderr

    namespace.apply(database(migrations={**migrations, "version": 2}))
    jobs = wait_for(lambda: len(j := migration_jobs(namespace)) == 2 and j, what="a Job for version 2")
    second = next(name for name in jobs if name != first["metadata"]["name"])
    assert jobs[second]["metadata"]["annotations"]["stackyard.dev/migration-version"] == "2"
    kept = wait_for(lambda: ready(namespace, "database", "main"), what="Database main reconciled at generation 2")
    assert next(c for c in kept["status"]["conditions"] if c["type"] == "Connected") == connected, (
        "the operator keeps the conditions the worker reports"
    )

    namespace.kubectl("annotate", "database", "main", "stackyard.dev/migrate-request=2026-11-26T06:01:00Z")
    wait_for(lambda: len(migration_jobs(namespace)) == 3, what="a Job for the new request")

    # Applying the same state again changes no Job (a Job is immutable: same name, same spec).
    versions = {name: job["metadata"]["resourceVersion"] for name, job in migration_jobs(namespace).items()}
    reconciles = operator.log().count("reconciled Stack " + namespace.name)
    namespace.kubectl("annotate", "stack", "demo", "touched=1")
    wait_for(lambda: operator.log().count("reconciled Stack " + namespace.name) > reconciles, what="a reconcile")
    assert {name: job["metadata"]["resourceVersion"] for name, job in migration_jobs(namespace).items()} == versions
    assert ready(namespace, "stack", "demo"), "no apply failure"

    # At the version wanted, no new Job.
    status = {"status": {"migration": {"version": 2, "desiredVersion": 2}}}
    as_worker = ("-n", namespace.name, "--type=merge", "--subresource=status", "-p", json.dumps(status))
    cluster.kubectl("patch", "database", "main", *as_worker, kubeconfig=kubeconfig)
    namespace.kubectl("annotate", "database", "main", "stackyard.dev/migrate-request=again", "--overwrite")
    reconciles = operator.log().count("reconciled Stack " + namespace.name)
    wait_for(lambda: operator.log().count("reconciled Stack " + namespace.name) > reconciles, what="a reconcile")
    assert len(migration_jobs(namespace)) == 3


def test_a_backup_section_makes_a_schedule_and_removing_it_deletes_it(namespace, backends):
    namespace.apply([stack_manifest(), database(backup=BACKUP)])
    schedule = wait_for(lambda: ready(namespace, "schedule", "main-backup"), what="the backup Schedule Ready")
    assert schedule["spec"]["job"] | {"timeout": None} == {
        "queue": "default",
        "function": "stackyard.db.backup",
        "payload": {"database": "main"},
        "timeout": None,
    }
    assert (schedule["spec"]["cron"], schedule["spec"]["timeZone"]) == ("0 3 * * *", "Europe/Paris")
    assert schedule["metadata"]["ownerReferences"][0]["name"] == "main"
    wait_for(lambda: "main-backup" in config(namespace)["schedules"], what="the backup Schedule in the config")
    worker = namespace.get("deployment", "demo-worker")["spec"]["template"]["spec"]
    mount = next(m for m in worker["containers"][0]["volumeMounts"] if m["mountPath"].endswith("/main"))
    assert (mount["mountPath"], mount["subPath"]) == ("/var/lib/stackyard/backups/main", "main")
    claim = next(v for v in worker["volumes"] if v["name"] == mount["name"])["persistentVolumeClaim"]
    assert claim == {"claimName": "db-backups"}

    namespace.apply(database())  # no backup section
    wait_for(lambda: namespace.get("schedule", "main-backup") is None, what="the backup Schedule deleted")
    wait_for(lambda: "main-backup" not in config(namespace)["schedules"], what="the Schedule out of the config")
    worker = namespace.get("deployment", "demo-worker")["spec"]["template"]["spec"]
    assert [v["name"] for v in worker["volumes"]] == ["tmp"]

    # A user's own Schedule is never deleted by the operator; one made for a Database goes with it.
    user = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "nightly"},
        "spec": {"stackRef": {"name": "demo"}, "cron": "0 1 * * *", "job": {"function": "reports.nightly"}},
    }
    namespace.apply([database(backup=BACKUP), user])
    wait_for(lambda: ready(namespace, "schedule", "main-backup"), what="the backup Schedule made again")
    namespace.kubectl("delete", "database", "main")
    wait_for(lambda: namespace.get("schedule", "main-backup") is None, what="the Schedule gone with its Database")
    wait_for(lambda: set(config(namespace)["schedules"]) == {"nightly"}, what="only the user's Schedule in force")
    assert namespace.get("schedule", "nightly") is not None


def test_the_example_applies_and_becomes_ready(namespace, backends):
    for example in ("stack.yaml", "database.yaml"):
        namespace.kubectl("apply", "-f", str(EXAMPLES / example))
    wait_for(lambda: ready(namespace, "database", "app"), what="the example Database Ready")
    wait_for(lambda: ready(namespace, "schedule", "app-backup"), what="its backup Schedule Ready")
    wait_for(lambda: migration_jobs(namespace, "app"), what="its migration Job")
    applied = config(namespace)
    assert {"app"} == set(applied["databases"]) and "app-backup" in applied["schedules"]
    assert [i["collection"] for i in applied["databases"]["app"]["indexes"]] == ["orders", "customers", "carts"]
    migrations = namespace.get("configmap", "app-migrations")["data"]
    (script,) = migrations.values()
    assert json.loads(script)["commands"][0]["update"] == "orders"
