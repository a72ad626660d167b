"""The chart installed with helm into the harness's kube-apiserver (RBAC on, the restricted
Pod Security Standard enforced on the namespace), and the operator run as a local process
with the token of the chart's ServiceAccount: the chart's RBAC is all it needs, and what
it does not grant is refused."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import yaml
from stack_chart import CHART, ChartNamespace, Helm, make_namespace, pod_specs
from stackyard_harness.kube import KubeCluster
from stackyard_harness.process import free_port
from stackyard_harness.programs import service_account_kubeconfig, start_operator, wait_until

pytestmark = pytest.mark.slow

RELEASE = "demo"
OPERATOR_SA = "demo-stack-operator"
STACK = "demo-stack"
READY_TIMEOUT = 150


class Release:
    """One helm release of the chart in a namespace of its own."""

    def __init__(self, helm: Helm, namespace: ChartNamespace, name: str = RELEASE) -> None:
        self.helm, self.namespace, self.name = helm, namespace, name
        self.install_output: Any = None
        self.values: dict[str, Any] = {}

    def install(self, values: dict[str, Any], *args: str, check: bool = True) -> Any:
        self.values = values
        result = self.helm.run(
            "install",
            self.name,
            str(CHART),
            "--namespace",
            self.namespace.name,
            "--wait=false",
            *self.helm.values_file(values),
            *args,
            check=check,
        )
        self.install_output = result
        return result

    def upgrade(self, values: dict[str, Any]) -> Any:
        return self.helm.run(
            "upgrade", self.name, str(CHART), "--namespace", self.namespace.name, *self.helm.values_file(values)
        )

    def uninstall(self) -> None:
        self.helm.run("uninstall", self.name, "--namespace", self.namespace.name, "--wait=false")

    def manifest(self) -> list[dict[str, Any]]:
        out = self.helm.run("get", "manifest", self.name, "--namespace", self.namespace.name).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def hooks(self) -> list[dict[str, Any]]:
        out = self.helm.run("get", "hooks", self.name, "--namespace", self.namespace.name).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    def secret(self, name: str) -> dict[str, str]:
        secret = self.namespace.get("secret", name)
        assert secret is not None, f"Secret {name} missing"
        return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def can_i(kube: KubeCluster, namespace: str, *args: str) -> bool:
    """`kubectl auth can-i` as the chart's operator ServiceAccount."""
    result = kube.kubectl("auth", "can-i", *args, f"--as=system:serviceaccount:{namespace}:{OPERATOR_SA}", check=False)
    return result.stdout.strip() == "yes"


def stack_manifest(name: str, secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Stack",
        "metadata": {"name": name},
        "spec": {
            "redis": {"urlSecretRef": {"name": secret, "key": "redis"}},
            "mongodb": {"uriSecretRef": {"name": secret, "key": "mongodb"}},
        },
    }


def ready(namespace: ChartNamespace, kind: str, name: str) -> bool:
    obj = namespace.get(kind, name) or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))


class ChartOperator:
    """stackyard-operator as a local process, with the arguments of the chart's Deployment
    (but a free health port) and a token of the chart's ServiceAccount."""

    def __init__(self, kube: KubeCluster, run_dir: Path, namespace: ChartNamespace, account: str, name: str) -> None:
        deployment = namespace.get("deployment", account)
        assert deployment is not None, f"Deployment {account} missing"
        self.args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        self.health_port = free_port()
        args = [f"--health-port={self.health_port}" if a.startswith("--health-port=") else a for a in self.args]
        kubeconfig = service_account_kubeconfig(kube, namespace.name, account)
        self.process = start_operator(kube, run_dir, *args, name=name, kubeconfig=kubeconfig)

    def log(self) -> str:
        return self.process.log_path.read_text()

    def stop(self) -> None:
        self.process.stop()


# -- one release (MongoDB, the default Stack, two operator replicas, an extra namespace) for the module --


