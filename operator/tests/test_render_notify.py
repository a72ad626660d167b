"""render() with NotificationWorkflows and Webhooks: their place in the config and their
secrets only in the credentials, Ready (in force, or Ready=False with why: a missing
EmailTemplate or Webhook, a template that does not compile, a trigger key taken), the
Webhook's signing Secret made once and the VAPID key pair made once."""

from __future__ import annotations

import base64
import json

from stackyard.config import credential_key
from stackyard.config.runtime import NOTIFY_VAPID_PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY
from stackyard_operator.conditions import merge_conditions
from stackyard_operator.notify import NotifyFresh, new_signing_secret
from stackyard_operator.render import Observed, referenced_secrets, render
from test_render import BACKENDS, STACK, conditions

TEMPLATE = {
    "apiVersion": "stackyard.dev/v1alpha1",
    "kind": "EmailTemplate",
    "metadata": {"name": "comment", "namespace": "shop", "uid": "uid-comment", "generation": 1},
    "spec": {
        "stackRef": {"name": "demo"},
        "subject": "New comment",
        "text": "{{ body }}",
        "variables": {"body": {"description": "What was said."}},
    },
}
STEPS = [
    {"name": "feed", "inApp": {"title": "{{ actor.name }} commented", "body": "{{ data.text }}"}},
    {"name": "wait", "digest": {"window": "10m"}},
    {
        "name": "mail",
        "email": {"template": "comment", "variables": {"body": "{{ digest.total }} comments"}},
        "conditions": {"rules": [{"step": "feed", "message": "unseen"}]},
    },
]
SIGNING = "whsec_" + base64.b64encode(b"k" * 32).decode()
FRESH_SIGNING = "whsec_" + base64.b64encode(b"f" * 32).decode()
VAPID = ("-----BEGIN PRIVATE KEY-----\nfresh\n-----END PRIVATE KEY-----\n", "BFreshPublicKey")


def workflow(name: str = "comment-created", created: str = "2026-11-26T10:00:00Z", generation: int = 1, **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "NotificationWorkflow",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "generation": generation,
            "creationTimestamp": created,
        },
        "spec": {"stackRef": {"name": "demo"}, "steps": STEPS} | spec,
        "status": {},
    }


def webhook(name: str = "crm", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Webhook",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "generation": 1},
        "spec": {"stackRef": {"name": "demo"}, "url": "https://crm.example/hooks", "events": ["user.*"]} | spec,
        "status": {},
    }


def fresh(webhooks=("crm",), vapid=VAPID) -> NotifyFresh:
    return NotifyFresh(dict.fromkeys(webhooks, FRESH_SIGNING), vapid)


def ready(desired, kind, name):
    condition = conditions(desired, kind, name)["Ready"]
    return condition.status, condition.reason, condition.message


def secrets_of(desired) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in desired.objects if o["kind"] == "Secret"}


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_workflow_and_webhook_are_in_the_config_and_the_secrets_only_in_the_credentials():
    members = [TEMPLATE, workflow(), webhook(secretRef={"name": "crm-hook", "key": "secret"})]
    observed = Observed(STACK, members, {"backends": BACKENDS, "crm-hook": {"secret": SIGNING}}, notify=fresh(()))
    desired = render(observed)
    assert desired.config.notification_workflows["comment-created"].steps[2].email.template == "comment"
    assert desired.config.webhooks["crm"].url == "https://crm.example/hooks"
    assert desired.credentials[credential_key("Webhook", "crm", "signingSecret")] == SIGNING
    assert desired.credentials[NOTIFY_VAPID_PRIVATE_KEY] == VAPID[0]
    assert desired.credentials[NOTIFY_VAPID_PUBLIC_KEY] == VAPID[1]
    config_map = json.dumps(next(o for o in desired.objects if o["kind"] == "ConfigMap"))
    for secret in (SIGNING, VAPID[0], VAPID[1]):
        assert secret not in config_map
    assert ready(desired, "NotificationWorkflow", "comment-created")[:2] == ("True", "InForce")
    assert ready(desired, "Webhook", "crm")[:2] == ("True", "InForce")
    workflow_status = desired.statuses[("NotificationWorkflow", "comment-created")]
    assert workflow_status.fields == {"triggerKey": "comment-created"}
    assert desired.statuses[("Webhook", "crm")].fields == {"secretName": "crm-hook"}
    assert "crm-webhook-signing" not in secrets_of(desired)  # a secretRef: nothing is made
    counts = desired.stack_status.fields["members"]
    assert (counts["NotificationWorkflow"], counts["Webhook"]) == (1, 1)


