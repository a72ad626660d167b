"""NotificationWorkflow: one notification declared once and delivered on every channel (email,
in-app feed, web push, webhook) with delays, digests, throttles and conditions, respecting
each user's preferences; Webhook: an outbound endpoint subscribed to platform events.

These models only declare and validate: `stackyard.notify` runs the workflows and delivers
the webhooks.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, StringConstraints, field_validator, model_validator

from .base import (
    AGE_COLUMN,
    PAUSED_REASON,
    READY_COLUMN,
    REASON_COLUMN,
    SECRET_REASONS,
    CamelModel,
    ConditionInfo,
    CustomResource,
    Duration,
    KindInfo,
    ObjectName,
    PrinterColumn,
    ResourceStatus,
    SecretKeyRef,
    StackRef,
    duration_seconds,
    member_ready,
)

ANY_JSON: dict[str, JsonValue] = {"x-kubernetes-preserve-unknown-fields": True}
ANY_JSON_OBJECT: dict[str, JsonValue] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
HEADER_NAME = r"^[A-Za-z0-9-]{1,100}$"
STEP_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
StepName = Annotated[str, StringConstraints(pattern=STEP_NAME, max_length=63)]
TRIGGER_KEY = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"
TriggerKey = Annotated[str, StringConstraints(pattern=TRIGGER_KEY, max_length=128)]
TemplateText = Annotated[str, StringConstraints(max_length=16_384)]
"""A Jinja2 string rendered per recipient with `data`, `recipient`, `actor`, `tenant`,
`workflow` and, after a digest step, `digest` ({total, items})."""
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)]

Channel = Literal["email", "inApp", "push", "webhook"]
CHANNELS: tuple[Channel, ...] = ("email", "inApp", "push", "webhook")
STEP_KINDS = ("email", "in_app", "push", "webhook", "delay", "digest", "throttle")
"""The one-of fields of a step (python names); the first four are channel steps."""

# An event type as platform events name them (user.created, email.delivered), or a pattern
# of them: `user.*` (every user event), `*` (every event).
EVENT_PATTERN = r"^(\*|[a-z]+(\.[a-z_]+)*(\.\*)?)$"
EventPattern = Annotated[str, StringConstraints(pattern=EVENT_PATTERN, max_length=100)]
PLATFORM_EVENTS: tuple[str, ...] = (
    "user.created",
    "user.updated",
    "user.deleted",
    "email.sent",
    "email.delivered",
    "email.bounced",
    "email.complained",
    "email.failed",
    "job.completed",
    "job.dead",
    "notification.completed",
    "notification.failed",
    "notification.read",
)
"""Every event type the platform emits (docs/notify-webhooks.md describes each payload)."""


def event_matches(pattern: str, event_type: str) -> bool:
    """`*` matches every event, `user.*` every event under user., else the exact type."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


# -- steps ---------------------------------------------------------------------------------------


class EmailStep(CamelModel):
    template: ObjectName = Field(description="The EmailTemplate sent (of the same Stack).")
    variables: dict[str, TemplateText] = Field(
        default_factory=dict,
        max_length=100,
        description="Template variables, each a Jinja2 string rendered per recipient; with none, the trigger's "
        "data (and `digest` after a digest step) are the variables.",
    )
    from_: Annotated[str, StringConstraints(max_length=320)] | None = Field(
        default=None, alias="from", description="Sender; the EmailTemplate's or the Stack's default when absent."
    )


class InAppStep(CamelModel):
    title: TemplateText = Field(description="Title of the feed message (Jinja2).")
    body: TemplateText = Field(default="", description="Body of the feed message (Jinja2; plain text or markdown).")
    action_url: TemplateText | None = Field(default=None, description="Where a click on the message leads (Jinja2).")
    data: dict[str, Any] | None = Field(
        default=None,
        description="Extra fields handed to the feed client as they are.",
        json_schema_extra=ANY_JSON_OBJECT,
    )


class PushStep(CamelModel):
    title: TemplateText = Field(description="Notification title (Jinja2).")
    body: TemplateText = Field(default="", description="Notification body (Jinja2).")
    url: TemplateText | None = Field(default=None, description="Where a click leads (Jinja2).")
    icon: HttpsUrl | None = Field(default=None, description="Icon URL.")
    ttl: Duration = Field(default="24h", description="How long the push service keeps it for an offline device.")
    urgency: Literal["very-low", "low", "normal", "high"] = Field(default="normal", description="RFC 8030 Urgency.")


