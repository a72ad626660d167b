"""The wire contract of /v1/emails and /v1/suppressions: request and response bodies, shared
by the api's routers, the delivery log, the Python SDK and the CLI so that they cannot drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

EmailStatus = Literal[
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "deferred",
    "bounced",
    "complained",
    "failed",
    "suppressed",
    "dead",
    "cancelled",
]
"""scheduled: waits for its send-at time; queued: waits for a worker; sending: a worker is
trying the providers; sent: a provider took it; delivered: the provider says the receiving
server took it; deferred: the provider keeps retrying (a soft bounce); bounced: a hard bounce;
complained: a recipient marked it as spam; failed: refused by a provider (the message is
wrong; no retry); suppressed: refused before sending, a recipient is on the suppression list;
dead: every attempt failed (it sits in the email queue's dead letters, and can be replayed);
cancelled: a scheduled message cancelled before its time."""

EMAIL_STATUSES: tuple[str, ...] = EmailStatus.__args__  # type: ignore[attr-defined]

TimelineType = Literal[
    "queued",
    "scheduled",
    "attempt",
    "sent",
    "delivered",
    "deferred",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "failed",
    "suppressed",
    "retry",
    "dead",
    "cancelled",
    "replayed",
]

SuppressionReason = Literal["bounce", "complaint", "unsubscribe", "manual"]

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255)]
TagName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,256}$")]
TagValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,256}$")]
"""Resend's rule for tags (ASCII letters, digits, _ and -), which every provider accepts."""

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
"""All attachments of a message together, decoded: Postmark's limit, the smallest of the
providers' (Resend 40 MB, SES 40 MB, SendGrid 30 MB), so any provider can fail over to any."""


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class AttachmentIn(_Wire):
    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="The file name the recipient sees."
    )
    content: str = Field(description="The file's bytes, base64-encoded.")
    content_type: str | None = Field(
        default=None, max_length=255, description="MIME type; guessed from the file name when absent."
    )
    content_id: str | None = Field(
        default=None,
        max_length=255,
        description="Makes it an inline attachment, referenced from the HTML as cid:<contentId>.",
    )


class TemplateRef(_Wire):
    name: str = Field(description="The EmailTemplate's name.", max_length=253)
    variables: dict[str, Any] = Field(default_factory=dict, description="Values for the template's variables.")
    locale: str | None = Field(default=None, max_length=35, description="A locale tag; the template's default else.")


class SendEmailRequest(_Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "Acme <hello@acme.dev>",
                    "to": ["ana@example.com"],
                    "subject": "Your receipt",
                    "html": "<p>Thanks for your order.</p>",
                    "tags": {"category": "receipt"},
                },
                {
                    "from": "hello@acme.dev",
                    "to": ["ana@example.com"],
                    "template": {"name": "welcome", "variables": {"name": "Ana"}, "locale": "fr"},
                    "sendAt": "2026-12-01T09:00:00Z",
                },
            ]
        }
    )

    sender: str = Field(alias="from", max_length=998, description='The From: "Name <address>" or an address.')
    to: list[str] = Field(min_length=1, max_length=50, description="Recipients.")
    cc: list[str] = Field(default_factory=list, max_length=50)
    bcc: list[str] = Field(default_factory=list, max_length=50)
    reply_to: list[str] = Field(default_factory=list, max_length=10)
    subject: str | None = Field(default=None, max_length=998, description="Required unless a template is given.")
    html: str | None = Field(default=None, max_length=2 * 1024 * 1024)
    text: str | None = Field(default=None, max_length=2 * 1024 * 1024, description="Derived from html when absent.")
    template: TemplateRef | None = Field(default=None, description="Render an EmailTemplate instead of bodies.")
    headers: dict[str, str] = Field(default_factory=dict, max_length=50, description="Extra MIME headers.")
    attachments: list[AttachmentIn] = Field(
        default_factory=list,
        max_length=50,
        description=f"Files, at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB together after decoding.",
    )
    tags: dict[TagName, TagValue] = Field(
        default_factory=dict, max_length=20, description="Sent to the provider for its analytics; filterable here."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, max_length=50, description="Yours: stored in the delivery log, never sent."
    )
    idempotency_key: IdempotencyKey | None = Field(
        default=None,
        description=(
            "The same key within 24 hours answers the first message and sends nothing more (the "
            "Idempotency-Key header does the same); the same key with a different body is a 409."
        ),
    )
    send_at: datetime | None = Field(default=None, description="Send at this time (RFC 3339), up to 30 days ahead.")

    @model_validator(mode="after")
    def _content(self) -> SendEmailRequest:
        if self.template is not None:
            if self.html is not None or self.text is not None or self.subject is not None:
                raise ValueError("give a template, or subject and html/text, not both")
        else:
            if not self.subject:
                raise ValueError("subject is required without a template")
            if self.html is None and self.text is None:
                raise ValueError("give html or text (or a template)")
        return self


