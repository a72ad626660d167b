"""What a provider is asked to send, and how a send can end: shared by every provider.

A provider's `send(message)` returns `Sent` or raises one of the `SendFailure` subclasses,
which say what the sending pipeline should do next:

- `Retryable`: the provider could not take it now (timeout, connection refused, 5xx): try
  again, on this provider later or on the next provider at once (failover).
- `RateLimited(retry_after)`: the provider said 429 / slow down: fail over, and do not ask
  this provider again before `retry_after` seconds.
- `Rejected`: the message itself is wrong for the provider (invalid address, unverified
  sender domain, too large): another attempt cannot help, on any provider. No failover.
- `ProviderMisconfigured`: our credentials or settings for this provider are wrong (401, 403,
  bad SMTP AUTH): fail over to the next provider, and report it on the EmailProvider.

Messages of failures are safe to log and store: they never hold a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"
    content_id: str | None = None
    """Set for an inline attachment referenced from the HTML as cid:<content_id>."""


@dataclass(frozen=True)
class OutgoingEmail:
    """One message, fully rendered (templates already applied), addresses validated."""

    id: str
    """stackyard's message id; providers that take an idempotency key get this one."""
    sender: str
    """The From header: "Name <address>" or a bare address."""
    to: tuple[str, ...]
    subject: str
    text: str | None = None
    html: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    """Provider-side tags / categories / metadata (name -> value), for the provider's own analytics."""

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc + self.bcc


@dataclass(frozen=True)
class Sent:
    provider: str
    """The EmailProvider's name."""
    provider_message_id: str | None
    """The provider's id for the message (for matching its webhooks), if it gave one."""


class SendFailure(Exception):
    """A send that did not go through; the subclass says what to do next."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Retryable(SendFailure):
    pass


class RateLimited(Retryable):
    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = 429) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Rejected(SendFailure):
    pass


class ProviderMisconfigured(SendFailure):
    pass
