"""`AsyncStackyard.push`: web push for the client's user (its access token) — the Stack's
VAPID public key, and the user's browser subscriptions. What each call sends is in
`push_calls`."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from stackyard.notify.push_contract import PushSubscriptionView

from . import push_calls
from .push_calls import SubscriptionLike

if TYPE_CHECKING:
    from .async_client import AsyncStackyard


class AsyncPush:
    """A browser subscribes (PushManager.subscribe with the VAPID public key) and its page
    stores the subscription; NotificationWorkflows' push steps then send to it."""

    def __init__(self, client: AsyncStackyard) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "AsyncPush()"

    async def vapid_public_key(self) -> str:
        """The applicationServerKey for PushManager.subscribe (base64url); no credentials
        needed. Unavailable until the operator has made the Stack's VAPID key pair."""
        return (await self._client.send(push_calls.vapid_public_key())).public_key

    async def subscribe(self, subscription: SubscriptionLike) -> PushSubscriptionView:
        """Store a browser's PushSubscription (its toJSON(): endpoint, expirationTime, keys)
        for the client's user; the same endpoint again updates its one record."""
        return await self._client.send(push_calls.subscribe(subscription))

    async def list(self) -> builtins.list[PushSubscriptionView]:
        """The user's subscriptions, one per browser."""
        return (await self._client.send(push_calls.list_subscriptions())).items

    async def unsubscribe(self, subscription_id: str) -> None:
        """Forget one of the user's subscriptions (NotFound for another user's)."""
        await self._client.send(push_calls.unsubscribe(subscription_id))