class EmailAccepted(_Wire):
    id: str = Field(description="The message's id: follow it with GET /v1/emails/{id}.")
    status: EmailStatus
    send_at: datetime | None = None


class TimelineEvent(_Wire):
    at: datetime
    type: TimelineType
    provider: str | None = Field(default=None, description="The EmailProvider concerned.")
    outcome: str | None = Field(default=None, description="For an attempt: how it ended.")
    status: int | None = Field(default=None, description="The provider's HTTP status or SMTP reply code.")
    recipient: str | None = Field(default=None, description="For a provider event: the recipient it is about.")
    detail: str | None = Field(default=None, description="The provider's words, or why; never a credential.")
    duration_ms: float | None = None


class AttachmentInfo(_Wire):
    filename: str
    content_type: str
    size: int


class EmailRecord(_Wire):
    id: str
    status: EmailStatus
    sender: str = Field(alias="from")
    to: list[str]
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    reply_to: list[str] = Field(default_factory=list)
    subject: str
    html: str | None = None
    text: str | None = None
    template: str | None = Field(default=None, description="The EmailTemplate it was rendered from.")
    locale: str | None = None
    attachments: list[AttachmentInfo] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    created_at: datetime
    updated_at: datetime
    send_at: datetime | None = None
    provider: str | None = Field(default=None, description="The provider that sent it.")
    provider_message_id: str | None = None
    attempts: int = Field(default=0, description="Provider attempts so far.")
    last_error: str | None = None
    job_id: str | None = Field(default=None, description="The job that sends it, on the email queue.")
    timeline: list[TimelineEvent] = Field(default_factory=list)


class EmailSummary(_Wire):
    """A delivery-log row in a list: no bodies, no timeline."""

    id: str
    status: EmailStatus
    sender: str = Field(alias="from")
    to: list[str]
    subject: str
    template: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    provider: str | None = None
    last_error: str | None = None


class EmailPage(_Wire):
    items: list[EmailSummary]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")


class EmailFilter(_Wire):
    """What GET /v1/emails filters on (all given filters apply)."""

    status: list[EmailStatus] = Field(default_factory=list)
    to: str | None = Field(default=None, description="A recipient (to, cc or bcc), exact, case-insensitive.")
    sender: str | None = Field(default=None, alias="from", description="The From address, exact, case-insensitive.")
    template: str | None = None
    provider: str | None = None
    tag: dict[str, str] = Field(default_factory=dict, description="Tags that must all be set to these values.")
    since: datetime | None = Field(default=None, description="Created at or after.")
    until: datetime | None = Field(default=None, description="Created before.")


class Suppression(_Wire):
    address: str = Field(description="The suppressed address, normalised and lower-cased.")
    reason: SuppressionReason
    detail: str | None = Field(default=None, description="The bounce or complaint as the provider gave it.")
    provider: str | None = Field(default=None, description="The provider whose event added it.")
    email_id: str | None = Field(default=None, description="The message whose bounce or complaint added it.")
    created_at: datetime


class SuppressionRequest(_Wire):
    address: str = Field(max_length=320)
    reason: SuppressionReason = "manual"
    detail: str | None = Field(default=None, max_length=1000)


class SuppressionPage(_Wire):
    items: list[Suppression]
    next_cursor: str | None = None


class PreviewRequest(_Wire):
    variables: dict[str, Any] = Field(default_factory=dict, description="Sample values; declared defaults fill in.")
    locale: str | None = None


class PreviewResult(_Wire):
    template: str
    locale: str
    subject: str
    html: str | None
    text: str | None
