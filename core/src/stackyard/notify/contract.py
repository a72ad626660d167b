"""The wire contract of /v1/notify: triggers, runs and preferences, shared by the api's
router, the engine, the Python SDK and the CLI so that they cannot drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

Channel = Literal["email", "inApp", "push", "webhook"]
"""The channels preferences name (stackyard.resources.notify.Channel, repeated here so that the
SDK does not import the resource models)."""

MAX_RECIPIENTS = 10_000

RunStatus = Literal["queued", "running", "waiting", "completed", "failed", "cancelled", "digested", "throttled"]
"""queued: waits for a worker; running: a worker runs its steps; waiting: in a delay or a
digest window (no worker held); completed: every step ran or was skipped; failed: a step
failed for good, or the recipient could not be resolved; cancelled: POST .../cancel;
digested: its trigger joined another run's digest (`digestedInto`); throttled: over the
workflow's throttle limit for this recipient."""

RUN_STATUSES: tuple[str, ...] = RunStatus.__args__  # type: ignore[attr-defined]
FINISHED_RUN_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "digested", "throttled"})

StepStatus = Literal["pending", "running", "done", "skipped", "failed", "waiting"]

RecipientId = Annotated[str, StringConstraints(min_length=1, max_length=255)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Recipient(_Wire):
    """An inline recipient (a subscriber that is not, or not only, a user of the Stack)."""

    id: RecipientId = Field(description="Your id of the recipient: runs, preferences and the feed are keyed by it.")
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=500)
    locale: str | None = Field(default=None, max_length=35)
    phone: str | None = Field(default=None, max_length=40)
    data: dict[str, Any] = Field(default_factory=dict, description="Anything else, as `recipient.data` in templates.")


class TriggerRequest(_Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "workflow": "new-comment",
                    "recipients": ["usr_01jd3k5v7m2q8x9y0z1a2b3c4d", {"id": "ext-42", "email": "ana@example.com"}],
                    "data": {"postTitle": "Release notes", "commenter": "Bo"},
                    "actor": "usr_01jd3k5v7m2q8x9y0z1a2b3c4e",
                    "tenant": "acme",
                }
            ]
        }
    )

    workflow: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="The trigger key of a NotificationWorkflow (its spec.key, else its name)."
    )
    recipients: list[RecipientId | Recipient] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="User ids of the Stack's users, or inline recipients; each gets one run (duplicates once).",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The trigger's data (`data` in templates).")
    actor: RecipientId | Recipient | None = Field(default=None, description="Who caused it (`actor` in templates).")
    tenant: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None, description="Scopes feed messages and preferences to a tenant (`tenant` in templates)."
    )
    idempotency_key: IdempotencyKey | None = Field(
        default=None,
        description="The same key within 24 hours answers the first trigger and runs nothing more (as the "
        "Idempotency-Key header); the same key with a different body is a 409.",
    )


class TriggerAccepted(_Wire):
    id: str = Field(description="The trigger's id (ntr_…): list its runs with GET /v1/notify/runs?trigger=<id>.")
    workflow: str
    recipients: int = Field(description="How many runs it makes (distinct recipients).")
    status: Literal["accepted"] = "accepted"


class StepOutcome(_Wire):
    name: str
    kind: str = Field(description="email, in_app, push, webhook, delay, digest or throttle.")
    status: StepStatus = "pending"
    reason: str | None = Field(default=None, description="Why it was skipped or failed.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: dict[str, Any] = Field(
        default_factory=dict, description="What it did: emailId, messageId, deliveryIds, sent, items, …"
    )


class RunView(_Wire):
    id: str = Field(description="The run's id (nrun_…).")
    trigger_id: str
    workflow: str
    recipient: str = Field(description="The recipient's id.")
    status: RunStatus
    steps: list[StepOutcome]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    digested_into: str | None = Field(default=None, description="The run whose digest took this trigger.")
    reason: str | None = Field(default=None, description="Why it failed or was cancelled.")


class RunPage(_Wire):
    items: list[RunView]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")


class RunFilter(_Wire):
    workflow: str | None = None
    recipient: str | None = None
    trigger: str | None = None
    status: list[RunStatus] | None = None


class ChannelChoices(_Wire):
    """On or off per channel; a channel left out (null) is decided by the next level."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    email: bool | None = None
    in_app: bool | None = None
    push: bool | None = None
    webhook: bool | None = None

    def get(self, channel: Channel) -> bool | None:
        return {"email": self.email, "inApp": self.in_app, "push": self.push, "webhook": self.webhook}[channel]


class PreferenceSet(_Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    channels: ChannelChoices = Field(default_factory=ChannelChoices)


class Preferences(_Wire):
    """A user's choices. For a channel step of a workflow the first that says on or off wins:
    the workflow's entry, the workflow's category's entry, the channels, the workflow's
    default (spec.preferences.channels); else on. A required workflow ignores them all."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channels": {"push": False},
                    "workflows": {"new-comment": {"channels": {"email": False}}},
                    "categories": {"marketing": {"channels": {"email": False, "inApp": True}}},
                }
            ]
        },
    )

    channels: ChannelChoices = Field(default_factory=ChannelChoices)
    workflows: dict[str, PreferenceSet] = Field(default_factory=dict, max_length=500, description="By trigger key.")
    categories: dict[str, PreferenceSet] = Field(default_factory=dict, max_length=100, description="By category.")


class PreferencesUpdate(Preferences):
    """Merged into the stored preferences: a channel given replaces that channel (null clears
    it), a workflow or category given merges likewise; what is not given stays."""


__all__ = [
    "FINISHED_RUN_STATUSES",
    "MAX_RECIPIENTS",
    "RUN_STATUSES",
    "ChannelChoices",
    "PreferenceSet",
    "Preferences",
    "PreferencesUpdate",
    "Recipient",
    "RunFilter",
    "RunPage",
    "RunStatus",
    "RunView",
    "StepOutcome",
    "StepStatus",
    "TriggerAccepted",
    "TriggerRequest",
]
