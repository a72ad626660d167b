"""Buckets applied with kubectl and reconciled by the operator process: the API server
refuses what a CEL rule can say, a Bucket is Ready and in the Stack's config with its S3
keys only in the credentials Secret, retention makes a Schedule that goes when retention
or the Bucket goes, a volume Bucket's claim is mounted in the api and the worker, and the
Stack's own account may record a Bucket's Reachable condition and last retention sweep,
which the operator keeps."""

from __future__ import annotations

import base64
import json

import pytest
from stackyard_harness.programs import service_account_kubeconfig

from .conftest import stack_manifest, wait_for
from .test_jobs_resources_live import EXAMPLES, config, ready

pytestmark = pytest.mark.usefixtures("operator")

KEYS = {"accessKeyId": "AKIALIVEEXAMPLE", "secretAccessKey": "live-s3cret-key-do-not-show"}
S3 = {
    "s3": {
        "endpoint": "http://minio.storage:9000",
        "bucket": "uploads",
        "pathStyle": True,
        "accessKeyIdSecretRef": {"name": "minio", "key": "accessKeyId"},
        "secretAccessKeySecretRef": {"name": "minio", "key": "secretAccessKey"},
    }
}
VOLUME = {"volume": {"claimName": "files", "subPath": "uploads"}}
RETENTION = {"days": 30, "schedule": "30 4 * * *", "timeZone": "Europe/Paris"}
ROOT = "/var/lib/stackyard/buckets"


def bucket(name: str = "media", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Bucket",
        "metadata": {"name": name},
        "spec": {"stackRef": {"name": "demo"}, "backend": S3} | spec,
    }


def credentials(namespace):
    data = namespace.get("secret", "demo-credentials")["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def bucket_mounts(namespace, component):
    """Mount path -> claim name of the Buckets' volumes in a Deployment's pod."""
    pod = namespace.get("deployment", f"demo-{component}")["spec"]["template"]["spec"]
    volumes = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in volumes}
    (container,) = pod["containers"]
    return {
        m["mountPath"]: claims[m["name"]] for m in container.get("volumeMounts", []) if m["mountPath"].startswith(ROOT)
    }


def test_bucket_is_ready_and_in_the_config_with_its_keys_only_in_the_credentials(namespace, backends):
    namespace.secret("minio", **KEYS)
    namespace.apply([stack_manifest(), bucket(limits={"maxObjectSize": "10Mi", "allowedContentTypes": ["image/*"]})])
    obj = wait_for(lambda: ready(namespace, "bucket", "media"), what="Bucket media Ready")
    assert obj["status"]["conditions"][0]["reason"] == "InForce"
    applied = config(namespace)
    assert applied["buckets"]["media"]["backend"]["s3"]["bucket"] == "uploads"
    assert applied["buckets"]["media"]["limits"]["allowedContentTypes"] == ["image/*"]
    held = credentials(namespace)
    assert held["bucket.media.accessKeyId"] == KEYS["accessKeyId"]
    assert held["bucket.media.secretAccessKey"] == KEYS["secretAccessKey"]
    config_map = json.dumps(namespace.get("configmap", "demo-config"))
    assert KEYS["secretAccessKey"] not in config_map and KEYS["accessKeyId"] not in config_map

    def members():
        counts = (namespace.get("stack", "demo") or {}).get("status", {}).get("members") or {}
        return counts if counts.get("Bucket") else None

    members = wait_for(members, what="the Stack's member counts")
    assert members["Bucket"] == 1
    listing = namespace.kubectl("get", "buckets").stdout.splitlines()
    assert listing[0].split()[:4] == ["NAME", "BACKEND", "VISIBILITY", "REACHABLE"]
    assert listing[1].split()[:3] == ["media", "uploads", "private"]

    # The key pair rotated in its Secret: the credentials follow, under a new revision that the
    # config names; the Bucket's entry is the same and the ConfigMap still holds no key.
    before = config(namespace)
    namespace.secret("minio", accessKeyId="AKIAROTATED", secretAccessKey="rotated-s3cret")
    wait_for(
        lambda: credentials(namespace)["bucket.media.secretAccessKey"] == "rotated-s3cret",
        what="the rotated key in the credentials",
    )
    after = wait_for(
        lambda: (c := config(namespace))["credentialsRevision"] > before["credentialsRevision"] and c,
        what="the config naming the new credentials revision",
    )
    assert after["buckets"] == before["buckets"]
    assert "rotated-s3cret" not in json.dumps(namespace.get("configmap", "demo-config"))


