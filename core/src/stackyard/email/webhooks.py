"""Inbound provider webhooks: verify that a POST really comes from the provider, then turn
its body into `ProviderEvent`s (delivered, deferred, bounced, complained, opened, clicked).

Each provider is verified exactly as it documents:

- Resend signs with Svix: HMAC-SHA256 of `{svix-id}.{svix-timestamp}.{body}` keyed with the
  base64 secret after `whsec_`; `svix-signature` holds one or more `v1,<base64>`.
- SendGrid signs its Event Webhook with ECDSA (P-256, SHA-256) over `timestamp + body`; the
  public key is the base64 DER SubjectPublicKeyInfo SendGrid shows.
- Postmark has no signature: the webhook URL carries HTTP basic auth, checked here.
- SES posts through SNS: the SNS message is signed with RSA (SignatureVersion 1: SHA1, 2:
  SHA256) by the certificate at SigningCertURL, which must match the provider's pattern
  before it is fetched; the topic must be one the provider lists.

Resend and SendGrid timestamps more than `REPLAY_WINDOW` seconds from now are refused.
Nothing here logs; no error message carries a secret. The cryptography is `cryptography`'s.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..config.runtime import credential_key
from ..resources.email import EmailProviderSpec
from .compose import ID_TAG

__all__ = [
    "REPLAY_WINDOW",
    "ProviderEvent",
    "ProviderEventType",
    "WebhookFetchFailed",
    "WebhookInvalid",
    "WebhookNotConfigured",
    "WebhookResult",
    "WebhookUnauthorized",
    "receive_webhook",
]

ProviderEventType = Literal["delivered", "deferred", "bounced", "complained", "opened", "clicked"]

REPLAY_WINDOW = 300.0
"""Seconds a signed timestamp (Resend, SendGrid) may be away from now, either way."""
DETAIL_LIMIT = 1000
"""Characters of a provider's explanation (bounce diagnostic, SMTP answer) kept."""
FETCH_TIMEOUT = 10.0
MAX_CERTIFICATE_BYTES = 64 * 1024
CERTIFICATE_CACHE_SIZE = 32


@dataclass(frozen=True)
class ProviderEvent:
    """One thing a provider says happened to one message for one recipient."""

    type: ProviderEventType
    recipient: str | None
    """The recipient's address, lower-cased."""
    at: datetime
    """When it happened, as the provider says (timezone-aware)."""
    provider_message_id: str | None
    """The id the provider gave the message when it was sent (what `Sent` recorded)."""
    email_id: str | None
    """stackyard's message id, from the `stackyard_id` tag the provider echoes back."""
    detail: str | None = None
    """The provider's explanation: bounce diagnostic, SMTP answer, clicked link."""
    permanent: bool = False
    """A hard bounce: the address will not take mail (only with type "bounced")."""
    raw_type: str = ""
    """The provider's own name for the event (e.g. "email.bounced", "spamreport", "HardBounce")."""


@dataclass(frozen=True)
class WebhookResult:
    events: list[ProviderEvent] = field(default_factory=list)
    confirmed_subscription: str | None = None
    """The SNS topic whose subscription was confirmed by this call."""


class WebhookUnauthorized(Exception):
    """The request is not proven to come from the provider (401)."""


class WebhookInvalid(Exception):
    """The request is authentic (or cannot be checked) but its body is not what the provider sends (400)."""


class WebhookNotConfigured(Exception):
    """The EmailProvider has no way to verify webhooks, so none are accepted (404 or 409)."""


class WebhookFetchFailed(Exception):
    """An SNS signing certificate or SubscribeURL could not be fetched (502: SNS retries)."""


