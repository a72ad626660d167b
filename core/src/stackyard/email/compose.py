"""From a send request to a message: addresses validated, a template rendered, attachments
decoded and measured; and the message as the email job's payload (and back).

Everything here is pure: what it needs of the Stack (its EmailTemplates) is given. Errors
are problems a user caused, each saying what to change."""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..jobs.ids import sortable_id
from ..problems import PayloadTooLarge, UnprocessableContent
from .addresses import MAX_RECIPIENTS, InvalidAddress, Mailbox, parse_mailbox, parse_mailboxes
from .contract import MAX_ATTACHMENT_BYTES, AttachmentInfo, EmailRecord, SendEmailRequest, TimelineEvent
from .message import Attachment, OutgoingEmail
from .mime import RESERVED_HEADERS
from .templates import (
    CompiledTemplate,
    RenderedEmail,
    TemplateRenderFailed,
    TemplateVariablesInvalid,
    html_to_text,
)

MAX_SEND_AHEAD = timedelta(days=30)
"""How far ahead send-at may be (Resend's limit is 30 days too)."""
ID_TAG = "stackyard_id"
"""The tag every message carries to its provider, so webhooks name the message they are about."""


class TemplateNotFound(UnprocessableContent):
    slug, title = "template-not-found", "Email template not found"


class TemplateVariablesRefused(UnprocessableContent):
    slug, title = "template-variables", "Template variables do not match"


@dataclass(frozen=True)
class Composed:
    message: OutgoingEmail
    recipients: tuple[Mailbox, ...]
    """To, cc and bcc, each once."""
    template: str | None
    locale: str | None
    send_at: datetime | None


def new_message_id() -> str:
    return "em_" + sortable_id()


def compose(
    request: SendEmailRequest,
    message_id: str,
    templates: Mapping[str, CompiledTemplate],
    *,
    now: datetime | None = None,
) -> Composed:
    """The message `request` describes, or an `UnprocessableContent` / `PayloadTooLarge`."""
    now = now or datetime.now(UTC)
    sender = _one(request.sender, "from")
    to = _many(request.to, "to")
    cc = _without(_many(request.cc, "cc"), to)
    bcc = _without(_many(request.bcc, "bcc"), to + cc)
    reply_to = _many(request.reply_to, "replyTo")
    recipients = to + cc + bcc
    if len(recipients) > MAX_RECIPIENTS:
        raise UnprocessableContent(
            f"{len(recipients)} recipients; to, cc and bcc together may have at most {MAX_RECIPIENTS}",
            limit=MAX_RECIPIENTS,
        )
    _check_headers(request.headers)
    send_at = _send_at(request.send_at, now)
    subject, html, text, template, locale = _content(request, templates)
    message = OutgoingEmail(
        id=message_id,
        sender=str(sender),
        to=tuple(str(m) for m in to),
        cc=tuple(str(m) for m in cc),
        bcc=tuple(str(m) for m in bcc),
        reply_to=tuple(str(m) for m in reply_to),
        subject=subject,
        text=text,
        html=html,
        headers=dict(request.headers),
        attachments=_attachments(request),
        tags={**request.tags, ID_TAG: message_id},
    )
    return Composed(message, recipients, template, locale, send_at)


def _one(value: str, field: str) -> Mailbox:
    try:
        return parse_mailbox(value, field)
    except InvalidAddress as exc:
        raise UnprocessableContent(str(exc), field=exc.field, reason=exc.reason) from None


def _many(values: list[str], field: str) -> tuple[Mailbox, ...]:
    try:
        return parse_mailboxes(values, field)
    except InvalidAddress as exc:
        raise UnprocessableContent(str(exc), field=exc.field, reason=exc.reason) from None


def _without(mailboxes: tuple[Mailbox, ...], earlier: tuple[Mailbox, ...]) -> tuple[Mailbox, ...]:
    """A recipient gets one copy: an address already in to (or cc) is left out of cc (or bcc)."""
    seen = {m.suppression_key for m in earlier}
    return tuple(m for m in mailboxes if m.suppression_key not in seen)


