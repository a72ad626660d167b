"""Local stand-ins for the HTTP email APIs (Resend, SendGrid, Postmark, Amazon SES v2) that
tests send to instead of the real services.

One aiohttp app on a free loopback port, in a background thread (a `FakeServer`, so sync and
async tests can use it alike). Each service lives under its own prefix, which is the sender's
base URL:

    /resend/emails                      Resend     Authorization: Bearer <key>, Idempotency-Key
    /sendgrid/v3/mail/send              SendGrid   Authorization: Bearer <key>; 202 + X-Message-Id
    /postmark/email                     Postmark   X-Postmark-Server-Token; ErrorCode in the body
    /ses/v2/email/outbound-emails       SES v2     SigV4 (service "ses"), verified with botocore

Each checks its credentials and required fields and answers with the service's own error
body shape, records what it accepted (`received(provider)`), and takes injected faults:
`fail_next(provider, status, ...)` answers the next requests with an error, `hang_next` holds
the next request for a while before answering it.

The read each service documents for checking a key, which the senders' `probe()` calls,
answers under the same prefix with the same credential checks and faults, and counts in
`probed(provider)` (never in `received`):

    /resend/domains  /sendgrid/v3/scopes  /postmark/server  /ses/v2/email/account (GET)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email
import email.policy
import email.utils
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .fake_server import FakeServer

PROVIDERS = ("resend", "sendgrid", "postmark", "ses")

RESEND_API_KEY = "re_test_3fd1c0a7b2e94f6d8a5b"
SENDGRID_API_KEY = "SG.test-key-id.test-key-secret-0123456789"
POSTMARK_SERVER_TOKEN = "00000000-0000-4000-8000-00000000abcd"
SES_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SES_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SES_MAX_SKEW_SECONDS = 300

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass
class Received:
    """One message a fake service accepted."""

    provider: str
    id: str
    headers: dict[str, str]
    body: dict[str, Any]
    mime: EmailMessage | None = None
    """SES Raw content, parsed."""


@dataclass
class _Fault:
    status: int
    body: Any
    headers: dict[str, str]
    count: int


@dataclass
class _State:
    received: dict[str, list[Received]] = field(default_factory=lambda: {p: [] for p in PROVIDERS})
    faults: dict[str, list[_Fault]] = field(default_factory=lambda: {p: [] for p in PROVIDERS})
    hangs: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PROVIDERS})
    idempotency: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Resend: Idempotency-Key -> (payload digest, email id)."""
    probes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROVIDERS, 0))
    """Probes answered 2xx, per provider."""


