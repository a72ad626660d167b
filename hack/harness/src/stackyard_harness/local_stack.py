"""The whole of stackyard as local processes: what `make up` runs.

The harness servers (kube-apiserver with etcd, Redis, FerretDB, the OTel collector),
stackyard's CRDs, the operator, and an api and a worker for the example Stack. The
API server has no kubelet, so the Deployments the operator renders stay at zero
ready pods; the api and worker run here instead, with the Stack's own
ServiceAccount token, reading their config through the API server exactly as the
pods would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .harness import SERVICES, Harness, progress
from .kube import KubeCluster
from .otel import OtelCollector
from .process import ManagedProcess
from .programs import (
    ServiceProcess,
    create_backends_secret,
    install_crds,
    service_account_kubeconfig,
    start_operator,
    start_service,
    wait_until,
)
from .smtp import SmtpSink
from .tools import REPO_ROOT

EXAMPLES_DIR = REPO_ROOT / "examples"
EXAMPLE_FUNCTIONS = {"STACKYARD_JOB_MODULES": "reports", "PYTHONPATH": str(EXAMPLES_DIR / "functions")}
"""The example job functions the worker of `make up` runs (examples/functions/)."""
NAMESPACE = "default"
STACK = "demo"
SMTP_PORT = 1025
SMTP_LOGIN = {"stackyard": "placeholder-password"}
"""The SMTP relay the example EmailProvider smtp-fallback names (examples/email-provider.yaml)."""


@dataclass
class LocalStack:
    harness: Harness
    operator: ManagedProcess | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    smtp: SmtpSink | None = None

    @property
    def kube(self) -> KubeCluster:
        kube = self.harness.started["kube"]
        assert isinstance(kube, KubeCluster)
        return kube

    def start(self, examples: Path = EXAMPLES_DIR) -> LocalStack:
        self.harness.start(list(SERVICES))
        progress(f"starting an SMTP sink on 127.0.0.1:{SMTP_PORT} (mail in {self.maildir})")
        self.smtp = SmtpSink(auth=SMTP_LOGIN, port=SMTP_PORT, maildir=self.maildir).start()
        redis, mongo = self.harness.started["redis"], self.harness.started["mongo"]
        progress("installing the CRDs")
        install_crds(self.kube)
        progress("starting the operator")
        telemetry = self._telemetry_env()
        self.operator = start_operator(self.kube, self.harness.run_dir, "--namespace", NAMESPACE, extra_env=telemetry)
        progress(f"creating Secret {NAMESPACE}/backends and applying {examples.relative_to(REPO_ROOT)}/")
        create_backends_secret(self.kube, NAMESPACE, redis.url, mongo.url)  # type: ignore[attr-defined]
        self.kube.kubectl("apply", "-n", NAMESPACE, "-f", str(examples))
        progress(f"waiting for Stack {STACK} to be Ready")
        wait_until(lambda: self._stack_ready(), 60, f"Stack {STACK} Ready (see {self.harness.run_dir}/operator.log)")
        kubeconfig = service_account_kubeconfig(self.kube, NAMESPACE, f"{STACK}-stackyard")
        for component in ("api", "worker"):
            progress(f"starting the {component}")
            self.services[component] = start_service(
                component,
                self.kube,
                self.harness.run_dir,
                NAMESPACE,
                STACK,
                kubeconfig=kubeconfig,
                name=component,
                extra_env=telemetry | self._bucket_env() | (self._worker_env() if component == "worker" else {}),
            )
        worker = self.services["worker"]
        progress("waiting for the worker to consume its queues")
        wait_until(
            lambda: httpx.get(f"{worker.url}/readyz", timeout=1).status_code == 200,
            30,
            f"the worker ready (see {self.harness.run_dir}/worker.log)",
        )
        return self

    def _telemetry_env(self) -> dict[str, str]:
        """The collector as every program's OTLP endpoint (the example Stack names none, as a
        pod's environment would give it), metrics every 5 s instead of 60 for a local look."""
        collector = self.harness.started.get("otel")
        if not isinstance(collector, OtelCollector):
            return {}
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_http_endpoint, "OTEL_METRIC_EXPORT_INTERVAL": "5000"}

    @property
    def maildir(self) -> Path:
        return self.harness.run_dir / "mail"

    def _worker_env(self) -> dict[str, str]:
        """The example job functions, and backups under the run directory (the example
        Database's schedule would write to /var/lib/stackyard/backups otherwise)."""
        return EXAMPLE_FUNCTIONS | {"STACKYARD_BACKUP_ROOT": str(self.harness.run_dir / "backups")}

    def _bucket_env(self) -> dict[str, str]:
        """The files of volume Buckets (the example Bucket `default`) under the run directory,
        for the api and the worker alike (in a pod, the operator mounts the claim at
        /var/lib/stackyard/buckets/<bucket>)."""
        return {"STACKYARD_BUCKET_ROOT": str(self.harness.run_dir / "buckets")}

    def _stack_ready(self) -> bool:
        stack = self.kube.kubectl_json("get", "stack", STACK, "-n", NAMESPACE)
        conditions = stack.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        if self.operator:
            self.operator.stop()
        if self.smtp:
            self.smtp.stop()
        self.harness.stop()

    def summary(self) -> str:
        kube = self.kube
        lines = ["", "stackyard is running:"]
        if "api" in self.services:
            api = self.services["api"].url
            lines += [f"  api        {api}   (Swagger UI {api}/docs, config {api}/v1/config)"]
        if "worker" in self.services:
            lines += [f"  worker     {self.services['worker'].url}   (health {self.services['worker'].url}/readyz)"]
        lines += ["  operator   watching namespace default"]
        lines += [f"  smtp sink  127.0.0.1:{SMTP_PORT}   (what EmailProvider smtp-fallback sends: {self.maildir})", ""]
        api_url = self.services["api"].url if "api" in self.services else "<api>"
        lines += [f"  {service.describe()}" for service in self.harness.started.values()]
        lines += [
            "",
            "Try:",
            f"  export KUBECONFIG={kube.kubeconfig} PATH={kube.tools.kube_binary('kubectl').parent}:$PATH",
            "  kubectl get stackyard",
            "  kubectl edit ratelimitpolicy auth-per-ip     # the api's /v1/config hash changes within a second",
            f"  curl -s {api_url}/v1/jobs -H 'content-type: application/json' \\",
            '    -d \'{"function": "reports.send", "payload": {"userId": "u_42"}}\'   # then GET /v1/jobs/<id>',
            f"  curl -s {api_url}/v1/emails -H 'content-type: application/json' \\",
            '    -d \'{"from": "hello@acme.dev", "to": ["ana@example.com"], "template": {"name": "welcome", '
            '"variables": {"name": "Ana"}}}\'',
            "    # Resend refuses the placeholder key; smtp-fallback delivers. GET /v1/emails/<id>; kubectl get esp",
            "",
            f"Logs: {self.harness.run_dir}",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)
