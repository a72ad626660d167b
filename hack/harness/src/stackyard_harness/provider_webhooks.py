"""What the email providers' webhooks send, for tests: signed requests and realistic bodies.

- Resend (Svix): `resend_headers(secret, body)`; `new_resend_secret()` makes a whsec_ secret.
- SendGrid: `SendGridSigner()` holds a P-256 key; `.public_key_b64` is what SendGrid shows,
  `.headers(body)` the signature and timestamp headers.
- Postmark: `postmark_auth(user, password)`, the basic auth header of the webhook URL.
- SES through SNS: `SnsSigner` is an RSA key, its self-signed certificate served over local
  HTTP (a `FakeServer`), and signed SNS messages (SignatureVersion 1 or 2) whose
  SigningCertURL points at it; it serves SubscribeURLs too and records every GET it answered.

The builders (`resend_event`, `sendgrid_event`, `postmark_record`, `ses_event`) make bodies
in the shapes the providers document, for the kinds in `SAMPLE_KINDS` and a few more.

The signing here is written from the providers' documentation, independently of
`stackyard.email.webhooks`, so that a mistake in one is caught by the other.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any, Literal

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from .fake_server import FakeServer

ID_TAG = "stackyard_id"
SAMPLE_KINDS = ("delivered", "hard_bounce", "soft_bounce", "complaint")
"""Kinds every builder makes; each also makes "opened", "clicked" and one event stackyard ignores ("sent")."""
SampleKind = Literal["delivered", "hard_bounce", "soft_bounce", "complaint", "opened", "clicked", "sent"]


def _iso(at: dt.datetime | None, digits: int = 3) -> str:
    at = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    fraction = f"{at.microsecond:06d}{'0' * max(0, digits - 6)}"[:digits]
    return at.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "") + "Z"


# --- Resend (Svix) --------------------------------------------------------------------------


def new_resend_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def resend_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """The svix-* headers Resend sends with `body`, signed with `secret` (whsec_<base64>)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"svix-id": msg_id, "svix-timestamp": stamp, "svix-signature": "v1," + base64.b64encode(digest).decode()}