async def receive_webhook(
    name: str,
    spec: EmailProviderSpec,
    credentials: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    http: httpx.AsyncClient,
    now: float | None = None,
) -> WebhookResult:
    """Verify one webhook POST to the EmailProvider `name` and parse its events.

    `headers` may be any mapping; names are looked up case-insensitively. Raises
    `WebhookNotConfigured`, `WebhookUnauthorized`, `WebhookInvalid` or `WebhookFetchFailed`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    clock = time.time() if now is None else now
    if spec.type == "resend":
        _verify_resend(name, spec, credentials, lowered, body, clock)
        return WebhookResult(_resend_events(_json(body)))
    if spec.type == "sendgrid":
        _verify_sendgrid(name, spec, lowered, body, clock)
        return WebhookResult(_sendgrid_events(_json(body)))
    if spec.type == "postmark":
        _verify_postmark(name, spec, credentials, lowered)
        return WebhookResult(_postmark_events(_json(body)))
    if spec.type == "ses":
        return await _receive_sns(name, spec, body, http)
    raise WebhookNotConfigured(f"EmailProvider {name} is of type {spec.type}, which sends no webhooks")


# --- verification ---------------------------------------------------------------------------


def _check_fresh(timestamp: str | None, header: str, clock: float) -> None:
    if not timestamp:
        raise WebhookUnauthorized(f"missing {header} header")
    try:
        sent = int(timestamp.strip())
    except ValueError:
        raise WebhookUnauthorized(f"{header} is not a Unix timestamp") from None
    if abs(clock - sent) > REPLAY_WINDOW:
        raise WebhookUnauthorized(f"{header} is more than {REPLAY_WINDOW:g}s away from now (a replay or a clock skew)")


def _verify_resend(
    name: str,
    spec: EmailProviderSpec,
    credentials: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    clock: float,
) -> None:
    if spec.resend is None or spec.resend.webhook_secret_ref is None:
        raise WebhookNotConfigured(f"EmailProvider {name} has no resend.webhookSecretRef")
    secret = credentials.get(credential_key("EmailProvider", name, "webhookSecret"))
    if not secret:
        raise WebhookNotConfigured(
            f"EmailProvider {name}: the Secret key of resend.webhookSecretRef is missing or empty"
        )
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookNotConfigured(
            f"EmailProvider {name}: the webhook secret is not Resend's whsec_<base64> signing secret"
        ) from None
    msg_id, timestamp, signatures = (headers.get(h) for h in ("svix-id", "svix-timestamp", "svix-signature"))
    if not msg_id:
        raise WebhookUnauthorized("missing svix-id header")
    if not signatures:
        raise WebhookUnauthorized("missing svix-signature header")
    _check_fresh(timestamp, "svix-timestamp", clock)
    signed = msg_id.encode() + b"." + (timestamp or "").strip().encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    offered = [part.split(",", 1) for part in signatures.split()]
    if not any(
        len(p) == 2 and p[0] == "v1" and hmac.compare_digest(expected, p[1].encode("ascii", "replace")) for p in offered
    ):
        raise WebhookUnauthorized("no svix-signature matches the body and the webhook secret")


def _verify_sendgrid(name: str, spec: EmailProviderSpec, headers: Mapping[str, str], body: bytes, clock: float) -> None:
    if spec.sendgrid is None or not spec.sendgrid.webhook_public_key:
        raise WebhookNotConfigured(f"EmailProvider {name} has no sendgrid.webhookPublicKey")
    try:
        key = serialization.load_der_public_key(base64.b64decode(spec.sendgrid.webhook_public_key.strip()))
    except (binascii.Error, ValueError):
        raise WebhookNotConfigured(
            f"EmailProvider {name}: sendgrid.webhookPublicKey is not a base64 DER public key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookNotConfigured(f"EmailProvider {name}: sendgrid.webhookPublicKey is not an ECDSA key")
    signature_header = "x-twilio-email-event-webhook-signature"
    timestamp_header = "x-twilio-email-event-webhook-timestamp"
    signature = headers.get(signature_header)
    if not signature:
        raise WebhookUnauthorized(f"missing {signature_header} header")
    timestamp = headers.get(timestamp_header)
    _check_fresh(timestamp, timestamp_header, clock)
    try:
        key.verify(
            base64.b64decode(signature.strip(), validate=True),
            (timestamp or "").encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (binascii.Error, ValueError, InvalidSignature):
        raise WebhookUnauthorized(f"{signature_header} does not match the body and the public key") from None


def _verify_postmark(
    name: str, spec: EmailProviderSpec, credentials: Mapping[str, str], headers: Mapping[str, str]
) -> None:
    if spec.postmark is None or not spec.postmark.webhook_username:
        raise WebhookNotConfigured(f"EmailProvider {name} has no postmark.webhookUsername")
    password = credentials.get(credential_key("EmailProvider", name, "webhookPassword"))
    if not password:
        raise WebhookNotConfigured(
            f"EmailProvider {name}: the Secret key of postmark.webhookPasswordSecretRef is missing or empty"
        )
    authorization = headers.get("authorization")
    if not authorization:
        raise WebhookUnauthorized("missing Authorization header (basic auth)")
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise WebhookUnauthorized("the Authorization header is not basic auth")
    try:
        user, sep, given = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        raise WebhookUnauthorized("the basic auth credentials are not base64") from None
    user_ok = hmac.compare_digest(user, spec.postmark.webhook_username.encode())
    password_ok = hmac.compare_digest(given, password.encode())
    if not (sep and user_ok and password_ok):
        raise WebhookUnauthorized("wrong basic auth user name or password")


# --- SNS (SES) ------------------------------------------------------------------------------

_SNS_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
"""The fields each SNS message type signs, in the order AWS documents; Subject only when present."""
_SNS_HASHES: dict[str, type[hashes.SHA1 | hashes.SHA256]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class _CertificateCache:
    """SNS signing keys by certificate URL, the most recently used kept."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()

    def get(self, url: str) -> rsa.RSAPublicKey | None:
        key = self._keys.get(url)
        if key is not None:
            self._keys.move_to_end(url)
        return key

    def put(self, url: str, key: rsa.RSAPublicKey) -> None:
        self._keys[url] = key
        self._keys.move_to_end(url)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)

    def clear(self) -> None:
        self._keys.clear()


