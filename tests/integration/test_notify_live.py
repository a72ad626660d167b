"""NotificationWorkflows and Webhooks applied with kubectl and reconciled by the operator
process: the API server refuses what a CEL rule can say, a workflow whose EmailTemplate is
missing is Ready=False with the reason and becomes Ready when the template appears, a
Webhook without secretRef gets its signing Secret (owned by it) and the credentials key and
no secret anywhere else, the VAPID key pair is made once and kept, and the Stack's own
account may record a Webhook's deliveries in its status, which the operator keeps."""

from __future__ import annotations

import base64
import json

import pytest
from stackyard_harness.programs import service_account_kubeconfig

from .conftest import stack_manifest, wait_for
from .secret_leaks import find_leaks
from .test_jobs_resources_live import EXAMPLES, config, ready

pytestmark = pytest.mark.usefixtures("operator")

VAPID_PRIVATE, VAPID_PUBLIC = "stack.notify.vapidPrivateKey", "stack.notify.vapidPublicKey"
SIGNING = "webhook.crm.signingSecret"
TEMPLATE = {
    "apiVersion": "stackyard.dev/v1alpha1",
    "kind": "EmailTemplate",
    "metadata": {"name": "comment"},
    "spec": {
        "stackRef": {"name": "demo"},
        "subject": "New comment",
        "text": "{{ body }}",
        "variables": {"body": {"description": "What was said."}},
    },
}
STEPS = [
    {"name": "feed", "inApp": {"title": "{{ actor.name }} commented", "body": "{{ data.text }}"}},
    {
        "name": "mail",
        "email": {"template": "comment", "variables": {"body": "{{ data.text }}"}},
        "conditions": {"rules": [{"step": "feed", "message": "unseen"}]},
    },
]


def workflow(name: str = "comment-created", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "NotificationWorkflow",
        "metadata": {"name": name},
        "spec": {"stackRef": {"name": "demo"}, "steps": STEPS} | spec,
    }


def webhook(name: str = "crm", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Webhook",
        "metadata": {"name": name},
        "spec": {"stackRef": {"name": "demo"}, "url": "https://crm.example/hooks", "events": ["user.*"]} | spec,
    }


def credentials(namespace):
    data = (namespace.get("secret", "demo-credentials") or {}).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_the_api_server_rejects_what_the_cel_rules_say(namespace):
    two_kinds = {"name": "both", "inApp": {"title": "hi"}, "delay": {"duration": "1m"}}
    both_forms = {
        "name": "mail",
        "email": {"template": "comment"},
        "conditions": {"rules": [{"variable": "data.x", "operator": "exists", "step": "feed", "message": "seen"}]},
    }
    rejected = {
        "a step is exactly one of email, inApp, push, webhook, delay, digest, throttle": workflow(steps=[two_kinds]),
        "step names must be unique": workflow(steps=[STEPS[0], STEPS[0]]),
        "a condition is either variable with operator (and value), or step with message": workflow(
            steps=[STEPS[0], both_forms]
        ),
        "headers may not set webhook-id, webhook-timestamp or webhook-signature": webhook(
            headers={"Webhook-Signature": "v1,forged"}
        ),
        "timeout must be at most 60s": webhook(timeout="90s"),
    }
    for message, manifest in rejected.items():
        result = namespace.try_apply(manifest)
        assert result.returncode != 0 and message in result.stderr, (message, result.stderr)
    assert namespace.get("notificationworkflow", "comment-created") is None and namespace.get("webhook", "crm") is None
    for manifest in (workflow(), webhook(headers={"X-Team": "growth"}, timeout="60s")):
        result = namespace.try_apply(manifest)
        assert result.returncode == 0, result.stderr
    stored = namespace.get("webhook", "crm")["spec"]
    assert (stored["maxAttempts"], stored["disableAfter"], stored["paused"]) == (8, "120h", False)


