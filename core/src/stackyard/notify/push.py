"""Web push: a message to every browser a user subscribed, encrypted and authorised as the
push services (Firefox's autopush, Chrome's FCM, Apple's, Microsoft's) require.

- The payload (a PushMessage as JSON) is encrypted per RFC 8291 with the aes128gcm content
  coding of RFC 8188, by `http_ece`: a fresh P-256 key pair and salt per message, ECDH with
  the browser's p256dh key, mixed with its 16-byte auth secret.
- The request is authorised per RFC 8292 (VAPID): `Authorization: vapid t=<JWT>, k=<public
  key>`, the JWT signed ES256 (PyJWT) with the Stack's VAPID private key, `aud` the endpoint's
  origin, `exp` 12 h ahead (at most 24 h is allowed), `sub` a contact (mailto: or https:).
  One token per origin is kept until an hour before it expires.
- Headers TTL, Urgency (RFC 8030), Content-Encoding: aes128gcm, and Topic when given.
- Answers: 201/202 sent (the subscription's lastSuccessAt is set); 404/410 the subscription
  is gone and is removed; 413 too large, 429, 5xx, other answers and network errors failed
  (`retryable` counts those a later retry may get through: 429, 5xx, network). A subscription
  past its expirationTime is removed without a request.

The VAPID key pair lives in the Stack's credentials Secret (NOTIFY_VAPID_PRIVATE_KEY, a PEM,
and NOTIFY_VAPID_PUBLIC_KEY, the uncompressed point base64url); the operator makes it once
with `new_vapid_keys()`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import http_ece
import httpx
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymongo.asynchronous.database import AsyncDatabase

from ..config.runtime import NOTIFY_VAPID_PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY, RuntimeConfig
from .problems import PushNotConfigured
from .push_contract import PushMessage, Urgency
from .push_subscriptions import PushSubscriptions, StoredSubscription, b64url_decode, b64url_encode

__all__ = [
    "MAX_PLAINTEXT",
    "PushMessage",
    "PushOutcome",
    "PushSender",
    "VapidKeys",
    "encrypt_payload",
    "new_vapid_keys",
    "payload_bytes",
    "push_topic",
    "vapid_contact",
]

log = logging.getLogger(__name__)

RECORD_SIZE = 4096
"""RFC 8291 §4: push services take at least 4096 bytes of body; one aes128gcm record."""
HEADER_BYTES = 16 + 4 + 1 + 65
"""The aes128gcm header of a push message: salt, record size, key id length, sender key."""
MAX_PLAINTEXT = RECORD_SIZE - HEADER_BYTES - 16 - 1
"""3993: what fits in one record with its 16-byte tag and the padding delimiter."""
TOKEN_LIFETIME = 12 * 3600
TOKEN_RENEW_BEFORE = 3600
DEFAULT_CONTACT = "mailto:webpush@stackyard.dev"
DEFAULT_TTL = 24 * 3600
MAX_TTL = 28 * 24 * 3600
"""Push services keep a message four weeks at most (FCM's limit); a longer TTL is cut."""

Result = Literal["sent", "removed", "failed", "retry"]


@dataclass(frozen=True)
class PushOutcome:
    """What one send to a user came to, per subscription: `sent` (the push service took it),
    `removed` (gone: 404/410, or expired), `failed` (everything else); `retryable` of the
    failed may go through later (429, 5xx, network errors), so a step may retry."""

    sent: int = 0
    removed: int = 0
    failed: int = 0
    retryable: int = 0


def new_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: (private key PEM (PKCS#8, P-256), public key as the browsers'
    applicationServerKey: the uncompressed point, base64url without padding)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, b64url_encode(_point(key.public_key()))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def vapid_contact(config: RuntimeConfig) -> str:
    """The `sub` of the VAPID JWT: a mailto: of the Stack's spec.auth.emailFrom, else its
    appUrl (https), else a placeholder the push services accept."""
    auth = config.spec.auth
    if auth.email_from:
        address = auth.email_from.rpartition("<")[2].rstrip(">").strip()
        if "@" in address:
            return f"mailto:{address}"
    if auth.app_url and auth.app_url.startswith("https://"):
        return auth.app_url
    return DEFAULT_CONTACT


@dataclass(frozen=True)
class VapidKeys:
    private_key: ec.EllipticCurvePrivateKey
    public_key: str
    """base64url uncompressed point: the `k=` of the Authorization header."""

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, str]) -> VapidKeys:
        """The Stack's key pair; PushNotConfigured when the credentials hold none (or a broken one)."""
        pem, public = credentials.get(NOTIFY_VAPID_PRIVATE_KEY), credentials.get(NOTIFY_VAPID_PUBLIC_KEY)
        if not pem or not public:
            raise PushNotConfigured(
                "the Stack's credentials hold no VAPID key pair (the operator makes it with the Stack)"
            )
        return _vapid_keys(pem, public)


_KEYS: dict[tuple[str, str], VapidKeys] = {}