@pytest.fixture(scope="module")
def team(kube: KubeCluster) -> Iterator[ChartNamespace]:
    """A namespace the operator watches besides its own (operator.watch.extraNamespaces)."""
    namespace = make_namespace(kube, "team")
    yield namespace
    kube.kubectl("delete", "namespace", namespace.name, "--wait=false")


@pytest.fixture(scope="module")
def release(kube: KubeCluster, cluster_helm: Helm, team: ChartNamespace) -> Iterator[Release]:
    namespace = make_namespace(kube, "chart")
    installed = Release(cluster_helm, namespace)
    installed.install(
        {
            "operator": {"replicas": 2, "watch": {"extraNamespaces": [team.name]}},
            "redis": {"podDisruptionBudget": {"enabled": True}},
            "mongodb": {"enabled": True},
            "stack": {"enabled": True},
        }
    )
    yield installed
    kube.kubectl("delete", "namespace", namespace.name, "--wait=false")


@pytest.fixture(scope="module")
def chart_operator(kube: KubeCluster, harness, release: Release) -> Iterator[ChartOperator]:
    operator = ChartOperator(kube, harness.run_dir, release.namespace, OPERATOR_SA, f"operator-{uuid.uuid4().hex[:6]}")
    yield operator
    operator.stop()


def test_install_is_accepted_without_pod_security_warnings(release):
    status = json.loads(release.helm.run("status", RELEASE, "--namespace", release.namespace.name, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert "PodSecurity" not in release.install_output.stderr, release.install_output.stderr


def test_crds_are_installed_and_established(release, kube):
    crds = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert crds
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CHART / "crds"))
    names = {yaml.safe_load((CHART / "crds" / c).read_text())["metadata"]["name"] for c in crds}
    assert names == {
        "stacks.stackyard.dev",
        "emailproviders.stackyard.dev",
        "emailtemplates.stackyard.dev",
        "ratelimitpolicies.stackyard.dev",
        "jobqueues.stackyard.dev",
        "schedules.stackyard.dev",
        "identityproviders.stackyard.dev",
        "databases.stackyard.dev",
        "buckets.stackyard.dev",
        "notificationworkflows.stackyard.dev",
        "webhooks.stackyard.dev",
        "searchindexes.stackyard.dev",
        "oidcclients.stackyard.dev",
    }


def test_every_object_of_the_release_is_stored(release):
    objects = release.manifest()
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Stack", "NetworkPolicy", "PodDisruptionBudget", "Role"} <= kinds
    for obj in objects:
        namespace = obj["metadata"].get("namespace", release.namespace.name)
        stored = release.namespace.kube.kubectl(
            "get", obj["kind"], obj["metadata"]["name"], "-n", namespace, "-o", "json", check=False
        )
        assert stored.returncode == 0, f"{obj['kind']}/{obj['metadata']['name']}: {stored.stderr}"
        assert json.loads(stored.stdout)["metadata"]["labels"]["app.kubernetes.io/part-of"] == "stackyard"


