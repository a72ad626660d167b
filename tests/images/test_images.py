"""The container images that `make images` builds: each runs its program as uid 10001 on a
read-only root file system (only /tmp writable), carries no compiler and its OCI labels;
the api and worker serve the config they were given, and the operator image reconciles a
Stack against the harness's API server into config that the api image then applies.

The images are not built here (that takes minutes; `make test` runs `make images` first).
The engine is: when DOCKER_HOST is unset and the project's engine (hack/docker.sh) is not
running, the session starts it and stops it at the end. Outside CI a missing engine or
image skips with the command to run; with CI set it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from stackyard.config import RuntimeConfig
from stackyard.resources.stack import StackSpec
from stackyard_harness.kube import KubeCluster
from stackyard_harness.process import free_port
from stackyard_harness.programs import create_backends_secret, install_crds, service_account_kubeconfig
from stackyard_harness.pytest_plugin import unavailable

REPO = Path(__file__).resolve().parents[2]
DOCKER_SH = REPO / "hack" / "docker.sh"
REGISTRY = os.environ.get("REGISTRY") or "ghcr.io/stackyard"
VERSION = os.environ.get("VERSION") or tomllib.loads((REPO / "core/pyproject.toml").read_text())["project"]["version"]
COMPONENTS = ("operator", "api", "worker")
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "tcc")
# How Kubernetes runs them (the operator's Deployments and the chart): no capabilities,
# no privilege escalation, a read-only root with an emptyDir on /tmp.
HARDENED = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
CONFIG_HASH_ANNOTATION = "stackyard.dev/config-hash"


class Docker:
    """The docker CLI against one engine."""

    def __init__(self, cli: str, env: dict[str, str]) -> None:
        self.cli = cli
        self.env = env

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.cli, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def image(self, component: str) -> str:
        tag = f"{REGISTRY}/stackyard-{component}:{VERSION}"
        if self("image", "inspect", tag, check=False).returncode != 0:
            unavailable(f"image {tag} is missing: run `make images`")
        return tag


class Container:
    """A detached container on the host's network, removed by `remove()`."""

    def __init__(self, docker: Docker, name: str) -> None:
        self.docker = docker
        self.name = name

    def running(self) -> bool:
        result = self.docker("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def logs(self) -> str:
        result = self.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return self.docker("exec", self.name, *command, check=False)

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        """Poll `check` until it returns something truthy; fail with the logs if the container
        exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if result := check():
                    return result
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if not self.running():
                pytest.fail(f"container {self.name} exited while waiting for {what}:\n{self.logs()[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; logs of {self.name}:\n{self.logs()[-3000:]}")

    def remove(self) -> None:
        self.docker("rm", "--force", self.name, check=False)


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    cli = shutil.which(os.environ.get("DOCKER", "docker"))
    if cli is None:
        unavailable("the docker CLI is not installed: run `sudo hack/apt-packages.sh`, then `make images`")
    assert cli is not None
    env = dict(os.environ)
    started = False
    if not env.get("DOCKER_HOST"):
        env["DOCKER_HOST"] = engine_host()
        if subprocess.run(["bash", DOCKER_SH, "status"], capture_output=True, check=False).returncode != 0:
            if shutil.which("dockerd") is None or os.geteuid() != 0:
                unavailable(
                    "no container engine: run `make images` as root (it starts hack/docker.sh), or set DOCKER_HOST"
                )
            start = subprocess.run(["bash", DOCKER_SH, "start"], capture_output=True, text=True, check=False)
            if start.returncode != 0:  # an engine that is there but does not start is a failure, always
                pytest.fail(f"hack/docker.sh start failed:\n{start.stdout}{start.stderr}", pytrace=False)
            started = True
    yield Docker(cli, env)
    if started:
        subprocess.run(["bash", DOCKER_SH, "stop"], capture_output=True, check=False)


def engine_host() -> str:
    line = subprocess.run(["bash", DOCKER_SH, "env"], capture_output=True, text=True, check=True).stdout.strip()
    return line.removeprefix("export DOCKER_HOST=")


@pytest.fixture
def start_container(docker: Docker) -> Iterator[Callable[..., Container]]:
    """Start a component's image detached, hardened as in Kubernetes, on the host's network
    (the project's engine has no bridge); `volumes` maps host paths to read-only mounts."""
    started: list[Container] = []

    def start(component: str, *args: str, env: dict[str, str], volumes: dict[Path, str] | None = None) -> Container:
        container = Container(docker, f"stackyard-test-{component}-{uuid.uuid4().hex[:8]}")
        options = [f"--env={key}={value}" for key, value in env.items()]
        options += [f"--volume={host}:{inside}:ro" for host, inside in (volumes or {}).items()]
        docker("run", "--detach", "--name", container.name, "--network", "host", *HARDENED, *options,
               docker.image(component), *args)  # fmt: skip
        started.append(container)
        return container

    yield start
    for container in started:
        container.remove()


def readable_dir(path: Path) -> Path:
    """Open a test directory (pytest makes them 0700, root's) to the image's user."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    for child in path.iterdir():
        child.chmod(child.stat().st_mode | stat.S_IROTH)
    return path


def write_file_config(directory: Path) -> RuntimeConfig:
    """config.json and credentials.json as FileConfigSource reads them."""
    spec = StackSpec.model_validate(
        {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
    )
    config = RuntimeConfig(stack="demo", namespace="images", generation=3, spec=spec)
    (directory / "config.json").write_text(config.canonical_json())
    credentials = {"stack.redis.url": "redis://:s3cret@127.0.0.1:1/0", "stack.mongodb.uri": "mongodb://127.0.0.1:1/"}
    (directory / "credentials.json").write_text(json.dumps(credentials))
    return config


@pytest.mark.parametrize("component", COMPONENTS)
def test_image_runs_its_program_as_uid_10001_without_a_compiler(docker, component):
    image = docker.image(component)
    script = (
        "id -u; touch /tmp/written && echo tmp-writable; touch /opt/venv/x 2>/dev/null || echo root-read-only; "
        f"for c in {' '.join(COMPILERS)}; do command -v $c; done; "
        f"stackyard-{component} --help"
    )
    result = docker("run", "--rm", "--network", "none", *HARDENED, "--entrypoint", "sh", image, "-c", script)
    lines = result.stdout.splitlines()
    assert lines[:3] == ["10001", "tmp-writable", "root-read-only"], result.stdout + result.stderr
    assert lines[3].startswith(f"usage: stackyard-{component}"), f"a compiler or no usage line: {lines[3:5]}"


@pytest.mark.parametrize("component", COMPONENTS)
def test_image_declares_its_user_entrypoint_and_oci_labels(docker, component):
    (info,) = json.loads(docker("image", "inspect", docker.image(component)).stdout)
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == [f"stackyard-{component}"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == f"stackyard-{component}"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.description"]
    assert {"source", "revision", "licenses", "base.name"} <= {
        k.removeprefix("org.opencontainers.image.") for k in labels
    }


@pytest.mark.parametrize("component", ["api", "worker"])
def test_service_image_serves_health_and_the_config_from_its_mounted_directory(start_container, tmp_path, component):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config = write_file_config(config_dir)
    readable_dir(config_dir)
    port = free_port()
    container = start_container(
        component,
        env={"STACKYARD_CONFIG_DIR": "/etc/stackyard", "STACKYARD_PORT": str(port), "STACKYARD_HOST": "127.0.0.1"},
        volumes={config_dir: "/etc/stackyard"},
    )
    url = f"http://127.0.0.1:{port}"
    container.wait_for(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, "/healthz")
    body = container.wait_for(
        lambda: (r := httpx.get(f"{url}/v1/config", timeout=1)).json()["hash"] == config.hash and r.json(),
        f"/v1/config to report {config.hash}",
    )
    assert (body["stack"], body["namespace"], body["generation"]) == ("demo", "images", 3)
    assert "s3cret" not in json.dumps(body)
    assert container.exec("id", "-u").stdout.strip() == "10001"


@pytest.fixture
def cluster_namespace(kube: KubeCluster) -> Iterator[str]:
    install_crds(kube)
    name = f"img-{uuid.uuid4().hex[:8]}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false")


def readable_kubeconfig(source: Path, directory: Path) -> Path:
    """A copy of a kubeconfig (0600, root's) that the image's user can read, alone in `directory`."""
    directory.mkdir()
    shutil.copyfile(source, directory / "config")
    return readable_dir(directory)


def test_operator_image_reconciles_a_stack_that_the_api_image_then_serves(
    kube, redis_server, mongo_server, start_container, cluster_namespace, tmp_path
):
    namespace = cluster_namespace
    health = free_port()
    operator = start_container(
        "operator",
        f"--namespace={namespace}",
        f"--health-port={health}",
        env={"KUBECONFIG": "/etc/kube/config", "STACKYARD_LOG_LEVEL": "info"},
        volumes={readable_kubeconfig(kube.kubeconfig, tmp_path / "admin"): "/etc/kube"},
    )
    operator.wait_for(lambda: f"watching {namespace}" in operator.logs(), "the operator to log 'watching'")
    operator.wait_for(lambda: httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=1).is_success, "its /healthz")

    create_backends_secret(kube, namespace, redis_server.url, mongo_server.url)
    stack = yaml.safe_load((REPO / "examples/stack.yaml").read_text())
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(stack))
    name = stack["metadata"]["name"]

    def config_hash() -> str | None:
        result = kube.kubectl("get", "configmap", f"{name}-config", "-n", namespace, "-o", "json", check=False)
        return (
            json.loads(result.stdout)["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
            if result.returncode == 0
            else None
        )

    # The log line proves that this container did the work (another operator may watch the namespace too).
    operator.wait_for(lambda: f"reconciled Stack {namespace}/{name}" in operator.logs(), "the Stack reconciled")
    expected = operator.wait_for(config_hash, f"ConfigMap {name}-config from the operator image")

    # The api image, with the Stack's own ServiceAccount as a pod would have it, applies that config.
    account = service_account_kubeconfig(kube, namespace, f"{name}-stackyard")
    port = free_port()
    api = start_container(
        "api",
        env={
            "KUBECONFIG": "/etc/kube/config",
            "STACKYARD_STACK": name,
            "STACKYARD_NAMESPACE": namespace,
            "STACKYARD_PORT": str(port),
            "STACKYARD_HOST": "127.0.0.1",
        },
        volumes={readable_kubeconfig(account, tmp_path / "account"): "/etc/kube"},
    )
    url = f"http://127.0.0.1:{port}"
    api.wait_for(lambda: httpx.get(f"{url}/v1/config", timeout=1).json()["hash"] == expected, f"api config {expected}")
    ready = api.wait_for(
        lambda: (r := httpx.get(f"{url}/readyz", timeout=2)).status_code == 200 and r.json(), "/readyz"
    )
    assert ready["checks"]["redis"] == "ok"