def test_a_workflow_whose_email_template_is_missing_is_not_ready_and_becomes_ready_with_it():
    desired = render(Observed(STACK, [workflow()], {"backends": BACKENDS}))
    status, reason, message = ready(desired, "NotificationWorkflow", "comment-created")
    assert (status, reason) == ("False", "TemplateNotFound")
    assert message == "step 'mail': EmailTemplate comment is not in force in Stack demo"
    assert desired.config.notification_workflows == {}
    assert conditions(desired, "Stack", "demo")["MembersReady"].status == "False"
    assert desired.statuses[("NotificationWorkflow", "comment-created")].fields == {"triggerKey": "comment-created"}

    desired = render(Observed(STACK, [TEMPLATE, workflow()], {"backends": BACKENDS}))
    assert ready(desired, "NotificationWorkflow", "comment-created")[:2] == ("True", "InForce")
    assert "comment-created" in desired.config.notification_workflows


def test_a_workflow_naming_a_webhook_not_in_force_is_not_ready():
    steps = [{"name": "crm", "webhook": {"webhook": "crm"}}]
    # The Webhook exists but is invalid (its Secret is missing): not in force either.
    members = [workflow(steps=steps), webhook(secretRef={"name": "absent", "key": "secret"})]
    desired = render(Observed(STACK, members, {"backends": BACKENDS}))
    status, reason, message = ready(desired, "NotificationWorkflow", "comment-created")
    assert (status, reason) == ("False", "WebhookNotFound")
    assert message == "step 'crm': Webhook crm is not in force in Stack demo"
    assert ready(desired, "Webhook", "crm")[:2] == ("False", "SecretNotFound")


def test_a_template_that_does_not_compile_is_not_ready_with_the_step_and_the_last_good_version_stays():
    good = render(Observed(STACK, [TEMPLATE, workflow()], {"backends": BACKENDS}))
    broken = [{"name": "feed", "inApp": {"title": "{{ actor.name "}}]
    desired = render(
        Observed(
            STACK, [TEMPLATE, workflow(steps=broken, generation=2)], {"backends": BACKENDS}, previous_config=good.config
        )
    )
    status, reason, message = ready(desired, "NotificationWorkflow", "comment-created")
    assert (status, reason) == ("False", "TemplateInvalid")
    assert message.startswith("step 'feed': ") and message.endswith("; the last good version stays in force")
    assert desired.config.notification_workflows == good.config.notification_workflows


def test_two_workflows_with_one_trigger_key_the_older_keeps_it():
    members = [
        TEMPLATE,
        workflow("comments-v2", created="2026-11-26T11:00:00Z", key="comment-created"),
        workflow("comment-created", created="2026-11-26T10:00:00Z"),
    ]
    desired = render(Observed(STACK, members, {"backends": BACKENDS}))
    assert set(desired.config.notification_workflows) == {"comment-created"}
    status, reason, message = ready(desired, "NotificationWorkflow", "comments-v2")
    assert (status, reason) == ("False", "KeyConflict")
    assert message == "trigger key 'comment-created' is already NotificationWorkflow comment-created's"
    assert desired.statuses[("NotificationWorkflow", "comments-v2")].fields == {"triggerKey": "comment-created"}


