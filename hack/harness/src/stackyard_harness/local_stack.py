"""The whole of stackyard as local processes: what `make up` runs.

The harness servers (kube-apiserver with etcd, Redis, FerretDB, the OTel collector),
stackyard's CRDs, the operator, and an api, a worker and a search component for the
example Stack. The API server has no kubelet, so the Deployments and the StatefulSet
the operator renders stay at zero ready pods; the programs run here instead, with the
Stack's own ServiceAccount token, reading their config through the API server exactly
as the pods would.

The api's port is chosen before the Stack is applied, and the Stack's `spec.auth.issuer` is
the api's own URL by name, http://localhost:<port> (the api listens on 127.0.0.1, which is
what localhost resolves to here): the OpenID Provider's discovery document, tokens and hosted
pages then name an address a browser and a client library on this machine reach (the default,
the api Service's cluster URL, is not reachable here). A host name, not an IP address, because
WebAuthn refuses IP addresses as relying party ids: spec.auth.passkeys is rpId `localhost`
with the issuer as its one origin, so the hosted login page offers passkeys in a real browser.
The example OIDCClients' secrets are in their Secrets `<name>-oidc-client`
(`oidc_client_secret`).

For the example SearchIndexes (examples/search.yaml): the Secret `search-keys` holds a
fresh admin API key and search-only key, which the Stack is given, and the collection
`articles` of the example Database gets a few documents, which the index `articles`
loads and follows.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pymongo import MongoClient

from .harness import SERVICES, Harness, progress
from .kube import KubeCluster
from .otel import OtelCollector
from .process import ManagedProcess, free_port
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
SEARCH_KEYS = "search-keys"
"""The Secret of the Stack's admin API key (`admin`) and search-only key (`search`)."""
ARTICLES_DATABASE = "shop"
"""The MongoDB database of the example Database `app` (examples/database.yaml)."""
ARTICLES = [
    ("Search that forgives typos", "Ana Lima", ["search", "relevance"],
     "Typing televisoin still finds the television: one typo is forgiven in words of five letters or more."),
    ("Facets for everyone", "Bo Chen", ["search", "facets"],
     "Counts of brands and categories next to the results let people narrow a search in one click."),
    ("Jobs that survive a restart", "Ana Lima", ["jobs"],
     "A job taken by a worker that dies is taken again by another once its lease expires."),
    ("Rate limits at the edge", "Chidi Okafor", ["ratelimit"],
     "A token bucket per API key keeps one noisy client from starving the others."),
]  # fmt: skip
"""(title, author, tags, body) of the example articles the index `articles` follows."""