def test_the_api_server_rejects_what_the_cel_rules_say(namespace):
    rejected = {
        "exactly one of backend.s3 and backend.volume": bucket(backend=S3 | VOLUME),
        "delivery redirect needs backend.s3": bucket(backend=VOLUME, delivery="redirect"),
        "signedUrlLifetime must be at most 168h (7 days)": bucket(signedUrlLifetime="200h"),
        "accessKeyIdSecretRef and secretAccessKeySecretRef go together": bucket(
            backend={"s3": {"bucket": "uploads", "accessKeyIdSecretRef": {"name": "minio", "key": "id"}}}
        ),
        "every preset name must look like thumb": bucket(images={"presets": {"Big Thumb": {"width": 64}}}),
    }
    for message, manifest in rejected.items():
        result = namespace.try_apply(manifest)
        assert result.returncode != 0 and message in result.stderr, (message, result.stderr)
    assert namespace.get("bucket", "media") is None
    # The defaults pass every rule: a bucket with only its backend, s3 or volume.
    for manifest in (bucket("plain", backend={"s3": {"bucket": "uploads"}}), bucket("disk", backend=VOLUME)):
        result = namespace.try_apply(manifest)
        assert result.returncode == 0, result.stderr
    stored = namespace.get("bucket", "disk")["spec"]
    assert (stored["visibility"], stored["signedUrlLifetime"], stored["delivery"]) == ("private", "15m", "proxy")


def test_a_bucket_whose_secret_is_missing_is_not_ready_and_says_which(namespace, backends):
    namespace.apply([stack_manifest(), bucket()])
    obj = wait_for(lambda: ready(namespace, "bucket", "media", "False"), what="Bucket media Ready=False")
    condition = obj["status"]["conditions"][0]
    assert condition["reason"] == "SecretNotFound" and "Secret minio not found" in condition["message"]
    assert "media" not in config(namespace)["buckets"]
    namespace.secret("minio", **KEYS)
    wait_for(lambda: ready(namespace, "bucket", "media"), what="Bucket media Ready once its Secret exists")


def test_retention_makes_a_schedule_that_goes_with_retention_and_with_the_bucket(namespace, backends):
    namespace.apply([stack_manifest(), bucket(backend=VOLUME, retention=RETENTION)])
    wait_for(lambda: ready(namespace, "bucket", "media"), what="Bucket media Ready")
    schedule = wait_for(lambda: ready(namespace, "schedule", "media-retention"), what="the retention Schedule Ready")
    spec = schedule["spec"]
    assert (spec["cron"], spec["timeZone"]) == ("30 4 * * *", "Europe/Paris")
    assert spec["job"]["function"] == "stackyard.storage.retention" and spec["job"]["payload"] == {"bucket": "media"}
    assert schedule["metadata"]["ownerReferences"][0]["kind"] == "Bucket"
    assert "media-retention" in config(namespace)["schedules"]

    namespace.apply(bucket(backend=VOLUME))  # retention removed
    wait_for(lambda: namespace.get("schedule", "media-retention") is None, what="the retention Schedule deleted")
    wait_for(lambda: "media-retention" not in config(namespace)["schedules"], what="the Schedule out of the config")

    namespace.apply(bucket(backend=VOLUME, retention={"days": 7}))
    made = wait_for(lambda: ready(namespace, "schedule", "media-retention"), what="the Schedule made again")
    assert (made["spec"]["cron"], made["spec"]["timeZone"]) == ("@daily", "UTC")
    namespace.kubectl("delete", "bucket", "media")
    wait_for(lambda: namespace.get("schedule", "media-retention") is None, what="the Schedule gone with its Bucket")
    wait_for(lambda: "media" not in config(namespace)["buckets"], what="the Bucket out of the config")


