"""render() with Buckets: their place in the config and their S3 keys in the credentials
only, Ready (in force, or invalid with the reason and the last good version kept), the
retention Schedule and the Schedules no longer wanted, and the volume mounts of the api
and the worker."""

from __future__ import annotations

import json
import re

from stackyard.config import credential_key
from stackyard_operator.buckets import render_bucket_objects
from stackyard_operator.manifests import bucket_volume_name
from stackyard_operator.render import Observed, render
from test_render import BACKENDS, STACK, conditions

S3_KEYS = {"id": "AKIAEXAMPLE", "secret": "wJalrXUtnFEMI-s3cret"}
SECRETS = {"backends": BACKENDS, "minio": S3_KEYS}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
S3 = {
    "s3": {
        "endpoint": "http://minio.storage:9000",
        "bucket": "uploads",
        "pathStyle": True,
        "accessKeyIdSecretRef": {"name": "minio", "key": "id"},
        "secretAccessKeySecretRef": {"name": "minio", "key": "secret"},
    }
}
RETENTION = {"days": 30, "schedule": "30 4 * * *", "timeZone": "Europe/Paris"}


def bucket(name: str = "media", generation: int = 1, **spec) -> dict:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Bucket",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "generation": generation},
        "spec": {"stackRef": {"name": "demo"}, "backend": S3} | spec,
        "status": {},
    }


def volume(claim: str = "files", sub_path: str = "") -> dict:
    return {"volume": {"claimName": claim} | ({"subPath": sub_path} if sub_path else {})}


def objects(desired, kind: str) -> list[dict]:
    return [o for o in desired.objects if o["kind"] == kind]


def pod(desired, component: str) -> dict:
    return next(o for o in desired.objects if o["metadata"]["name"] == f"demo-{component}")["spec"]["template"]["spec"]


def made_schedule(desired) -> dict:
    """The retention Schedule as it comes back from the API server: a member of the Stack."""
    (schedule,) = objects(desired, "Schedule")
    return {**schedule, "metadata": {**schedule["metadata"], "uid": "uid-schedule", "generation": 1}, "status": {}}


def test_bucket_is_in_the_config_and_its_s3_keys_only_in_the_credentials():
    desired = render(Observed(STACK, [bucket(limits={"maxObjectSize": "10Mi"})], SECRETS))
    spec = desired.config.buckets["media"]
    assert spec.backend.s3.bucket == "uploads" and spec.max_object_bytes == 10 * 1024**2
    assert desired.credentials[credential_key("Bucket", "media", "accessKeyId")] == S3_KEYS["id"]
    assert desired.credentials[credential_key("Bucket", "media", "secretAccessKey")] == S3_KEYS["secret"]
    (config_map,) = objects(desired, "ConfigMap")
    assert S3_KEYS["secret"] not in json.dumps(config_map) and S3_KEYS["id"] not in json.dumps(config_map)
    (secret,) = [o for o in objects(desired, "Secret") if o["metadata"]["name"] == "demo-credentials"]
    assert {credential_key("Bucket", "media", k) for k in ("accessKeyId", "secretAccessKey")} <= set(secret["data"])
    ready = conditions(desired, "Bucket", "media")["Ready"]
    assert (ready.status, ready.reason) == ("True", "InForce")
    assert desired.stack_status.fields["members"]["Bucket"] == 1


def test_an_s3_bucket_without_keys_has_no_credentials_and_uses_the_default_chain():
    plain = {"s3": {"bucket": "uploads", "region": "eu-west-3"}}
    desired = render(Observed(STACK, [bucket(backend=plain)], SECRETS))
    assert "media" in desired.config.buckets
    assert not [k for k in desired.credentials if k.startswith(credential_key("Bucket", "media", ""))]


def test_a_bucket_whose_secret_is_missing_is_not_ready_and_left_out():
    desired = render(Observed(STACK, [bucket()], {"backends": BACKENDS}))
    ready = conditions(desired, "Bucket", "media")["Ready"]
    assert (ready.status, ready.reason) == ("False", "SecretNotFound")
    assert "Secret minio not found" in ready.message
    assert "media" not in desired.config.buckets
    assert conditions(desired, "Stack", "demo")["MembersReady"].message == "Bucket media: SecretNotFound"