class FakeEmailProviders(FakeServer[_State]):
    name = "fake email providers"

    def __init__(
        self,
        *,
        resend_api_key: str = RESEND_API_KEY,
        sendgrid_api_key: str = SENDGRID_API_KEY,
        postmark_server_token: str = POSTMARK_SERVER_TOKEN,
        ses_credentials: dict[str, str] | None = None,
    ) -> None:
        super().__init__(_State)
        self.resend_api_key = resend_api_key
        self.sendgrid_api_key = sendgrid_api_key
        self.postmark_server_token = postmark_server_token
        self.ses_credentials = ses_credentials or {SES_ACCESS_KEY_ID: SES_SECRET_ACCESS_KEY}
        """Access key id -> secret access key."""
        self.postmark_inactive_recipients: set[str] = set()
        """Addresses Postmark answers 406 (inactive recipient) for."""
        self.resend_sending_only_keys: set[str] = set()
        """Further Resend keys with sending access only: they send, GET /domains answers 401
        restricted_api_key."""
        self.ses_send_only_keys: set[str] = set()
        """Access key ids (of `ses_credentials`) whose policy allows sending but not GetAccount
        (403 AccessDeniedException)."""

    def base_url(self, provider: str) -> str:
        """The base URL to give the provider's sender."""
        self._check(provider)
        return f"{self.url}/{provider}"

    def _application(self) -> web.Application:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/resend/emails", self._guarded("resend", self._resend))
        app.router.add_post("/sendgrid/v3/mail/send", self._guarded("sendgrid", self._sendgrid))
        app.router.add_post("/postmark/email", self._guarded("postmark", self._postmark))
        app.router.add_post("/ses/v2/email/outbound-emails", self._guarded("ses", self._ses))
        app.router.add_get("/resend/domains", self._guarded("resend", self._resend_domains))
        app.router.add_get("/sendgrid/v3/scopes", self._guarded("sendgrid", self._sendgrid_scopes))
        app.router.add_get("/postmark/server", self._guarded("postmark", self._postmark_server))
        app.router.add_get("/ses/v2/email/account", self._guarded("ses", self._ses_account))
        return app

    # --- what tests ask and tell ------------------------------------------------------------

    def received(self, provider: str) -> list[Received]:
        self._check(provider)
        with self._lock:
            return list(self._state.received[provider])

    def probed(self, provider: str) -> int:
        """How many probes (the reads above) `provider` answered with success."""
        self._check(provider)
        with self._lock:
            return self._state.probes[provider]

    def fail_next(
        self,
        provider: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next `count` requests to `provider` with `status`, and `body` (JSON when
        not bytes or str) or else the service's own error body for that status."""
        self._check(provider)
        if body is None:
            body = _default_error(provider, status)
        headers = dict(headers or {})
        if provider == "ses" and status >= 400 and not any(h.lower() == "x-amzn-errortype" for h in headers):
            headers["x-amzn-ErrorType"] = _SES_CODES.get(status, "InternalFailure")
        with self._lock:
            self._state.faults[provider].append(_Fault(status, body, headers, count))

    def hang_next(self, provider: str, seconds: float) -> None:
        """Hold the next request to `provider` for `seconds` before handling it."""
        self._check(provider)
        with self._lock:
            self._state.hangs[provider].append(seconds)

    def reset(self) -> None:
        """Forget what was received, probes, injected faults and Resend's idempotency keys."""
        super().reset()
        self.postmark_inactive_recipients.clear()
        self.resend_sending_only_keys.clear()
        self.ses_send_only_keys.clear()

    @staticmethod
    def _check(provider: str) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}: one of {', '.join(PROVIDERS)}")

    def _record(self, received: Received) -> None:
        with self._lock:
            self._state.received[received.provider].append(received)

    def _probe_answered(self, provider: str, body: Any) -> web.Response:
        with self._lock:
            self._state.probes[provider] += 1
        return _answer(200, body)

    # --- the common part of every request ---------------------------------------------------

    def _guarded(
        self, provider: str, handler: Callable[[web.Request, bytes], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            with self._lock:
                hang = self._state.hangs[provider].pop(0) if self._state.hangs[provider] else None
                fault = None
                if self._state.faults[provider]:
                    fault = self._state.faults[provider][0]
                    fault.count -= 1
                    if fault.count <= 0:
                        self._state.faults[provider].pop(0)
            if hang is not None:
                await asyncio.sleep(hang)
            body = await request.read()
            if fault is not None:
                return _answer(fault.status, fault.body, fault.headers)
            return await handler(request, body)

        return handle

    # --- Resend -----------------------------------------------------------------------------

    def _resend_key(self, request: web.Request) -> str | web.Response:
        """The request's known API key, or Resend's answer to a missing or unknown one."""
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            return _resend_error(
                401,
                "missing_api_key",
                "Missing API key in the authorization header. Include the following header "
                "Authorization: Bearer YOUR_API_KEY in the request.",
            )
        key = authorization[7:]
        if not any(hmac.compare_digest(key, known) for known in (self.resend_api_key, *self.resend_sending_only_keys)):
            return _resend_error(403, "invalid_api_key", "API key is invalid")
        return key

    async def _resend_domains(self, request: web.Request, raw: bytes) -> web.Response:
        key = self._resend_key(request)
        if isinstance(key, web.Response):
            return key
        if key in self.resend_sending_only_keys:
            return _resend_error(401, "restricted_api_key", "This API key is restricted to only send emails")
        domain = {
            "id": "4dd369bc-aa82-4ff3-97de-514ae3000ee0",
            "name": "acme.test",
            "status": "verified",
            "created_at": "2024-01-01T00:00:00.000Z",
            "region": "us-east-1",
        }
        return self._probe_answered("resend", {"object": "list", "has_more": False, "data": [domain]})

    async def _resend(self, request: web.Request, raw: bytes) -> web.Response:
        error = _resend_error
        api_key = self._resend_key(request)
        if isinstance(api_key, web.Response):
            return api_key
        body = _json_object(raw)
        if body is None:
            return error(422, "validation_error", "Invalid JSON body.")
        for name in ("from", "to", "subject"):
            if not body.get(name):
                return error(422, "missing_required_field", f"Missing `{name}` field.")
        to = body["to"] if isinstance(body["to"], list) else [body["to"]]
        if len(to) > 50:
            return error(422, "validation_error", "Too many recipients: `to` takes at most 50.")
        for attachment in body.get("attachments") or []:
            if not attachment.get("filename") or not (attachment.get("content") or attachment.get("path")):
                return error(422, "validation_error", "Attachments need a `filename` and `content` or `path`.")
            if attachment.get("content") and not _is_base64(attachment["content"]):
                return error(422, "validation_error", "Attachment `content` must be Base64.")
        tags = body.get("tags") or []
        for tag in tags:
            if not isinstance(tag, dict) or not _RESEND_TAG.fullmatch(str(tag.get("name", ""))):
                return error(
                    422,
                    "validation_error",
                    "Tags should only contain ASCII letters, numbers, underscores, or dashes.",
                )
        key = request.headers.get("Idempotency-Key")
        digest = hashlib.sha256(raw).hexdigest()
        with self._lock:
            if key is not None and key in self._state.idempotency:
                seen_digest, seen_id = self._state.idempotency[key]
                if seen_digest != digest:
                    return error(
                        409,
                        "invalid_idempotent_request",
                        "Same idempotency key used with a different request payload. "
                        "Change your idempotency key or payload.",
                    )
                return _answer(200, {"id": seen_id})
            email_id = str(uuid.uuid4())
            if key is not None:
                if len(key) > 256:
                    return error(422, "validation_error", "The idempotency key must be at most 256 characters.")
                self._state.idempotency[key] = (digest, email_id)
            self._state.received["resend"].append(Received("resend", email_id, dict(request.headers), body))
        return _answer(200, {"id": email_id})

    # --- SendGrid ---------------------------------------------------------------------------

    def _sendgrid_refused(self, request: web.Request) -> web.Response | None:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer ") or not hmac.compare_digest(authorization[7:], self.sendgrid_api_key):
            message = "The provided authorization grant is invalid, expired, or revoked"
            return _answer(401, {"errors": [{"message": message, "field": None}]})
        return None

    async def _sendgrid_scopes(self, request: web.Request, raw: bytes) -> web.Response:
        if refused := self._sendgrid_refused(request):
            return refused
        return self._probe_answered("sendgrid", {"scopes": ["mail.send", "scopes.read"]})

    async def _sendgrid(self, request: web.Request, raw: bytes) -> web.Response:
        def error(status: int, message: str, field: str | None = None) -> web.Response:
            item: dict[str, Any] = {"message": message, "field": field}
            if status == 400:
                item["help"] = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
            return _answer(status, {"errors": [item]})

        if refused := self._sendgrid_refused(request):
            return refused
        body = _json_object(raw)
        if body is None:
            return error(400, "Bad Request")
        personalizations = body.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            return error(400, "The personalizations field is required and must have at least one personalization.")
        for i, p in enumerate(personalizations):
            if not isinstance(p, dict) or not p.get("to"):
                return error(
                    400, "The to array is required for all personalization objects.", f"personalizations.{i}.to"
                )
            for kind in ("to", "cc", "bcc"):
                for j, party in enumerate(p.get(kind) or []):
                    if not isinstance(party, dict) or "@" not in str(party.get("email", "")):
                        return error(400, "Does not contain a valid address.", f"personalizations.{i}.{kind}.{j}.email")
        sender = body.get("from")
        if not isinstance(sender, dict) or not sender.get("email"):
            return error(400, "The from object must be provided for every email send.", "from")
        if not body.get("subject") and not all(p.get("subject") for p in personalizations):
            return error(400, "The subject is required.", "subject")
        content = body.get("content")
        if not body.get("template_id"):
            if not isinstance(content, list) or not content or not all(c.get("value") for c in content):
                return error(400, "The content value must be a string at least one character in length.", "content")
            types = [c.get("type") for c in content]
            if "text/plain" in types and types[0] != "text/plain":
                return error(400, "If present, text/plain must be first, followed by text/html.", "content")
        for i, a in enumerate(body.get("attachments") or []):
            if not a.get("content") or not _is_base64(a["content"]):
                return error(400, "The attachment content must be base64 encoded.", f"attachments.{i}.content")
            if not a.get("filename"):
                return error(400, "The attachment filename parameter is required.", f"attachments.{i}.filename")
            if a.get("disposition", "attachment") not in ("inline", "attachment"):
                return error(400, "The disposition must be inline or attachment.", f"attachments.{i}.disposition")
            if a.get("disposition") == "inline" and not a.get("content_id"):
                return error(400, "The content_id is required for inline attachments.", f"attachments.{i}.content_id")
        if len(body.get("categories") or []) > 10:
            return error(400, "You cannot have more than 10 categories per request.", "categories")
        message_id = secrets.token_urlsafe(16)
        self._record(Received("sendgrid", message_id, dict(request.headers), body))
        return web.Response(status=202, headers={"X-Message-Id": message_id})

    # --- Postmark ---------------------------------------------------------------------------

    def _postmark_refused(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("X-Postmark-Server-Token")
        if token is None:
            message = (
                "No Account or Server API tokens were supplied in the HTTP headers. "
                "Please add a header for either X-Postmark-Server-Token or X-Postmark-Account-Token."
            )
        elif not hmac.compare_digest(token, self.postmark_server_token):
            message = (
                "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. "
                "Please verify that you are using a valid token."
            )
        else:
            return None
        return _answer(401, {"ErrorCode": 10, "Message": message})

    async def _postmark_server(self, request: web.Request, raw: bytes) -> web.Response:
        if refused := self._postmark_refused(request):
            return refused
        server = {
            "ID": 1,
            "Name": "Staging Testing",
            "ApiTokens": [self.postmark_server_token],
            "Color": "red",
            "SmtpApiActivated": True,
            "DeliveryType": "Live",
            "TrackOpens": False,
        }
        return self._probe_answered("postmark", server)

    async def _postmark(self, request: web.Request, raw: bytes) -> web.Response:
        def error(status: int, code: int, message: str) -> web.Response:
            return _answer(status, {"ErrorCode": code, "Message": message})

        if refused := self._postmark_refused(request):
            return refused
        body = _json_object(raw)
        if body is None:
            return error(422, 402, "Received invalid JSON input.")
        if not body.get("From"):
            return error(422, 300, "Invalid 'From' address: ''.")
        recipients = [
            a.strip() for key in ("To", "Cc", "Bcc") for a in str(body.get(key) or "").split(",") if a.strip()
        ]
        if not body.get("To"):
            return error(422, 300, "Invalid 'To' address: ''.")
        if len(recipients) > 50:
            return error(422, 300, "You can not send to more than 50 recipients per message.")
        if not body.get("HtmlBody") and not body.get("TextBody"):
            return error(422, 300, "Provide either email TextBody or HtmlBody or both.")
        for a in body.get("Attachments") or []:
            if not a.get("Name") or not _is_base64(a.get("Content", "")):
                return error(422, 300, "Attachments need a Name and Base64 Content.")
        inactive = [a for a in recipients if _bare(a) in self.postmark_inactive_recipients]
        if inactive and len(inactive) == len(recipients):
            return error(
                422,
                406,
                "You tried to send to recipient(s) that have been marked as inactive. "
                f"Found inactive addresses: {', '.join(inactive)}.",
            )
        message_id = str(uuid.uuid4())
        self._record(Received("postmark", message_id, dict(request.headers), body))
        return _answer(
            200,
            {
                "To": body["To"],
                "SubmittedAt": datetime.now(UTC).isoformat(),
                "MessageID": message_id,
                "ErrorCode": 0,
                "Message": "OK",
            },
        )

    # --- SES v2 -----------------------------------------------------------------------------

    async def _ses(self, request: web.Request, raw: bytes) -> web.Response:
        def error(status: int, code: str, message: str) -> web.Response:
            return _answer(status, {"message": message}, {"x-amzn-ErrorType": code})

        refused = self._ses_signature_problem(request, raw)
        if refused is not None:
            return error(403, *refused)
        body = _json_object(raw)
        if body is None:
            return error(400, "SerializationException", "Unable to parse the request body as JSON.")
        content = body.get("Content")
        if not isinstance(content, dict) or sum(k in content for k in ("Simple", "Raw", "Template")) != 1:
            return error(400, "BadRequestException", "Content must hold exactly one of Simple, Raw or Template.")
        destination = body.get("Destination") or {}
        addresses = [a for key in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destination.get(key) or []]
        if len(addresses) > 50:
            return error(400, "MessageRejected", "Recipient count exceeds 50.")
        mime: EmailMessage | None = None
        if "Raw" in content:
            data = (content["Raw"] or {}).get("Data", "")
            if not _is_base64(data):
                return error(400, "BadRequestException", "Raw.Data must be Base64.")
            parsed = email.message_from_bytes(base64.b64decode(data), policy=email.policy.default)
            if not isinstance(parsed, EmailMessage) or not (body.get("FromEmailAddress") or parsed["From"]):
                return error(400, "BadRequestException", "The raw message has no From.")
            mime = parsed
            if not addresses and not (parsed["To"] or parsed["Cc"]):
                return error(400, "BadRequestException", "No recipients.")
        elif "Simple" in content:
            simple = content["Simple"] or {}
            if not body.get("FromEmailAddress"):
                return error(400, "BadRequestException", "FromEmailAddress is required.")
            if not addresses:
                return error(400, "BadRequestException", "Destination must have at least one recipient.")
            if not (simple.get("Subject") or {}).get("Data"):
                return error(400, "BadRequestException", "Subject is required.")
            if not (simple.get("Body") or {}):
                return error(400, "BadRequestException", "Body is required.")
        message_id = f"0102{secrets.token_hex(8)}-{uuid.uuid4()}-000000"
        self._record(Received("ses", message_id, dict(request.headers), body, mime))
        return _answer(200, {"MessageId": message_id})

    async def _ses_account(self, request: web.Request, raw: bytes) -> web.Response:
        refused = self._ses_signature_problem(request, raw)
        if refused is not None:
            return _answer(403, {"message": refused[1]}, {"x-amzn-ErrorType": refused[0]})
        parts = _AUTHORIZATION.fullmatch(request.headers["Authorization"].strip())
        if parts is not None and parts["key"] in self.ses_send_only_keys:
            message = f"User: {parts['key']} is not authorized to perform: ses:GetAccount"
            return _answer(403, {"message": message}, {"x-amzn-ErrorType": "AccessDeniedException"})
        account = {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": True,
            "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0},
            "SendingEnabled": True,
        }
        return self._probe_answered("ses", account)

    def _ses_signature_problem(self, request: web.Request, raw: bytes) -> tuple[str, str] | None:
        """None when the request carries a valid SigV4 signature for service ses, else the
        (code, message) SES answers 403 with."""
        authorization = request.headers.get("Authorization")
        if not authorization:
            return "MissingAuthenticationTokenException", "Missing Authentication Token"
        parts = _AUTHORIZATION.fullmatch(authorization.strip())
        if parts is None:
            return "IncompleteSignatureException", "Authorization header requires Credential, SignedHeaders, Signature."
        secret = self.ses_credentials.get(parts["key"])
        if secret is None:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        if parts["service"] != "ses":
            return "SignatureDoesNotMatch", "Credential should be scoped to correct service: 'ses'."
        amz_date = request.headers.get("X-Amz-Date", "")
        try:
            when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "IncompleteSignatureException", "X-Amz-Date is missing or not in the basic ISO 8601 format."
        if not amz_date.startswith(parts["date"]):
            return "SignatureDoesNotMatch", "Date in Credential scope does not match YYYYMMDD from X-Amz-Date."
        if abs((datetime.now(UTC) - when).total_seconds()) > SES_MAX_SKEW_SECONDS:
            return "InvalidSignatureException", "Signature expired: the request time is too far from the server time."
        signed = parts["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed or any(h not in request.headers for h in signed):
            return "SignatureDoesNotMatch", "The request must sign host and x-amz-date, and have every signed header."
        expected = AWSRequest(
            method=request.method,
            url=f"http://{request.headers['Host']}{request.raw_path}",
            data=raw,
            headers={name: request.headers[name] for name in signed},
        )
        expected.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(parts["key"], secret), "ses", parts["region"])
        signature = signer.signature(signer.string_to_sign(expected, signer.canonical_request(expected)), expected)
        if not hmac.compare_digest(signature, parts["signature"]):
            return (
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
            )
        return None


_RESEND_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")

_SES_CODES = {
    400: "BadRequestException",
    403: "AccessDeniedException",
    404: "NotFoundException",
    429: "TooManyRequestsException",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}

_RESEND_NAMES = {
    400: "validation_error",
    401: "missing_api_key",
    403: "invalid_api_key",
    404: "not_found",
    409: "invalid_idempotent_request",
    422: "validation_error",
    429: "rate_limit_exceeded",
    500: "application_error",
}

_POSTMARK_CODES = {401: 10, 422: 300, 429: 0, 500: 0}


def _resend_error(status: int, name: str, message: str) -> web.Response:
    return _answer(status, {"statusCode": status, "name": name, "message": message})


def _default_error(provider: str, status: int) -> Any:
    message = f"injected HTTP {status}"
    if provider == "resend":
        return {"statusCode": status, "name": _RESEND_NAMES.get(status, "application_error"), "message": message}
    if provider == "sendgrid":
        return {"errors": [{"message": message, "field": None}]}
    if provider == "postmark":
        return {"ErrorCode": _POSTMARK_CODES.get(status, 0), "Message": message}
    return {"message": message}


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(body, bytes | str):
        return web.Response(status=status, body=body.encode() if isinstance(body, str) else body, headers=headers)
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers or None
    )


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _bare(address: str) -> str:
    return email.utils.parseaddr(address)[1].lower()
