"""Senders for the HTTP email APIs: Resend, SendGrid, Postmark and Amazon SES (v2).

Each speaks its service's documented send API over a shared `httpx.AsyncClient` and turns
the answer into `Sent` or one of the `SendFailure` kinds (see `message`):

- 2xx: `Sent(name, the provider's message id)`.
- 401, 403 (and the provider's own "bad credentials / account" codes): `ProviderMisconfigured`.
- 429 (and the provider's own "slow down / quota" codes): `RateLimited`, `retry_after` from
  Retry-After (seconds or an HTTP-date) when given.
- 408, 5xx, timeouts, connection errors: `Retryable`.
- any other 4xx: `Rejected`, with the provider's error message (truncated).

One `send` never takes longer than the sender's `timeout`: connecting, sending and reading
the answer all count. Failure messages carry the provider's words, never a credential.

`probe()` makes one authenticated request that sends nothing (Resend `GET /domains`, SendGrid
`GET /v3/scopes`, Postmark `GET /server`, SES `GET /v2/email/account`) and raises the same
kinds for the same answers, except that a 4xx other than 401, 403, 408 and 429 is
`ProviderMisconfigured` (there is no message to reject: the base URL is not the API). A key
allowed to send but not to read (Resend's sending-access keys, an IAM policy without
`ses:GetAccount`) passes the probe: the provider has authenticated it.
"""

from __future__ import annotations

import asyncio
import base64
import email.policy
import email.utils
from typing import Any, ClassVar

import httpx
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ..jobs.http_target import parse_retry_after
from .message import (
    OutgoingEmail,
    ProviderMisconfigured,
    RateLimited,
    Rejected,
    Retryable,
    SendFailure,
    Sent,
)
from .mime import build_mime

__all__ = [
    "HttpSender",
    "PostmarkSender",
    "ResendSender",
    "SendGridSender",
    "SesSender",
]

ERROR_MESSAGE_LIMIT = 300
"""Characters of a provider's error message kept in a failure."""


def _address(value: str) -> tuple[str, str]:
    """("Name", "address") from "Name <address>" or a bare address."""
    name, address = email.utils.parseaddr(value)
    return name, address or value


def _b64(content: bytes) -> str:
    return base64.b64encode(content).decode("ascii")


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