def test_the_api_and_the_worker_mount_the_claims_of_volume_buckets(namespace, backends):
    namespace.secret("minio", **KEYS)
    namespace.apply([stack_manifest(), bucket("avatars", backend=VOLUME), bucket("media")])
    wait_for(lambda: ready(namespace, "bucket", "avatars"), what="Bucket avatars Ready")
    for component in ("api", "worker"):
        mounts = wait_for(lambda c=component: bucket_mounts(namespace, c), what=f"the {component}'s bucket mounts")
        assert mounts == {f"{ROOT}/avatars": "files"}, component
        container = namespace.get("deployment", f"demo-{component}")["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "STACKYARD_BUCKET_ROOT", "value": ROOT} in container["env"]
    namespace.kubectl("delete", "bucket", "avatars")
    for component in ("api", "worker"):
        wait_for(lambda c=component: bucket_mounts(namespace, c) == {}, what=f"the claim gone from the {component}")


def test_the_stacks_account_records_bucket_status_and_the_operator_keeps_it(namespace, backends, cluster):
    namespace.apply([stack_manifest(), bucket(backend=VOLUME)])
    wait_for(lambda: ready(namespace, "bucket", "media"), what="Bucket media Ready")
    kubeconfig = service_account_kubeconfig(cluster, namespace.name, "demo-stackyard")
    worker_status = {
        "status": {
            "conditions": [
                {
                    "type": "Reachable",
                    "status": "True",
                    "reason": "RoundTrip",
                    "message": "wrote, read and deleted a probe object",
                    "lastTransitionTime": "2026-11-26T10:00:00Z",
                    "observedGeneration": 1,
                },
                *namespace.get("bucket", "media")["status"]["conditions"],
            ],
            "reachable": {"roundTripMs": 3.2, "checkedAt": "2026-11-26T10:00:00Z"},
            "lastRetention": {"at": "2026-11-26T03:30:05Z", "deleted": 4, "bytes": 4096},
        }
    }
    cluster.kubectl(
        "patch",
        "bucket",
        "media",
        "-n",
        namespace.name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(worker_status),
        kubeconfig=kubeconfig,
    )
    refused = cluster.kubectl(
        "patch", "bucket", "media", "-n", namespace.name, "--type=merge", "-p", '{"spec":{"visibility":"public"}}',
        kubeconfig=kubeconfig, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr

    namespace.apply(bucket(backend=VOLUME, visibility="public"))  # a new generation: the operator writes Ready
    obj = wait_for(
        lambda: (o := ready(namespace, "bucket", "media")) and o["status"]["observedGeneration"] == 2 and o,
        what="the Bucket reconciled at generation 2",
    )
    types = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert types == {"Ready": "True", "Reachable": "True"}
    assert obj["status"]["reachable"]["roundTripMs"] == 3.2
    assert obj["status"]["lastRetention"] == {"at": "2026-11-26T03:30:05Z", "deleted": 4, "bytes": 4096}


def test_the_example_applies_and_becomes_ready(namespace, backends):
    for example in ("stack.yaml", "bucket.yaml"):
        namespace.kubectl("apply", "-f", str(EXAMPLES / example))
    wait_for(lambda: ready(namespace, "bucket", "default"), what="the example Bucket Ready")
    wait_for(lambda: ready(namespace, "schedule", "default-retention"), what="its retention Schedule Ready")
    assert bucket_mounts(namespace, "api") == {f"{ROOT}/default": "files"}
    assert config(namespace)["buckets"]["default"]["images"]["presets"]["thumb"]["width"] == 256