def _check_headers(headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if name.strip().lower() in RESERVED_HEADERS:
            raise UnprocessableContent(f"header {name!r} is set from the request's fields, not by headers", header=name)
        if not name or any(c in name for c in ": \r\n") or "\r" in value or "\n" in value:
            raise UnprocessableContent(f"header {name!r}: names have no ':' or spaces, and no line breaks", header=name)


def _send_at(send_at: datetime | None, now: datetime) -> datetime | None:
    if send_at is None:
        return None
    if send_at.tzinfo is None:
        raise UnprocessableContent("sendAt needs a time zone (for example 2026-12-01T09:00:00Z)")
    if send_at - now > MAX_SEND_AHEAD:
        raise UnprocessableContent(f"sendAt may be at most {MAX_SEND_AHEAD.days} days ahead")
    return send_at if send_at > now else None


def _content(
    request: SendEmailRequest, templates: Mapping[str, CompiledTemplate]
) -> tuple[str, str | None, str | None, str | None, str | None]:
    """(subject, html, text, template name, locale)."""
    ref = request.template
    if ref is None:
        assert request.subject is not None  # the request's own validation
        text = request.text
        if text is None and request.html is not None:
            text = html_to_text(request.html)
        return request.subject, request.html, text, None, None
    compiled = templates.get(ref.name)
    if compiled is None:
        known = ", ".join(sorted(templates)) or "none"
        raise TemplateNotFound(
            f"no EmailTemplate {ref.name!r} is in force in this Stack (in force: {known})", template=ref.name
        )
    rendered = render(ref.name, compiled, ref.variables, ref.locale)
    return rendered.subject, rendered.html, rendered.text, ref.name, rendered.locale


def render(name: str, compiled: CompiledTemplate, variables: Mapping[str, Any], locale: str | None) -> RenderedEmail:
    """The template rendered, or a problem naming the variables or the part that failed."""
    try:
        return compiled.render(variables, locale)
    except TemplateVariablesInvalid as exc:
        raise TemplateVariablesRefused(
            f"template {name}: {exc.message}", missing=list(exc.missing), unknown=list(exc.unknown)
        ) from None
    except TemplateRenderFailed as exc:
        raise UnprocessableContent(f"template {name}: {exc.message}", part=exc.part) from None


def _attachments(request: SendEmailRequest) -> tuple[Attachment, ...]:
    out, total = [], 0
    for i, item in enumerate(request.attachments):
        try:
            content = base64.b64decode(item.content, validate=True)
        except (binascii.Error, ValueError):
            where = f"attachments[{i}]"
            raise UnprocessableContent(f"{where}.content is not valid base64", field=where) from None
        total += len(content)
        if total > MAX_ATTACHMENT_BYTES:
            raise PayloadTooLarge(
                f"attachments take more than {MAX_ATTACHMENT_BYTES} bytes together (decoded)",
                limit=MAX_ATTACHMENT_BYTES,
            )
        content_type = item.content_type or mimetypes.guess_type(item.filename)[0] or "application/octet-stream"
        if "\r" in item.filename or "\n" in item.filename:
            raise UnprocessableContent(f"attachments[{i}].filename has a line break", field=f"attachments[{i}]")
        out.append(Attachment(item.filename, content, content_type, item.content_id))
    return tuple(out)


def initial_record(
    request: SendEmailRequest, composed: Composed, *, job_id: str | None, now: datetime, status: str, detail: str | None
) -> EmailRecord:
    """The delivery-log record of a message just accepted (or refused before sending)."""
    message = composed.message
    return EmailRecord.model_validate(
        {
            **_addressed(message),
            "status": status,
            "template": composed.template,
            "locale": composed.locale,
            "attachments": [
                AttachmentInfo(filename=a.filename, content_type=a.content_type, size=len(a.content))
                for a in message.attachments
            ],
            "tags": dict(request.tags),
            "metadata": request.metadata,
            "idempotencyKey": request.idempotency_key,
            "createdAt": now,
            "updatedAt": now,
            "sendAt": composed.send_at,
            "jobId": job_id,
            "timeline": [TimelineEvent(at=now, type=status, detail=detail)],
        }
    )


# -- the email job's payload ------------------------------------------------------------


def _addressed(message: OutgoingEmail) -> dict[str, Any]:
    """The message's id, parties, subject and bodies, as the wire writes them."""
    return {
        "id": message.id,
        "from": message.sender,
        "to": list(message.to),
        "cc": list(message.cc),
        "bcc": list(message.bcc),
        "replyTo": list(message.reply_to),
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
    }


def to_payload(message: OutgoingEmail) -> dict[str, Any]:
    return {
        **_addressed(message),
        "headers": message.headers,
        "tags": message.tags,
        "attachments": [
            {
                "filename": a.filename,
                "contentType": a.content_type,
                "contentId": a.content_id,
                "content": base64.b64encode(a.content).decode(),
            }
            for a in message.attachments
        ],
    }


def from_payload(payload: Mapping[str, Any]) -> OutgoingEmail:
    return OutgoingEmail(
        id=payload["id"],
        sender=payload["from"],
        to=tuple(payload["to"]),
        cc=tuple(payload.get("cc", ())),
        bcc=tuple(payload.get("bcc", ())),
        reply_to=tuple(payload.get("replyTo", ())),
        subject=payload["subject"],
        text=payload.get("text"),
        html=payload.get("html"),
        headers=dict(payload.get("headers", {})),
        tags=dict(payload.get("tags", {})),
        attachments=tuple(
            Attachment(a["filename"], base64.b64decode(a["content"]), a["contentType"], a.get("contentId"))
            for a in payload.get("attachments", ())
        ),
    )