_certificates = _CertificateCache(CERTIFICATE_CACHE_SIZE)


def _sns_canonical(message: Mapping[str, Any], kind: str) -> bytes:
    lines: list[str] = []
    for key in _SNS_SIGNED_FIELDS[kind]:
        value = message.get(key)
        if value is None:
            if key == "Subject":
                continue
            raise WebhookInvalid(f"SNS {kind} has no {key}")
        lines += [key, str(value)]
    return ("\n".join(lines) + "\n").encode()


async def _sns_key(url: str, http: httpx.AsyncClient) -> rsa.RSAPublicKey:
    key = _certificates.get(url)
    if key is not None:
        return key
    try:
        response = await http.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise WebhookFetchFailed(f"fetching the SNS signing certificate failed: {type(exc).__name__}") from None
    if response.status_code != 200 or len(response.content) > MAX_CERTIFICATE_BYTES:
        raise WebhookFetchFailed(f"fetching the SNS signing certificate answered HTTP {response.status_code}")
    try:
        public = x509.load_pem_x509_certificate(response.content).public_key()
    except ValueError:
        raise WebhookUnauthorized("SigningCertURL does not hold a PEM certificate") from None
    if not isinstance(public, rsa.RSAPublicKey):
        raise WebhookUnauthorized("the SNS signing certificate is not an RSA certificate")
    _certificates.put(url, public)
    return public


def _matches(pattern: re.Pattern[str], url: str) -> bool:
    return pattern.match(url) is not None


