"""stackyard's own programs (operator, api, worker) as local processes against the
harness servers: what `make up` runs and what the integration tests drive."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from .kube import KubeCluster
from .process import HarnessError, ManagedProcess, free_port
from .tools import REPO_ROOT

CRDS_DIR = REPO_ROOT / "crds"


def _program(name: str) -> str:
    """The console script installed next to this interpreter (the repo's .venv)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise HarnessError(f"{name} is not installed: run `make install`")
    return found


def install_crds(kube: KubeCluster) -> None:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS_DIR))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS_DIR))


def start_operator(
    kube: KubeCluster,
    run_dir: Path,
    *args: str,
    name: str = "operator",
    kubeconfig: Path | None = None,
    ready_log: str = "watching",
    extra_env: dict[str, str] | None = None,
) -> ManagedProcess:
    """stackyard-operator with `args` (e.g. "--all-namespaces"), logging to <run_dir>/<name>.log,
    once its log shows `ready_log` (a follower under leader election logs "Lease" instead).
    `extra_env` adds to its environment (e.g. OTEL_EXPORTER_OTLP_ENDPOINT)."""
    env = {"KUBECONFIG": str(kubeconfig or kube.kubeconfig), "STACKYARD_LOG_LEVEL": "info", **(extra_env or {})}
    process = ManagedProcess(name, [_program("stackyard-operator"), *args], run_dir / f"{name}.log", env=env).start()
    process.wait_ready(lambda: ready_log in process.log_path.read_text(), 30, f"logging {ready_log!r}")
    return process


class ServiceProcess:
    """An api or worker process reading one Stack's config through the API server."""

    def __init__(self, process: ManagedProcess, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def start_service(
    component: str,
    kube: KubeCluster,
    run_dir: Path,
    namespace: str,
    stack: str,
    *,
    kubeconfig: Path | None = None,
    extra_env: dict[str, str] | None = None,
    name: str | None = None,
    port: int | None = None,
) -> ServiceProcess:
    """stackyard-api or stackyard-worker for `stack`, on `port` (default: a free one), once it
    answers /healthz."""
    port = port or free_port()
    name = name or f"{component}-{namespace}-{stack}"
    env = {
        "KUBECONFIG": str(kubeconfig or kube.kubeconfig),
        "STACKYARD_STACK": stack,
        "STACKYARD_NAMESPACE": namespace,
        "STACKYARD_PORT": str(port),
        "STACKYARD_HOST": "127.0.0.1",
        **(extra_env or {}),
    }
    env.pop("STACKYARD_CONFIG_DIR", None)
    process = ManagedProcess(name, [_program(f"stackyard-{component}")], run_dir / f"{name}.log", env=env).start()
    process.wait_ready(
        lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200, 30, "answering /healthz"
    )
    return ServiceProcess(process, port)


def service_account_kubeconfig(kube: KubeCluster, namespace: str, service_account: str) -> Path:
    """A kubeconfig holding a fresh token of `service_account`: to run a program with
    exactly the rights its RBAC grants."""
    token = kube.kubectl("create", "token", service_account, "-n", namespace, "--duration=24h").stdout.strip()
    return kube.write_token_kubeconfig(f"sa-{namespace}-{service_account}", token)


def create_backends_secret(kube: KubeCluster, namespace: str, redis_url: str, mongodb_uri: str) -> None:
    """The Secret `backends` that the example Stack and the tests' Stacks reference."""
    manifest = kube.kubectl(
        "create",
        "secret",
        "generic",
        "backends",
        "-n",
        namespace,
        "--dry-run=client",
        "-o",
        "yaml",
        f"--from-literal=redis={redis_url}",
        f"--from-literal=mongodb={mongodb_uri}",
    ).stdout
    kube.kubectl("apply", "-f", "-", input=manifest)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it holds; raise HarnessError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}")
