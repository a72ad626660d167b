"""The wire contract of /v1/push (web push): the subscription a browser gives, what the api
answers about it, and the payload a service worker receives. Shared by the api's router, the
Python SDK and the CLI so that they cannot drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

Urgency = Literal["very-low", "low", "normal", "high"]
"""RFC 8030 §5.3: how soon the push service should wake the device."""

MAX_ENDPOINT = 2000
KeyText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class SubscriptionKeys(_Wire):
    p256dh: KeyText = Field(description="The browser's P-256 public key: the uncompressed point (65 bytes), base64url.")
    auth: KeyText = Field(description="The 16-byte authentication secret, base64url.")


class PushSubscriptionIn(_Wire):
    """A `PushSubscription` as the browser's `subscription.toJSON()` gives it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "endpoint": "https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bH...",
                    "expirationTime": None,
                    "keys": {
                        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1Xbjha"
                        "zAkj7I99e8QcYP7DkM",
                        "auth": "tBHItJI5svbpez7KI4CCXg",
                    },
                }
            ]
        }
    )

    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENDPOINT)] = Field(
        description="The push service's URL for this browser (https)."
    )
    expiration_time: int | None = Field(
        default=None, ge=0, description="When the subscription expires (ms since the epoch), when the browser says."
    )
    keys: SubscriptionKeys


class PushSubscriptionView(_Wire):
    """A stored subscription (its keys are not given back)."""

    id: str = Field(description="psub_ and a hash of the endpoint: one browser subscribing twice is one record.")
    endpoint: str
    expiration_time: datetime | None = Field(default=None, description="When the browser said it expires.")
    user_agent: str | None = Field(default=None, description="The User-Agent that subscribed.")
    created_at: datetime
    last_success_at: datetime | None = Field(default=None, description="The last push the push service took.")


class PushSubscriptionList(_Wire):
    items: list[PushSubscriptionView]


class VapidPublicKey(_Wire):
    public_key: str = Field(
        description="The Stack's VAPID public key (uncompressed P-256 point, base64url): the "
        "`applicationServerKey` of `PushManager.subscribe`."
    )


class PushMessage(_Wire):
    """What a service worker's `push` event gets as `event.data.json()` (fields left out when
    empty)."""

    title: str
    body: str = ""
    url: str | None = Field(default=None, description="Where a click on the notification leads.")
    icon: str | None = None
    data: dict[str, Any] = Field(default_factory=dict, description="Extra fields for the service worker.")

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=False)