def test_deployment_pods_are_admitted_under_the_restricted_standard(release):
    """The ReplicaSet controller creates the pods (no kubelet runs them): PodSecurity admits them."""

    def pods(component: str) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        return json.loads(release.namespace.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"]

    wait_until(lambda: len(pods("operator")) == 2 and len(pods("otel-collector")) == 1, 60, "pods created")
    replica_sets = json.loads(release.namespace.kubectl("get", "replicasets", "-o", "json").stdout)["items"]
    for replica_set in replica_sets:
        failures = [c for c in replica_set.get("status", {}).get("conditions", []) if c["type"] == "ReplicaFailure"]
        assert not failures, f"{replica_set['metadata']['name']}: {failures}"


def test_every_pod_template_and_the_test_pod_pass_restricted_admission(release):
    """A server-side dry run of each pod (StatefulSets' and the helm test's too, which no controller creates here)."""
    templates = pod_specs(release.manifest() + release.hooks())
    assert {what for what, _, _ in templates} >= {
        "Deployment/demo-stack-operator",
        "Deployment/demo-stack-otel-collector",
        "StatefulSet/demo-stack-redis",
        "StatefulSet/demo-stack-mongodb",
        "Pod/demo-stack-test-api",
    }
    for number, (what, metadata, spec) in enumerate(templates):
        spec = json.loads(json.dumps(spec))
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for mount in spec["containers"][0].get("volumeMounts", []):
            if mount["name"] not in volumes:  # a volumeClaimTemplate, as the StatefulSet controller adds it
                claim = {"claimName": f"{mount['name']}-{what.split('/')[1]}-0"}
                spec.setdefault("volumes", []).append({"name": mount["name"], "persistentVolumeClaim": claim})
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"dry-run-{number}", "labels": metadata.get("labels", {})},
            "spec": spec,
        }
        result = release.namespace.kubectl(
            "create", "--dry-run=server", "-f", "-", "-o", "name", input=json.dumps(pod), check=False
        )
        assert result.returncode == 0, f"{what}: {result.stderr}"
        assert "PodSecurity" not in result.stderr, f"{what}: {result.stderr}"


def forbidden_requests(log: str) -> list[str]:
    """Log lines of requests the API server refused, but for kopf's optional cluster-wide
    discovery (listing namespaces and CRDs), which a namespaced operator does without."""
    # (?<!\.): not the milliseconds of a timestamp (08:59:46.403), which matched once.
    refused = [line for line in log.splitlines() if re.search(r"(?<!\.)\b403\b|[Ff]orbidden", line)]
    optional = re.compile(r"GET \S+/(api/v1/namespaces|apis/apiextensions\.k8s\.io/v1/customresourcedefinitions)\b")
    return [line for line in refused if not optional.search(line) and "Not enough permissions" not in line]


def test_operator_health_endpoint_answers_for_the_probes(chart_operator):
    url = f"http://127.0.0.1:{chart_operator.health_port}/healthz"

    def healthy() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # Well within the startup probe's budget (30 x 2 s).
    wait_until(healthy, 30, f"{url} answering 200")


def test_operator_with_the_chart_rbac_reconciles_stacks_to_ready(release, team, chart_operator):
    # The default Stack of the chart, wired to the chart's backends Secret. (The timeout allows
    # for kopf retrying its optional cluster-wide discovery, which the namespaced Role refuses.)
    wait_until(lambda: ready(release.namespace, "stack", STACK), READY_TIMEOUT, f"Stack {STACK} Ready")
    for kind, name in [
        ("serviceaccount", f"{STACK}-stackyard"),
        ("role", f"{STACK}-config-reader"),
        ("rolebinding", f"{STACK}-config-reader"),
        ("configmap", f"{STACK}-config"),
        ("secret", f"{STACK}-credentials"),
        ("deployment", f"{STACK}-api"),
        ("deployment", f"{STACK}-worker"),
        ("service", f"{STACK}-api"),
    ]:
        assert release.namespace.get(kind, name) is not None, f"{kind}/{name}"
    credentials = release.secret(f"{STACK}-credentials")
    backends = release.secret("demo-stack-backends")
    assert set(credentials.values()) >= {backends["redis"], backends["mongodb"]}

    # A Stack in the extra watched namespace, with a Secret of its own.
    team.kubectl(
        "create",
        "secret",
        "generic",
        "backends",
        "--from-literal=redis=redis://redis:6379/0",
        "--from-literal=mongodb=mongodb://mongo:27017/",
    )
    team.kubectl("apply", "-f", "-", input=json.dumps(stack_manifest("team-stack", "backends")))
    wait_until(lambda: ready(team, "stack", "team-stack"), READY_TIMEOUT, "Stack team-stack Ready")

    # The Lease is held and renewed with the rights of the lease Role (get/update by name).
    def renew_time() -> str:
        return json.loads(release.namespace.kubectl("get", "lease", OPERATOR_SA, "-o", "json").stdout)["spec"][
            "renewTime"
        ]

    first_renewal = renew_time()
    wait_until(lambda: renew_time() != first_renewal, 30, "the Lease renewed")
    log = chart_operator.log()
    assert "cannot renew Lease" not in log
    assert not forbidden_requests(log), "\n".join(forbidden_requests(log))


