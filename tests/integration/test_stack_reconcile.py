"""A Stack and its resources, applied with kubectl, reconciled by the operator process
into owned objects and a live config that the api and worker apply without restart."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from .conftest import RESEND, stack_manifest, wait_for

pytestmark = pytest.mark.usefixtures("operator")


def config_hash(namespace, stack="demo"):
    config_map = namespace.get("configmap", f"{stack}-config")
    return config_map and config_map["metadata"]["annotations"]["stackyard.dev/config-hash"]


def test_stack_renders_owned_objects_with_owner_references_and_labels(namespace, backends):
    namespace.apply(stack_manifest())
    wait_for(lambda: (namespace.condition("stack", "demo") or {}).get("status") == "True", what="Stack Ready")

    stack = namespace.get("stack", "demo")
    owned = {
        "serviceaccount": "demo-stackyard",
        "configmap": "demo-config",
        "secret": "demo-credentials",
        "deployment": "demo-api",
        "role": "demo-config-reader",
        "rolebinding": "demo-config-reader",
        "service": "demo-api",
    }
    for kind, name in owned.items():
        obj = namespace.get(kind, name)
        assert obj is not None, f"{kind}/{name} missing"
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "Stack",
            "demo",
            stack["metadata"]["uid"],
            True,
        )
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stackyard-operator"
    worker = namespace.get("deployment", "demo-worker")
    assert worker["spec"]["replicas"] == 1
    assert worker["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/stackyard/stackyard-worker:0.1.0"
    assert stack["status"]["configHash"] == config_hash(namespace)
    assert stack["status"]["observedGeneration"] == stack["metadata"]["generation"]


def test_provider_change_reaches_api_and_worker_without_restart(namespace, backends, services):
    namespace.secret("resend", apiKey="re_test_123")
    namespace.apply([stack_manifest(), RESEND])
    wait_for(
        lambda: (namespace.condition("emailprovider", "resend") or {}).get("status") == "True", what="provider Ready"
    )
    api, worker = services("api", namespace), services("worker", namespace)
    first = config_hash(namespace)
    wait_for(lambda: httpx.get(f"{api.url}/v1/config").json().get("hash") == first, what="api applies the config")
    api_pid = api.process.proc.pid

    namespace.apply({**RESEND, "spec": {**RESEND["spec"], "priority": 5}})
    second = wait_for(lambda: (h := config_hash(namespace)) != first and h, what="a new config hash")
    for service in (api, worker):
        wait_for(
            lambda s=service: httpx.get(f"{s.url}/v1/config").json()["hash"] == second, what="the new hash applied"
        )
    assert api.process.proc.pid == api_pid and api.process.running, "the api must not restart"
    deployment = namespace.get("deployment", "demo-api")
    assert deployment["metadata"]["generation"] == 1, "a config change must not roll the pods"
    ready = httpx.get(f"{api.url}/readyz")
    assert ready.status_code == 200, ready.text


def test_schema_and_cel_rules_reject_bad_resources_with_their_message(namespace):
    bad_burst = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "RateLimitPolicy",
        "metadata": {"name": "login"},
        "spec": {"stackRef": {"name": "demo"}, "algorithm": "fixedWindow", "limit": 10, "window": "1m", "burst": 20},
    }
    result = namespace.try_apply(bad_burst)
    assert result.returncode != 0
    assert "burst applies only to the tokenBucket and gcra algorithms" in result.stderr

    smtp_without_settings = {**RESEND, "spec": {"stackRef": {"name": "demo"}, "type": "smtp"}}
    result = namespace.try_apply(smtp_without_settings)
    assert "spec.smtp must be set when type is smtp, and only then" in result.stderr

    bad_duration = {**bad_burst, "spec": {**bad_burst["spec"], "burst": None, "window": "1 minute"}}
    del bad_duration["spec"]["burst"]
    result = namespace.try_apply(bad_duration)
    assert "spec.window" in result.stderr and "should match" in result.stderr
    assert namespace.get("ratelimitpolicy", "login") is None


def test_missing_secret_gives_ready_false_with_reason_until_it_appears(namespace, backends):
    namespace.apply([stack_manifest(), RESEND])
    condition = wait_for(
        lambda: (c := namespace.condition("emailprovider", "resend")) and c["status"] == "False" and c,
        what="provider Ready=False",
    )
    assert condition["reason"] == "SecretNotFound"
    assert condition["message"] == "Secret resend not found"
    assert (
        "resend" not in json.loads(namespace.get("configmap", "demo-config")["data"]["config.json"])["emailProviders"]
    )

    namespace.secret("resend", wrongKey="x")
    wait_for(
        lambda: (namespace.condition("emailprovider", "resend") or {}).get("reason") == "SecretKeyNotFound",
        what="reason SecretKeyNotFound",
    )
    assert namespace.condition("emailprovider", "resend")["message"] == "Secret resend has no key 'apiKey'"

    namespace.secret("resend", apiKey="re_live_abc")
    wait_for(
        lambda: (namespace.condition("emailprovider", "resend") or {}).get("status") == "True", what="provider Ready"
    )
    stack_members = namespace.condition("stack", "demo", "MembersReady")
    assert stack_members["status"] == "True"

    # Each transition of Ready was told as an Event on the provider (Events have one-second
    # timestamps, so their order is not asserted).
    def ready_events():
        events = json.loads(namespace.kubectl("get", "events", "-o", "json").stdout)["items"]
        items = [e for e in events if e["involvedObject"]["name"] == "resend" and e["message"].startswith("Ready=")]
        return sorted((e["type"], e["reason"]) for e in items)

    wait_for(lambda: len(ready_events()) >= 3, what="three Ready Events on the provider")
    assert ready_events() == [("Normal", "InForce"), ("Warning", "SecretKeyNotFound"), ("Warning", "SecretNotFound")]


def test_stack_without_its_secret_keeps_nothing_half_applied(namespace):
    namespace.apply(stack_manifest())
    condition = wait_for(lambda: (c := namespace.condition("stack", "demo")) and c, what="a Stack condition")
    assert (condition["status"], condition["reason"]) == ("False", "SecretNotFound")
    assert "Secret backends not found" in condition["message"]
    assert namespace.get("configmap", "demo-config") is None


def test_stack_that_stops_applying_keeps_its_conditions_as_unknown(namespace, backends):
    namespace.apply(stack_manifest())
    wait_for(lambda: (namespace.condition("stack", "demo") or {}).get("status") == "True", what="Stack Ready")
    assert namespace.condition("stack", "demo", "MembersReady")["status"] == "True"
    namespace.apply(stack_manifest(redis={"urlSecretRef": {"name": "no-such-secret", "key": "redis"}}))
    ready = wait_for(
        lambda: (c := namespace.condition("stack", "demo")) and c["status"] == "False" and c, what="Stack not Ready"
    )
    assert ready["reason"] == "SecretNotFound" and "no-such-secret" in ready["message"]
    members = namespace.condition("stack", "demo", "MembersReady")
    assert (members["status"], members["reason"]) == ("Unknown", "NotEvaluated")
    assert namespace.condition("stack", "demo", "AuthReady")["status"] == "Unknown"


def test_member_of_missing_stack_reports_stack_not_found(namespace):
    namespace.apply(RESEND)
    condition = wait_for(lambda: namespace.condition("emailprovider", "resend"), what="a provider condition")
    assert (condition["status"], condition["reason"]) == ("False", "StackNotFound")


def test_invalid_member_keeps_its_last_good_version_in_force(namespace, backends):
    namespace.secret("resend", apiKey="re_first")
    namespace.apply([stack_manifest(), RESEND])
    wait_for(
        lambda: (namespace.condition("emailprovider", "resend") or {}).get("status") == "True", what="provider Ready"
    )

    moved = {
        **RESEND,
        "spec": {**RESEND["spec"], "priority": 1, "resend": {"apiKeySecretRef": {"name": "gone", "key": "apiKey"}}},
    }
    namespace.apply(moved)
    condition = wait_for(
        lambda: (c := namespace.condition("emailprovider", "resend")) and c["status"] == "False" and c,
        what="provider Ready=False",
    )
    assert condition["reason"] == "SecretNotFound"
    assert "last good version stays in force" in condition["message"]
    config = json.loads(namespace.get("configmap", "demo-config")["data"]["config.json"])
    assert config["emailProviders"]["resend"]["priority"] == 10, "the last good version, not the broken one"
    credentials = namespace.get("secret", "demo-credentials")["data"]
    assert base64.b64decode(credentials["emailprovider.resend.apiKey"]).decode() == "re_first"
    assert namespace.condition("stack", "demo", "MembersReady")["status"] == "False"


def test_changed_secret_is_picked_up_by_the_api(namespace, backends, services):
    namespace.secret("resend", apiKey="re_old")
    namespace.apply([stack_manifest(), RESEND])
    wait_for(
        lambda: (namespace.condition("emailprovider", "resend") or {}).get("status") == "True", what="provider Ready"
    )
    api = services("api", namespace)
    before = wait_for(lambda: httpx.get(f"{api.url}/v1/config").json().get("credentialsRevision"), what="api config")

    namespace.secret("resend", apiKey="re_new")
    wait_for(
        lambda: httpx.get(f"{api.url}/v1/config").json()["credentialsRevision"] == before + 1,
        what="the api to apply the new credentials",
    )
    credentials = namespace.get("secret", "demo-credentials")["data"]
    assert base64.b64decode(credentials["emailprovider.resend.apiKey"]).decode() == "re_new"


def test_credentials_never_appear_in_configmap_status_logs_or_api(
    namespace, backends, services, operator, redis_server
):
    secret_value = "re_sekrit_9f8e7d6c5b4a"
    namespace.secret("resend", apiKey=secret_value)
    namespace.apply([stack_manifest(), RESEND])
    wait_for(
        lambda: (namespace.condition("emailprovider", "resend") or {}).get("status") == "True", what="provider Ready"
    )
    api = services("api", namespace)
    body = wait_for(lambda: (r := httpx.get(f"{api.url}/v1/config")).status_code == 200 and r.text, what="api config")

    exposed = {
        "configmap": json.dumps(namespace.get("configmap", "demo-config")),
        "stack status": json.dumps(namespace.get("stack", "demo")["status"]),
        "provider status": json.dumps(namespace.get("emailprovider", "resend")["status"]),
        "events": namespace.kubectl("get", "events", "-o", "json").stdout,
        "operator log": operator.log(),
        "api log": api.process.log_path.read_text(),
        "api /v1/config": body,
    }
    for where, text in exposed.items():
        for secret in (secret_value, redis_server.url):
            assert secret not in text, f"a credential leaked into the {where}"


def test_deleting_the_stack_removes_what_it_owns(namespace, backends):
    namespace.apply(stack_manifest())
    wait_for(lambda: namespace.get("deployment", "demo-api"), what="the api Deployment")
    namespace.kubectl("delete", "stack", "demo")
    for kind, name in [
        ("deployment", "demo-api"),
        ("deployment", "demo-worker"),
        ("configmap", "demo-config"),
        ("secret", "demo-credentials"),
        ("service", "demo-api"),
        ("serviceaccount", "demo-stackyard"),
    ]:
        wait_for(lambda k=kind, n=name: namespace.get(k, n) is None, timeout=30, what=f"{kind}/{name} to be collected")
    assert namespace.get("secret", "backends") is not None, "the user's own Secret stays"
