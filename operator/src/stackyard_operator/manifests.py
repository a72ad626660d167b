"""The Kubernetes objects a Stack owns, as plain dicts ready for server-side apply.

Pure functions of the Stack (and the rendered config): same input, same output, so
that applying them again changes nothing. The pod templates do not carry the config
hash: a config change reaches running pods through their watch, not a restart.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from stackyard.config import (
    CONFIG_KEY,
    CREDENTIALS_REVISION_ANNOTATION,
    HASH_ANNOTATION,
    RuntimeConfig,
    config_map_name,
    credentials_secret_name,
)
from stackyard.resources import GROUP
from stackyard.resources.bucket import VolumeBackend
from stackyard.resources.database import BackupVolume
from stackyard.resources.stack import ComputeResources, StackSpec, WorkloadSettings

from .auth_keys import ROTATION_HANDLED_ANNOTATION, auth_keys_secret_name

MANAGER = "stackyard-operator"
API_PORT = 8080
WORKER_PORT = 8081
COMPONENTS = ("api", "worker")
BACKUP_ROOT = "/var/lib/stackyard/backups"
"""Where the worker finds each Database's backup volume: <BACKUP_ROOT>/<database name>."""
BUCKET_ROOT = "/var/lib/stackyard/buckets"
"""Where the api and the worker find the claim of each Bucket with a volume backend:
<BUCKET_ROOT>/<bucket name> (the files are in its spec.backend.volume.subPath below that)."""


def service_account_name(stack: str) -> str:
    return f"{stack}-stackyard"


def workload_name(stack: str, component: str) -> str:
    return f"{stack}-{component}"


def selector_labels(stack: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"stackyard-{component}", "app.kubernetes.io/instance": stack}


def labels(stack: str, component: str, version: str | None = None) -> dict[str, str]:
    result = {
        **selector_labels(stack, component),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "stackyard",
        "app.kubernetes.io/managed-by": MANAGER,
    }
    if version:
        result["app.kubernetes.io/version"] = version
    return result


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """The controller reference to `owner` (a Stack, or a Database for what it alone needs)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def component_metadata(stack_body: dict[str, Any], name: str, component: str, **extra: Any) -> dict[str, Any]:
    meta = stack_body["metadata"]
    return {
        "name": name,
        "namespace": meta["namespace"],
        "labels": labels(meta["name"], component),
        "ownerReferences": [owner_reference(stack_body)],
        **extra,
    }


def service_account(stack_body: dict[str, Any]) -> dict[str, Any]:
    name = stack_body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": component_metadata(stack_body, service_account_name(name), "runtime"),
        "automountServiceAccountToken": True,
    }


def config_reader_role(stack_body: dict[str, Any]) -> dict[str, Any]:
    """What the Stack's api and worker (and its migration Jobs) may do: read exactly the
    Stack's ConfigMap and credentials Secret, record the runs of Schedules in their status
    (the worker writes lastRunTime, nextRunTime and the last job there), the EmailProviders'
    health in theirs (Reachable, breaker, lastAttempt), the Databases' in theirs
    (Connected, indexes, migration, last backup), the Buckets' in theirs (Reachable,
    last retention sweep), the Webhooks' in theirs (Enabled, failingSince, last
    delivery) and the SearchIndexes' in theirs (the search component's documents, sync,
    rebuilding, Synced); and read their own Stack (the admin console shows its conditions),
    nothing else."""
    name = stack_body["metadata"]["name"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": component_metadata(stack_body, f"{name}-config-reader", "runtime"),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [config_map_name(name)],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [credentials_secret_name(name)],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": [GROUP],
                "resources": [
                    "schedules/status",
                    "emailproviders/status",
                    "databases/status",
                    "buckets/status",
                    "webhooks/status",
                    "searchindexes/status",
                ],
                "verbs": ["get", "patch"],
            },
            {"apiGroups": [GROUP], "resources": ["stacks"], "resourceNames": [name], "verbs": ["get"]},
        ],
    }


def config_reader_binding(stack_body: dict[str, Any]) -> dict[str, Any]:
    name = stack_body["metadata"]["name"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": component_metadata(stack_body, f"{name}-config-reader", "runtime"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-config-reader"},
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": service_account_name(name),
                "namespace": stack_body["metadata"]["namespace"],
            }
        ],
    }


def config_map(stack_body: dict[str, Any], config: RuntimeConfig) -> dict[str, Any]:
    name = stack_body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": component_metadata(
            stack_body, config_map_name(name), "config", annotations={HASH_ANNOTATION: config.hash}
        ),
        "data": {CONFIG_KEY: config.canonical_json()},
    }


def credentials_secret(stack_body: dict[str, Any], credentials: dict[str, str], revision: int) -> dict[str, Any]:
    name = stack_body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": component_metadata(
            stack_body,
            credentials_secret_name(name),
            "config",
            annotations={CREDENTIALS_REVISION_ANNOTATION: str(revision)},
        ),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(credentials.items())},
    }


def auth_keys_secret(stack_body: dict[str, Any], data: dict[str, str], rotation_handled: str | None) -> dict[str, Any]:
    """The Stack's signing keys and encryption key, where they are kept (the credentials
    Secret holds copies). Only the operator reads it; the api and worker never do."""
    name = stack_body["metadata"]["name"]
    annotations = {ROTATION_HANDLED_ANNOTATION: rotation_handled} if rotation_handled is not None else {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": component_metadata(stack_body, auth_keys_secret_name(name), "auth", annotations=annotations),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }


def pod_identity_env(deployment_name: str | None) -> list[dict[str, Any]]:
    """Where the pod runs, for the `k8s.*` resource attributes of its telemetry (see
    stackyard.telemetry.resource): namespace, pod name and uid and node from the downward
    API, and the Deployment's name (None for a Job's pod), which the downward API cannot give."""

    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    env: list[dict[str, Any]] = [
        {"name": "STACKYARD_NAMESPACE", "valueFrom": field("metadata.namespace")},
        {"name": "STACKYARD_POD_NAME", "valueFrom": field("metadata.name")},
        {"name": "STACKYARD_POD_UID", "valueFrom": field("metadata.uid")},
        {"name": "STACKYARD_NODE_NAME", "valueFrom": field("spec.nodeName")},
    ]
    if deployment_name is not None:
        env.append({"name": "STACKYARD_DEPLOYMENT", "value": deployment_name})
    return env


WORKER_GRACE_SECONDS = 60
"""The worker pod's termination grace period: SIGTERM gives running jobs 50 s of it."""

TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 (an emptyDir for the read-only root)


def image(spec: StackSpec, component: str) -> str:
    return f"{spec.image.registry}/stackyard-{component}:{spec.image.tag}"


class PodSettings(Protocol):
    """What a pod of the Stack takes from its settings (WorkloadSettings, SearchSettings)."""

    @property
    def resources(self) -> ComputeResources: ...

    @property
    def node_selector(self) -> dict[str, str]: ...


def runtime_container(spec: StackSpec, name: str, image_component: str, settings: PodSettings) -> dict[str, Any]:
    """A container of the api or worker image under the restricted Pod Security Standard, with
    the Stack's resources for `settings` and a writable /tmp; callers add env, ports and probes."""
    return {
        "name": name,
        "image": image(spec, image_component),
        "imagePullPolicy": spec.image.pull_policy,
        "resources": settings.resources.model_dump(exclude_defaults=False),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [dict(TMP_MOUNT)],
    }


def serve_http(container: dict[str, Any], port: int, *, startup_period: int, startup_failures: int) -> None:
    """The `http` port and the probes of a stackyard program (/readyz, /healthz); the startup
    probe gives it startup_period * startup_failures seconds before liveness counts."""
    container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    container["readinessProbe"] = {
        "httpGet": {"path": "/readyz", "port": "http"},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    container["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 6,
    }
    container["startupProbe"] = {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": startup_period,
        "failureThreshold": startup_failures,
    }


def runtime_pod_spec(
    stack_body: dict[str, Any], spec: StackSpec, settings: PodSettings, container: dict[str, Any]
) -> dict[str, Any]:
    """The pod of a Stack's program: its ServiceAccount, a non-root user, the /tmp emptyDir,
    the node selector of `settings` and the image pull Secrets."""
    pod_spec: dict[str, Any] = {
        "serviceAccountName": service_account_name(stack_body["metadata"]["name"]),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if spec.image.pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image.pull_secrets]
    return pod_spec


def backup_volume_name(database: str) -> str:
    """The pod volume of a Database's backups: a DNS label, whatever the Database's name."""
    name = f"backup-{database}"
    if len(name) <= 63 and "." not in name:
        return name
    return f"backup-{hashlib.sha256(database.encode()).hexdigest()[:16]}"


def bucket_volume_name(claim: str) -> str:
    """The pod volume of a claim that Buckets keep their files on: one per claim (Buckets
    may share one, each in its subPath), a DNS label whatever the claim's name."""
    name = f"bucket-{claim}"
    if len(name) <= 63 and "." not in name:
        return name
    return f"bucket-{hashlib.sha256(claim.encode()).hexdigest()[:16]}"


def _mount_buckets(container: dict[str, Any], pod_spec: dict[str, Any], buckets: Mapping[str, VolumeBackend]) -> None:
    """Each Bucket's claim, whole, at BUCKET_ROOT/<bucket> (the program adds the subPath)."""
    if not buckets:
        return
    container["env"].append({"name": "STACKYARD_BUCKET_ROOT", "value": BUCKET_ROOT})
    claims: set[str] = set()
    for bucket, volume in sorted(buckets.items()):
        name = bucket_volume_name(volume.claim_name)
        container["volumeMounts"].append({"name": name, "mountPath": f"{BUCKET_ROOT}/{bucket}"})
        if volume.claim_name not in claims:
            claims.add(volume.claim_name)
            pod_spec["volumes"].append({"name": name, "persistentVolumeClaim": {"claimName": volume.claim_name}})


def deployment(
    stack_body: dict[str, Any],
    spec: StackSpec,
    component: str,
    backups: Mapping[str, BackupVolume] | None = None,
    buckets: Mapping[str, VolumeBackend] | None = None,
    search_url: str | None = None,
) -> dict[str, Any]:
    """The api or worker Deployment; the worker mounts each Database's backup volume
    (`backups`, by Database name) at BACKUP_ROOT/<name>, both mount the claim of each
    Bucket with a volume backend (`buckets`, by Bucket name) at BUCKET_ROOT/<name>, and the
    api is told where the search component answers (`search_url`)."""
    name = stack_body["metadata"]["name"]
    settings: WorkloadSettings = getattr(spec, component)
    port = API_PORT if component == "api" else WORKER_PORT
    grace = 30 if component == "api" else WORKER_GRACE_SECONDS
    container = runtime_container(spec, component, component, settings)
    container["env"] = [
        {"name": "STACKYARD_STACK", "value": name},
        *pod_identity_env(workload_name(name, component)),
        {"name": "STACKYARD_PORT", "value": str(port)},
    ]
    serve_http(container, port, startup_period=2, startup_failures=30)
    pod_spec = runtime_pod_spec(stack_body, spec, settings, container)
    pod_spec["terminationGracePeriodSeconds"] = grace
    if component == "worker":
        # Running jobs get the pod's grace period less a margin to give the rest back.
        container["env"].append({"name": "STACKYARD_SHUTDOWN_GRACE", "value": str(grace - 10)})
        if backups:
            container["env"].append({"name": "STACKYARD_BACKUP_ROOT", "value": BACKUP_ROOT})
        for database, volume in sorted((backups or {}).items()):
            mount = {"name": backup_volume_name(database), "mountPath": f"{BACKUP_ROOT}/{database}"}
            container["volumeMounts"].append(mount | ({"subPath": volume.sub_path} if volume.sub_path else {}))
            claim = {"claimName": volume.claim_name}
            pod_spec["volumes"].append({"name": mount["name"], "persistentVolumeClaim": claim})
    _mount_buckets(container, pod_spec, buckets or {})
    if component == "api" and search_url is not None:
        container["env"].append({"name": "STACKYARD_SEARCH_URL", "value": search_url})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": component_metadata(stack_body, workload_name(name, component), component),
        "spec": {
            "replicas": settings.replicas,
            "selector": {"matchLabels": selector_labels(name, component)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels(name, component, spec.image.tag)}, "spec": pod_spec},
        },
    }


def api_service(stack_body: dict[str, Any]) -> dict[str, Any]:
    name = stack_body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": component_metadata(stack_body, workload_name(name, "api"), "api"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name, "api"),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