def test_an_invalid_bucket_says_why_and_its_last_good_version_stays_with_its_credentials_and_schedule():
    good = render(Observed(STACK, [bucket(retention=RETENTION)], SECRETS))
    both = {**S3, **volume()}
    broken = bucket(generation=2, backend=both, retention=RETENTION)
    desired = render(
        Observed(
            STACK,
            [broken, made_schedule(good)],
            SECRETS,
            previous_config=good.config,
            previous_credentials=good.credentials,
            previous_credentials_revision=good.credentials_revision,
        )
    )
    ready = conditions(desired, "Bucket", "media")["Ready"]
    assert (ready.status, ready.reason) == ("False", "Invalid")
    assert "exactly one of backend.s3 and backend.volume" in ready.message
    assert "last good version stays in force" in ready.message
    assert desired.config.buckets["media"].backend.volume is None
    assert desired.credentials[credential_key("Bucket", "media", "secretAccessKey")] == S3_KEYS["secret"]
    assert desired.obsolete == [] and [o["metadata"]["name"] for o in objects(desired, "Schedule")] == [
        "media-retention"
    ]


def test_invalid_specs_are_refused_with_the_models_message():
    cases = {
        "delivery redirect needs backend.s3": bucket(backend=volume(), delivery="redirect"),
        "signedUrlLifetime must be at most 168h": bucket(signedUrlLifetime="200h"),
        "accessKeyIdSecretRef and secretAccessKeySecretRef go together": bucket(
            backend={"s3": {"bucket": "uploads", "accessKeyIdSecretRef": {"name": "minio", "key": "id"}}}
        ),
    }
    for message, member in cases.items():
        ready = conditions(render(Observed(STACK, [member], SECRETS)), "Bucket", "media")["Ready"]
        assert (ready.status, ready.reason) == ("False", "Invalid") and message in ready.message, ready.message


def test_retention_makes_a_schedule_of_the_sweep_owned_by_the_bucket():
    desired = render(Observed(STACK, [bucket(retention=RETENTION)], SECRETS))
    (schedule,) = objects(desired, "Schedule")
    assert schedule["metadata"]["name"] == "media-retention"
    assert schedule["metadata"]["namespace"] == "shop"
    assert schedule["metadata"]["labels"]["stackyard.dev/bucket"] == "media"
    assert schedule["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stackyard-operator"
    (owner,) = schedule["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Bucket", "media", "uid-media", True)
    spec = schedule["spec"]
    assert spec["stackRef"] == {"name": "demo"}
    assert (spec["cron"], spec["timeZone"], spec["overlapPolicy"]) == ("30 4 * * *", "Europe/Paris", "skip")
    job = spec["job"]
    assert (job["queue"], job["function"], job["payload"]) == (
        "default",
        "stackyard.storage.retention",
        {"bucket": "media"},
    )
    defaults = objects(render(Observed(STACK, [bucket(retention={"days": 7})], SECRETS)), "Schedule")[0]["spec"]
    assert (defaults["cron"], defaults["timeZone"]) == ("@daily", "UTC")
    assert objects(render(Observed(STACK, [bucket()], SECRETS)), "Schedule") == [], "no retention, no Schedule"


def test_retention_schedule_once_made_is_in_force_like_any_schedule():
    first = render(Observed(STACK, [bucket(retention=RETENTION)], SECRETS))
    desired = render(Observed(STACK, [bucket(retention=RETENTION), made_schedule(first)], SECRETS))
    assert desired.config.schedules["media-retention"].job.function == "stackyard.storage.retention"
    assert conditions(desired, "Schedule", "media-retention")["Ready"].reason == "InForce"
    assert desired.obsolete == []


def test_retention_schedules_no_longer_wanted_are_obsolete_and_others_are_left_alone():
    made = made_schedule(render(Observed(STACK, [bucket(retention=RETENTION)], SECRETS)))
    user_schedule = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "nightly", "namespace": "shop", "uid": "uid-nightly", "generation": 1},
        "spec": {"stackRef": {"name": "demo"}, "cron": "0 1 * * *", "job": {"function": "reports.nightly"}},
    }
    for members in ([bucket(), made, user_schedule], [made, user_schedule]):  # retention removed; Bucket gone
        desired = render(Observed(STACK, members, SECRETS))
        assert [(o.kind, o.name, o.uid) for o in desired.obsolete] == [("Schedule", "media-retention", "uid-schedule")]
        assert set(desired.config.schedules) == {"nightly"}
        assert ("Schedule", "media-retention") not in desired.statuses
        assert objects(desired, "Schedule") == []


