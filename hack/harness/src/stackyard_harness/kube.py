"""A real Kubernetes control plane: etcd, kube-apiserver and (optionally)
kube-controller-manager, with client-certificate authentication and RBAC on.

No kubelet or scheduler: objects are stored, validated (OpenAPI, CEL), watched,
authorised and garbage-collected exactly as on a cluster, but pods do not run.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from .certs import CertificateAuthority, service_account_keys
from .process import ManagedProcess, free_port
from .tools import Tools

SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_NAME = "stackyard-harness"

# The controllers stackyard relies on without pods running: owner-reference garbage
# collection, namespace deletion, the default ServiceAccount in each namespace, the
# aggregated ClusterRoles (view, edit, admin) and Deployments rolled into ReplicaSets.
CONTROLLERS = (
    "garbagecollector,namespace,serviceaccount,serviceaccount-token,clusterrole-aggregation,deployment,replicaset"
)


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"kubectl {' '.join(self.cmd[3:])} failed ({self.returncode}): {self.stderr.strip()}"


class KubeCluster:
    name = "kube-apiserver"

    def __init__(self, tools: Tools, run_dir: Path, *, controller_manager: bool = True) -> None:
        self.tools = tools
        self.dir = run_dir / "kube"
        self.with_controller_manager = controller_manager
        self.processes: list[ManagedProcess] = []
        self.port = 0
        self.ca = CertificateAuthority()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> KubeCluster:
        pki = self.dir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        self._write_pki(pki)
        self._start_etcd()
        self._start_apiserver(pki)
        if self.with_controller_manager:
            self._start_controller_manager(pki)
        return self

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def _write_pki(self, pki: Path) -> None:
        (pki / "ca.crt").write_bytes(self.ca.cert_pem)
        self.ca.issue(
            "kube-apiserver",
            server_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            server_ips=["127.0.0.1", "10.96.0.1"],
        ).write(pki, "apiserver")
        sa_key, sa_pub = service_account_keys()
        (pki / "sa.key").write_bytes(sa_key)
        (pki / "sa.pub").write_bytes(sa_pub)

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        etcd = ManagedProcess(
            "etcd",
            [
                self.tools.kube_binary("etcd"),
                "--data-dir",
                self.dir / "etcd",
                "--listen-client-urls",
                self.etcd_url,
                "--advertise-client-urls",
                self.etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # throw-away data: durability is not what the tests measure
                "--log-level",
                "warn",
            ],
            self.dir / "etcd.log",
        ).start()
        self.processes.append(etcd)
        etcd.wait_ready(lambda: httpx.get(f"{self.etcd_url}/health", timeout=1).json()["health"] == "true", 30)

    def _start_apiserver(self, pki: Path) -> None:
        self.port = free_port()
        apiserver = ManagedProcess(
            "kube-apiserver",
            [
                self.tools.kube_binary("kube-apiserver"),
                "--etcd-servers",
                self.etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--endpoint-reconciler-type",
                "none",  # loopback cannot back the kubernetes Service
                "--secure-port",
                str(self.port),
                "--cert-dir",
                self.dir / "serving",
                "--tls-cert-file",
                pki / "apiserver.crt",
                "--tls-private-key-file",
                pki / "apiserver.key",
                "--client-ca-file",
                pki / "ca.crt",
                "--authorization-mode",
                "RBAC",
                "--anonymous-auth=false",
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                pki / "sa.pub",
                "--service-account-signing-key-file",
                pki / "sa.key",
                "--service-cluster-ip-range",
                SERVICE_CIDR,
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
            self.dir / "kube-apiserver.log",
        ).start()
        self.processes.append(apiserver)
        self.admin_kubeconfig = self.write_client_kubeconfig("admin", "stackyard-admin", "system:masters")
        apiserver.wait_ready(self._ready, 90, "serving /readyz")

    def _start_controller_manager(self, pki: Path) -> None:
        kubeconfig = self.write_client_kubeconfig("controller-manager", "system:kube-controller-manager")
        manager = ManagedProcess(
            "kube-controller-manager",
            [
                self.tools.kube_binary("kube-controller-manager"),
                "--kubeconfig",
                kubeconfig,
                "--authentication-kubeconfig",
                kubeconfig,
                "--authorization-kubeconfig",
                kubeconfig,
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(free_port()),
                "--cert-dir",
                self.dir / "controller-manager-serving",
                "--controllers",
                CONTROLLERS,
                "--service-account-private-key-file",
                pki / "sa.key",
                "--root-ca-file",
                pki / "ca.crt",
                "--use-service-account-credentials=true",  # each controller acts with its own RBAC role
                "--leader-elect=false",
                "--concurrent-gc-syncs",
                "5",
                "--v=1",
            ],
            self.dir / "kube-controller-manager.log",
        ).start()
        self.processes.append(manager)
        # Ready once it has created the default ServiceAccount in "default".
        manager.wait_ready(
            lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
            60,
            "running its controllers",
        )

    # -- clients -----------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.admin_kubeconfig

    def _ready(self) -> bool:
        return self.get("/readyz").text == "ok"

    def _ssl_context(self, user: str = "admin") -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        ctx.load_cert_chain(self.dir / f"{user}.crt", self.dir / f"{user}.key")
        return ctx

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.server + path, verify=self._ssl_context(), timeout=5)

    def http_client(self) -> httpx.Client:
        """An HTTP client for the API server, authenticated as the admin."""
        return httpx.Client(base_url=self.server, verify=self._ssl_context(), timeout=5)

    def write_client_kubeconfig(self, stem: str, user: str, group: str | None = None) -> Path:
        """A kubeconfig that authenticates as `user` (in `group`) by a client certificate."""
        self.dir.mkdir(parents=True, exist_ok=True)
        pair = self.ca.issue(user, group)
        pair.write(self.dir, stem)
        return self._write_kubeconfig(
            stem,
            {
                "client-certificate-data": base64.b64encode(pair.cert_pem).decode(),
                "client-key-data": base64.b64encode(pair.key_pem).decode(),
            },
        )

    def write_token_kubeconfig(self, stem: str, token: str) -> Path:
        """A kubeconfig that authenticates by a bearer token (a ServiceAccount's, say)."""
        return self._write_kubeconfig(stem, {"token": token})

    def _write_kubeconfig(self, stem: str, user: dict[str, str]) -> Path:
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CLUSTER_NAME,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": base64.b64encode(self.ca.cert_pem).decode(),
                    },
                }
            ],
            "users": [{"name": stem, "user": user}],
            "contexts": [{"name": stem, "context": {"cluster": CLUSTER_NAME, "user": stem, "namespace": "default"}}],
            "current-context": stem,
        }
        path = self.dir / f"{stem}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run the harness's kubectl; with check, a failure raises with kubectl's stderr."""
        result = subprocess.run(
            [str(self.tools.kube_binary("kubectl")), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, result.args, result.stdout, result.stderr)
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def describe(self) -> str:
        return f"kube-apiserver  {self.server}  (etcd {self.etcd_url}; KUBECONFIG={self.kubeconfig})"
