"""The e2e suite: the chart installed with helm on a real cluster, the images running as pods.

Which cluster: $E2E_KUBECONFIG, else $KUBECONFIG, else the one `make cluster` made
(~/.cache/stackyard/cluster/admin.kubeconfig). The cluster must already hold the images
(`make e2e` and `make e2e-kind` import or load them): the project's three from `make images`
(E2E_REGISTRY, E2E_TAG: default ghcr.io/stackyard and core's version) and the three that
stand in for Docker Hub's (`hack/cluster.sh images`: stackyard-e2e/{redis,otelcol,ferretdb}:e2e).

The session installs the chart once into a fresh namespace (release `e2e`, the default
Stack on, MongoDB from a FerretDB pod, mails and job targets to an in-cluster sink) and
removes it at the end; E2E_KEEP=1 keeps it for a look afterwards.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from stackyard_harness.tools import ToolMissing, Tools

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stack"
SINK_SCRIPT = Path(__file__).with_name("sink.py")
RELEASE = "e2e"
STACK = "e2e-stack"  # the chart's default Stack is named after the release's full name
CACHE = Path(os.environ.get("STACKYARD_CACHE", Path.home() / ".cache" / "stackyard"))
CLUSTER_KUBECONFIG = Path(os.environ.get("STACKYARD_CLUSTER_DIR", CACHE / "cluster")) / "admin.kubeconfig"
# Pods start slowly on a busy two-core machine: image unpacking, Python start-up.
READY_TIMEOUT = float(os.environ.get("E2E_READY_TIMEOUT", "240"))
# The Stack's admin API key (spec.auth.adminApiKeySecretRef: the Secret e2e-backends), one per session.
ADMIN_KEY = secrets.token_urlsafe(24)
SEARCH_STORAGE = "64Mi"


def search_storage_class(namespace: str) -> str:
    """The StorageClass the Stack's spec.search names: the search test makes it, and its one
    volume (no provisioner: the cluster `make cluster` makes has none)."""
    return f"{namespace}-search"


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25, what: str = "condition") -> Any:
    """Poll until `check()` returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last: {last_error})" if last_error else ""))


def unavailable(reason: str) -> None:
    """Skip outside CI with the reason; fail in CI, where the cluster must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"e2e: {reason}", pytrace=False)
    pytest.skip(f"e2e: {reason}")


class CommandError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd[:3]))} ... failed ({self.returncode}): {(self.stderr or '').strip()[-2000:]}"
        )


@dataclass
class Cluster:
    kubeconfig: Path
    kubectl_bin: Path
    helm_bin: Path
    namespace: str = ""

    def _run(self, cmd: list[str], *, input: str | None = None, check: bool = True, timeout: float = 120):
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise CommandError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120):
        cmd = [str(self.kubectl_bin), "--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace, *args]
        return self._run(cmd, input=input, check=check, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 600):
        cmd = [str(self.helm_bin), "--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace, *args]
        return self._run(cmd, check=check, timeout=timeout)

    def apply(self, *manifests: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise CommandError(result.returncode, ["kubectl", "get", kind, name], result.stdout, result.stderr)
        return json.loads(result.stdout)

    def items(self, kind: str, *selector: str) -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", kind, *selector, "-o", "json").stdout)["items"]

    def ready(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object when its Ready condition is True for its current generation."""
        obj = self.get(kind, name) or {}
        meta, conditions = obj.get("metadata", {}), obj.get("status", {}).get("conditions", [])
        ready = next((c for c in conditions if c["type"] == "Ready"), None)
        if ready and ready["status"] == "True" and ready.get("observedGeneration") == meta.get("generation"):
            return obj
        return None

    def rolled_out(self, name: str) -> bool:
        """A Deployment whose current generation is observed and fully updated and available."""
        d = self.get("deployment", name)
        if not d:
            return False
        s, want = d.get("status", {}), d["spec"].get("replicas", 1)
        return (
            s.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and s.get("updatedReplicas", 0) == want
            and s.get("availableReplicas", 0) == want
            and s.get("replicas", 0) == want
        )

    def describe_pods(self) -> str:
        """The workloads and the namespace's latest events, for a failure's message."""
        workloads = self.kubectl("get", "pods,deployments,statefulsets", "-o", "wide", check=False).stdout
        events = self.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout.splitlines()[-25:]
        return workloads + "\n" + "\n".join(events)


