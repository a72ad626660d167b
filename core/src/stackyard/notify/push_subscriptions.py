"""Web push subscriptions, in MongoDB (`push_subscriptions`).

One document per browser subscription, keyed `psub_` + a hash of the endpoint (the endpoint
names one browser profile at one push service, so the same browser subscribing twice, or
after another user signed in on it, is one record: the last user to subscribe owns it):
`userId`, `endpoint`, `keys{p256dh, auth}` (base64url, as the browser gave them),
`expirationTime`, `userAgent`, `createdAt` (first subscribed, kept), `updatedAt`,
`lastSuccessAt`. A user keeps at most MAX_PER_USER subscriptions: the oldest go first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..db.indexes import Drift, IndexPolicy
from ..db.schema import PUSH_SUBSCRIPTIONS, ensure_capability_indexes
from ..problems import NotFound
from .problems import SubscriptionInvalid
from .push_contract import MAX_ENDPOINT, PushSubscriptionIn, PushSubscriptionView

__all__ = [
    "COLLECTION",
    "MAX_PER_USER",
    "PushSubscriptions",
    "StoredSubscription",
    "b64url_decode",
    "b64url_encode",
    "checked_keys",
    "subscription_id",
]

COLLECTION = PUSH_SUBSCRIPTIONS
MAX_PER_USER = 20
"""Browsers and devices one user receives pushes on; subscribing one more drops the oldest."""
MAX_USER_AGENT = 500
P256_POINT_BYTES = 65
AUTH_SECRET_BYTES = 16
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD = str.maketrans("-_", "+/")


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """base64url with or without padding (browsers give it without); ValueError otherwise."""
    bare = text.rstrip("=")
    if not _B64URL.fullmatch(bare):
        raise ValueError("not base64url")
    try:
        return base64.b64decode(bare.translate(_TO_STANDARD) + "=" * (-len(bare) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def subscription_id(endpoint: str) -> str:
    return "psub_" + hashlib.sha256(endpoint.encode()).hexdigest()[:32]


def checked_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise SubscriptionInvalid("the endpoint must be an https URL of a push service")
    if len(endpoint) > MAX_ENDPOINT or any(c.isspace() for c in endpoint):
        raise SubscriptionInvalid(f"the endpoint must be a URL of at most {MAX_ENDPOINT} characters")
    return endpoint


def checked_keys(p256dh: str, auth: str) -> tuple[bytes, bytes]:
    """The raw keys of a subscription: p256dh an uncompressed P-256 point on the curve (65
    bytes), auth a 16-byte secret; SubscriptionInvalid says which is wrong."""
    try:
        point = b64url_decode(p256dh)
    except ValueError:
        raise SubscriptionInvalid("keys.p256dh is not base64url") from None
    if len(point) != P256_POINT_BYTES or point[0] != 4:
        raise SubscriptionInvalid(
            f"keys.p256dh must be an uncompressed P-256 point ({P256_POINT_BYTES} bytes starting 0x04), "
            f"not {len(point)} bytes"
        )
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise SubscriptionInvalid("keys.p256dh is not a point on the P-256 curve") from None
    try:
        secret = b64url_decode(auth)
    except ValueError:
        raise SubscriptionInvalid("keys.auth is not base64url") from None
    if len(secret) != AUTH_SECRET_BYTES:
        raise SubscriptionInvalid(f"keys.auth must be {AUTH_SECRET_BYTES} bytes, not {len(secret)}")
    return point, secret


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class StoredSubscription:
    id: str
    user_id: str
    endpoint: str
    p256dh: bytes
    auth: bytes
    expiration_time: datetime | None
    user_agent: str | None
    created_at: datetime
    last_success_at: datetime | None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> StoredSubscription:
        keys = doc["keys"]
        created = _utc(doc["createdAt"])
        assert created is not None
        return cls(
            id=doc["_id"],
            user_id=doc["userId"],
            endpoint=doc["endpoint"],
            p256dh=b64url_decode(keys["p256dh"]),
            auth=b64url_decode(keys["auth"]),
            expiration_time=_utc(doc.get("expirationTime")),
            user_agent=doc.get("userAgent"),
            created_at=created,
            last_success_at=_utc(doc.get("lastSuccessAt")),
        )

    def expired(self, now: datetime) -> bool:
        return self.expiration_time is not None and self.expiration_time <= now

    def view(self) -> PushSubscriptionView:
        return PushSubscriptionView(
            id=self.id,
            endpoint=self.endpoint,
            expiration_time=self.expiration_time,
            user_agent=self.user_agent,
            created_at=self.created_at,
            last_success_at=self.last_success_at,
        )


class PushSubscriptions:
    def __init__(self, database: AsyncDatabase[Any]) -> None:
        self.collection: AsyncCollection[Any] = database[COLLECTION]

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> Drift:
        """The index of a user's subscriptions (stackyard.db.schema); idempotent."""
        return await ensure_capability_indexes(self.collection.database, [COLLECTION], policy)

    async def subscribe(
        self, user_id: str, subscription: PushSubscriptionIn, *, user_agent: str | None = None
    ) -> StoredSubscription:
        """Store the browser's subscription for this user (SubscriptionInvalid when it cannot
        be sent to). The same endpoint again updates the one record: its keys, its owner."""
        endpoint = checked_endpoint(subscription.endpoint)
        p256dh, auth = checked_keys(subscription.keys.p256dh, subscription.keys.auth)
        now = datetime.now(UTC)
        expiration = (
            datetime.fromtimestamp(subscription.expiration_time / 1000, UTC)
            if subscription.expiration_time is not None
            else None
        )
        if expiration is not None and expiration <= now:
            raise SubscriptionInvalid("the subscription has already expired (expirationTime is in the past)")
        sub_id = subscription_id(endpoint)
        fields = {
            "userId": user_id,
            "endpoint": endpoint,
            "keys": {"p256dh": b64url_encode(p256dh), "auth": b64url_encode(auth)},
            "expirationTime": expiration,
            "userAgent": user_agent[:MAX_USER_AGENT] if user_agent else None,
            "updatedAt": now,
        }
        update = {"$set": fields, "$setOnInsert": {"createdAt": now}}
        try:
            await self.collection.update_one({"_id": sub_id}, update, upsert=True)
        except DuplicateKeyError:  # two upserts of one endpoint at once: the other inserted it
            await self.collection.update_one({"_id": sub_id}, {"$set": fields})
        await self._keep_newest(user_id)
        doc = await self.collection.find_one({"_id": sub_id})
        if doc is None:  # removed between the write and the read (a 410 at that very moment)
            raise SubscriptionInvalid("the subscription was removed while it was stored; subscribe again")
        return StoredSubscription.of(doc)

    async def _keep_newest(self, user_id: str) -> None:
        ids = [
            d["_id"]
            async for d in self.collection.find({"userId": user_id}, {"_id": 1}).sort(
                [("updatedAt", DESCENDING), ("_id", ASCENDING)]
            )
        ]
        if len(ids) > MAX_PER_USER:
            await self.collection.delete_many({"_id": {"$in": ids[MAX_PER_USER:]}, "userId": user_id})

    async def for_user(self, user_id: str) -> list[StoredSubscription]:
        """The user's subscriptions, oldest first."""
        cursor = self.collection.find({"userId": user_id}).sort([("createdAt", ASCENDING), ("_id", ASCENDING)])
        return [StoredSubscription.of(doc) async for doc in cursor]

    async def get(self, subscription_id: str, user_id: str) -> StoredSubscription:
        """The user's subscription; NotFound also when it is another user's."""
        doc = await self.collection.find_one({"_id": subscription_id, "userId": user_id})
        if doc is None:
            raise NotFound(f"no push subscription {subscription_id} of yours")
        return StoredSubscription.of(doc)

    async def delete(self, subscription_id: str, user_id: str) -> None:
        """Unsubscribe; NotFound when the user has no such subscription."""
        result = await self.collection.delete_one({"_id": subscription_id, "userId": user_id})
        if result.deleted_count == 0:
            raise NotFound(f"no push subscription {subscription_id} of yours")

    async def remove(self, subscription: StoredSubscription) -> bool:
        """Drop a subscription the push service called gone (404/410) or that expired. Only
        that endpoint with those keys: a browser that subscribed afresh meanwhile stays."""
        result = await self.collection.delete_one(
            {"_id": subscription.id, "keys.auth": b64url_encode(subscription.auth)}
        )
        return result.deleted_count > 0

    async def mark_success(self, subscription_ids: list[str], at: datetime) -> None:
        if subscription_ids:
            await self.collection.update_many({"_id": {"$in": subscription_ids}}, {"$set": {"lastSuccessAt": at}})
