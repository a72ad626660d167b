"""The chart under test: helm rendering or installing it, and ways to look at what it made."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml
from stackyard_harness.kube import KubeCluster
from stackyard_harness.tools import REPO_ROOT, pinned_versions

CHART = REPO_ROOT / "charts" / "stack"

# Every optional part on: what `helm template` and `helm install` must accept as well as the defaults.
ALL_ON: dict[str, Any] = {
    "operator": {
        "replicas": 2,
        "watch": {"extraNamespaces": ["team-a"]},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "stackyard", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
                        },
                    }
                ]
            }
        },
        "podAnnotations": {"example.com/owner": "platform"},
    },
    "redis": {
        "podDisruptionBudget": {"enabled": True},
        "config": {"maxmemory": "400mb", "extra": "latency-monitor-threshold 100"},
        "persistence": {"storageClass": "fast", "size": "20Gi"},
        "networkPolicy": {"extraIngressFrom": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]},
    },
    "otelCollector": {
        "replicas": 2,
        "otlpExporter": {"endpoint": "otlp.example.com:4317"},
        "extraEnv": [{"name": "EXAMPLE", "value": "1"}],
    },
    "mongodb": {"enabled": True},
    "stack": {"enabled": True, "spec": {"api": {"replicas": 3}, "mongodb": {"database": "app"}}},
    "imagePullSecrets": ["registry-credentials"],
}


class HelmError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"helm {' '.join(map(str, self.cmd[1:]))} failed ({self.returncode}): {self.stderr.strip()}"


class Helm:
    """The harness's helm, pointed at the chart (and, for install, at the harness's API server)."""

    def __init__(self, binary: str, work_dir: Path, kubeconfig: Path | None = None) -> None:
        self.binary = binary
        self.work_dir = work_dir
        self.kubeconfig = kubeconfig

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [self.binary, *args]
        if self.kubeconfig:
            command += ["--kubeconfig", str(self.kubeconfig)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            raise HelmError(result.returncode, command, result.stdout, result.stderr)
        return result

    @property
    def kube_version(self) -> list[str]:
        """`helm template` renders for the Kubernetes version the harness runs (helm's own default may be older)."""
        return ["--kube-version", pinned_versions()["KUBERNETES_VERSION"]]

    def values_file(self, values: dict[str, Any] | None) -> list[str]:
        if not values:
            return []
        path = self.work_dir / f"values-{uuid.uuid4().hex[:8]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return ["--values", str(path)]

    def template(
        self, values: dict[str, Any] | None = None, *args: str, release: str = "demo", namespace: str = "apps"
    ) -> list[dict[str, Any]]:
        """`helm template` of the chart: the rendered objects (hooks and tests included, CRDs not)."""
        out = self.run(
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            *self.kube_version,
            *self.values_file(values),
            *args,
        )
        return [doc for doc in yaml.safe_load_all(out.stdout) if doc]

    def try_template(self, values: dict[str, Any] | None = None, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "template", "demo", str(CHART), *self.kube_version, *self.values_file(values), *args, check=False
        )


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(what, pod metadata, pod spec) of every pod the objects make: workloads' templates and bare Pods."""
    found = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            template = obj["spec"]["template"]
            found.append((name, template["metadata"], template["spec"]))
        elif obj["kind"] == "Pod":
            found.append((name, obj["metadata"], obj["spec"]))
    return found


class ChartNamespace:
    """A fresh namespace in the harness, labelled to enforce the restricted Pod Security Standard."""

    def __init__(self, kube: KubeCluster, name: str) -> None:
        self.kube, self.name = kube, name

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.kube.kubectl("-n", self.name, *args, check=check, input=input)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-o", "json", check=False)
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        return json.loads(result.stdout)  # type: ignore[no-any-return]


def make_namespace(kube: KubeCluster, prefix: str) -> ChartNamespace:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", name)
    kube.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
        "pod-security.kubernetes.io/audit=restricted",
    )
    return ChartNamespace(kube, name)