@dataclass
class LocalStack:
    harness: Harness
    operator: ManagedProcess | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    smtp: SmtpSink | None = None
    smtp_port: int = SMTP_PORT
    """Where the SMTP sink listens: examples/ name 1025; tests take a free port (so that two
    stacks can run side by side) and point the example EmailProvider smtp-fallback at it."""
    keys: dict[str, str] = field(default_factory=dict, repr=False)
    """The Stack's admin API key (`admin`) and search-only key (`search`), as in Secret SEARCH_KEYS."""
    api_port: int = 0
    """Where the api listens; 0 (the default): a free port, chosen when the stack starts."""

    @property
    def issuer(self) -> str:
        """The Stack's spec.auth.issuer (its OpenID Provider): the api's URL with the host name
        localhost (a WebAuthn relying party id cannot be an IP address)."""
        return f"http://localhost:{self.api_port}"

    @property
    def kube(self) -> KubeCluster:
        kube = self.harness.started["kube"]
        assert isinstance(kube, KubeCluster)
        return kube

    def start(self, examples: Path = EXAMPLES_DIR) -> LocalStack:
        self.harness.start(list(SERVICES))
        progress(f"starting an SMTP sink on 127.0.0.1:{self.smtp_port} (mail in {self.maildir})")
        self.smtp = SmtpSink(auth=SMTP_LOGIN, port=self.smtp_port, maildir=self.maildir).start()
        redis, mongo = self.harness.started["redis"], self.harness.started["mongo"]
        progress("installing the CRDs")
        install_crds(self.kube)
        progress("starting the operator")
        telemetry = self._telemetry_env()
        self.operator = start_operator(self.kube, self.harness.run_dir, "--namespace", NAMESPACE, extra_env=telemetry)
        progress(f"creating Secrets {NAMESPACE}/backends and {SEARCH_KEYS}, and example articles in MongoDB")
        create_backends_secret(self.kube, NAMESPACE, redis.url, mongo.url)  # type: ignore[attr-defined]
        self._create_search_keys()
        seed_articles(mongo.url)  # type: ignore[attr-defined]
        progress(f"applying {examples.relative_to(REPO_ROOT)}/")
        self.kube.kubectl("apply", "-n", NAMESPACE, "-f", str(examples))
        if self.smtp_port != SMTP_PORT:
            patch = json.dumps({"spec": {"smtp": {"port": self.smtp_port}}})
            self.kube.kubectl("patch", "emailprovider", "smtp-fallback", "-n", NAMESPACE, "--type=merge", "-p", patch)
        self._give_the_stack_its_search_keys()
        self.api_port = self.api_port or free_port()
        self._make_the_api_the_issuer()
        progress(f"waiting for Stack {STACK} to be Ready")
        wait_until(lambda: self._stack_ready(), 60, f"Stack {STACK} Ready (see {self.harness.run_dir}/operator.log)")
        kubeconfig = service_account_kubeconfig(self.kube, NAMESPACE, f"{STACK}-stackyard")
        progress("starting the search component")
        self.services["search"] = start_service(
            "search",
            self.kube,
            self.harness.run_dir,
            NAMESPACE,
            STACK,
            kubeconfig=kubeconfig,
            name="search",
            extra_env=telemetry | {"STACKYARD_SEARCH_DATA": str(self.harness.run_dir / "search")},
        )
        search_url = {"STACKYARD_SEARCH_URL": self.services["search"].url}
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
                port=self.api_port if component == "api" else None,
                extra_env=telemetry
                | self._bucket_env()
                | (self._worker_env() if component == "worker" else search_url),
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

    def client_env(self) -> dict[str, str]:
        """What the `stackyard` command, the SDK, kubectl and curl need to use this stack: the
        environment a second terminal gets from `source .stackyard/stack.env` (written by
        `make up`), and the one the runnable blocks of docs/ run in. It holds the keys: the
        file is the user's own, never printed."""
        kubectl = self.kube.tools.kube_binary("kubectl").parent
        return {
            "STACKYARD_API_URL": self.services["api"].url,
            "STACKYARD_ADMIN_KEY": self.keys["admin"],
            "STACKYARD_SEARCH_KEY": self.keys["search"],
            "STACKYARD_MAILDIR": str(self.maildir),
            "KUBECONFIG": str(self.kube.kubeconfig),
            "PATH": f"{kubectl}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }

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

    def _create_search_keys(self) -> None:
        """Fresh keys each run (the local cluster is new each run too)."""
        self.keys = {"admin": secrets.token_urlsafe(32), "search": secrets.token_urlsafe(32)}
        manifest = self.kube.kubectl(
            "create", "secret", "generic", SEARCH_KEYS, "-n", NAMESPACE, "--dry-run=client", "-o", "yaml",
            f"--from-literal=admin={self.keys['admin']}", f"--from-literal=search={self.keys['search']}",
        ).stdout  # fmt: skip
        self.kube.kubectl("apply", "-f", "-", input=manifest)

    def _give_the_stack_its_search_keys(self) -> None:
        """The admin API key and the search-only key, as examples/search.yaml tells a user to."""
        refs = {
            "auth": {"adminApiKeySecretRef": {"name": SEARCH_KEYS, "key": "admin"}},
            "search": {"searchApiKeySecretRef": {"name": SEARCH_KEYS, "key": "search"}},
        }
        patch = json.dumps({"spec": refs})
        self.kube.kubectl("patch", "stack", STACK, "-n", NAMESPACE, "--type=merge", "-p", patch)

    def _make_the_api_the_issuer(self) -> None:
        """spec.auth.issuer = the api's URL (`issuer`), and spec.auth.passkeys the relying party
        of its hosted pages: rpId localhost (not the default, appUrl's host) and the issuer as
        the one origin (not the default, appUrl's origin, where nothing listens here)."""
        auth = self.kube.kubectl_json("get", "stack", STACK, "-n", NAMESPACE)["spec"].get("auth", {})
        passkeys = auth.get("passkeys", {}) | {"rpId": "localhost", "origins": [self.issuer]}
        patch = json.dumps({"spec": {"auth": {"issuer": self.issuer, "passkeys": passkeys}}})
        self.kube.kubectl("patch", "stack", STACK, "-n", NAMESPACE, "--type=merge", "-p", patch)

    def oidc_client_secret(self, client: str, timeout: float = 30) -> str:
        """The client secret the operator made for OIDCClient `client`: key clientSecret of its
        Secret (status.secretName, default `<client>-oidc-client`), waiting for it to exist."""
        found: dict[str, str] = {}

        def read() -> bool:
            status = self.kube.kubectl_json("get", "oidcclient", client, "-n", NAMESPACE).get("status", {})
            name = status.get("secretName") or f"{client}-oidc-client"
            answer = self.kube.kubectl("get", "secret", name, "-n", NAMESPACE, "-o", "json", check=False)
            if answer.returncode != 0:
                return False
            data = json.loads(answer.stdout).get("data", {})
            if "clientSecret" in data:
                found["secret"] = base64.b64decode(data["clientSecret"]).decode()
            return "secret" in found

        wait_until(read, timeout, f"the Secret of OIDCClient {client} (see {self.harness.run_dir}/operator.log)")
        return found["secret"]

    def _stack_ready(self) -> bool:
        stack = self.kube.kubectl_json("get", "stack", STACK, "-n", NAMESPACE)
        conditions = stack.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def stop(self) -> None:
        for service in reversed(self.services.values()):
            service.stop()
        if self.operator:
            self.operator.stop()
        if self.smtp:
            self.smtp.stop()
        self.harness.stop()

    def summary(self) -> str:
        lines = ["", "stackyard is running:"]
        if "api" in self.services:
            api = self.services["api"].url
            lines += [f"  api        {api}   (Swagger UI {api}/docs, config {api}/v1/config)"]
            lines += [f"  console    {api}/console   (log in with $STACKYARD_ADMIN_KEY of .stackyard/stack.env)"]
            discovery = f"{self.issuer}/.well-known/openid-configuration"
            lines += [f"  openid     {discovery}   (the OpenID Provider: docs/oidc-client-libraries.md)"]
        if "worker" in self.services:
            lines += [f"  worker     {self.services['worker'].url}   (health {self.services['worker'].url}/readyz)"]
        if "search" in self.services:
            lines += [f"  search     {self.services['search'].url}   (the api proxies /v1/indexes to it)"]
        lines += ["  operator   watching namespace default"]
        sink = f"127.0.0.1:{self.smtp_port}"
        lines += [f"  smtp sink  {sink}   (what EmailProvider smtp-fallback sends: {self.maildir})", ""]
        api_url = self.services["api"].url if "api" in self.services else "<api>"
        lines += [f"  {service.describe()}" for service in self.harness.started.values()]
        lines += [
            "",
            "Next, in another terminal (a first user, email, job and rate limit in ten minutes: docs/quickstart.md):",
            "  source .stackyard/stack.env    # the api's URL and keys, the maildir, KUBECONFIG, PATH with kubectl",
            "  stackyard status               # the Stack: conditions, resources, email breakers, queues",
            "  kubectl get stackyard",
            "  kubectl edit ratelimitpolicy auth-per-ip     # the api's /v1/config hash changes within a second",
            '  stackyard jobs enqueue reports.send --payload \'{"userId": "u_42"}\'',
            "    # a job for the example function; stackyard jobs get <id> --wait shows its result",
            "  stackyard emails send --from hello@acme.dev --to ana@example.com --template welcome --var name=Ana",
            "    # Resend refuses the placeholder key; smtp-fallback delivers to the sink. stackyard emails get <id>",
            "  stackyard search search articles typoes --facet tags   # the example articles, loaded from MongoDB",
            f"  (api {api_url}: Swagger UI at /docs; kubectl get secret {SEARCH_KEYS} holds the admin and search keys)",
            "",
            f"Logs: {self.harness.run_dir}",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)


def seed_articles(mongo_url: str) -> None:
    """The example articles in `shop.articles`, by fixed ids (a second run changes nothing)."""
    now = datetime.now(UTC)
    client: MongoClient[dict[str, object]] = MongoClient(mongo_url)
    try:
        articles = client[ARTICLES_DATABASE]["articles"]
        for number, (title, author, tags, body) in enumerate(ARTICLES, start=1):
            document = {"title": title, "author": {"name": author}, "tags": tags, "body": body}
            articles.update_one(
                {"_id": f"article-{number}"},
                {"$set": document | {"updatedAt": now}, "$setOnInsert": {"publishedAt": now}},
                upsert=True,
            )
    finally:
        client.close()
