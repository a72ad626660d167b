"""What each call of the SDK sends and how its answer is read: one description shared by
the sync and the async client, so that the two cannot drift apart."""

from __future__ import annotations

import base64
import mimetypes
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from stackyard.email.contract import (
    AttachmentIn,
    EmailAccepted,
    EmailFilter,
    EmailPage,
    EmailRecord,
    EmailStatus,
    PreviewRequest,
    PreviewResult,
    SendEmailRequest,
    Suppression,
    SuppressionPage,
    SuppressionReason,
    SuppressionRequest,
    TemplateRef,
)
from stackyard.jobs.contract import (
    DeadLetterFilter,
    DeadLetterResult,
    EnqueueRequest,
    EventRequest,
    EventResult,
    HttpTarget,
    Job,
    JobPage,
    QueueInfo,
    QueueList,
)

from .errors import StackyardError
from .retry import RetryPolicy, retry_after

DEFAULT_API_URL = "http://127.0.0.1:8080"
API_URL_ENV = "STACKYARD_API_URL"
API_TOKEN_ENV = "STACKYARD_API_TOKEN"
ADMIN_KEY_ENV = "STACKYARD_ADMIN_KEY"

Answer = TypeVar("Answer", bound=BaseModel)
HttpTargetLike = HttpTarget | Mapping[str, Any] | str
Seconds = float | timedelta
AttachmentLike = AttachmentIn | Mapping[str, Any] | str | os.PathLike[str]
"""An AttachmentIn, its fields as a dict, or the path of a file to attach (see `attachment`)."""
Addresses = str | Sequence[str]
Params = dict[str, str | int | list[str]]


class NoContent(BaseModel):
    """The answer of a call whose success has no body (204)."""


@dataclass(frozen=True)
class Call(Generic[Answer]):
    """One request and the model of its success answer. `repeatable`: sending it again after
    a connection broke mid-request cannot do the thing twice (a read, or an enqueue carrying
    an Idempotency-Key); a request that never reached the api is always sent again.
    `never_retry`: answers after which this call is not sent again whatever the client's
    retry policy says (a login answered 429 or 401 is the caller's to decide on).
    `error_answers`: error statuses whose body is an `answer` too, not a problem (the 503 of
    /readyz says why the api is not ready in the same model as its 200)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    answer: type[Answer]
    json: Any = None
    params: Params | None = None
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = False
    never_retry: frozenset[int] = frozenset()
    error_answers: frozenset[int] = frozenset()

    def retries(self, status: int, policy: RetryPolicy) -> bool:
        """Whether an answer of `status` may be retried under `policy`."""
        return status in policy.statuses and status not in self.never_retry

    def read(self, response: httpx.Response) -> Answer:
        """The answer's model, or the typed exception of its problem."""
        if not response.is_success and response.status_code not in self.error_answers:
            raise StackyardError.from_response(response, retry_after(response))
        try:
            return self.answer.model_validate({} if response.status_code == 204 else response.json())
        except (ValueError, ValidationError) as exc:
            raise StackyardError(
                response.status_code,
                "Unexpected answer",
                f"{self.method} {self.path} answered a body that is not a {self.answer.__name__}: {exc}"[:500],
            ) from exc