def test_a_workflow_whose_template_is_missing_is_not_ready_until_the_template_appears(namespace, backends):
    namespace.apply([stack_manifest(), workflow()])
    obj = wait_for(
        lambda: ready(namespace, "notificationworkflow", "comment-created", "False"), what="the workflow Ready=False"
    )
    condition = obj["status"]["conditions"][0]
    assert condition["reason"] == "TemplateNotFound"
    assert condition["message"] == "step 'mail': EmailTemplate comment is not in force in Stack demo"
    assert obj["status"]["triggerKey"] == "comment-created"
    assert "comment-created" not in config(namespace)["notificationWorkflows"]

    namespace.apply(TEMPLATE)
    obj = wait_for(
        lambda: ready(namespace, "notificationworkflow", "comment-created"), what="the workflow Ready with its template"
    )
    assert obj["status"]["conditions"][0]["reason"] == "InForce"
    applied = wait_for(
        lambda: (c := config(namespace))["notificationWorkflows"].get("comment-created") and c,
        what="the workflow in the config",
    )
    assert applied["notificationWorkflows"]["comment-created"]["steps"][1]["email"]["template"] == "comment"
    listing = namespace.kubectl("get", "notificationworkflows").stdout.splitlines()
    assert listing[0].split()[:3] == ["NAME", "KEY", "READY"]
    assert listing[1].split()[:3] == ["comment-created", "comment-created", "True"]

    # A second workflow claiming the same trigger key: refused, the first keeps it.
    namespace.apply(workflow("comments-v2", key="comment-created"))
    obj = wait_for(lambda: ready(namespace, "notificationworkflow", "comments-v2", "False"), what="the key conflict")
    assert obj["status"]["conditions"][0]["reason"] == "KeyConflict"
    assert set(config(namespace)["notificationWorkflows"]) == {"comment-created"}


def test_a_webhook_without_secret_ref_gets_its_secret_and_the_credentials_key(namespace, backends, operator):
    namespace.apply([stack_manifest(), webhook()])
    obj = wait_for(lambda: ready(namespace, "webhook", "crm"), what="Webhook crm Ready")
    assert obj["status"]["secretName"] == "crm-webhook-signing"
    made = namespace.get("secret", "crm-webhook-signing")
    (owner,) = made["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Webhook", "crm", obj["metadata"]["uid"])
    secret = base64.b64decode(made["data"]["secret"]).decode()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    wait_for(lambda: credentials(namespace).get(SIGNING) == secret, what="the signing secret in the credentials")
    assert config(namespace)["webhooks"]["crm"]["url"] == "https://crm.example/hooks"

    # Kept: a change of the Webhook, or its Secret deleted by hand, brings back the same one.
    namespace.apply(webhook(events=["user.*", "email.*"]))
    wait_for(
        lambda: (o := ready(namespace, "webhook", "crm")) and o["status"]["observedGeneration"] == 2,
        what="the Webhook reconciled at generation 2",
    )
    assert base64.b64decode(namespace.get("secret", "crm-webhook-signing")["data"]["secret"]).decode() == secret
    namespace.kubectl("delete", "secret", "crm-webhook-signing")
    again = wait_for(lambda: namespace.get("secret", "crm-webhook-signing"), what="the Secret made again")
    assert base64.b64decode(again["data"]["secret"]).decode() == secret
    assert credentials(namespace)[SIGNING] == secret

    outputs = {
        "configmap": json.dumps(namespace.get("configmap", "demo-config")),
        "webhook": json.dumps(namespace.get("webhook", "crm")),
        "events": namespace.kubectl("get", "events", "-o", "json").stdout,
        "operator log": operator.log(),
    }
    assert not find_leaks({"signing secret": secret}, outputs)

    # Goes with its Webhook (owner reference; the harness runs the garbage collector, which
    # watches a kind installed after it started only from its next discovery, every 30 s).
    namespace.kubectl("delete", "webhook", "crm")
    wait_for(lambda: "crm" not in config(namespace)["webhooks"], what="the Webhook out of the config")
    wait_for(lambda: SIGNING not in credentials(namespace), what="its key out of the credentials")
    wait_for(
        lambda: namespace.get("secret", "crm-webhook-signing") is None,
        timeout=60,
        what="its Secret garbage-collected",
    )


