"""The chart as `helm lint` and `helm template` see it: what it renders with the default
values and with every optional part on, and the hardening rules every object keeps."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import yaml
from stack_chart import ALL_ON, CHART, find, pod_specs
from stackyard_operator import manifests

LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)
VALUE_SETS = {"defaults": None, "all-on": ALL_ON}


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def rendered(request, chart_helm) -> list[dict[str, Any]]:
    return chart_helm.template(VALUE_SETS[request.param])


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def secret_values(objects: list[dict[str, Any]]) -> set[str]:
    values = set()
    for obj in objects:
        if obj["kind"] == "Secret":
            values |= {base64.b64decode(v).decode() for v in (obj.get("data") or {}).values()}
            values |= set((obj.get("stringData") or {}).values())
    return {v for v in values if len(v) >= 8}


# -- lint ------------------------------------------------------------------------------


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_helm_lint_strict_passes(chart_helm, values):
    result = chart_helm.run("lint", "--strict", str(CHART), *chart_helm.values_file(VALUE_SETS[values]), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


# -- what is rendered ------------------------------------------------------------------


def test_defaults_render_operator_redis_collector_and_backends_secret(chart_helm):
    objects = {(o["kind"], o["metadata"]["name"]) for o in chart_helm.template()}
    assert objects == {
        ("ServiceAccount", "demo-stack-operator"),
        ("Role", "demo-stack-operator"),
        ("RoleBinding", "demo-stack-operator"),
        ("Deployment", "demo-stack-operator"),
        ("NetworkPolicy", "demo-stack-operator"),
        ("Secret", "demo-stack-redis"),
        ("ConfigMap", "demo-stack-redis"),
        ("Service", "demo-stack-redis"),
        ("Service", "demo-stack-redis-headless"),
        ("StatefulSet", "demo-stack-redis"),
        ("NetworkPolicy", "demo-stack-redis"),
        ("ConfigMap", "demo-stack-otel-collector"),
        ("Service", "demo-stack-otel-collector"),
        ("Deployment", "demo-stack-otel-collector"),
        ("NetworkPolicy", "demo-stack-otel-collector"),
        ("Secret", "demo-stack-backends"),
    }


def test_all_on_adds_mongodb_default_stack_test_pod_and_disruption_budgets(chart_helm):
    objects = {(o["kind"], o["metadata"]["name"]) for o in chart_helm.template(ALL_ON)}
    assert {
        ("StatefulSet", "demo-stack-mongodb"),
        ("Secret", "demo-stack-mongodb"),
        ("Service", "demo-stack-mongodb"),
        ("NetworkPolicy", "demo-stack-mongodb"),
        ("Stack", "demo-stack"),
        ("Pod", "demo-stack-test-api"),
        ("PodDisruptionBudget", "demo-stack-operator"),
        ("PodDisruptionBudget", "demo-stack-redis"),
        ("Role", "demo-stack-operator-lease"),
    } <= objects


def test_fullname_is_the_release_name_when_it_names_the_chart(chart_helm):
    names = {o["metadata"]["name"] for o in chart_helm.template(release="stack")}
    assert "stack-operator" in names and "stack-redis" in names


# -- hardening: every object and every pod ---------------------------------------------


def test_every_object_has_the_recommended_labels(rendered):
    for obj in rendered:
        labels = obj["metadata"].get("labels", {})
        missing = [label for label in LABELS if not labels.get(label)]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/part-of"] == "stackyard"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "demo"


def test_every_pod_meets_the_restricted_pod_security_standard(rendered):
    for what, _, spec in pod_specs(rendered):
        pod_context = spec.get("securityContext", {})
        for container in containers(spec):
            context = container.get("securityContext", {})
            where = f"{what} container {container['name']}"
            assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, where
            assert context.get("runAsUser", pod_context.get("runAsUser", 1)) != 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("capabilities", {}).get("add"), where
            assert not context.get("privileged"), where
            seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            # Every program here writes only to its volumes: the root filesystem is read-only.
            assert context.get("readOnlyRootFilesystem") is True, where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: /tmp must be an emptyDir under a read-only root"
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(field), f"{what}: {field}"
        assert not any("hostPath" in v for v in spec.get("volumes", [])), what


def test_every_container_has_cpu_and_memory_requests_and_a_memory_limit(rendered):
    for what, _, spec in pod_specs(rendered):
        for container in containers(spec):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{what} {container['name']}"
            assert "memory" in resources.get("limits", {}), f"{what} {container['name']}"


def test_long_running_containers_have_liveness_and_readiness_probes(rendered):
    for obj in rendered:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in containers(obj["spec"]["template"]["spec"]):
            where = f"{obj['kind']}/{obj['metadata']['name']} {container['name']}"
            assert "livenessProbe" in container and "readinessProbe" in container, where


def test_only_the_operator_mounts_a_service_account_token(rendered):
    for what, _, spec in pod_specs(rendered):
        expected = what == "Deployment/demo-stack-operator"
        assert spec.get("automountServiceAccountToken") is expected, what


def test_images_are_pinned_and_never_latest(rendered):
    for what, _, spec in pod_specs(rendered):
        for container in containers(spec):
            image = container["image"]
            assert "@sha256:" in image or re.search(r":[\w][\w.-]*$", image.rsplit("/", 1)[-1]), f"{what}: {image}"
            assert not image.endswith(":latest"), f"{what}: {image}"


def test_no_secret_value_appears_outside_a_secret(rendered):
    secrets = secret_values(rendered)
    assert secrets, "the chart renders passwords into Secrets"
    for obj in rendered:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{obj['kind']}/{obj['metadata']['name']} holds a Secret value"


def test_every_workload_has_a_network_policy(rendered):
    policies = [o for o in rendered if o["kind"] == "NetworkPolicy"]
    for obj in rendered:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        labels = obj["spec"]["template"]["metadata"]["labels"]
        selecting = [p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]
        assert selecting, f"{obj['kind']}/{obj['metadata']['name']} has no NetworkPolicy"
        assert all(p["spec"]["policyTypes"] == ["Ingress"] for p in selecting)


def test_network_policies_can_be_turned_off(chart_helm):
    off = {"networkPolicy": {"enabled": False}}
    values = {"operator": off, "redis": off, "otelCollector": off, "mongodb": {"enabled": True, **off}}
    assert not [o for o in chart_helm.template(values) if o["kind"] == "NetworkPolicy"]


# -- the operator ----------------------------------------------------------------------


def operator_args(objects: list[dict[str, Any]]) -> list[str]:
    return find(objects, "Deployment", "demo-stack-operator")["spec"]["template"]["spec"]["containers"][0]["args"]


def test_one_operator_replica_watches_the_release_namespace_without_a_lease(chart_helm):
    objects = chart_helm.template()
    assert operator_args(objects) == ["--namespace=apps", "--health-port=8081"]
    deployment = find(objects, "Deployment", "demo-stack-operator")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["STACKYARD_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [{"name": "health", "containerPort": 8081, "protocol": "TCP"}]


def operator_env(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    container = find(objects, "Deployment", "demo-stack-operator")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def test_operator_exports_telemetry_to_the_release_collector_and_says_where_it_runs(chart_helm):
    objects = chart_helm.template({"mongodb": {"enabled": True}, "stack": {"enabled": True}})
    env = operator_env(objects)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == find(objects, "Stack")["spec"]["telemetry"]["endpoint"]
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "http/protobuf"
    assert env["STACKYARD_DEPLOYMENT"]["value"] == "demo-stack-operator"
    assert {name: e["valueFrom"]["fieldRef"]["fieldPath"] for name, e in env.items() if "valueFrom" in e} == {
        "STACKYARD_POD_NAME": "metadata.name",
        "STACKYARD_POD_UID": "metadata.uid",
        "STACKYARD_NAMESPACE": "metadata.namespace",
        "STACKYARD_NODE_NAME": "spec.nodeName",
    }
    without_collector = operator_env(chart_helm.template({"otelCollector": {"enabled": False}}))
    assert not [name for name in without_collector if name.startswith("OTEL_")]
    sampled = operator_env(
        chart_helm.template({"operator": {"extraEnv": [{"name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.25"}]}})
    )
    assert sampled["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.25"


def test_several_operator_replicas_elect_a_leader_and_have_a_disruption_budget(chart_helm):
    objects = chart_helm.template({"operator": {"replicas": 3}})
    assert operator_args(objects) == [
        "--namespace=apps",
        "--leader-election",
        "--lease-namespace=apps",
        "--lease-name=demo-stack-operator",
        "--lease-seconds=15",
        "--health-port=8081",
    ]
    budget = find(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    lease_role = find(objects, "Role", "demo-stack-operator-lease")
    assert lease_role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["demo-stack-operator"],
            "verbs": ["get", "update"],
        },
    ]


def test_cluster_scope_makes_a_cluster_role_and_watches_every_namespace(chart_helm):
    objects = chart_helm.template({"operator": {"watch": {"scope": "cluster"}}})
    assert operator_args(objects) == ["--all-namespaces", "--health-port=8081"]
    role = find(objects, "ClusterRole")
    binding = find(objects, "ClusterRoleBinding")
    assert role["metadata"]["name"] == binding["roleRef"]["name"] == "apps-demo-stack-operator"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-stack-operator", "namespace": "apps"}]
    assert not [o for o in objects if o["kind"] == "Role"]


def test_extra_namespaces_get_a_role_and_are_watched(chart_helm):
    objects = chart_helm.template({"operator": {"watch": {"extraNamespaces": ["team-a", "team-b"]}}})
    assert operator_args(objects)[:3] == ["--namespace=apps", "--namespace=team-a", "--namespace=team-b"]
    roles = {o["metadata"]["namespace"]: o for o in objects if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"]: o for o in objects if o["kind"] == "RoleBinding"}
    assert set(roles) == set(bindings) == {"apps", "team-a", "team-b"}
    assert roles["team-a"]["rules"] == roles["apps"]["rules"]
    for binding in bindings.values():
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-stack-operator", "namespace": "apps"}]


def test_operator_image_defaults_to_the_chart_app_version_and_takes_a_digest(chart_helm):
    def image(values=None):
        deployment = find(chart_helm.template(values), "Deployment", "demo-stack-operator")
        return deployment["spec"]["template"]["spec"]["containers"][0]["image"]

    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert image() == f"ghcr.io/stackyard/stackyard-operator:{app_version}"
    digest = "sha256:" + "a" * 64
    assert image({"operator": {"image": {"digest": digest}}}) == f"ghcr.io/stackyard/stackyard-operator@{digest}"


# -- Redis, MongoDB and the backends Secret --------------------------------------------


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_backends_secret_holds_urls_built_from_the_generated_passwords(chart_helm):
    objects = chart_helm.template({"mongodb": {"enabled": True}})
    redis_password = decoded(find(objects, "Secret", "demo-stack-redis"))["password"]
    mongo_password = decoded(find(objects, "Secret", "demo-stack-mongodb"))["password"]
    assert len(redis_password) == len(mongo_password) == 32 and redis_password != mongo_password
    assert decoded(find(objects, "Secret", "demo-stack-backends")) == {
        "redis": f"redis://:{redis_password}@demo-stack-redis.apps.svc:6379/0",
        "mongodb": f"mongodb://root:{mongo_password}@demo-stack-mongodb.apps.svc:27017/?authSource=admin",
    }
    assert find(objects, "Secret", "demo-stack-mongodb")["metadata"]["annotations"] == {
        "helm.sh/resource-policy": "keep"
    }


def test_redis_runs_with_aof_and_its_password_from_the_secret(chart_helm):
    objects = chart_helm.template({"redis": {"config": {"appendfsync": "always", "maxmemory": "1gb"}}})
    config = find(objects, "ConfigMap", "demo-stack-redis")["data"]["redis.conf"]
    assert "appendonly yes" in config.splitlines()
    assert "appendfsync always" in config.splitlines()
    assert "maxmemory 1gb" in config.splitlines()
    assert "requirepass" not in config.replace("--requirepass", "")
    statefulset = find(objects, "StatefulSet", "demo-stack-redis")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["/etc/redis/redis.conf", "--requirepass", "$(REDIS_PASSWORD)"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env == {
        "REDIS_PASSWORD": {"name": "demo-stack-redis", "key": "password"},
        "REDISCLI_AUTH": {"name": "demo-stack-redis", "key": "password"},
    }
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert "storageClassName" not in claim["spec"]


def test_redis_existing_secret_is_used_and_no_password_is_generated(chart_helm):
    objects = chart_helm.template(
        {"redis": {"auth": {"existingSecret": "my-redis", "existingSecretPasswordKey": "pw"}}}
    )
    assert not [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == "demo-stack-redis"]
    container = find(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]} == {"my-redis"}
    assert {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]} == {"pw"}
    # helm template cannot read my-redis, so the URL is left out rather than made up.
    assert "redis" not in (find(objects, "Secret", "demo-stack-backends").get("data") or {})


def test_without_persistence_the_data_is_an_empty_dir(chart_helm):
    objects = chart_helm.template({"redis": {"persistence": {"enabled": False}}})
    statefulset = find(objects, "StatefulSet")
    assert "volumeClaimTemplates" not in statefulset["spec"]
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_backend_network_policies_admit_exactly_the_release_and_operator_rendered_stack_pods(chart_helm):
    objects = chart_helm.template({"mongodb": {"enabled": True}})
    api_pod_labels = manifests.labels("anything", "api", "0.1.0")
    worker_pod_labels = manifests.labels("anything", "worker", "0.1.0")
    search_pod_labels = manifests.labels("anything", "search", "0.1.0")  # a mongodb-sourced index reads MongoDB
    operator_pod_labels = find(objects, "Deployment", "demo-stack-operator")["spec"]["template"]["metadata"]["labels"]
    stranger = {"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop"}
    for name, port in (("demo-stack-redis", "redis"), ("demo-stack-mongodb", "mongodb")):
        (rule,) = find(objects, "NetworkPolicy", name)["spec"]["ingress"]
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        selectors = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
        assert all(set(peer) == {"podSelector"} for peer in rule["from"]), "same namespace only"

        def admitted(labels, selectors=selectors):
            return any(selector.items() <= labels.items() for selector in selectors)

        assert admitted(api_pod_labels) and admitted(worker_pod_labels) and admitted(operator_pod_labels)
        assert admitted(search_pod_labels)
        assert not admitted(stranger)


def test_collector_network_policy_admits_otlp_from_the_namespace_only(chart_helm):
    (rule,) = find(chart_helm.template(), "NetworkPolicy", "demo-stack-otel-collector")["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {}}]
    assert [p["port"] for p in rule["ports"]] == ["otlp-grpc", "otlp-http"]


def test_extra_ingress_peers_are_added(chart_helm):
    peer = {"namespaceSelector": {"matchLabels": {"team": "a"}}}
    objects = chart_helm.template({"redis": {"networkPolicy": {"extraIngressFrom": [peer]}}})
    (rule,) = find(objects, "NetworkPolicy", "demo-stack-redis")["spec"]["ingress"]
    assert rule["from"][-1] == peer


# -- the OpenTelemetry Collector -------------------------------------------------------


def collector_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(find(objects, "ConfigMap", "demo-stack-otel-collector")["data"]["config.yaml"])


def test_collector_receives_otlp_and_exports_to_debug_by_default(chart_helm):
    config = collector_config(chart_helm.template())
    assert config["receivers"]["otlp"]["protocols"] == {
        "grpc": {"endpoint": "0.0.0.0:4317"},
        "http": {"endpoint": "0.0.0.0:4318"},
    }
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline == {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["debug"]}
    assert config["extensions"]["health_check"] == {"endpoint": "0.0.0.0:13133"}


@pytest.mark.parametrize(("protocol", "exporter"), [("grpc", "otlp"), ("http", "otlphttp")])
def test_collector_forwards_to_an_otlp_endpoint(chart_helm, protocol, exporter):
    values = {
        "otelCollector": {
            "otlpExporter": {"endpoint": "https://otlp.example.com", "protocol": protocol},
            "debugExporter": {"enabled": False},
        }
    }
    config = collector_config(chart_helm.template(values))
    assert config["exporters"] == {exporter: {"endpoint": "https://otlp.example.com"}}
    assert config["service"]["pipelines"]["traces"]["exporters"] == [exporter]


def test_collector_config_overrides_are_deep_merged(chart_helm):
    overrides = {"processors": {"batch": {"timeout": "2s"}}, "service": {"telemetry": {"logs": {"level": "warn"}}}}
    config = collector_config(chart_helm.template({"otelCollector": {"configOverrides": overrides}}))
    assert config["processors"]["batch"] == {"timeout": "2s"}
    assert config["processors"]["memory_limiter"]["limit_percentage"] == 80
    assert config["service"]["telemetry"] == {"logs": {"level": "warn"}}
    assert config["service"]["extensions"] == ["health_check"]


def test_collector_without_any_exporter_is_refused(chart_helm):
    result = chart_helm.try_template({"otelCollector": {"debugExporter": {"enabled": False}}})
    assert result.returncode != 0
    assert "otelCollector: nothing to export to" in result.stderr


def test_a_config_change_rolls_the_collector_pods(chart_helm):
    def checksum(values):
        deployment = find(chart_helm.template(values), "Deployment", "demo-stack-otel-collector")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(None) != checksum({"otelCollector": {"debugExporter": {"verbosity": "detailed"}}})


# -- the default Stack and its test ----------------------------------------------------


def test_default_stack_points_at_the_release_backends_and_collector(chart_helm):
    objects = chart_helm.template({"mongodb": {"enabled": True}, "stack": {"enabled": True}})
    stack = find(objects, "Stack")
    assert stack["apiVersion"] == "stackyard.dev/v1alpha1"
    assert stack["spec"] == {
        "image": {"registry": "ghcr.io/stackyard", "tag": "0.1.0", "pullPolicy": "IfNotPresent"},
        "redis": {"urlSecretRef": {"name": "demo-stack-backends", "key": "redis"}},
        "mongodb": {"uriSecretRef": {"name": "demo-stack-backends", "key": "mongodb"}},
        "telemetry": {
            "enabled": True,
            "endpoint": "http://demo-stack-otel-collector.apps.svc:4318",
            "protocol": "http/protobuf",
        },
    }


def test_default_stack_uses_external_backends_and_spec_overrides(chart_helm):
    values = {
        "redis": {"enabled": False, "external": {"urlSecretRef": {"name": "cache", "key": "url"}}},
        "mongodb": {"external": {"uriSecretRef": {"name": "atlas", "key": "uri"}}},
        "otelCollector": {"enabled": False},
        "stack": {
            "enabled": True,
            "name": "shop",
            "spec": {"mongodb": {"database": "shop"}, "worker": {"replicas": 4}},
        },
    }
    objects = chart_helm.template(values)
    stack = find(objects, "Stack", "shop")
    assert stack["spec"]["redis"] == {"urlSecretRef": {"name": "cache", "key": "url"}}
    assert stack["spec"]["mongodb"] == {"uriSecretRef": {"name": "atlas", "key": "uri"}, "database": "shop"}
    assert stack["spec"]["worker"] == {"replicas": 4}
    assert "telemetry" not in stack["spec"]
    assert not [o for o in objects if o["kind"] in ("StatefulSet", "Secret")]
    test_pod = find(objects, "Pod")
    env = {e["name"]: e["value"] for e in test_pod["spec"]["containers"][0]["env"]}
    assert env["READYZ_URL"] == "http://shop-api.apps.svc/readyz"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"stack": {"enabled": True}}, "the default Stack needs MongoDB"),
        ({"stack": {"enabled": True}, "mongodb": {"enabled": True}, "redis": {"enabled": False}}, "needs Redis"),
    ],
)
def test_default_stack_without_a_backend_is_refused(chart_helm, values, message):
    result = chart_helm.try_template(values)
    assert result.returncode != 0
    assert message in result.stderr


def test_helm_test_pod_checks_the_api_readyz_only_with_a_default_stack(chart_helm):
    assert not [o for o in chart_helm.template() if o["kind"] == "Pod"]
    pod = find(chart_helm.template(ALL_ON), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "ghcr.io/stackyard/stackyard-api:0.1.0"
    assert container["command"][:2] == ["python", "-c"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["READYZ_URL"] == "http://demo-stack-api.apps.svc/readyz"
    assert pod["spec"]["restartPolicy"] == "Never"
    compile(container["command"][2], "helm-test", "exec")  # the probe script is valid Python


@pytest.mark.parametrize("release", ["on", "n", "true"])
def test_release_names_that_yaml_reads_as_booleans_stay_strings(chart_helm, release):
    objects = chart_helm.template(ALL_ON, release=release, namespace="no")
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == release
        assert obj["metadata"]["namespace"] in ("no", "team-a")
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy" and o["spec"]["ingress"]):
        for peer in policy["spec"]["ingress"][0]["from"]:
            assert all(isinstance(v, str) for v in peer.get("podSelector", {}).get("matchLabels", {}).values())


def test_helm_test_pod_uses_the_stack_image_even_when_set_through_the_spec(chart_helm):
    values = {**ALL_ON, "stack": {"enabled": True, "spec": {"image": {"registry": "mirror.example/stackyard"}}}}
    objects = chart_helm.template(values)
    assert find(objects, "Stack")["spec"]["image"]["registry"] == "mirror.example/stackyard"
    (container,) = find(objects, "Pod")["spec"]["containers"]
    assert container["image"] == "mirror.example/stackyard/stackyard-api:0.1.0"
