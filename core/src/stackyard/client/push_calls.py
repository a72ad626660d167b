"""What the web-push calls (/v1/push) send, shared by `push_async` and `push_sync`: the
Stack's VAPID public key (no credentials), and the push subscriptions of the client's user
(its access token), which a browser's PushManager.subscribe made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackyard.notify.push_contract import (
    PushSubscriptionIn,
    PushSubscriptionList,
    PushSubscriptionView,
    VapidPublicKey,
)

from .calls import Call, NoContent, _segment

PUSH = "/v1/push"

SubscriptionLike = PushSubscriptionIn | Mapping[str, Any]
"""A PushSubscriptionIn, or the browser's PushSubscription.toJSON() as a dict."""


def vapid_public_key() -> Call[VapidPublicKey]:
    return Call("GET", f"{PUSH}/vapid-public-key", VapidPublicKey, repeatable=True)


def subscribe(subscription: SubscriptionLike) -> Call[PushSubscriptionView]:
    """POST /v1/push/subscriptions: the same endpoint again updates its one record, so it is
    repeatable. ValidationError before sending a subscription the contract refuses."""
    checked = (
        subscription
        if isinstance(subscription, PushSubscriptionIn)
        else PushSubscriptionIn.model_validate(dict(subscription))
    )
    body = checked.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Call("POST", f"{PUSH}/subscriptions", PushSubscriptionView, json=body, repeatable=True)


def list_subscriptions() -> Call[PushSubscriptionList]:
    return Call("GET", f"{PUSH}/subscriptions", PushSubscriptionList, repeatable=True)


def unsubscribe(subscription_id: str) -> Call[NoContent]:
    return Call("DELETE", f"{PUSH}/subscriptions/{_segment(subscription_id)}", NoContent, repeatable=True)