def test_a_webhook_without_secret_ref_gets_its_secret_owned_by_it_and_the_credentials_key():
    desired = render(Observed(STACK, [webhook()], {"backends": BACKENDS}, notify=fresh()))
    made = secrets_of(desired)["crm-webhook-signing"]
    assert decoded(made) == {"secret": FRESH_SIGNING}
    (owner,) = made["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Webhook", "crm", "uid-crm")
    assert made["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
    assert desired.credentials[credential_key("Webhook", "crm", "signingSecret")] == FRESH_SIGNING
    assert ready(desired, "Webhook", "crm")[:2] == ("True", "InForce")
    assert desired.statuses[("Webhook", "crm")].fields == {"secretName": "crm-webhook-signing"}
    assert FRESH_SIGNING not in json.dumps(next(o for o in desired.objects if o["kind"] == "ConfigMap"))
    assert FRESH_SIGNING not in json.dumps([s.fields for s in desired.statuses.values()])
    assert referenced_secrets(webhook()) == {"crm-webhook-signing"}


def test_the_made_signing_secret_is_kept_and_never_rotated_by_itself():
    found = {"backends": BACKENDS, "crm-webhook-signing": {"secret": SIGNING}}
    desired = render(Observed(STACK, [webhook()], found, notify=fresh()))
    assert "crm-webhook-signing" not in secrets_of(desired)  # there: left as it is
    assert desired.credentials[credential_key("Webhook", "crm", "signingSecret")] == SIGNING
    # Deleted by hand: made again with the secret in force, not the fresh one.
    desired = render(
        Observed(STACK, [webhook()], {"backends": BACKENDS}, previous_credentials=desired.credentials, notify=fresh())
    )
    assert decoded(secrets_of(desired)["crm-webhook-signing"]) == {"secret": SIGNING}
    assert desired.credentials[credential_key("Webhook", "crm", "signingSecret")] == SIGNING


def test_without_fresh_material_nothing_is_made_and_the_webhook_says_why():
    desired = render(Observed(STACK, [webhook()], {"backends": BACKENDS}))
    assert "crm-webhook-signing" not in secrets_of(desired)
    status, reason, message = ready(desired, "Webhook", "crm")
    assert (status, reason, message) == ("False", "SecretNotFound", "Secret crm-webhook-signing not found")
    assert NOTIFY_VAPID_PRIVATE_KEY not in desired.credentials


def test_vapid_keys_are_made_once_and_kept():
    first = render(Observed(STACK, [], {"backends": BACKENDS}, notify=fresh((), VAPID)))
    assert (first.credentials[NOTIFY_VAPID_PRIVATE_KEY], first.credentials[NOTIFY_VAPID_PUBLIC_KEY]) == VAPID
    other = ("-----BEGIN PRIVATE KEY-----\nother\n-----END PRIVATE KEY-----\n", "BOther")
    again = render(
        Observed(
            STACK,
            [],
            {"backends": BACKENDS},
            previous_credentials=first.credentials,
            previous_credentials_revision=first.credentials_revision,
            notify=fresh((), other),
        )
    )
    assert (again.credentials[NOTIFY_VAPID_PRIVATE_KEY], again.credentials[NOTIFY_VAPID_PUBLIC_KEY]) == VAPID
    assert again.credentials_revision == first.credentials_revision


def test_fresh_material_is_real():
    made = NotifyFresh.make(["crm"], need_vapid=True)
    secret = made.signing_secrets["crm"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_signing_secret() != new_signing_secret()
    private, public = made.vapid
    assert private.startswith("-----BEGIN PRIVATE KEY-----")
    assert len(base64.urlsafe_b64decode(public + "=" * (-len(public) % 4))) == 65
    assert NotifyFresh.make([], need_vapid=False).vapid is None


def test_the_webhooks_enabled_condition_written_by_the_worker_is_kept():
    disabled = {"type": "Enabled", "status": "False", "reason": "FailingTooLong", "message": "failing for 120h"}
    desired = render(Observed(STACK, [webhook(secretRef={"name": "crm-hook", "key": "secret"})], {
        "backends": BACKENDS, "crm-hook": {"secret": SIGNING}}))  # fmt: skip
    update = desired.statuses[("Webhook", "crm")]
    merged = merge_conditions([disabled], update.conditions, update.generation, "2026-11-26T12:00:00Z")
    assert [(c["type"], c["status"]) for c in merged] == [("Ready", "True"), ("Enabled", "False")]
