"""What the operator decides for the notification kinds of a Stack, besides their place in
the config (render() folds NotificationWorkflows and Webhooks like any member kind).

Pure functions, called by render():

- `settle_workflows`: a NotificationWorkflow is in force only when what it names is in
  force in the same Stack (the EmailTemplate of each email step, the Webhook of each webhook
  step), its template strings compile (stackyard.notify.render.template_problems) and no
  other workflow in force has its trigger key (the older one keeps the key). Otherwise it
  is Ready=False with the reason; a last good version that passes the same checks stays.
- `signing_secrets`: a Webhook without spec.secretRef gets the Secret
  `generated_secret_name(name)` (key `secret`, `whsec_` + base64 of 32 random bytes), owned
  by the Webhook so that it goes with it. Made once: a Secret deleted by hand comes back with
  the signing secret in force (from the credentials), never a new one; to rotate, edit its
  `secret` key or point spec.secretRef elsewhere. render() then copies it into the
  credentials under credential_key("Webhook", name, "signingSecret") like any member's.
- `vapid_credentials`: the Stack's web push (VAPID) key pair, made once into the credentials
  Secret under NOTIFY_VAPID_PRIVATE_KEY and NOTIFY_VAPID_PUBLIC_KEY and kept there.

Randomness stays outside render (as for the auth keys): the reconciler makes fresh material
only for what is missing when it observes (`NotifyFresh.make`); render uses it or not.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stackyard.config import credential_key
from stackyard.config.runtime import NOTIFY_VAPID_PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY
from stackyard.notify.push import new_vapid_keys
from stackyard.notify.render import template_problems
from stackyard.resources.email import EmailTemplateSpec
from stackyard.resources.notify import NotificationWorkflowSpec, WebhookSpec, generated_secret_name

from . import manifests
from .conditions import keep_last_good

SIGNING_SECRET_KEY = "secret"
WEBHOOK_LABEL = "stackyard.dev/webhook"
"""On the signing Secret made for one Webhook: its name."""


def new_signing_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class NotifyFresh:
    """Key material made at observation, for what render may find missing."""

    signing_secrets: Mapping[str, str]
    """A new signing secret per Webhook (by name) whose generated Secret was not found."""
    vapid: tuple[str, str] | None
    """(private PEM, public base64url), when the credentials in force hold no pair."""

    @classmethod
    def make(cls, webhooks_without_secret: Iterable[str], need_vapid: bool) -> NotifyFresh:
        return cls(
            {name: new_signing_secret() for name in webhooks_without_secret},
            new_vapid_keys() if need_vapid else None,
        )


def needs_generated_secret(body: Mapping[str, Any]) -> bool:
    return body.get("kind") == "Webhook" and not (body.get("spec") or {}).get("secretRef")


def generated_secrets(members: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Webhook name -> the Secret made for it, for every Webhook without spec.secretRef."""
    return {
        m["metadata"]["name"]: generated_secret_name(m["metadata"]["name"])
        for m in members
        if needs_generated_secret(m)
    }


def missing_generated_secrets(
    members: Sequence[Mapping[str, Any]], secrets_found: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """The Webhooks whose made Secret (or its key) is not there (the reconciler makes fresh
    secrets for them, render uses them only when none is in force)."""
    return [
        webhook
        for webhook, secret in generated_secrets(members).items()
        if SIGNING_SECRET_KEY not in secrets_found.get(secret, {})
    ]


def signing_secret_manifest(stack_body: dict[str, Any], webhook_body: Mapping[str, Any], value: str) -> dict[str, Any]:
    """The signing Secret of a Webhook without spec.secretRef, owned by the Webhook."""
    webhook = webhook_body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": generated_secret_name(webhook),
            "namespace": stack_body["metadata"]["namespace"],
            "labels": manifests.labels(stack_body["metadata"]["name"], "webhook") | {WEBHOOK_LABEL: webhook},
            "ownerReferences": [manifests.owner_reference(dict(webhook_body))],
        },
        "data": {SIGNING_SECRET_KEY: base64.b64encode(value.encode()).decode()},
    }


@dataclass(frozen=True)
class SigningSecrets:
    secrets: dict[str, dict[str, str]]
    """Data of the made Secrets as render must see them (found, or about to be made)."""
    objects: list[dict[str, Any]]
    """The made Secrets to create (only those missing)."""