def _vapid_keys(pem: str, public: str) -> VapidKeys:
    found = _KEYS.get((pem, public))
    if found is not None:
        return found
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise PushNotConfigured("the Stack's VAPID private key is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PushNotConfigured("the Stack's VAPID private key is not a P-256 key")
    try:
        matches = b64url_decode(public) == _point(key.public_key())
    except ValueError:
        matches = False
    if not matches:
        raise PushNotConfigured("the Stack's VAPID public key does not belong to its private key")
    if len(_KEYS) > 16:
        _KEYS.clear()
    found = _KEYS[(pem, public)] = VapidKeys(key, public)
    return found


class VapidSigner:
    """`Authorization: vapid t=..., k=...` for an endpoint, one JWT per origin reused until
    an hour before it expires."""

    def __init__(self, keys: VapidKeys, contact: str, clock: Callable[[], float] = time.time) -> None:
        self.keys, self.contact, self.clock = keys, contact, clock
        self._tokens: dict[str, tuple[str, float]] = {}

    def authorization(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        now = self.clock()
        token, expires = self._tokens.get(audience, ("", 0.0))
        if expires - now < TOKEN_RENEW_BEFORE:
            expires = int(now) + TOKEN_LIFETIME
            claims = {"aud": audience, "exp": expires, "sub": self.contact}
            token = jwt.encode(claims, self.keys.private_key, algorithm="ES256", headers={"typ": "JWT"})
            self._tokens[audience] = (token, expires)
        return f"vapid t={token}, k={self.keys.public_key}"


def payload_bytes(message: PushMessage) -> bytes:
    """The message as JSON, its body shortened (with an ellipsis) when the whole would not
    fit in one push record; ValueError when even an empty body would not."""
    fields = message.payload()
    raw = orjson.dumps(fields)
    if len(raw) <= MAX_PLAINTEXT:
        return raw
    body: str = fields.get("body", "")
    over = len(raw) - MAX_PLAINTEXT
    while body:
        body = body[: max(0, len(body) - max(over, 1))].rstrip()
        raw = orjson.dumps(fields | {"body": body + "…" if body else ""})
        over = len(raw) - MAX_PLAINTEXT
        if over <= 0:
            return raw
    raise ValueError(f"the push message is larger than {MAX_PLAINTEXT} bytes even without its body")


def encrypt_payload(
    plaintext: bytes,
    p256dh: bytes,
    auth: bytes,
    *,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """RFC 8291: the aes128gcm body (RFC 8188 header: salt, rs 4096, the sender's public key
    as key id; one record) for the browser's p256dh key and auth secret. A fresh key pair
    and salt per message unless given (tests give them for the RFC's example)."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"a push payload is at most {MAX_PLAINTEXT} bytes, not {len(plaintext)}")
    key = sender_key or ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        plaintext,
        salt=salt or os.urandom(16),
        private_key=key,
        dh=p256dh,
        auth_secret=auth,
        keyid=None,  # aes128gcm with a private key: the key id is its public key
        rs=RECORD_SIZE,
        version="aes128gcm",
    )
    return body


_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


def push_topic(key: str) -> str:
    """An RFC 8030 Topic: the key itself when it is up to 32 base64url characters, else a
    hash of it that is."""
    if _TOPIC.fullmatch(key):
        return key
    return b64url_encode(hashlib.sha256(key.encode()).digest())[:32]


class PushSender:
    """Sends PushMessages to a user's subscriptions with the Stack's VAPID keys through the
    given httpx client (its timeouts and TLS settings are the caller's)."""

    def __init__(
        self,
        database: AsyncDatabase[Any],
        credentials: Mapping[str, str],
        http: httpx.AsyncClient,
        *,
        contact: str = DEFAULT_CONTACT,
    ) -> None:
        self.subscriptions = PushSubscriptions(database)
        self.credentials = credentials
        self.http = http
        self.contact = contact
        self._signer: VapidSigner | None = None

    def signer(self) -> VapidSigner:
        if self._signer is None:
            self._signer = VapidSigner(VapidKeys.from_credentials(self.credentials), self.contact)
        return self._signer

    async def send_to_user(
        self,
        user_id: str,
        message: PushMessage,
        ttl_seconds: int = DEFAULT_TTL,
        urgency: Urgency = "normal",
        *,
        topic: str | None = None,
    ) -> PushOutcome:
        """The message to every subscription of the user, at once. PushNotConfigured without
        VAPID keys. `topic` (RFC 8030 §5.4, up to 32 base64url characters) makes a push
        service replace an undelivered message of the same topic: give one derived from the
        run and step so that a retried step does not show twice on an offline device."""
        signer = self.signer()
        subscriptions = await self.subscriptions.for_user(user_id)
        if not subscriptions:
            return PushOutcome()
        try:
            plaintext = payload_bytes(message)
        except ValueError as exc:
            log.warning("push to user %s not sent: %s", user_id, exc)
            return PushOutcome(failed=len(subscriptions))
        headers = {
            "TTL": str(max(0, min(int(ttl_seconds), MAX_TTL))),
            "Urgency": urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        if topic:
            headers["Topic"] = push_topic(topic)
        results = await asyncio.gather(*(self._send(s, plaintext, headers, signer) for s in subscriptions))
        now = datetime.now(UTC)
        sent = [s.id for s, result in zip(subscriptions, results, strict=True) if result == "sent"]
        await self.subscriptions.mark_success(sent, now)
        return PushOutcome(
            sent=len(sent),
            removed=results.count("removed"),
            failed=results.count("failed") + results.count("retry"),
            retryable=results.count("retry"),
        )

    async def _send(
        self, subscription: StoredSubscription, plaintext: bytes, headers: dict[str, str], signer: VapidSigner
    ) -> Result:
        if subscription.expired(datetime.now(UTC)):
            await self.subscriptions.remove(subscription)
            return "removed"
        body = encrypt_payload(plaintext, subscription.p256dh, subscription.auth)
        request_headers = headers | {"Authorization": signer.authorization(subscription.endpoint)}
        try:
            response = await self.http.post(subscription.endpoint, content=body, headers=request_headers)
        except httpx.HTTPError as exc:
            log.info("push to %s failed: %s", subscription.id, type(exc).__name__)
            return "retry"
        status = response.status_code
        if status in (200, 201, 202):
            return "sent"
        if status in (404, 410):
            await self.subscriptions.remove(subscription)
            return "removed"
        log.info("push to %s refused: %s %s", subscription.id, status, response.text[:200])
        return "retry" if status == 429 or status >= 500 else "failed"