class HttpSender:
    """What the four senders share: one POST of a JSON body, bounded by `timeout`, and the
    mapping of its answer to `Sent` or a `SendFailure`."""

    provider_type: ClassVar[str]
    path: ClassVar[str]
    probe_path: ClassVar[str]
    """What `probe` GETs: an authenticated read that sends nothing."""

    def __init__(self, name: str, *, client: httpx.AsyncClient, base_url: str, timeout: float) -> None:
        self.name = name
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:  # never the credentials
        return f"{type(self).__name__}({self.name!r}, base_url={self.base_url!r})"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    async def send(self, message: OutgoingEmail) -> Sent:
        body = orjson.dumps(self.body(message))
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(self.auth_headers(message, body))
        response = await self._exchange("POST", self.url, body, headers)
        if response.is_success:
            return Sent(self.name, self.message_id(response))
        raise self.failure(response)

    async def probe(self) -> None:
        """One authenticated GET of `probe_path` that sends nothing: returns when the provider
        takes our credentials, else raises the `SendFailure` kind a send would."""
        url = self.base_url + self.probe_path
        headers = {"Accept": "application/json"}
        headers.update(self.probe_headers(url))
        response = await self._exchange("GET", url, b"", headers)
        if response.is_success or self.probe_passes(response):
            return
        failure = self.failure(response)
        if isinstance(failure, Rejected):  # nothing to reject: the URL or the account is wrong
            raise ProviderMisconfigured(str(failure), status=failure.status, code=failure.code)
        raise failure

    async def _exchange(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        request = self.client.build_request(
            method, url, content=body or None, headers=headers, timeout=httpx.Timeout(self.timeout)
        )
        try:
            async with asyncio.timeout(self.timeout):
                return await self.client.send(request)
        except (TimeoutError, httpx.TimeoutException):
            raise Retryable(f"{self.provider_type}: no answer within {self.timeout:g}s", code="timeout") from None
        except httpx.TransportError as exc:
            raise Retryable(f"{self.provider_type}: {type(exc).__name__}: {self._safe(str(exc))}") from None

    # --- what each provider says differently ------------------------------------------------

    def body(self, message: OutgoingEmail) -> dict[str, Any]:
        raise NotImplementedError

    def auth_headers(self, message: OutgoingEmail, body: bytes) -> dict[str, str]:
        raise NotImplementedError

    def probe_headers(self, url: str) -> dict[str, str]:
        """The credentials of a probe (a GET of `url` without a body)."""
        raise NotImplementedError

    def probe_passes(self, response: httpx.Response) -> bool:
        """An error answer to the probe that still says the credentials are good."""
        return False

    def message_id(self, response: httpx.Response) -> str | None:
        answer = _json(response)
        value = answer.get("id") if isinstance(answer, dict) else None
        return str(value) if value is not None else None

    def error(self, response: httpx.Response) -> tuple[str | None, str]:
        """The provider's error code (if any) and message from an error answer."""
        return None, response.text

    def classify(self, status: int, code: str | None) -> type[SendFailure] | None:
        """A provider-specific kind for this status and code, or None for the common mapping."""
        return None

    def credentials(self) -> tuple[str, ...]:
        """Secrets to scrub from any text that ends up in a failure."""
        return ()

    # --- the common mapping -----------------------------------------------------------------

    def failure(self, response: httpx.Response) -> SendFailure:
        status = response.status_code
        code, text = self.error(response)
        text = self._safe(" ".join(text.split()) or response.reason_phrase or "no message")
        described = f"{self.provider_type}: HTTP {status}" + (f" {code}" if code else "") + f": {text}"
        kind = self.classify(status, code) or self._common_kind(status)
        if issubclass(kind, RateLimited):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            limited = RateLimited(described, retry_after=retry_after, status=status)
            limited.code = code
            return limited
        return kind(described, status=status, code=code)

    @staticmethod
    def _common_kind(status: int) -> type[SendFailure]:
        if status in (401, 403):
            return ProviderMisconfigured
        if status == 429:
            return RateLimited
        if status == 408 or status >= 500:
            return Retryable
        if 400 <= status < 500:
            return Rejected
        return ProviderMisconfigured  # a redirect or an odd status: the base URL is not the API

    def _safe(self, text: str) -> str:
        for secret in self.credentials():
            if secret:
                text = text.replace(secret, "***")
        if len(text) > ERROR_MESSAGE_LIMIT:
            text = text[: ERROR_MESSAGE_LIMIT - 1] + "…"
        return text


class ApiKeySender(HttpSender):
    """A provider whose one credential is an API key (or server token)."""

    DEFAULT_BASE_URL = ""

    def __init__(
        self,
        name: str,
        api_key: str,
        *,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(name, client=client, base_url=base_url or self.DEFAULT_BASE_URL, timeout=timeout)
        self._api_key = api_key

    def credentials(self) -> tuple[str, ...]:
        return (self._api_key,)


class ResendSender(ApiKeySender):
    """Resend: POST /emails with a Bearer API key; `Idempotency-Key` is the message id, so a
    retried send of the same message is not sent twice."""

    provider_type = "resend"
    DEFAULT_BASE_URL = "https://api.resend.com"
    path = "/emails"
    probe_path = "/domains"

    def auth_headers(self, message: OutgoingEmail, body: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Idempotency-Key": message.id}

    def probe_headers(self, url: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def probe_passes(self, response: httpx.Response) -> bool:
        # a key with sending access only may not list domains, but Resend knew it
        return self.error(response)[0] == "restricted_api_key"

    def body(self, message: OutgoingEmail) -> dict[str, Any]:
        body: dict[str, Any] = {"from": message.sender, "to": list(message.to), "subject": message.subject}
        if message.cc:
            body["cc"] = list(message.cc)
        if message.bcc:
            body["bcc"] = list(message.bcc)
        if message.reply_to:
            body["reply_to"] = list(message.reply_to)
        if message.html is not None:
            body["html"] = message.html
        if message.text is not None:
            body["text"] = message.text
        if message.headers:
            body["headers"] = dict(message.headers)
        if message.attachments:
            attachments = []
            for a in message.attachments:
                item = {"filename": a.filename, "content": _b64(a.content), "content_type": a.content_type}
                if a.content_id:
                    item["content_id"] = a.content_id
                attachments.append(item)
            body["attachments"] = attachments
        if message.tags:
            body["tags"] = [{"name": k, "value": v} for k, v in message.tags.items()]
        return body

    def error(self, response: httpx.Response) -> tuple[str | None, str]:
        answer = _json(response)
        if isinstance(answer, dict):
            return answer.get("name"), str(answer.get("message") or "")
        return None, response.text

    def classify(self, status: int, code: str | None) -> type[SendFailure] | None:
        if code == "concurrent_idempotent_requests":
            return Retryable  # the same message is being sent right now: ask again later
        if code in ("daily_quota_exceeded", "monthly_quota_exceeded", "rate_limit_exceeded"):
            return RateLimited
        return None


class SendGridSender(ApiKeySender):
    """SendGrid v3: POST /v3/mail/send with a Bearer API key; 202 and the id in X-Message-Id."""

    provider_type = "sendgrid"
    DEFAULT_BASE_URL = "https://api.sendgrid.com"
    path = "/v3/mail/send"
    probe_path = "/v3/scopes"
    MAX_CATEGORIES = 10
    CATEGORY_LIMIT = 255

    def auth_headers(self, message: OutgoingEmail, body: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def probe_headers(self, url: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    @staticmethod
    def _party(value: str) -> dict[str, str]:
        name, address = _address(value)
        return {"email": address, "name": name} if name else {"email": address}

    def body(self, message: OutgoingEmail) -> dict[str, Any]:
        personalization: dict[str, Any] = {"to": [self._party(a) for a in message.to]}
        if message.cc:
            personalization["cc"] = [self._party(a) for a in message.cc]
        if message.bcc:
            personalization["bcc"] = [self._party(a) for a in message.bcc]
        content = []  # text/plain first, then text/html: the order SendGrid requires
        if message.text is not None:
            content.append({"type": "text/plain", "value": message.text})
        if message.html is not None:
            content.append({"type": "text/html", "value": message.html})
        body: dict[str, Any] = {
            "personalizations": [personalization],
            "from": self._party(message.sender),
            "subject": message.subject,
            "content": content,
        }
        if message.reply_to:
            body["reply_to_list"] = [self._party(a) for a in message.reply_to]
        if message.headers:
            body["headers"] = dict(message.headers)
        if message.attachments:
            attachments = []
            for a in message.attachments:
                item = {
                    "content": _b64(a.content),
                    "type": a.content_type,
                    "filename": a.filename,
                    "disposition": "inline" if a.content_id else "attachment",
                }
                if a.content_id:
                    item["content_id"] = a.content_id
                attachments.append(item)
            body["attachments"] = attachments
        if message.tags:
            body["custom_args"] = dict(message.tags)
            body["categories"] = [
                f"{k}:{v}"[: self.CATEGORY_LIMIT] for k, v in list(message.tags.items())[: self.MAX_CATEGORIES]
            ]
        return body

    def message_id(self, response: httpx.Response) -> str | None:
        value = response.headers.get("X-Message-Id")
        return str(value) if value else None

    def error(self, response: httpx.Response) -> tuple[str | None, str]:
        answer = _json(response)
        if isinstance(answer, dict) and isinstance(answer.get("errors"), list):
            parts = []
            for e in answer["errors"]:
                if isinstance(e, dict):
                    field = e.get("field")
                    parts.append(f"{e.get('message', '')}" + (f" ({field})" if field else ""))
            return None, "; ".join(parts)
        return None, response.text


class PostmarkSender(ApiKeySender):
    """Postmark: POST /email with X-Postmark-Server-Token; the answer's ErrorCode says more
    than the status (422 covers most faults)."""

    provider_type = "postmark"
    DEFAULT_BASE_URL = "https://api.postmarkapp.com"
    path = "/email"
    probe_path = "/server"
    MISCONFIGURED_CODES = frozenset({10, 405, 412})
    """Bad server token; account not allowed to send (no credits); account pending approval."""
    RETRYABLE_CODES = frozenset({100})
    """Maintenance."""

    def __init__(
        self,
        name: str,
        server_token: str,
        *,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        timeout: float = 10.0,
        message_stream: str = "outbound",
    ) -> None:
        super().__init__(name, server_token, client=client, base_url=base_url, timeout=timeout)
        self.message_stream = message_stream

    def auth_headers(self, message: OutgoingEmail, body: bytes) -> dict[str, str]:
        return {"X-Postmark-Server-Token": self._api_key}

    def probe_headers(self, url: str) -> dict[str, str]:
        return {"X-Postmark-Server-Token": self._api_key}

    def body(self, message: OutgoingEmail) -> dict[str, Any]:
        body: dict[str, Any] = {
            "From": message.sender,
            "To": ", ".join(message.to),
            "Subject": message.subject,
            "MessageStream": self.message_stream,
        }
        if message.cc:
            body["Cc"] = ", ".join(message.cc)
        if message.bcc:
            body["Bcc"] = ", ".join(message.bcc)
        if message.reply_to:
            body["ReplyTo"] = ", ".join(message.reply_to)
        if message.html is not None:
            body["HtmlBody"] = message.html
        if message.text is not None:
            body["TextBody"] = message.text
        if message.headers:
            body["Headers"] = [{"Name": k, "Value": v} for k, v in message.headers.items()]
        if message.tags:
            body["Metadata"] = dict(message.tags)
        if message.attachments:
            attachments = []
            for a in message.attachments:
                item = {"Name": a.filename, "Content": _b64(a.content), "ContentType": a.content_type}
                if a.content_id:
                    item["ContentID"] = f"cid:{a.content_id}"
                attachments.append(item)
            body["Attachments"] = attachments
        return body

    def message_id(self, response: httpx.Response) -> str | None:
        answer = _json(response)
        value = answer.get("MessageID") if isinstance(answer, dict) else None
        return str(value) if value is not None else None

    def error(self, response: httpx.Response) -> tuple[str | None, str]:
        answer = _json(response)
        if isinstance(answer, dict):
            code = answer.get("ErrorCode")
            return (str(code) if code is not None else None), str(answer.get("Message") or "")
        return None, response.text

    def classify(self, status: int, code: str | None) -> type[SendFailure] | None:
        if status == 429:
            return RateLimited
        if code is None or not code.isdigit():
            return None
        if int(code) in self.MISCONFIGURED_CODES:
            return ProviderMisconfigured
        if int(code) in self.RETRYABLE_CODES:
            return Retryable
        return None


class SesSender(HttpSender):
    """Amazon SES v2: POST /v2/email/outbound-emails, signed with SigV4 (service "ses").
    Content.Simple for a message without attachments, else Content.Raw with the MIME message."""

    provider_type = "ses"
    path = "/v2/email/outbound-emails"
    probe_path = "/v2/email/account"
    REJECTED_CODES = frozenset({"MessageRejected", "MailFromDomainNotVerifiedException", "BadRequestException"})
    RATE_LIMITED_CODES = frozenset({"TooManyRequestsException", "LimitExceededException", "Throttling"})
    MISCONFIGURED_CODES = frozenset(
        {
            "AccountSuspendedException",
            "SendingPausedException",
            "NotFoundException",  # the configuration set does not exist
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
            "IncompleteSignature",
            "MissingAuthenticationToken",
            "ExpiredTokenException",
        }
    )

    def __init__(
        self,
        name: str,
        *,
        access_key_id: str,
        secret_access_key: str,
        region: str,
        client: httpx.AsyncClient,
        session_token: str | None = None,
        configuration_set: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.region = region
        endpoint = base_url or f"https://email.{region}.amazonaws.com"
        super().__init__(name, client=client, base_url=endpoint, timeout=timeout)
        self._credentials = Credentials(access_key_id, secret_access_key, session_token)
        self.configuration_set = configuration_set

    def credentials(self) -> tuple[str, ...]:
        return tuple(s for s in (self._credentials.secret_key, self._credentials.token) if s)

    def auth_headers(self, message: OutgoingEmail, body: bytes) -> dict[str, str]:
        return self._signed("POST", self.url, body, {"Content-Type": "application/json"})

    def probe_headers(self, url: str) -> dict[str, str]:
        return self._signed("GET", url, b"", {})

    def probe_passes(self, response: httpx.Response) -> bool:
        # signed correctly, but the policy does not allow ses:GetAccount (sending needs only ses:SendEmail)
        return self.error(response)[0] == "AccessDeniedException"

    def _signed(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The SigV4 headers (Authorization, X-Amz-Date, X-Amz-Security-Token) for this request."""
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(self._credentials, "ses", self.region).add_auth(request)
        return {k: v for k, v in request.headers.items() if k.lower() != "content-type"}

    def body(self, message: OutgoingEmail) -> dict[str, Any]:
        destination: dict[str, list[str]] = {"ToAddresses": list(message.to)}
        if message.cc:
            destination["CcAddresses"] = list(message.cc)
        if message.bcc:
            destination["BccAddresses"] = list(message.bcc)
        body: dict[str, Any] = {"FromEmailAddress": message.sender, "Destination": destination}
        if message.reply_to:
            body["ReplyToAddresses"] = list(message.reply_to)
        if message.attachments:
            body["Content"] = {"Raw": {"Data": _b64(build_mime(message).as_bytes())}}
        else:
            simple: dict[str, Any] = {"Subject": {"Data": message.subject, "Charset": "UTF-8"}, "Body": {}}
            if message.text is not None:
                simple["Body"]["Text"] = {"Data": message.text, "Charset": "UTF-8"}
            if message.html is not None:
                simple["Body"]["Html"] = {"Data": message.html, "Charset": "UTF-8"}
            if message.headers:
                simple["Headers"] = [{"Name": k, "Value": v} for k, v in message.headers.items()]
            body["Content"] = {"Simple": simple}
        if message.tags:
            body["EmailTags"] = [{"Name": k, "Value": v} for k, v in message.tags.items()]
        if self.configuration_set:
            body["ConfigurationSetName"] = self.configuration_set
        return body

    def message_id(self, response: httpx.Response) -> str | None:
        answer = _json(response)
        value = answer.get("MessageId") if isinstance(answer, dict) else None
        return str(value) if value is not None else None

    def error(self, response: httpx.Response) -> tuple[str | None, str]:
        # restJson1: the code in x-amzn-ErrorType ("Code:http://..."), or the body's __type/code.
        answer = _json(response)
        answer = answer if isinstance(answer, dict) else {}
        code = response.headers.get("x-amzn-ErrorType") or answer.get("__type") or answer.get("code") or None
        if code:
            code = str(code).split(":", 1)[0].rsplit("#", 1)[-1]
        text = answer.get("message") or answer.get("Message") or ("" if answer else response.text)
        return code, str(text)

    def classify(self, status: int, code: str | None) -> type[SendFailure] | None:
        if code in self.RATE_LIMITED_CODES:
            return RateLimited
        if code in self.MISCONFIGURED_CODES:
            return ProviderMisconfigured
        if code in self.REJECTED_CODES and status < 500:
            return Rejected
        return None
