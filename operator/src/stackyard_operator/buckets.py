"""What the operator makes for the Buckets of a Stack, besides their place in the config
(and their S3 keys in the credentials, which render() puts there from spec.secret_refs()).

Pure functions of the Stack, the Buckets in force and their bodies, called by render():

- a retention Schedule `<bucket>-retention` per Bucket with spec.retention, which the
  Stack's worker runs like any Schedule (function `stackyard.storage.retention`, args
  {"bucket": name}), on the Bucket's cron and time zone;
- the Schedules made for Buckets that no longer want them (retention removed, the Bucket
  gone or moved to another Stack), for the reconciler to delete;
- the volumes of the Buckets with a volume backend, by Bucket name: the api and the worker
  both mount each claim at BUCKET_ROOT/<bucket> (manifests.deployment), the api to stream
  uploads and downloads, the worker to scan and sweep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stackyard.resources import GROUP, VERSION
from stackyard.resources.bucket import BucketSpec, VolumeBackend

from . import manifests
from .databases import ObjectRef

BUCKET_LABEL = "stackyard.dev/bucket"
"""On the objects made for one Bucket: its name."""
RETENTION_FUNCTION = "stackyard.storage.retention"
RETENTION_QUEUE = "default"
RETENTION_TIMEOUT = "1h"
"""Time one sweep may take before the queue retries it (the queue's default is 5 minutes; a
sweep deletes objects one by one, which on a large Bucket takes longer)."""


def retention_schedule_name(bucket: str) -> str:
    return f"{bucket}-retention"


def retention_schedule(stack_body: dict[str, Any], bucket_body: dict[str, Any], spec: BucketSpec) -> dict[str, Any]:
    """The Schedule of a Bucket's retention sweep, owned by the Bucket (it goes with it)."""
    assert spec.retention is not None
    stack, bucket = stack_body["metadata"]["name"], bucket_body["metadata"]["name"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Schedule",
        "metadata": {
            "name": retention_schedule_name(bucket),
            "namespace": stack_body["metadata"]["namespace"],
            "labels": manifests.labels(stack, "retention") | {BUCKET_LABEL: bucket},
            "ownerReferences": [manifests.owner_reference(bucket_body)],
        },
        "spec": {
            "stackRef": {"name": stack},
            "cron": spec.retention.schedule,
            "timeZone": spec.retention.time_zone,
            "overlapPolicy": "skip",
            "job": {
                "queue": RETENTION_QUEUE,
                "function": RETENTION_FUNCTION,
                "payload": {"bucket": bucket},
                "timeout": RETENTION_TIMEOUT,
            },
        },
    }


@dataclass(frozen=True)
class BucketObjects:
    objects: list[dict[str, Any]]
    """Retention Schedules to apply."""
    obsolete: list[ObjectRef]
    """Retention Schedules made for Buckets that no longer want them."""
    volumes: dict[str, VolumeBackend]
    """Volume backends by Bucket name, for the api and worker Deployments."""


def render_bucket_objects(
    stack_body: dict[str, Any], buckets: Mapping[str, BucketSpec], members: Sequence[dict[str, Any]]
) -> BucketObjects:
    """`buckets`: the Buckets in force (by name; an invalid edit keeps the last good
    version, so its Schedule and volume stay); `members`: every member body of the Stack,
    the Schedules made earlier among them."""
    bodies = {m["metadata"]["name"]: m for m in members if m["kind"] == "Bucket"}
    objects: list[dict[str, Any]] = []
    volumes: dict[str, VolumeBackend] = {}
    for name, spec in sorted(buckets.items()):
        body = bodies.get(name)
        if body is None:
            continue
        if spec.retention is not None:
            objects.append(retention_schedule(stack_body, body, spec))
        if spec.backend.volume is not None:
            volumes[name] = spec.backend.volume
    wanted = {o["metadata"]["name"] for o in objects}
    obsolete = [
        ObjectRef("Schedule", m["metadata"]["name"], m["metadata"].get("uid", ""))
        for m in members
        if m["kind"] == "Schedule" and is_made_for_a_bucket(m) and m["metadata"]["name"] not in wanted
    ]
    return BucketObjects(objects, obsolete, volumes)


def is_made_for_a_bucket(body: Mapping[str, Any]) -> bool:
    labels = body["metadata"].get("labels") or {}
    return labels.get("app.kubernetes.io/managed-by") == manifests.MANAGER and BUCKET_LABEL in labels