def test_operator_with_the_chart_rbac_makes_and_removes_what_a_database_needs(release, chart_operator):
    """A Database of the default Stack with migrations and backups: the migration Job and the
    backup Schedule are made, the Schedule deleted when the backup section goes, nothing refused."""
    wait_until(lambda: ready(release.namespace, "stack", STACK), READY_TIMEOUT, f"Stack {STACK} Ready")
    database = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Database",
        "metadata": {"name": "app"},
        "spec": {
            "stackRef": {"name": STACK},
            "connection": {"uriSecretRef": {"name": "demo-stack-backends", "key": "mongodb"}, "database": "app"},
            "migrations": {"version": 1, "module": "app.migrations"},
            "backup": {"schedule": "@daily", "volume": {"claimName": "app-backups"}},
        },
    }
    release.namespace.kubectl("apply", "-f", "-", input=json.dumps(database))
    wait_until(lambda: ready(release.namespace, "database", "app"), READY_TIMEOUT, "Database app Ready")
    wait_until(lambda: ready(release.namespace, "schedule", "app-backup"), READY_TIMEOUT, "Schedule app-backup Ready")

    def jobs() -> list[dict[str, Any]]:
        out = release.namespace.kubectl("get", "jobs", "-l", "stackyard.dev/database=app", "-o", "json").stdout
        return json.loads(out)["items"]

    wait_until(lambda: len(jobs()) == 1, 30, "the migration Job")
    del database["spec"]["backup"]
    release.namespace.kubectl("apply", "-f", "-", input=json.dumps(database))
    wait_until(lambda: release.namespace.get("schedule", "app-backup") is None, 30, "the backup Schedule deleted")
    log = chart_operator.log()
    assert not forbidden_requests(log), "\n".join(forbidden_requests(log))
    release.namespace.kubectl("delete", "database", "app")


def test_operator_with_the_chart_rbac_makes_and_removes_a_buckets_retention_schedule(release, chart_operator):
    """A volume Bucket of the default Stack with retention: Ready, its retention Schedule made
    and deleted when retention goes, the claim mounted in the api, nothing refused."""
    wait_until(lambda: ready(release.namespace, "stack", STACK), READY_TIMEOUT, f"Stack {STACK} Ready")
    bucket = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Bucket",
        "metadata": {"name": "files"},
        "spec": {
            "stackRef": {"name": STACK},
            "backend": {"volume": {"claimName": "files", "subPath": "uploads"}},
            "retention": {"days": 30},
        },
    }
    release.namespace.kubectl("apply", "-f", "-", input=json.dumps(bucket))
    wait_until(lambda: ready(release.namespace, "bucket", "files"), READY_TIMEOUT, "Bucket files Ready")
    wait_until(
        lambda: ready(release.namespace, "schedule", "files-retention"), READY_TIMEOUT, "Schedule files-retention"
    )

    def api_claims() -> list[str]:
        api = release.namespace.get("deployment", f"{STACK}-api") or {}
        volumes = api.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
        return [v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v]

    wait_until(lambda: api_claims() == ["files"], 30, "the claim in the api's pod")
    del bucket["spec"]["retention"]
    release.namespace.kubectl("apply", "-f", "-", input=json.dumps(bucket))
    wait_until(lambda: release.namespace.get("schedule", "files-retention") is None, 30, "the Schedule deleted")
    release.namespace.kubectl("delete", "bucket", "files")
    wait_until(lambda: api_claims() == [], 30, "the claim gone from the api's pod")
    log = chart_operator.log()
    assert not forbidden_requests(log), "\n".join(forbidden_requests(log))