class WebhookStep(CamelModel):
    webhook: ObjectName = Field(
        description="The Webhook (of the same Stack) the step posts to, signed and retried as every delivery; "
        "the event type is notification.<workflow key>."
    )


class DelayStep(CamelModel):
    duration: Duration = Field(description="How long the run waits (durably: no worker is held).")


class DigestStep(CamelModel):
    window: Duration = Field(description="Triggers of one recipient within this window become one run.")
    key: TemplateText | None = Field(
        default=None,
        description="Jinja2 string: triggers are digested together only when it renders the same (e.g. a post "
        "id); one digest per recipient when absent.",
    )
    max_items: int = Field(default=100, ge=1, le=1000, description="Items kept in `digest.items` (total counts all).")


class ThrottleStep(CamelModel):
    limit: int = Field(ge=1, le=10_000, description="Runs of this workflow that pass per recipient per window.")
    window: Duration = Field(description="The window.")
    key: TemplateText | None = Field(default=None, description="Jinja2 string: throttle per key as well.")


ConditionOperator = Literal[
    "equal", "notEqual", "greaterThan", "lessThan", "contains", "notContains", "exists", "notExists", "in"
]
MessageState = Literal["seen", "unseen", "read", "unread", "archived"]


class Condition(CamelModel):
    """One test: a variable compared with a value, or the state of a message an earlier
    in-app step of the same run sent."""

    variable: (
        Annotated[
            str, StringConstraints(pattern=r"^(data|recipient|actor|tenant|digest)(\.[A-Za-z0-9_-]+)*$", max_length=200)
        ]
        | None
    ) = Field(default=None, description="A dotted path: data.x, recipient.email, actor.id, tenant, digest.total.")
    operator: ConditionOperator | None = Field(default=None, description="How the variable is compared.")
    value: JsonValue = Field(
        default=None, description="What it is compared with (a list for `in`).", json_schema_extra=ANY_JSON
    )
    step: StepName | None = Field(default=None, description="An earlier inApp step of this workflow.")
    message: MessageState | None = Field(default=None, description="The state its message must be in.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.variable) && has(self.operator) && !has(self.step) && !has(self.message))"
                    " || (has(self.step) && has(self.message) && !has(self.variable) && !has(self.operator))",
                    "message": "a condition is either variable with operator (and value), or step with message",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        variable = self.variable is not None and self.operator is not None
        message = self.step is not None and self.message is not None
        stray = (self.variable is not None or self.operator is not None) and (
            self.step is not None or self.message is not None
        )
        if variable == message or stray:
            raise ValueError("a condition is either variable with operator (and value), or step with message")
        return self


class Conditions(CamelModel):
    mode: Literal["all", "any"] = Field(default="all", description="Whether all or any of the rules must hold.")
    rules: list[Condition] = Field(min_length=1, max_length=20, description="The tests.")


def _one_step_rule() -> str:
    fields = ("email", "inApp", "push", "webhook", "delay", "digest", "throttle")
    return " + ".join(f"(has(self.{f}) ? 1 : 0)" for f in fields) + " == 1"


class WorkflowStep(CamelModel):
    name: StepName = Field(description="Unique in the workflow; names the step in runs and conditions.")
    email: EmailStep | None = None
    in_app: InAppStep | None = None
    push: PushStep | None = None
    webhook: WebhookStep | None = None
    delay: DelayStep | None = None
    digest: DigestStep | None = None
    throttle: ThrottleStep | None = None
    conditions: Conditions | None = Field(default=None, description="The step runs only when they hold.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": _one_step_rule(),
                    "message": "a step is exactly one of email, inApp, push, webhook, delay, digest, throttle",
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _one_kind(self) -> WorkflowStep:
        if sum(getattr(self, kind) is not None for kind in STEP_KINDS) != 1:
            raise ValueError("a step is exactly one of email, inApp, push, webhook, delay, digest, throttle")
        return self

    @property
    def kind(self) -> str:
        """email, in_app, push, webhook, delay, digest or throttle."""
        return next(kind for kind in STEP_KINDS if getattr(self, kind) is not None)

    @property
    def channel(self) -> Channel | None:
        """The preference channel of a channel step (None for delay, digest, throttle)."""
        return {"email": "email", "in_app": "inApp", "push": "push", "webhook": "webhook"}.get(self.kind)  # type: ignore[return-value]


class ChannelSwitches(CamelModel):
    """On or off per channel; a channel left out is decided elsewhere (see `channel_setting`)."""

    email: bool | None = None
    in_app: bool | None = None
    push: bool | None = None
    webhook: bool | None = None

    def get(self, channel: Channel) -> bool | None:
        return {"email": self.email, "inApp": self.in_app, "push": self.push, "webhook": self.webhook}[channel]


class WorkflowPreferences(CamelModel):
    channels: ChannelSwitches = Field(
        default_factory=ChannelSwitches,
        description="Default opt-in per channel (email, inApp, push, webhook) when a user has not chosen; "
        "a channel not named is on.",
    )
    required: bool = Field(
        default=False, description="Users cannot opt out (security and billing notices): preferences are ignored."
    )


class NotificationWorkflowSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack that runs this workflow.")
    key: TriggerKey | None = Field(
        default=None, description="The key POST /v1/notify triggers it by; the resource's name when absent."
    )
    description: Annotated[str, StringConstraints(max_length=1000)] = Field(default="", description="What it is for.")
    category: Annotated[str, StringConstraints(pattern=STEP_NAME, max_length=63)] | None = Field(
        default=None, description="Groups workflows for users' preferences (e.g. marketing, comments)."
    )
    preferences: WorkflowPreferences = Field(default_factory=WorkflowPreferences, description="Defaults.")
    steps: list[WorkflowStep] = Field(min_length=1, max_length=30, description="Run in order for each recipient.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.steps.all(a, self.steps.exists_one(b, b.name == a.name))",
                    "message": "step names must be unique",
                }
            ]
        }
    }

    @field_validator("steps")
    @classmethod
    def _unique_names(cls, steps: list[WorkflowStep]) -> list[WorkflowStep]:
        seen: set[str] = set()
        for step in steps:
            if step.name in seen:
                raise ValueError(f"step names must be unique: {step.name!r} is used twice")
            seen.add(step.name)
        return steps

    @model_validator(mode="after")
    def _references(self) -> NotificationWorkflowSpec:
        for problem in workflow_problems(self):
            raise ValueError(problem)
        return self

    def trigger_key(self, name: str) -> str:
        return self.key or name