def resend_event(
    kind: SampleKind,
    *,
    to: str | list[str],
    email_id: str | None = None,
    stackyard_id: str | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """A Resend webhook body: {type, created_at, data}; the stackyard id in data.tags."""
    types = {
        "delivered": "email.delivered",
        "hard_bounce": "email.bounced",
        "soft_bounce": "email.bounced",
        "complaint": "email.complained",
        "opened": "email.opened",
        "clicked": "email.clicked",
        "sent": "email.sent",
    }
    data: dict[str, Any] = {
        "created_at": _iso(at, 6).replace("Z", "+00:00"),
        "email_id": email_id or str(uuid.uuid4()),
        "from": "Acme <hello@acme.test>",
        "to": [to] if isinstance(to, str) else list(to),
        "subject": "Your receipt",
        "tags": {"category": "receipt", **({ID_TAG: stackyard_id} if stackyard_id else {})},
    }
    if kind == "hard_bounce":
        data["bounce"] = {
            "message": "The recipient's email provider sent a hard bounce message: 550 5.1.1 user unknown.",
            "subType": "General",
            "type": "Permanent",
        }
    elif kind == "soft_bounce":
        data["bounce"] = {
            "message": "The recipient's mailbox is full: 452 4.2.2 mailbox over quota.",
            "subType": "MailboxFull",
            "type": "Transient",
        }
    elif kind == "clicked":
        data["click"] = {
            "ipAddress": "192.0.2.10",
            "link": "https://acme.test/orders/42",
            "timestamp": _iso(at),
            "userAgent": "Mozilla/5.0",
        }
    return {"type": types[kind], "created_at": _iso(at), "data": data}


# --- SendGrid -------------------------------------------------------------------------------


class SendGridSigner:
    """The Event Webhook's signing key: ECDSA P-256 over timestamp + body, SHA-256."""

    signature_header = "X-Twilio-Email-Event-Webhook-Signature"
    timestamp_header = "X-Twilio-Email-Event-Webhook-Timestamp"

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key_b64(self) -> str:
        """The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self._key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {self.signature_header: base64.b64encode(signature).decode(), self.timestamp_header: stamp}


def sendgrid_event(
    kind: SampleKind | Literal["blocked", "dropped"],
    *,
    to: str,
    message_id: str | None = None,
    stackyard_id: str | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One SendGrid event (the body is a JSON array of them); custom args are top-level fields.
    `message_id` is the send's X-Message-Id; sg_message_id extends it with ".filter...".
    A soft bounce is SendGrid's "deferred"; "blocked" is a bounce of type blocked."""
    x_message_id = message_id or secrets.token_urlsafe(16)
    event: dict[str, Any] = {
        "email": to,
        "timestamp": int((at or dt.datetime.now(dt.UTC)).timestamp()),
        "smtp-id": f"<{x_message_id}@ismtpd0001p1lon1.sendgrid.net>",
        "sg_event_id": base64.urlsafe_b64encode(secrets.token_bytes(24)).decode(),
        "sg_message_id": f"{x_message_id}.recvd-5f9d8c7b6a-x2k4m-1-6650A1B2-3.0",
        "category": ["category:receipt"],
        "category_name": "receipt",  # a custom arg: custom args are top-level fields
    }
    if stackyard_id:
        event[ID_TAG] = stackyard_id
    if kind == "delivered":
        event |= {"event": "delivered", "response": "250 2.0.0 OK  1716890000 a1si123 - gsmtp", "ip": "192.0.2.20"}
    elif kind == "soft_bounce":
        event |= {"event": "deferred", "response": "452 4.2.2 Mailbox full", "attempt": "3"}
    elif kind in ("hard_bounce", "blocked"):
        event |= {
            "event": "bounce",
            "type": "bounce" if kind == "hard_bounce" else "blocked",
            "bounce_classification": "Invalid Address" if kind == "hard_bounce" else "Reputation",
            "status": "5.1.1" if kind == "hard_bounce" else "5.7.1",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist."
            if kind == "hard_bounce"
            else "554 5.7.1 Service unavailable; client host blocked using a DNSBL",
            "ip": "192.0.2.20",
            "tls": 1,
        }
    elif kind == "dropped":
        event |= {"event": "dropped", "reason": "Bounced Address"}
    elif kind == "complaint":
        event |= {"event": "spamreport"}
    elif kind == "opened":
        event |= {"event": "open", "useragent": "Mozilla/5.0", "ip": "192.0.2.30", "sg_machine_open": False}
    elif kind == "clicked":
        event |= {"event": "click", "url": "https://acme.test/orders/42", "url_offset": {"index": 0, "type": "html"}}
    else:
        event |= {"event": "processed"}
    return event


# --- Postmark -------------------------------------------------------------------------------


def postmark_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header Postmark sends for a webhook URL https://user:password@..."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def postmark_record(
    kind: SampleKind,
    *,
    to: str,
    message_id: str | None = None,
    stackyard_id: str | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One Postmark webhook record (one per POST), with Metadata as sent."""
    message_id = message_id or str(uuid.uuid4())
    # Postmark writes local times with an offset and seven fractional digits.
    when = (at or dt.datetime.now(dt.UTC)).astimezone(dt.timezone(dt.timedelta(hours=-4)))
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}3" + when.strftime("%z")[:3] + ":00"
    common: dict[str, Any] = {
        "MessageID": message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Tag": "",
        "Metadata": {"category": "receipt", **({ID_TAG: stackyard_id} if stackyard_id else {})},
    }
    bounce = {
        "ID": 4323372036854775807,
        "Email": to,
        "From": "hello@acme.test",
        "BouncedAt": stamp,
        "DumpAvailable": True,
        "Subject": "Your receipt",
        "Content": "Return-Path: <>\r\n...",
    }
    if kind == "delivered":
        return {"RecordType": "Delivery", **common, "Recipient": to, "DeliveredAt": stamp, "Details": "Test delivery"}
    if kind == "hard_bounce":
        return {
            "RecordType": "Bounce",
            **common,
            **bounce,
            "Type": "HardBounce",
            "TypeCode": 1,
            "Name": "Hard bounce",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Inactive": True,
            "CanActivate": True,
        }
    if kind == "soft_bounce":
        return {
            "RecordType": "Bounce",
            **common,
            **bounce,
            "Type": "SoftBounce",
            "TypeCode": 4096,
            "Name": "Soft bounce",
            "Description": "Unable to temporarily deliver this email.",
            "Details": "smtp;452 4.2.2 Mailbox full",
            "Inactive": False,
            "CanActivate": True,
        }
    if kind == "complaint":
        return {
            "RecordType": "SpamComplaint",
            **common,
            **bounce,
            "Type": "SpamComplaint",
            "TypeCode": 512,
            "Name": "Spam complaint",
            "Description": "The subscriber explicitly marked this message as spam.",
            "Details": "",
            "Inactive": True,
            "CanActivate": False,
        }
    if kind == "opened":
        return {"RecordType": "Open", **common, "Recipient": to, "ReceivedAt": stamp, "FirstOpen": True}
    if kind == "clicked":
        return {
            "RecordType": "Click",
            **common,
            "Recipient": to,
            "ReceivedAt": stamp,
            "ClickLocation": "HTML",
            "OriginalLink": "https://acme.test/orders/42",
        }
    return {"RecordType": "SubscriptionChange", **common, "Recipient": to, "ChangedAt": stamp, "SuppressSending": False}


# --- SES ------------------------------------------------------------------------------------


def ses_event(
    kind: SampleKind | Literal["delivery_delay"],
    *,
    to: str | list[str],
    message_id: str | None = None,
    stackyard_id: str | None = None,
    at: dt.datetime | None = None,
    style: Literal["event", "notification"] = "event",
) -> dict[str, Any]:
    """An SES event as SNS carries it in Message: configuration-set event publishing
    ("eventType", with mail.tags) or identity notifications ("notificationType", no tags)."""
    recipients = [to] if isinstance(to, str) else list(to)
    stamp = _iso(at)
    mail: dict[str, Any] = {
        "timestamp": stamp,
        "source": "hello@acme.test",
        "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/acme.test",
        "sendingAccountId": "123456789012",
        "messageId": message_id or f"0102018f{secrets.token_hex(12)}-{uuid.uuid4()}-000000",
        "destination": recipients,
        "headersTruncated": False,
        "commonHeaders": {"from": ["hello@acme.test"], "to": recipients, "subject": "Your receipt"},
    }
    if style == "event":
        mail["tags"] = {
            "ses:configuration-set": ["stackyard"],
            "ses:from-domain": ["acme.test"],
            "category": ["receipt"],
            **({ID_TAG: [stackyard_id]} if stackyard_id else {}),
        }
    names = {
        "delivered": "Delivery",
        "hard_bounce": "Bounce",
        "soft_bounce": "Bounce",
        "complaint": "Complaint",
        "delivery_delay": "DeliveryDelay",
        "opened": "Open",
        "clicked": "Click",
        "sent": "Send",
    }
    event: dict[str, Any] = {("eventType" if style == "event" else "notificationType"): names[kind], "mail": mail}
    if kind == "delivered":
        event["delivery"] = {
            "timestamp": stamp,
            "processingTimeMillis": 546,
            "recipients": recipients,
            "smtpResponse": "250 ok:  Message 64111812 accepted",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        }
    elif kind in ("hard_bounce", "soft_bounce"):
        hard = kind == "hard_bounce"
        event["bounce"] = {
            "bounceType": "Permanent" if hard else "Transient",
            "bounceSubType": "General" if hard else "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": r,
                    "action": "failed",
                    "status": "5.1.1" if hard else "4.2.2",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown" if hard else "smtp; 452 4.2.2 mailbox full",
                }
                for r in recipients
            ],
            "timestamp": stamp,
            "feedbackId": f"0102018f-{uuid.uuid4()}-000000",
            "reportingMTA": "dsn; e226-55.smtp-out.eu-west-1.amazonses.com",
        }
    elif kind == "complaint":
        event["complaint"] = {
            "complainedRecipients": [{"emailAddress": r} for r in recipients],
            "timestamp": stamp,
            "feedbackId": f"0102018f-{uuid.uuid4()}-000000",
            "userAgent": "ExampleCorp Feedback Loop (V0.01)",
            "complaintFeedbackType": "abuse",
            "arrivalDate": stamp,
        }
    elif kind == "delivery_delay":
        event["deliveryDelay"] = {
            "timestamp": stamp,
            "delayType": "MailboxFull",
            "expirationTime": stamp,
            "delayedRecipients": [
                {"emailAddress": r, "status": "4.2.2", "diagnosticCode": "smtp; 452 4.2.2 Mailbox full"}
                for r in recipients
            ],
        }
    elif kind == "opened":
        event["open"] = {"ipAddress": "192.0.2.40", "timestamp": stamp, "userAgent": "Mozilla/5.0"}
    elif kind == "clicked":
        event["click"] = {
            "ipAddress": "192.0.2.40",
            "timestamp": stamp,
            "userAgent": "Mozilla/5.0",
            "link": "https://acme.test/orders/42",
        }
    else:
        event["send"] = {}
    return event


@functools.cache
def _rsa_key() -> rsa.RSAPrivateKey:
    """One RSA key per test run: generating one takes a while, and certificates are cheap."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class SnsSigner(FakeServer[list[str]]):
    """An SNS look-alike for webhook tests: signs messages with its own RSA key and serves
    the key's certificate (and SubscribeURLs) over HTTP on a free loopback port. What it keeps
    is the path (with query) of every GET it answered."""

    name = "SNS signer"

    def __init__(self, *, key: rsa.RSAPrivateKey | None = None) -> None:
        super().__init__(list)
        self._key = key or _rsa_key()
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.local.test")])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self._key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.cert_path = f"/SimpleNotificationService-{secrets.token_hex(16)}.pem"
        self.subscribe_status = 200
        """The status SubscribeURL GETs answer."""

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("SnsSigner is not started")
        return super().url

    @property
    def cert_url(self) -> str:
        return self.url + self.cert_path

    @property
    def url_pattern(self) -> str:
        """A sns_certificate_url_pattern that admits this server's URLs (and no others)."""
        return "^" + self.url.replace(".", r"\.") + "/"

    @property
    def requests(self) -> list[str]:
        """Paths (with query) of every GET answered, in order."""
        with self._lock:
            return list(self._state)

    def gets(self, path: str) -> list[str]:
        """The GETs answered whose path starts with `path`."""
        return [p for p in self.requests if p.startswith(path)]

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        with self._lock:
            self._state.append(request.raw_path)
        if request.path == self.cert_path:
            return web.Response(body=self.certificate_pem, content_type="application/x-pem-file")
        if request.path == "/" and request.query.getall("Action", []) == ["ConfirmSubscription"]:
            arn = f"arn:aws:sns:eu-west-1:123456789012:stackyard:{uuid.uuid4()}"
            xml = (
                '<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
                f"<ConfirmSubscriptionResult><SubscriptionArn>{arn}</SubscriptionArn>"
                "</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
            )
            return web.Response(status=self.subscribe_status, body=xml.encode(), content_type="text/xml")
        return web.Response(status=404, body=b"not found", content_type="text/plain")

    # --- messages ---------------------------------------------------------------------------

    def subscribe_url(self, topic_arn: str, token: str) -> str:
        return f"{self.url}/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}"

    def notification(
        self,
        topic_arn: str,
        message: dict[str, Any] | str,
        *,
        signature_version: Literal["1", "2"] = "1",
        subject: str | None = None,
        timestamp: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """A signed SNS Notification carrying `message` (JSON-encoded when a dict)."""
        fields: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message if isinstance(message, str) else orjson.dumps(message).decode(),
            "Timestamp": _iso(timestamp),
        }
        if subject is not None:
            fields["Subject"] = subject
        fields["UnsubscribeURL"] = f"{self.url}/?Action=Unsubscribe&SubscriptionArn={topic_arn}:{uuid.uuid4()}"
        return self.sign(fields, signature_version)

    def subscription_confirmation(
        self,
        topic_arn: str,
        *,
        signature_version: Literal["1", "2"] = "1",
        kind: Literal["SubscriptionConfirmation", "UnsubscribeConfirmation"] = "SubscriptionConfirmation",
    ) -> dict[str, Any]:
        token = secrets.token_hex(64)
        fields = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic_arn,
            "Message": f"You have chosen to subscribe to the topic {topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": self.subscribe_url(topic_arn, token),
            "Timestamp": _iso(None),
        }
        return self.sign(fields, signature_version)

    def sign(self, fields: dict[str, Any], signature_version: Literal["1", "2"] = "1") -> dict[str, Any]:
        """`fields` with SignatureVersion, Signature and SigningCertURL, signed as SNS does:
        "Name\\nvalue\\n" for each signed field present, in byte order of the names."""
        signed_names = {
            "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
        }.get(fields["Type"], ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"))
        text = "".join(f"{n}\n{fields[n]}\n" for n in sorted(signed_names) if n in fields)
        algorithm = hashes.SHA1() if signature_version == "1" else hashes.SHA256()  # noqa: S303 - SNS v1 is SHA1
        signature = self._key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        return {
            **fields,
            "SignatureVersion": signature_version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": self.cert_url,
        }