def test_database_and_bucket_schedules_are_told_apart():
    database = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Database",
        "metadata": {"name": "main", "namespace": "shop", "uid": "uid-main", "generation": 1},
        "spec": {
            "stackRef": {"name": "demo"},
            "connection": {"uriSecretRef": {"name": "backends", "key": "mongodb"}, "database": "shop"},
            "backup": {"schedule": "@daily", "volume": {"claimName": "db-backups"}},
        },
        "status": {},
    }
    first = render(Observed(STACK, [database, bucket(retention=RETENTION)], SECRETS))
    made = [
        {**s, "metadata": {**s["metadata"], "uid": f"uid-{s['metadata']['name']}"}, "status": {}}
        for s in objects(first, "Schedule")
    ]
    assert sorted(s["metadata"]["name"] for s in made) == ["main-backup", "media-retention"]
    both = render(Observed(STACK, [database, bucket(retention=RETENTION), *made], SECRETS))
    assert both.obsolete == []
    only_backup = render(Observed(STACK, [database, bucket(), *made], SECRETS))
    assert [o.name for o in only_backup.obsolete] == ["media-retention"]


def test_the_api_and_the_worker_mount_each_volume_bucket_and_share_a_claim():
    members = [
        bucket("avatars", backend=volume("files", "avatars")),
        bucket("docs", backend=volume("files", "docs")),
        bucket("archive", backend=volume("archive-claim")),
        bucket("media"),  # S3: nothing to mount
    ]
    desired = render(Observed(STACK, members, SECRETS))
    for component in ("api", "worker"):
        spec = pod(desired, component)
        (container,) = spec["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert {p: n for p, n in mounts.items() if p.startswith("/var/lib/stackyard/buckets/")} == {
            "/var/lib/stackyard/buckets/archive": "bucket-archive-claim",
            "/var/lib/stackyard/buckets/avatars": "bucket-files",
            "/var/lib/stackyard/buckets/docs": "bucket-files",
        }, component
        assert not [m for m in container["volumeMounts"] if "subPath" in m], "the program adds the subPath"
        claims = [(v["name"], v["persistentVolumeClaim"]["claimName"]) for v in spec["volumes"] if v["name"] != "tmp"]
        assert claims == [("bucket-archive-claim", "archive-claim"), ("bucket-files", "files")], component
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["STACKYARD_BUCKET_ROOT"] == "/var/lib/stackyard/buckets"
    s3_only = render(Observed(STACK, [bucket()], SECRETS))
    for component in ("api", "worker"):
        assert [v["name"] for v in pod(s3_only, component)["volumes"]] == ["tmp"]
        assert "STACKYARD_BUCKET_ROOT" not in {e["name"] for e in pod(s3_only, component)["containers"][0]["env"]}


def test_long_or_dotted_claim_names_give_valid_volume_names():
    for claim in ("a" * 253, "files.v2"):
        name = bucket_volume_name(claim)
        assert DNS_LABEL.match(name) and len(name) <= 63, name
    assert bucket_volume_name("files.v2") != bucket_volume_name("files.v3")


def test_a_bucket_of_another_stack_or_not_in_force_makes_nothing():
    made = render_bucket_objects(STACK, {}, [bucket(retention=RETENTION, backend=volume())])
    assert (made.objects, made.obsolete, made.volumes) == ([], [], {})


def test_the_stacks_role_lets_its_pods_patch_bucket_status_only():
    (role,) = objects(render(Observed(STACK, [bucket()], SECRETS)), "Role")
    status_rule = next(r for r in role["rules"] if r["apiGroups"] == ["stackyard.dev"])
    assert "buckets/status" in status_rule["resources"] and "buckets" not in status_rule["resources"]
    assert status_rule["verbs"] == ["get", "patch"]


def test_rendering_buckets_twice_gives_the_same_objects():
    members = [bucket(retention=RETENTION), bucket("avatars", backend=volume("files", "a"))]
    assert render(Observed(STACK, members, SECRETS)).objects == render(Observed(STACK, members, SECRETS)).objects