def test_vapid_keys_are_made_once_and_kept_across_reconciles(namespace, backends, operator):
    namespace.apply(stack_manifest())
    held = wait_for(lambda: (c := credentials(namespace)).get(VAPID_PUBLIC) and c, what="the VAPID key pair")
    private, public = held[VAPID_PRIVATE], held[VAPID_PUBLIC]
    assert private.startswith("-----BEGIN PRIVATE KEY-----")
    assert len(base64.urlsafe_b64decode(public + "=" * (-len(public) % 4))) == 65
    # Reconciles (a new Stack generation, a new member) keep the pair.
    namespace.apply([stack_manifest(auth={"accessTokenLifetime": "10m"}), webhook()])
    wait_for(lambda: ready(namespace, "webhook", "crm"), what="Webhook crm Ready")
    wait_for(lambda: ready(namespace, "stack", "demo"), what="the Stack reconciled")
    held = credentials(namespace)
    assert (held[VAPID_PRIVATE], held[VAPID_PUBLIC]) == (private, public)
    assert public not in json.dumps(namespace.get("configmap", "demo-config"))
    assert not find_leaks({"VAPID private key": private}, {"operator log": operator.log()})


def test_the_stacks_account_records_webhook_status_and_the_operator_keeps_it(namespace, backends, cluster):
    namespace.apply([stack_manifest(), webhook()])
    wait_for(lambda: ready(namespace, "webhook", "crm"), what="Webhook crm Ready")
    kubeconfig = service_account_kubeconfig(cluster, namespace.name, "demo-stackyard")
    worker_status = {
        "status": {
            "conditions": [
                {
                    "type": "Enabled",
                    "status": "False",
                    "reason": "FailingTooLong",
                    "message": "every delivery failed for 120h",
                    "lastTransitionTime": "2026-11-26T10:00:00Z",
                    "observedGeneration": 1,
                },
                *namespace.get("webhook", "crm")["status"]["conditions"],
            ],
            "failingSince": "2026-11-21T10:00:00Z",
            "lastDelivery": {"at": "2026-11-26T10:00:00Z", "eventType": "user.created", "succeeded": False},
        }
    }
    cluster.kubectl(
        "patch", "webhook", "crm", "-n", namespace.name, "--subresource=status", "--type=merge",
        "-p", json.dumps(worker_status), kubeconfig=kubeconfig,
    )  # fmt: skip
    refused = cluster.kubectl(
        "patch", "webhook", "crm", "-n", namespace.name, "--type=merge", "-p", '{"spec":{"paused":true}}',
        kubeconfig=kubeconfig, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr

    namespace.apply(webhook(paused=True))  # a new generation: the operator writes Ready
    obj = wait_for(
        lambda: (o := ready(namespace, "webhook", "crm")) and o["status"]["observedGeneration"] == 2 and o,
        what="the Webhook reconciled at generation 2",
    )
    types = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert types == {"Ready": "True", "Enabled": "False"}
    assert next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")["reason"] == "Paused"
    assert obj["status"]["failingSince"] == "2026-11-21T10:00:00Z"
    assert obj["status"]["secretName"] == "crm-webhook-signing"


def test_the_example_applies_and_becomes_ready(namespace, backends):
    for example in ("stack.yaml", "email-template.yaml", "notify.yaml"):
        namespace.kubectl("apply", "-f", str(EXAMPLES / example))
    wait_for(lambda: ready(namespace, "webhook", "crm"), what="the example Webhook Ready")
    wait_for(lambda: ready(namespace, "notificationworkflow", "welcome"), what="the example workflow Ready")
    applied = config(namespace)
    steps = applied["notificationWorkflows"]["welcome"]["steps"]
    assert [s["name"] for s in steps] == ["feed", "collect", "mail"]
    assert (steps[1]["digest"]["window"], steps[2]["email"]["template"]) == ("10m", "welcome")
    assert namespace.get("secret", "crm-webhook-signing") is not None