def base_url(url: str | None) -> str:
    """The api's URL: the argument, else $STACKYARD_API_URL, else the local default."""
    resolved = (url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
    if not resolved.startswith(("http://", "https://")):
        raise ValueError(f"the stackyard api URL must start with http:// or https://, not {resolved!r}")
    return resolved


def default_headers(token: str | None) -> dict[str, str]:
    """User-Agent, and the bearer token of the argument or of $STACKYARD_API_TOKEN."""
    headers = {"User-Agent": f"stackyard-python/{_version()}", "Accept": "application/json"}
    token = token or os.environ.get(API_TOKEN_ENV)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def admin_key(key: str | None) -> str | None:
    """The admin API key of the argument or of $STACKYARD_ADMIN_KEY, if any."""
    return key or os.environ.get(ADMIN_KEY_ENV) or None


def _version() -> str:
    try:
        return version("stackyard")
    except PackageNotFoundError:
        return "0"


def _seconds(value: Seconds | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _segment(value: str) -> str:
    return quote(value, safe="")


def enqueue(
    function: str | None,
    *,
    http: HttpTargetLike | None,
    payload: Any,
    queue: str,
    priority: int | None,
    delay: Seconds | None,
    run_at: datetime | None,
    timeout: Seconds | None,
    max_attempts: int | None,
    idempotency_key: str | None,
) -> Call[Job]:
    """POST /v1/jobs. The Idempotency-Key header is the caller's key, else a fresh uuid4:
    the same for every retry of this call, so that a retry never enqueues twice.
    Raises pydantic's ValidationError for a request the contract refuses."""
    target = HttpTarget.model_validate({"url": http}) if isinstance(http, str) else http
    request = EnqueueRequest.model_validate(
        {
            "queue": queue,
            "function": function,
            "http": target,
            "payload": payload,
            "priority": priority,
            "delay": _seconds(delay),
            "run_at": run_at,
            "timeout": _seconds(timeout),
            "max_attempts": max_attempts,
            "idempotency_key": idempotency_key,
        }
    )
    body = request.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"idempotency_key"})
    key = request.idempotency_key or str(uuid.uuid4())
    return Call("POST", "/v1/jobs", Job, json=body, headers={"Idempotency-Key": key}, repeatable=True)


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{_segment(job_id)}", Job, repeatable=True)


def cancel_job(job_id: str) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{_segment(job_id)}/cancel", Job)


def list_queues() -> Call[QueueList]:
    return Call("GET", "/v1/queues", QueueList, repeatable=True)


def get_queue(name: str) -> Call[QueueInfo]:
    return Call("GET", f"/v1/queues/{_segment(name)}", QueueInfo, repeatable=True)


def dead_letters(name: str, limit: int, cursor: str | None) -> Call[JobPage]:
    params: Params = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    return Call("GET", f"/v1/queues/{_segment(name)}/dead", JobPage, params=params, repeatable=True)


def dead_letter_action(
    action: Literal["replay", "purge"],
    name: str,
    ids: Sequence[str] | None,
    function: str | None,
    all: bool,
) -> Call[DeadLetterResult]:
    """POST /v1/queues/{name}/dead/{replay,purge}; exactly one selector, or ValidationError."""
    selector = DeadLetterFilter(ids=None if ids is None else list(ids), function=function, all=all)
    body = selector.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Call("POST", f"/v1/queues/{_segment(name)}/dead/{action}", DeadLetterResult, json=body)


def send_event(name: str, data: Any) -> Call[EventResult]:
    body = EventRequest(name=name, data=data).model_dump(mode="json", by_alias=True)
    return Call("POST", "/v1/events", EventResult, json=body)


def attachment(
    path: str | os.PathLike[str],
    *,
    filename: str | None = None,
    content_type: str | None = None,
    content_id: str | None = None,
) -> AttachmentIn:
    """A file to attach: its bytes base64-encoded, named after the file unless `filename` is
    given, its MIME type guessed from the name unless `content_type` is. `content_id` makes
    it an inline attachment (cid:<content_id> in the HTML). Raises OSError when unreadable."""
    file = Path(path)
    name = filename or file.name
    return AttachmentIn(
        filename=name,
        content=base64.b64encode(file.read_bytes()).decode("ascii"),
        content_type=content_type or mimetypes.guess_type(name)[0],
        content_id=content_id,
    )


def _attachment(value: AttachmentLike) -> AttachmentIn | Mapping[str, Any]:
    if isinstance(value, AttachmentIn | Mapping):
        return value
    return attachment(value)


