"""The wire models of /v1/webhooks: the Webhooks in force with their state, the delivery log
and its attempts. camelCase on the wire (the jobs contract's `_Wire` pattern)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "DELIVERY_STATUSES",
    "DeliveryAttempt",
    "DeliveryPage",
    "DeliveryStatus",
    "DeliverySummary",
    "LastDelivery",
    "WebhookDelivery",
    "WebhookList",
    "WebhookView",
]

DeliveryStatus = Literal["pending", "succeeded", "failed", "paused"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "succeeded", "failed", "paused")


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DeliveryAttempt(_Wire):
    at: datetime = Field(description="When the request was sent.")
    http_status: int | None = Field(default=None, description="The endpoint's status code; null when none came.")
    duration_ms: float = Field(description="From sending to the end of the answer (or the failure).")
    error: str | None = Field(default=None, description="Why the attempt failed; null when it succeeded.")
    response_excerpt: str | None = Field(default=None, description="The first 200 characters of the answer's body.")


class DeliverySummary(_Wire):
    id: str = Field(description="whd_…: the webhook-id header of every attempt, the receiver's deduplication key.")
    webhook: str = Field(description="The Webhook it goes to.")
    event_type: str = Field(description="user.created, email.delivered, …")
    status: DeliveryStatus = Field(
        description="pending (queued or retrying), succeeded, failed (given up: attempts spent, a 4xx answer, "
        "the endpoint disabled or gone) or paused (recorded while the Webhook was paused; never sent)."
    )
    attempt_count: int = Field(default=0, description="Attempts made.")
    last_error: str | None = Field(default=None, description="Why the latest attempt failed, or why it was given up.")
    created_at: datetime
    updated_at: datetime
    replay_of: str | None = Field(default=None, description="The delivery this one replays.")


class WebhookDelivery(DeliverySummary):
    """One delivery with its payload and attempts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "whd_01jb8x7k2m3n4p5q6r7s8t9v0w",
                    "webhook": "crm",
                    "eventType": "user.created",
                    "status": "succeeded",
                    "attemptCount": 1,
                    "createdAt": "2026-11-26T12:00:00Z",
                    "updatedAt": "2026-11-26T12:00:01Z",
                    "payload": {
                        "type": "user.created",
                        "timestamp": "2026-11-26T12:00:00.000Z",
                        "data": {"id": "usr_01jb8x7k2m3n4p5q6r7s8t9v0w", "email": "ana@example.com"},
                    },
                    "attempts": [
                        {"at": "2026-11-26T12:00:00.100Z", "httpStatus": 204, "durationMs": 41.5, "error": None}
                    ],
                }
            ]
        }
    )

    payload: dict[str, Any] = Field(description="The body sent: {type, timestamp, data}.")
    attempts: list[DeliveryAttempt] = Field(default_factory=list, description="Oldest first.")


class DeliveryPage(_Wire):
    items: list[DeliverySummary]
    next_cursor: str | None = Field(default=None, description="Pass as cursor for the next (older) page.")


class LastDelivery(_Wire):
    at: datetime = Field(description="When it was attempted.")
    event_type: str
    succeeded: bool
    http_status: int | None = None


class WebhookView(_Wire):
    name: str
    url: str
    events: list[str]
    description: str = ""
    paused: bool = Field(description="spec.paused: deliveries are recorded (status paused), not sent.")
    enabled: bool = Field(description="False once the endpoint failed for longer than disableAfter.")
    disabled_at: datetime | None = Field(default=None, description="When it was disabled.")
    disabled_reason: str | None = Field(default=None, description="Why it was disabled.")
    failing_since: datetime | None = Field(
        default=None, description="Since when every delivery has failed (null while the endpoint answers 2xx)."
    )
    last_delivery: LastDelivery | None = Field(default=None, description="The latest attempt.")


class WebhookList(_Wire):
    items: list[WebhookView]