def test_operator_with_the_chart_rbac_deploys_and_removes_the_search_component(release, chart_operator):
    """A SearchIndex of the default Stack: Ready, the search StatefulSet and Service made and
    its pod admitted under the restricted standard, both deleted with the last index (the
    claim kept by the retention policy), nothing refused."""
    wait_until(lambda: ready(release.namespace, "stack", STACK), READY_TIMEOUT, f"Stack {STACK} Ready")
    index = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "SearchIndex",
        "metadata": {"name": "products"},
        "spec": {"stackRef": {"name": STACK}, "source": {"api": {}}, "sortableAttributes": ["price"]},
    }
    release.namespace.kubectl("apply", "-f", "-", input=json.dumps(index))
    wait_until(lambda: ready(release.namespace, "searchindex", "products"), READY_TIMEOUT, "SearchIndex Ready")
    name = f"{STACK}-search"
    wait_until(lambda: release.namespace.get("statefulset", name) is not None, 30, "the search StatefulSet")
    assert release.namespace.get("service", name) is not None
    (template,) = pod_specs([release.namespace.get("statefulset", name)])
    _, metadata, spec = template
    spec["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": f"data-{name}-0"}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "search-dry-run", "labels": metadata["labels"]}}
    result = release.namespace.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(pod | {"spec": spec}), check=False
    )
    assert result.returncode == 0 and "PodSecurity" not in result.stderr, result.stderr
    # (No StatefulSet controller runs here to make the claim: the policy that keeps it is stored.)
    stored = release.namespace.get("statefulset", name)["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert stored == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    release.namespace.kubectl("delete", "searchindex", "products")
    wait_until(lambda: release.namespace.get("statefulset", name) is None, 30, "the search StatefulSet deleted")
    wait_until(lambda: release.namespace.get("service", name) is None, 30, "the search Service deleted")
    log = chart_operator.log()
    assert not forbidden_requests(log), "\n".join(forbidden_requests(log))


def test_operator_rendered_pods_are_admitted_under_the_restricted_standard(release, chart_operator):
    wait_until(lambda: release.namespace.get("deployment", f"{STACK}-api") is not None, READY_TIMEOUT, "api Deployment")

    def api_pods() -> list[dict[str, Any]]:
        out = release.namespace.kubectl("get", "pods", "-l", f"app.kubernetes.io/instance={STACK}", "-o", "json")
        return json.loads(out.stdout)["items"]

    wait_until(lambda: len(api_pods()) >= 1, 60, "api and worker pods created")
    replica_sets = json.loads(release.namespace.kubectl("get", "replicasets", "-o", "json").stdout)["items"]
    for replica_set in replica_sets:
        failures = [c for c in replica_set.get("status", {}).get("conditions", []) if c["type"] == "ReplicaFailure"]
        assert not failures, f"{replica_set['metadata']['name']}: {failures}"


def test_operator_account_is_refused_what_the_chart_does_not_grant(release, team, kube):
    own, other = release.namespace.name, "default"
    granted = [
        ("list", "secrets", "-n", own),
        ("watch", "stacks.stackyard.dev", "-n", own),
        ("patch", "stacks.stackyard.dev", "--subresource=status", "-n", own),
        ("create", "roles.rbac.authorization.k8s.io", "-n", team.name),
        ("patch", "deployments.apps", "-n", team.name),
        ("create", "events", "-n", own),
        ("update", f"leases.coordination.k8s.io/{OPERATOR_SA}", "-n", own),
        ("watch", "databases.stackyard.dev", "-n", own),
        ("patch", "databases.stackyard.dev", "--subresource=status", "-n", own),
        ("create", "jobs.batch", "-n", team.name),
        ("delete", "schedules.stackyard.dev", "-n", own),
        ("watch", "buckets.stackyard.dev", "-n", own),
        ("patch", "buckets.stackyard.dev", "--subresource=status", "-n", own),
        ("watch", "notificationworkflows.stackyard.dev", "-n", own),
        ("patch", "webhooks.stackyard.dev", "--subresource=status", "-n", own),
        ("watch", "searchindexes.stackyard.dev", "-n", own),
        ("patch", "searchindexes.stackyard.dev", "--subresource=status", "-n", own),
        ("watch", "statefulsets.apps", "-n", own),
        ("delete", "statefulsets.apps", "-n", team.name),
        ("delete", "services", "-n", own),
        ("watch", "oidcclients.stackyard.dev", "-n", own),
        ("patch", "oidcclients.stackyard.dev", "--subresource=status", "-n", own),
        ("delete", "secrets", "-n", own),
    ]
    refused = [
        ("delete", "namespaces"),
        ("get", "secrets", "-n", other),
        ("list", "stacks.stackyard.dev", "-n", other),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("delete", "deployments.apps", "-n", own),
        ("escalate", "roles.rbac.authorization.k8s.io", "-n", own),
        ("bind", "clusterroles.rbac.authorization.k8s.io", "-n", own),
        ("update", "leases.coordination.k8s.io/someone-else", "-n", own),
        ("create", "pods", "-n", own),
        ("get", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "jobs.batch", "-n", own),
        ("delete", "databases.stackyard.dev", "-n", own),
        ("delete", "buckets.stackyard.dev", "-n", own),
        ("create", "buckets.stackyard.dev", "-n", own),
        ("delete", "webhooks.stackyard.dev", "-n", own),
        ("create", "notificationworkflows.stackyard.dev", "-n", own),
        ("delete", "searchindexes.stackyard.dev", "-n", own),
        ("create", "searchindexes.stackyard.dev", "-n", own),
        ("delete", "oidcclients.stackyard.dev", "-n", own),
        ("create", "oidcclients.stackyard.dev", "-n", own),
        ("delete", "persistentvolumeclaims", "-n", own),
        ("delete", "serviceaccounts", "-n", own),
    ]
    for check in granted:
        assert can_i(kube, own, *check), f"the operator should be allowed to {' '.join(check)}"
    for check in refused:
        assert not can_i(kube, own, *check), f"the operator must not be allowed to {' '.join(check)}"

    # And with its real token, not only as the authoriser predicts.
    kubeconfig = service_account_kubeconfig(kube, own, OPERATOR_SA)
    for command in (["get", "secrets", "-n", other], ["delete", "namespace", team.name, "--dry-run=server"]):
        result = kube.kubectl(*command, kubeconfig=kubeconfig, check=False)
        assert result.returncode != 0 and "forbidden" in result.stderr.lower(), result.stderr


def test_upgrade_keeps_the_generated_passwords_and_urls(release):
    before = {name: release.secret(name) for name in ("demo-stack-redis", "demo-stack-mongodb", "demo-stack-backends")}
    release.upgrade(release.values)
    after = {name: release.secret(name) for name in before}
    assert after == before


def test_values_that_break_the_schema_are_refused_by_install_and_nothing_is_made(cluster_helm, chart_namespace):
    release = Release(cluster_helm, chart_namespace, name="broken")
    result = release.install({"redis": {"persistence": {"size": 5}}}, check=False)
    assert result.returncode != 0
    assert "at '/redis/persistence/size': got number, want string" in result.stderr
    assert cluster_helm.run("list", "-n", chart_namespace.name, "-q").stdout.strip() == ""
    assert chart_namespace.get("statefulset", "broken-stack-redis") is None


@pytest.mark.usefixtures("chart_crds")
def test_install_notes_say_what_was_installed_and_what_to_apply(cluster_helm, chart_namespace):
    release = Release(cluster_helm, chart_namespace, name="notes")
    out = release.install({}, "--dry-run=server").stdout
    assert "StatefulSet notes-stack-redis" in out
    assert "Next: apply a Stack" in out and "name: notes-stack-backends, key: redis" in out
    out = release.install({"mongodb": {"enabled": True}, "stack": {"enabled": True}}, "--dry-run=server").stdout
    assert f"helm test notes -n {chart_namespace.name}" in out
    assert f"kubectl -n {chart_namespace.name} get stack notes-stack" in out


def test_uninstall_removes_the_release_but_keeps_the_mongodb_password(cluster_helm, chart_namespace):
    release = Release(cluster_helm, chart_namespace, name="gone")
    release.install({"mongodb": {"enabled": True}})
    assert chart_namespace.get("deployment", "gone-stack-operator") is not None
    release.uninstall()
    wait_until(lambda: chart_namespace.get("deployment", "gone-stack-operator") is None, 30, "the operator removed")
    assert chart_namespace.get("statefulset", "gone-stack-redis") is None
    assert chart_namespace.get("secret", "gone-stack-backends") is None
    # The root user lives on in the data volume; its password must too.
    assert chart_namespace.get("secret", "gone-stack-mongodb") is not None


def test_cluster_scope_operator_reconciles_stacks_in_any_namespace(kube, harness, cluster_helm, chart_namespace):
    release = Release(cluster_helm, chart_namespace, name="wide")
    release.install({"operator": {"watch": {"scope": "cluster"}}})
    role = f"{chart_namespace.name}-wide-stack-operator"
    assert kube.kubectl("get", "clusterrole", role, check=False).returncode == 0
    elsewhere = make_namespace(kube, "elsewhere")
    sa = "wide-stack-operator"
    operator = None
    try:
        operator = ChartOperator(kube, harness.run_dir, chart_namespace, sa, "operator-cluster-scope")
        assert "--all-namespaces" in operator.args
        elsewhere.kubectl(
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=redis=redis://r/0",
            "--from-literal=mongodb=mongodb://m/",
        )
        elsewhere.kubectl("apply", "-f", "-", input=json.dumps(stack_manifest("far", "db")))
        wait_until(lambda: ready(elsewhere, "stack", "far"), READY_TIMEOUT, "Stack far Ready")
        assert elsewhere.get("role", "far-config-reader") is not None
        user = f"--as=system:serviceaccount:{chart_namespace.name}:{sa}"
        assert kube.kubectl("auth", "can-i", "delete", "namespaces", user, check=False).stdout.strip() == "no"
        assert kube.kubectl("auth", "can-i", "create", "pods", "-A", user, check=False).stdout.strip() == "no"
    finally:
        if operator:
            operator.stop()
        release.uninstall()
        kube.kubectl("delete", "namespace", elsewhere.name, "--wait=false")
    wait_until(lambda: kube.kubectl("get", "clusterrole", role, check=False).returncode != 0, 30, "ClusterRole removed")


def test_existing_redis_secret_is_read_into_the_backends_url(cluster_helm, chart_namespace):
    password = "p@ss word/+:%"
    chart_namespace.kubectl("create", "secret", "generic", "my-redis", f"--from-literal=pw={password}")
    release = Release(cluster_helm, chart_namespace, name="own")
    release.install({"redis": {"auth": {"existingSecret": "my-redis", "existingSecretPasswordKey": "pw"}}})
    assert chart_namespace.get("secret", "own-stack-redis") is None  # no generated password
    url = urlsplit(release.secret("own-stack-backends")["redis"])
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "redis",
        f"own-stack-redis.{chart_namespace.name}.svc",
        6379,
        "/0",
    )
    assert unquote(url.password or "") == password  # as redis-py reads it
    statefulset = chart_namespace.get("statefulset", "own-stack-redis")
    env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env} == {"my-redis"}