def _addresses(value: Addresses | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def send_email(
    *,
    sender: str,
    to: Addresses,
    subject: str | None,
    html: str | None,
    text: str | None,
    template: str | TemplateRef | None,
    variables: Mapping[str, Any] | None,
    locale: str | None,
    cc: Addresses | None,
    bcc: Addresses | None,
    reply_to: Addresses | None,
    headers: Mapping[str, str] | None,
    attachments: Sequence[AttachmentLike] | None,
    tags: Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
    send_at: datetime | None,
    idempotency_key: str | None,
) -> Call[EmailAccepted]:
    """POST /v1/emails. The Idempotency-Key header is the caller's key, else a fresh uuid4:
    the same for every retry of this call, so that a retry never sends twice. Raises
    pydantic's ValidationError for a request the contract refuses, OSError for an
    attachment path that cannot be read."""
    if isinstance(template, TemplateRef):
        if variables is not None or locale is not None:
            raise ValueError("give variables and locale in the TemplateRef, or a template name with them")
        ref: TemplateRef | dict[str, Any] | None = template
    elif template is not None:
        ref = {"name": template, "variables": dict(variables or {}), "locale": locale}
    elif variables is not None or locale is not None:
        raise ValueError("variables and locale go with a template")
    else:
        ref = None
    request = SendEmailRequest.model_validate(
        {
            "from": sender,
            "to": _addresses(to),
            "cc": _addresses(cc),
            "bcc": _addresses(bcc),
            "reply_to": _addresses(reply_to),
            "subject": subject,
            "html": html,
            "text": text,
            "template": ref,
            "headers": dict(headers or {}),
            "attachments": [_attachment(a) for a in attachments or ()],
            "tags": dict(tags or {}),
            "metadata": dict(metadata or {}),
            "send_at": send_at,
            "idempotency_key": idempotency_key,
        }
    )
    body = request.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"idempotency_key"})
    key = request.idempotency_key or str(uuid.uuid4())
    return Call("POST", "/v1/emails", EmailAccepted, json=body, headers={"Idempotency-Key": key}, repeatable=True)


def get_email(email_id: str) -> Call[EmailRecord]:
    return Call("GET", f"/v1/emails/{_segment(email_id)}", EmailRecord, repeatable=True)


def list_emails(
    *,
    status: EmailStatus | Sequence[EmailStatus] | None,
    to: str | None,
    sender: str | None,
    template: str | None,
    provider: str | None,
    tags: Mapping[str, str] | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> Call[EmailPage]:
    """GET /v1/emails with the filters given; ValidationError for an unknown status."""
    selector = EmailFilter.model_validate(
        {
            "status": [status] if isinstance(status, str) else list(status or ()),
            "to": to,
            "from": sender,
            "template": template,
            "provider": provider,
            "tag": dict(tags or {}),
            "since": since,
            "until": until,
        }
    )
    params: Params = {"limit": limit}
    if selector.status:
        params["status"] = list(selector.status)
    given = {"to": selector.to, "from": selector.sender, "template": selector.template, "provider": selector.provider}
    params |= {name: value for name, value in given.items() if value is not None}
    if selector.tag:
        params["tag"] = [f"{name}:{value}" for name, value in selector.tag.items()]
    for name, moment in (("since", selector.since), ("until", selector.until)):
        if moment is not None:
            params[name] = moment.isoformat()
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/v1/emails", EmailPage, params=params, repeatable=True)


def cancel_email(email_id: str) -> Call[EmailRecord]:
    return Call("POST", f"/v1/emails/{_segment(email_id)}/cancel", EmailRecord)


def preview_template(name: str, variables: Mapping[str, Any] | None, locale: str | None) -> Call[PreviewResult]:
    """POST /v1/email-templates/{name}/preview: renders, changes nothing, so it is repeatable."""
    body = PreviewRequest(variables=dict(variables or {}), locale=locale).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return Call("POST", f"/v1/email-templates/{_segment(name)}/preview", PreviewResult, json=body, repeatable=True)


def list_suppressions(reason: SuppressionReason | None, limit: int, cursor: str | None) -> Call[SuppressionPage]:
    params: Params = {"limit": limit}
    if reason is not None:
        params["reason"] = reason
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/v1/suppressions", SuppressionPage, params=params, repeatable=True)


def add_suppression(address: str, reason: SuppressionReason, detail: str | None) -> Call[Suppression]:
    """POST /v1/suppressions: adding an address again updates its reason, so it is repeatable."""
    body = SuppressionRequest(address=address, reason=reason, detail=detail).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return Call("POST", "/v1/suppressions", Suppression, json=body, repeatable=True)


def remove_suppression(address: str) -> Call[NoContent]:
    return Call("DELETE", f"/v1/suppressions/{_segment(address)}", NoContent)