def workflow_problems(spec: NotificationWorkflowSpec) -> list[str]:
    """What is wrong with a workflow that its schema cannot say: a condition on a step that is
    not an earlier inApp step; more than one digest."""
    problems: list[str] = []
    earlier_in_app: set[str] = set()
    for step in spec.steps:
        for rule in step.conditions.rules if step.conditions else []:
            if rule.step is not None and rule.step not in earlier_in_app:
                problems.append(f"step {step.name!r}: condition on {rule.step!r}, which is not an earlier inApp step")
        if step.in_app is not None:
            earlier_in_app.add(step.name)
    if sum(step.digest is not None for step in spec.steps) > 1:
        problems.append("a workflow has at most one digest step")
    return problems


# -- Webhook ---------------------------------------------------------------------------------------


class WebhookSpec(CamelModel):
    stack_ref: StackRef = Field(description="The Stack whose events are sent.")
    url: HttpsUrl = Field(description="Where events are POSTed.")
    events: list[EventPattern] = Field(
        min_length=1,
        max_length=100,
        description="Event types or patterns: user.created, email.*, * (every event). A NotificationWorkflow's "
        "webhook step posts to the endpoint whatever this says.",
    )
    description: Annotated[str, StringConstraints(max_length=1000)] = Field(default="", description="What it is for.")
    secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="The signing secret (whsec_ + base64 of 24 to 64 bytes); when absent the operator makes one in "
        "the Secret <name>-webhook-signing (key `secret`) and keeps it.",
    )
    headers: dict[str, Annotated[str, StringConstraints(max_length=1000)]] = Field(
        default_factory=dict, max_length=20, description="Extra request headers (not webhook-*)."
    )
    timeout: Duration = Field(default="15s", description="How long one attempt waits for an answer.")
    max_attempts: int = Field(default=8, ge=1, le=30, description="Attempts of a delivery before it is given up.")
    disable_after: Duration = Field(
        default="120h",
        description="An endpoint whose deliveries have all failed for this long is disabled (status Enabled=False) "
        "until its spec changes or POST /v1/webhooks/<name>/enable.",
    )
    paused: bool = Field(default=False, description="Deliveries are recorded but not sent until unpaused.")

    model_config = CamelModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.timeout) || duration(self.timeout) <= duration('60s')",
                    "message": "timeout must be at most 60s",
                },
                {
                    "rule": f"!has(self.headers) || self.headers.all(k, k.matches('{HEADER_NAME}'))",
                    "message": "header names are 1-100 of A-Z a-z 0-9 -",
                },
                {
                    "rule": "!has(self.headers) || self.headers.all(k, !k.lowerAscii().startsWith('webhook-'))",
                    "message": "headers may not set webhook-id, webhook-timestamp or webhook-signature",
                },
            ]
        }
    }

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSpec:
        if duration_seconds(self.timeout) > 60:
            raise ValueError("timeout must be at most 60s")
        if not all(re.fullmatch(HEADER_NAME, key) for key in self.headers):
            raise ValueError("header names are 1-100 of A-Z a-z 0-9 -")
        if any(key.lower().startswith("webhook-") for key in self.headers):
            raise ValueError("headers may not set webhook-id, webhook-timestamp or webhook-signature")
        return self

    def subscribes_to(self, event_type: str) -> bool:
        return any(event_matches(pattern, event_type) for pattern in self.events)

    def secret_refs(self, name: str) -> dict[str, SecretKeyRef]:
        """The signing secret by its name in the credentials Secret
        (credential_key("Webhook", name, "signingSecret"))."""
        return {"signingSecret": self.secret_ref or SecretKeyRef(name=generated_secret_name(name), key="secret")}