@dataclass
class Sink:
    """What the in-cluster sink received: mails and HTTP requests, read from its log."""

    cluster: Cluster
    name: str = "e2e-sink"
    host: str = field(init=False)

    def __post_init__(self) -> None:
        self.host = f"{self.name}.{self.cluster.namespace}.svc.cluster.local"

    def records(self, kind: str) -> list[dict[str, Any]]:
        out = self.cluster.kubectl("logs", f"deployment/{self.name}", "--tail=-1").stdout
        found = []
        for line in out.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("kind") == kind:
                found.append(record)
        return found

    def mails_to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.records("mail") if address in m["recipients"]]

    def requests_to(self, path_prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.records("http") if r["path"].startswith(path_prefix)]


class PortForward:
    """`kubectl port-forward` to a Service, on a free local port.

    kubectl forwards to one pod of the Service and exits when that pod goes (a rollout of the
    api: the operator rolls it out when the Stack's first SearchIndex comes or its last goes, as
    STACKYARD_SEARCH_URL comes and goes); `ensure()` starts it again on the same local port."""

    def __init__(self, cluster: Cluster, target: str, port: int) -> None:
        self.cluster, self.target, self.port = cluster, target, port
        self.proc = self._start(f":{port}")
        self.local_port = int(self._forwarding_port())
        self.url = f"http://127.0.0.1:{self.local_port}"

    def _start(self, ports: str) -> subprocess.Popen[str]:
        cluster = self.cluster
        cmd = [str(cluster.kubectl_bin), "--kubeconfig", str(cluster.kubeconfig), "--namespace", cluster.namespace]
        return subprocess.Popen(
            [*cmd, "port-forward", self.target, ports],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _forwarding_port(self) -> str:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not match:
            self.close()
            raise RuntimeError(f"kubectl port-forward {self.target}: {line or self.proc.stderr.read()}")
        # kubectl writes a line per connection and one per error: keep its pipes from filling up.
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=stream.read, daemon=True).start()
        return match.group(1)

    def ensure(self) -> None:
        """Start kubectl again when it has exited (its pod gone)."""
        if self.proc.poll() is None:
            return
        self.proc = self._start(f"{self.local_port}:{self.port}")
        self._forwarding_port()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def image_settings() -> tuple[str, str]:
    version = tomllib.loads((REPO / "core" / "pyproject.toml").read_text())["project"]["version"]
    return os.environ.get("E2E_REGISTRY", "ghcr.io/stackyard"), os.environ.get("E2E_TAG", version)


def chart_values(namespace: str) -> dict[str, Any]:
    registry, tag = image_settings()
    small = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "512Mi"}}
    third_party = {"registry": "", "tag": "e2e", "pullPolicy": "IfNotPresent"}
    return {
        "operator": {
            "image": {"registry": registry, "tag": tag, "pullPolicy": "IfNotPresent"},
            "resources": small,
        },
        "redis": {
            "image": third_party | {"repository": "stackyard-e2e/redis"},
            "persistence": {"enabled": False},
            "resources": small,
        },
        "otelCollector": {"image": third_party | {"repository": "stackyard-e2e/otelcol"}, "resources": small},
        "mongodb": {"enabled": False, "external": {"uriSecretRef": {"name": "e2e-backends", "key": "mongodb"}}},
        "stack": {
            "enabled": True,
            "image": {"registry": registry, "tag": tag, "pullPolicy": "IfNotPresent"},
            "spec": {
                "api": {"replicas": 1, "resources": small},
                "worker": {"replicas": 1, "resources": small},
                "search": {
                    "storage": SEARCH_STORAGE,
                    "storageClassName": search_storage_class(namespace),
                    "resources": small,
                },
                "mongodb": {"database": "e2e"},
                "auth": {
                    "adminApiKeySecretRef": {"name": "e2e-backends", "key": "adminApiKey"},
                    "appUrl": "http://localhost:3000",
                    "emailFrom": "E2E <auth@e2e.example.com>",
                    "cookies": {"secure": False},
                },
            },
            "test": {"timeoutSeconds": 120},
        },
    }