async def _receive_sns(name: str, spec: EmailProviderSpec, body: bytes, http: httpx.AsyncClient) -> WebhookResult:
    if spec.ses is None or not spec.ses.webhook_topic_arns:
        raise WebhookNotConfigured(f"EmailProvider {name} has no ses.webhookTopicArns")
    try:
        pattern = re.compile(spec.ses.sns_certificate_url_pattern)
    except re.error:
        raise WebhookNotConfigured(
            f"EmailProvider {name}: ses.snsCertificateUrlPattern is not a regular expression"
        ) from None
    message = _json(body)
    if not isinstance(message, dict):
        raise WebhookInvalid("the body is not an SNS message (a JSON object)")
    kind = message.get("Type")
    if kind not in _SNS_SIGNED_FIELDS:
        raise WebhookInvalid(f"unknown SNS message Type {kind!r}")
    topic = message.get("TopicArn")
    if topic not in spec.ses.webhook_topic_arns:
        raise WebhookUnauthorized(f"SNS topic {topic!r} is not in ses.webhookTopicArns")
    cert_url = message.get("SigningCertURL")
    if not isinstance(cert_url, str) or not _matches(pattern, cert_url):
        raise WebhookUnauthorized("SigningCertURL does not match ses.snsCertificateUrlPattern")
    version = str(message.get("SignatureVersion", ""))
    algorithm = _SNS_HASHES.get(version)
    if algorithm is None:
        raise WebhookUnauthorized(f"unknown SNS SignatureVersion {version!r}")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookUnauthorized("the SNS Signature is not base64") from None
    canonical = _sns_canonical(message, kind)
    key = await _sns_key(cert_url, http)
    try:
        key.verify(signature, canonical, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise WebhookUnauthorized("the SNS Signature does not match the message") from None

    if kind == "SubscriptionConfirmation":
        await _confirm_subscription(message, pattern, http)
        return WebhookResult(confirmed_subscription=str(topic))
    if kind == "UnsubscribeConfirmation":
        return WebhookResult()
    try:
        event = orjson.loads(str(message["Message"]))
    except orjson.JSONDecodeError:
        raise WebhookInvalid("the SNS Message is not an SES event (JSON)") from None
    return WebhookResult(_ses_events(event, _str(message.get("Timestamp"))))


async def _confirm_subscription(message: Mapping[str, Any], pattern: re.Pattern[str], http: httpx.AsyncClient) -> None:
    url = message.get("SubscribeURL")
    if not isinstance(url, str) or not _matches(pattern, url):
        raise WebhookUnauthorized("SubscribeURL does not match ses.snsCertificateUrlPattern")
    try:
        response = await http.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise WebhookFetchFailed(f"confirming the SNS subscription failed: {type(exc).__name__}") from None
    if not response.is_success:
        raise WebhookFetchFailed(f"confirming the SNS subscription answered HTTP {response.status_code}")


# --- parsing --------------------------------------------------------------------------------


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise WebhookInvalid("the body is not JSON") from None


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _address(value: Any) -> str | None:
    text = _str(value)
    if text is None:
        return None
    address = email.utils.parseaddr(text)[1] or text
    return address.strip().lower() or None


def _detail(*parts: Any) -> str | None:
    text = "; ".join(s for s in (_str(p) for p in parts) if s)
    if not text:
        return None
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


def _time(value: Any, fallback: datetime | None = None) -> datetime:
    """An aware datetime from an ISO 8601 string or Unix seconds; now when there is none."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        text = value.strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        # Postmark writes seven fractional digits; fromisoformat takes at most six.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise WebhookInvalid(f"{value[:64]!r} is not a timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback or datetime.now(UTC)


# Resend: {"type": "email.bounced", "created_at": ..., "data": {"email_id", "to": [...], "tags", "bounce"}}

_RESEND_TYPES: dict[str, ProviderEventType] = {
    "email.delivered": "delivered",
    "email.delivery_delayed": "deferred",
    "email.bounced": "bounced",
    "email.complained": "complained",
    "email.opened": "opened",
    "email.clicked": "clicked",
}


def _resend_tag(tags: Any) -> str | None:
    # Resend echoes tags as {"name": "value"}; older payloads as [{"name", "value"}].
    if isinstance(tags, dict):
        return _str(tags.get(ID_TAG))
    for tag in _list(tags):
        if isinstance(tag, dict) and tag.get("name") == ID_TAG:
            return _str(tag.get("value"))
    return None


def _resend_events(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise WebhookInvalid("the body is not a Resend event ({type, created_at, data})")
    raw_type: str = payload["type"]
    kind = _RESEND_TYPES.get(raw_type)
    if kind is None:
        return []
    data = _dict(payload.get("data"))
    permanent = False
    detail: str | None = None
    if kind == "bounced":
        bounce = _dict(data.get("bounce"))
        # Resend relays SES's classification: Permanent, Transient or Undetermined.
        permanent = str(bounce.get("type", "Permanent")).lower() == "permanent"
        kind = "bounced" if permanent else "deferred"
        detail = _detail(bounce.get("subType"), bounce.get("message"))
    elif kind == "clicked":
        detail = _detail(_dict(data.get("click")).get("link"))
    at = _time(payload.get("created_at") or data.get("created_at"))
    recipients = data.get("to")
    addresses = [recipients] if isinstance(recipients, str) else _list(recipients)
    return [
        ProviderEvent(
            type=kind,
            recipient=_address(address),
            at=at,
            provider_message_id=_str(data.get("email_id")),
            email_id=_resend_tag(data.get("tags")),
            detail=detail,
            permanent=permanent,
            raw_type=raw_type,
        )
        for address in addresses or [None]
    ]


# SendGrid: a JSON array of {"email", "timestamp", "event", "sg_message_id", <custom args>...}

_SENDGRID_TYPES: dict[str, ProviderEventType] = {
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounced",
    "spamreport": "complained",
    "open": "opened",
    "click": "clicked",
}


def _sendgrid_message_id(value: Any) -> str | None:
    """sg_message_id is "<X-Message-Id>.<filter and recipient parts>"; the part before the
    first '.' is the X-Message-Id that the send answered with, which `Sent` recorded."""
    text = _str(value)
    return text.split(".", 1)[0] or None if text is not None else None


def _sendgrid_events(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, list):
        raise WebhookInvalid("the body is not a SendGrid event batch (a JSON array)")
    events = []
    for item in payload:
        if not isinstance(item, dict):
            raise WebhookInvalid("a SendGrid event is not a JSON object")
        raw_type = _str(item.get("event")) or ""
        kind = _SENDGRID_TYPES.get(raw_type)
        if kind is None:
            continue
        permanent = False
        detail: str | None = None
        if kind == "bounced":
            # "bounce": the address does not exist, SendGrid suppresses it; "blocked": the
            # receiving server refused this message (reputation, content), the address is fine.
            permanent = item.get("type", "bounce") != "blocked"
            kind = "bounced" if permanent else "deferred"
            detail = _detail(
                item.get("type"), item.get("bounce_classification"), item.get("status"), item.get("reason")
            )
        elif kind in ("delivered", "deferred"):
            detail = _detail(item.get("response"))
        elif kind == "clicked":
            detail = _detail(item.get("url"))
        custom = _dict(item.get("custom_args")) or item  # custom args are top-level fields
        events.append(
            ProviderEvent(
                type=kind,
                recipient=_address(item.get("email")),
                at=_time(item.get("timestamp")),
                provider_message_id=_sendgrid_message_id(item.get("sg_message_id")),
                email_id=_str(custom.get(ID_TAG)),
                detail=detail,
                permanent=permanent,
                raw_type=raw_type,
            )
        )
    return events


# Postmark: one record per POST, {"RecordType": "Bounce", "MessageID", "Email", "Metadata", ...}

_POSTMARK_PERMANENT = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
_POSTMARK_NOT_FAILURES = frozenset(
    {"AutoResponder", "Subscribe", "Unsubscribe", "AddressChange", "OpenRelayTest", "ChallengeVerification"}
)
"""Bounce records that are replies about a delivered message, not a failed delivery."""


def _postmark_events(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, dict) or not isinstance(payload.get("RecordType"), str):
        raise WebhookInvalid("the body is not a Postmark webhook record ({RecordType, ...})")
    record: str = payload["RecordType"]
    permanent = False
    detail: str | None = None
    raw_type = record
    if record == "Delivery":
        kind: ProviderEventType = "delivered"
        at, recipient, detail = payload.get("DeliveredAt"), payload.get("Recipient"), _detail(payload.get("Details"))
    elif record == "Bounce":
        bounce_type = _str(payload.get("Type")) or "Unknown"
        raw_type = bounce_type
        if bounce_type in _POSTMARK_NOT_FAILURES and not payload.get("Inactive"):
            return []
        # Inactive: Postmark deactivated the address and will refuse further sends to it.
        permanent = bounce_type in _POSTMARK_PERMANENT or payload.get("Inactive") is True
        kind = "bounced" if permanent else "deferred"
        at, recipient = payload.get("BouncedAt"), payload.get("Email")
        detail = _detail(payload.get("Description"), payload.get("Details"))
    elif record == "SpamComplaint":
        kind, at, recipient = "complained", payload.get("BouncedAt"), payload.get("Email")
    elif record == "Open":
        kind, at, recipient = "opened", payload.get("ReceivedAt"), payload.get("Recipient")
    elif record == "Click":
        kind, at, recipient = "clicked", payload.get("ReceivedAt"), payload.get("Recipient")
        detail = _detail(payload.get("OriginalLink"))
    else:
        return []
    return [
        ProviderEvent(
            type=kind,
            recipient=_address(recipient),
            at=_time(at),
            provider_message_id=_str(payload.get("MessageID")),
            email_id=_str(_dict(payload.get("Metadata")).get(ID_TAG)),
            detail=detail,
            permanent=permanent,
            raw_type=raw_type,
        )
    ]


# SES: {"eventType" | "notificationType": "Bounce", "mail": {"messageId", "destination", "tags"}, "bounce": {...}}


def _ses_recipients(section: Mapping[str, Any], key: str) -> Iterator[tuple[str | None, str | None]]:
    """(address, diagnostic) of each recipient an SES event section lists."""
    for entry in _list(section.get(key)):
        if isinstance(entry, str):
            yield _address(entry), None
        elif isinstance(entry, dict):
            yield _address(entry.get("emailAddress")), _detail(entry.get("status"), entry.get("diagnosticCode"))


def _ses_events(event: Any, sns_timestamp: str | None) -> list[ProviderEvent]:
    if not isinstance(event, dict):
        raise WebhookInvalid("the SNS Message is not an SES event (a JSON object)")
    raw_type = _str(event.get("eventType")) or _str(event.get("notificationType"))
    if raw_type is None:
        return []  # e.g. SES's "AmazonSnsSubscriptionSucceeded" test message
    mail = _dict(event.get("mail"))
    tag_values = _list(_dict(mail.get("tags")).get(ID_TAG))
    email_id = _str(tag_values[0]) if tag_values else None
    message_id = _str(mail.get("messageId"))
    fallback = _time(sns_timestamp) if sns_timestamp else None
    destination = [_address(a) for a in _list(mail.get("destination"))]
    only_recipient = destination[0] if len(destination) == 1 else None

    def made(
        kind: ProviderEventType, recipient: str | None, at: Any, detail: str | None, permanent: bool = False
    ) -> ProviderEvent:
        return ProviderEvent(kind, recipient, _time(at, fallback), message_id, email_id, detail, permanent, raw_type)

    if raw_type == "Delivery":
        section = _dict(event.get("delivery"))
        response = _detail(section.get("smtpResponse"))
        return [
            made("delivered", r, section.get("timestamp"), response) for r, _ in _ses_recipients(section, "recipients")
        ]
    if raw_type == "Bounce":
        section = _dict(event.get("bounce"))
        permanent = section.get("bounceType") == "Permanent"
        kind: ProviderEventType = "bounced" if permanent else "deferred"
        sub_type = _str(section.get("bounceSubType"))
        return [
            made(kind, r, section.get("timestamp"), _detail(sub_type, diagnostic), permanent)
            for r, diagnostic in _ses_recipients(section, "bouncedRecipients")
        ]
    if raw_type == "Complaint":
        section = _dict(event.get("complaint"))
        feedback = _detail(section.get("complaintFeedbackType"))
        return [
            made("complained", r, section.get("timestamp"), feedback)
            for r, _ in _ses_recipients(section, "complainedRecipients")
        ]
    if raw_type == "DeliveryDelay":
        section = _dict(event.get("deliveryDelay"))
        return [
            made("deferred", r, section.get("timestamp"), _detail(section.get("delayType"), diagnostic))
            for r, diagnostic in _ses_recipients(section, "delayedRecipients")
        ]
    if raw_type == "Open":
        # SES does not say which recipient opened; only a single-recipient message tells.
        return [made("opened", only_recipient, _dict(event.get("open")).get("timestamp"), None)]
    if raw_type == "Click":
        section = _dict(event.get("click"))
        return [made("clicked", only_recipient, section.get("timestamp"), _detail(section.get("link")))]
    return []