def generated_secret_name(webhook: str) -> str:
    return f"{webhook}-webhook-signing"[:253]


# -- status ----------------------------------------------------------------------------------------


class LastDeliveryStatus(CamelModel):
    at: str = Field(description="When it was attempted.", json_schema_extra={"format": "date-time"})
    event_type: str = Field(description="The event delivered.")
    succeeded: bool = Field(description="Whether the endpoint answered 2xx.")
    http_status: int | None = Field(default=None, description="The endpoint's status code.")


class WebhookStatus(ResourceStatus):
    """Ready from the operator; Enabled, failingSince and lastDelivery from the worker."""

    failing_since: str | None = Field(
        default=None,
        description="Since when every delivery has failed (null while the endpoint answers).",
        json_schema_extra={"format": "date-time"},
    )
    last_delivery: LastDeliveryStatus | None = Field(default=None, description="The latest attempt.")
    secret_name: str | None = Field(default=None, description="The Secret holding the signing secret.")


class NotificationWorkflowStatus(ResourceStatus):
    trigger_key: str | None = Field(default=None, description="The key POST /v1/notify triggers it by.")


class NotificationWorkflow(CustomResource):
    info = KindInfo(
        kind="NotificationWorkflow",
        plural="notificationworkflows",
        short_names=["synotify", "syworkflow"],
        description="A notification across email, in-app feed, web push and webhooks: steps, delays, digests, "
        "throttles, conditions and user preferences.",
        columns=[
            PrinterColumn("Key", ".status.triggerKey"),
            PrinterColumn("Steps", ".spec.steps[*].name", priority=1),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[
            member_ready(
                TemplateNotFound="False: an email step names an EmailTemplate not in force in the Stack.",
                WebhookNotFound="False: a webhook step names a Webhook not in force in the Stack.",
                TemplateInvalid="False: a template string of a step does not compile.",
                KeyConflict="False: an older NotificationWorkflow (then the name decides) has the same trigger key.",
            )
        ],
    )
    kind: Literal["NotificationWorkflow"] = "NotificationWorkflow"
    spec: NotificationWorkflowSpec
    status: NotificationWorkflowStatus = Field(default_factory=NotificationWorkflowStatus)


class Webhook(CustomResource):
    info = KindInfo(
        kind="Webhook",
        plural="webhooks",
        short_names=["sywebhook"],
        description="An outbound endpoint for platform events, signed per Standard Webhooks, retried, disabled "
        "when failing too long.",
        columns=[
            PrinterColumn("URL", ".spec.url"),
            PrinterColumn("Enabled", '.status.conditions[?(@.type=="Enabled")].status'),
            READY_COLUMN,
            REASON_COLUMN,
            AGE_COLUMN,
        ],
        conditions=[
            member_ready(**SECRET_REASONS, **PAUSED_REASON),
            ConditionInfo(
                "Enabled",
                "Deliveries are sent to spec.url.",
                {
                    "Enabled": "True: deliveries go to spec.url.",
                    "Paused": "False: spec.paused: deliveries are recorded, not sent.",
                    "Disabled": "False: every delivery failed for spec.disableAfter; enable it with POST "
                    "/v1/webhooks/<name>/enable or a change of the Webhook.",
                },
                set_by="worker",
            ),
        ],
    )
    kind: Literal["Webhook"] = "Webhook"
    spec: WebhookSpec
    status: WebhookStatus = Field(default_factory=WebhookStatus)
