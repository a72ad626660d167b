"""Fixtures for tests across the parts: the real API server with stackyard's CRDs, the
operator as a process watching every namespace, a fresh namespace per test."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from stackyard_harness.harness import Harness
from stackyard_harness.kube import KubeCluster
from stackyard_harness.process import ManagedProcess
from stackyard_harness.programs import (
    ServiceProcess,
    create_backends_secret,
    install_crds,
    service_account_kubeconfig,
    start_operator,
    start_service,
)


def wait_for(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1, what: str = "condition") -> Any:
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
    pytest.fail(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


@pytest.fixture(scope="session")
def cluster(kube: KubeCluster) -> KubeCluster:
    install_crds(kube)
    return kube


class SessionOperator:
    """The operator watching every namespace, shared by the tests; it can be stopped
    for a test that runs its own operators, and restarted."""

    def __init__(self, cluster: KubeCluster, harness: Harness) -> None:
        self.cluster, self.harness = cluster, harness
        self.process: ManagedProcess | None = None
        self.starts = 0

    def start(self, env: dict[str, str] | None = None) -> ManagedProcess:
        """Start it, with `env` added to its environment (e.g. OTEL_* to export telemetry);
        a later plain `start()` runs it without."""
        self.starts += 1
        self.process = start_operator(
            self.cluster, self.harness.run_dir, "--all-namespaces", name=f"operator-{self.starts}", extra_env=env
        )
        return self.process

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None

    def log(self) -> str:
        return self.process.log_path.read_text() if self.process else ""


@pytest.fixture(scope="session")
def session_operator(cluster: KubeCluster, harness: Harness) -> Iterator[SessionOperator]:
    operator = SessionOperator(cluster, harness)
    yield operator
    operator.stop()


@pytest.fixture
def operator(session_operator: SessionOperator) -> SessionOperator:
    """The shared operator, running."""
    if session_operator.process is None:
        session_operator.start()
    return session_operator


@pytest.fixture
def without_shared_operator(session_operator: SessionOperator) -> None:
    """No shared operator during the test (for tests that run their own); the next test
    that asks for `operator` starts it again."""
    session_operator.stop()


class Namespace:
    """A fresh namespace and helpers to act in it."""

    def __init__(self, kube: KubeCluster, name: str) -> None:
        self.kube = kube
        self.name = name

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]]) -> None:
        text = (
            manifest
            if isinstance(manifest, str)
            else yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest])
        )
        self.kube.kubectl("apply", "-n", self.name, "-f", "-", input=text)

    def try_apply(self, manifest: dict[str, Any]):  # type: ignore[no-untyped-def]
        """kubectl apply that returns the result instead of raising (to see rejections)."""
        return self.kube.kubectl("apply", "-n", self.name, "-f", "-", input=json.dumps(manifest), check=False)

    def kubectl(self, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
        return self.kube.kubectl("-n", self.name, *args, check=check)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def condition(self, kind: str, name: str, type_: str = "Ready") -> dict[str, Any] | None:
        obj = self.get(kind, name) or {}
        return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)

    def secret(self, name: str, **data: str) -> None:
        args = [f"--from-literal={k}={v}" for k, v in data.items()]
        manifest = self.kubectl("create", "secret", "generic", name, *args, "--dry-run=client", "-o", "yaml").stdout
        self.apply(manifest)


@pytest.fixture
def namespace(cluster: KubeCluster) -> Iterator[Namespace]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield Namespace(cluster, name)
    cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def backends(namespace: Namespace, redis_server, mongo_server) -> str:  # type: ignore[no-untyped-def]
    """A Secret `backends` with the harness's Redis URL and MongoDB URI; returns its name."""
    create_backends_secret(namespace.kube, namespace.name, redis_server.url, mongo_server.url)
    return "backends"


# An EmailProvider for the Stack `demo`, with its API key in the Secret `resend`.
RESEND = {
    "apiVersion": "stackyard.dev/v1alpha1",
    "kind": "EmailProvider",
    "metadata": {"name": "resend"},
    "spec": {
        "stackRef": {"name": "demo"},
        "type": "resend",
        "priority": 10,
        "resend": {"apiKeySecretRef": {"name": "resend", "key": "apiKey"}},
    },
}


def stack_manifest(name: str = "demo", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Stack",
        "metadata": {"name": name},
        "spec": {
            "redis": {"urlSecretRef": {"name": "backends", "key": "redis"}},
            "mongodb": {"uriSecretRef": {"name": "backends", "key": "mongodb"}},
            **spec,
        },
    }


@pytest.fixture
def services(cluster: KubeCluster, harness: Harness) -> Iterator[Callable[..., ServiceProcess]]:
    """Start api or worker processes for a Stack, as its own ServiceAccount."""
    started: list[ServiceProcess] = []

    def start(
        component: str, namespace: Namespace, stack: str = "demo", env: dict[str, str] | None = None
    ) -> ServiceProcess:
        kubeconfig = service_account_kubeconfig(cluster, namespace.name, f"{stack}-stackyard")
        service = start_service(
            component, cluster, harness.run_dir, namespace.name, stack, kubeconfig=kubeconfig, extra_env=env
        )
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