def signing_secrets(
    stack_body: dict[str, Any],
    members: Sequence[Mapping[str, Any]],
    secrets_found: Mapping[str, Mapping[str, str]],
    in_force: Mapping[str, str],
    fresh: NotifyFresh | None,
) -> SigningSecrets:
    """For each Webhook without spec.secretRef whose Secret is missing: the signing secret
    in force (credentials, `in_force` keyed by credential key) or else a fresh one; nothing
    when neither is at hand (not observed: the Webhook says SecretNotFound until then)."""
    made: dict[str, dict[str, str]] = {}
    objects: list[dict[str, Any]] = []
    bodies = {m["metadata"]["name"]: m for m in members if m.get("kind") == "Webhook"}
    for webhook in missing_generated_secrets(members, secrets_found):
        name = generated_secret_name(webhook)
        value = in_force.get(credential_key("Webhook", webhook, "signingSecret"))
        if value is None and fresh is not None:
            value = fresh.signing_secrets.get(webhook)
        if value is None or not bodies[webhook]["metadata"].get("uid"):
            continue
        made[name] = {**secrets_found.get(name, {}), SIGNING_SECRET_KEY: value}
        objects.append(signing_secret_manifest(stack_body, bodies[webhook], value))
    return SigningSecrets(made, objects)


def vapid_credentials(in_force: Mapping[str, str], fresh: NotifyFresh | None) -> dict[str, str]:
    """The VAPID pair in force, else the fresh one; {} when neither (not observed)."""
    if NOTIFY_VAPID_PRIVATE_KEY in in_force and NOTIFY_VAPID_PUBLIC_KEY in in_force:
        return {k: in_force[k] for k in (NOTIFY_VAPID_PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY)}
    if fresh is not None and fresh.vapid is not None:
        private, public = fresh.vapid
        return {NOTIFY_VAPID_PRIVATE_KEY: private, NOTIFY_VAPID_PUBLIC_KEY: public}
    return {}


def needs_vapid(in_force: Mapping[str, str]) -> bool:
    return not (NOTIFY_VAPID_PRIVATE_KEY in in_force and NOTIFY_VAPID_PUBLIC_KEY in in_force)


# -- workflows -----------------------------------------------------------------------------


def reference_problem(
    spec: NotificationWorkflowSpec,
    stack: str,
    templates: Mapping[str, EmailTemplateSpec],
    webhooks: Mapping[str, WebhookSpec],
) -> tuple[str, str] | None:
    """(reason, message) when the workflow names what is not in force in its Stack, or a
    template string of it does not compile; None when it can run."""
    for step in spec.steps:
        if step.email is not None and step.email.template not in templates:
            return (
                "TemplateNotFound",
                f"step {step.name!r}: EmailTemplate {step.email.template} is not in force in Stack {stack}",
            )
        if step.webhook is not None and step.webhook.webhook not in webhooks:
            return (
                "WebhookNotFound",
                f"step {step.name!r}: Webhook {step.webhook.webhook} is not in force in Stack {stack}",
            )
    problems = template_problems(spec)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return "TemplateInvalid", problems[0] + more
    return None


@dataclass(frozen=True)
class WorkflowVerdict:
    reason: str
    message: str
    kept: bool
    """Whether the last good version stays in force."""


def settle_workflows(
    stack: str,
    candidates: Mapping[str, NotificationWorkflowSpec],
    previous: Mapping[str, NotificationWorkflowSpec],
    templates: Mapping[str, EmailTemplateSpec],
    webhooks: Mapping[str, WebhookSpec],
    created: Mapping[str, str],
) -> tuple[dict[str, NotificationWorkflowSpec], dict[str, WorkflowVerdict]]:
    """The workflows in force, and why the others are not.

    `candidates`: the workflows whose spec parses (by name); `previous`: the versions in the
    config in force; `created`: creationTimestamp by name (the older workflow keeps a
    trigger key that two claim; then the name decides)."""
    in_force, problems = keep_last_good(
        candidates, previous, lambda spec: reference_problem(spec, stack, templates, webhooks)
    )
    verdicts = {name: WorkflowVerdict(*problem, kept=kept) for name, (problem, kept) in problems.items()}
    holders: dict[str, str] = {}
    for name in sorted(in_force, key=lambda n: (created.get(n, ""), n)):
        key = in_force[name].trigger_key(name)
        if key in holders:
            del in_force[name]
            message = f"trigger key {key!r} is already NotificationWorkflow {holders[key]}'s"
            verdicts[name] = WorkflowVerdict("KeyConflict", message, kept=False)
        else:
            holders[key] = name
    return in_force, verdicts


def status_fields(kind: str, name: str, spec: Any) -> dict[str, Any]:
    """The status fields the operator owns besides conditions: a workflow's trigger key, the
    Secret holding a Webhook's signing secret (its name only)."""
    if kind == "NotificationWorkflow" and isinstance(spec, NotificationWorkflowSpec):
        return {"triggerKey": spec.trigger_key(name)}
    if kind == "Webhook" and isinstance(spec, WebhookSpec):
        return {"secretName": spec.secret_refs(name)["signingSecret"].name}
    return {}