def backends(namespace: str) -> list[dict[str, Any]]:
    """FerretDB (MongoDB's wire protocol) and the sink, each a Deployment with a Service."""
    registry, tag = image_settings()
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }

    def deployment(name: str, image: str, ports: dict[str, int], **pod: Any) -> list[dict[str, Any]]:
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "stackyard-e2e"}
        container = {
            "name": name,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": n, "containerPort": p} for n, p in ports.items()],
            "securityContext": restricted,
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
            **pod.pop("container", {}),
        }
        return [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
                            "containers": [container],
                            # The sink's Python is PID 1 without a SIGTERM handler: no reason to wait 30 s.
                            "terminationGracePeriodSeconds": 2,
                            **pod,
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "selector": labels,
                    "ports": [{"name": n, "port": p, "targetPort": p} for n, p in ports.items()],
                },
            },
        ]

    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "e2e-backends"},
            "stringData": {
                "mongodb": f"mongodb://e2e-ferretdb.{namespace}.svc.cluster.local:27017/",
                "adminApiKey": ADMIN_KEY,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "e2e-sink"},
            "data": {"sink.py": SINK_SCRIPT.read_text()},
        },
        *deployment(
            "e2e-ferretdb",
            "stackyard-e2e/ferretdb:e2e",
            {"mongodb": 27017},
            container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            volumes=[{"name": "data", "emptyDir": {}}],
        ),
        *deployment(
            "e2e-sink",
            f"{registry}/stackyard-api:{tag}",
            {"smtp": 1025, "http": 8000},
            container={
                "command": ["python3", "-u", "/sink/sink.py"],
                "volumeMounts": [{"name": "script", "mountPath": "/sink"}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}, "periodSeconds": 2},
            },
            volumes=[{"name": "script", "configMap": {"name": "e2e-sink"}}],
            automountServiceAccountToken=False,
        ),
    ]


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    explicit = os.environ.get("E2E_KUBECONFIG") or os.environ.get("KUBECONFIG")
    kubeconfig = Path(explicit) if explicit else CLUSTER_KUBECONFIG
    if not kubeconfig.is_file():
        unavailable(f"no kubeconfig at {kubeconfig}: run `make cluster`, or set E2E_KUBECONFIG or KUBECONFIG")
    try:
        tools = Tools.locate()
        kubectl, helm = tools.kube_binary("kubectl"), tools.require("helm")
    except ToolMissing as exc:
        unavailable(str(exc))
    found = Cluster(kubeconfig, kubectl, helm)
    ready = found._run([str(kubectl), "--kubeconfig", str(kubeconfig), "get", "--raw", "/readyz"], check=False)
    if ready.returncode != 0:
        unavailable(f"the cluster of {kubeconfig} does not answer: {ready.stderr.strip()}")
    nodes = json.loads(found._run([str(kubectl), "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"]).stdout)
    if not any(
        c["type"] == "Ready" and c["status"] == "True" for n in nodes["items"] for c in n["status"]["conditions"]
    ):
        unavailable(f"the cluster of {kubeconfig} has no Ready node: pods cannot run")
    return found


@pytest.fixture(scope="session")
def release(cluster: Cluster) -> Iterator[Cluster]:
    """The chart installed in a fresh namespace, its default Stack Ready, with the backends."""
    namespace = f"e2e-{secrets.token_hex(3)}"
    cluster.namespace = namespace
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.apply(*backends(namespace))
        values = CACHE / "e2e-values.yaml"
        values.parent.mkdir(parents=True, exist_ok=True)
        values.write_text(yaml.safe_dump(chart_values(namespace)))
        try:
            cluster.helm("install", RELEASE, str(CHART), "--values", str(values), "--wait", "--timeout", "4m")
        except CommandError:
            print(cluster.describe_pods())
            raise
        yield cluster
    finally:
        if os.environ.get("E2E_KEEP") == "1":
            print(f"\ne2e: kept namespace {namespace} (helm release {RELEASE})")
        else:
            cluster.helm("uninstall", RELEASE, "--wait", "--timeout", "3m", check=False)
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="session")
def sink(release: Cluster) -> Sink:
    wait_for(lambda: release.rolled_out("e2e-sink"), timeout=READY_TIMEOUT, what="the sink's Deployment")
    return Sink(release)


@pytest.fixture(scope="session")
def stack(release: Cluster) -> dict[str, Any]:
    """The default Stack, Ready, with its api and worker rolled out."""
    try:
        obj = wait_for(lambda: release.ready("stack", STACK), timeout=READY_TIMEOUT, what=f"Stack {STACK} Ready")
        for name in (f"{STACK}-api", f"{STACK}-worker"):
            wait_for(lambda n=name: release.rolled_out(n), timeout=READY_TIMEOUT, what=f"Deployment {name}")
    except BaseException:
        print(release.describe_pods())
        raise
    return obj


@pytest.fixture(scope="session")
def api(release: Cluster, stack: dict[str, Any]) -> Iterator[httpx.Client]:
    """An HTTP client to the Stack's api Service, through `kubectl port-forward`."""
    service = release.get("service", f"{STACK}-api")
    assert service, f"the operator made no Service {STACK}-api"
    forward = PortForward(release, f"service/{STACK}-api", service["spec"]["ports"][0]["port"])
    try:
        hooks = {"request": [lambda request: forward.ensure()]}
        with httpx.Client(base_url=forward.url, timeout=10, event_hooks=hooks) as client:
            wait_for(lambda: client.get("/readyz").status_code == 200, timeout=60, what="the api's /readyz")
            yield client
    finally:
        forward.close()
