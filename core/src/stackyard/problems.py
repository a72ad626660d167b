"""Problems a user can cause, as RFC 9457 problem details.

Core code raises `Problem` (or a subclass); the api renders it once as
application/problem+json. The detail is for people and never holds a secret.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://stackyard.dev/problems/"


class Problem(Exception):
    """An error with an HTTP status, a stable type slug and a human detail."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "unavailable", "Service unavailable"


class CapabilityOff(ServiceUnavailable):
    """The Stack has this capability turned off (spec.capabilities)."""

    slug, title = "capability-off", "Capability turned off"


class NotConfigured(ServiceUnavailable):
    slug, title = "not-configured", "Not configured yet"


class BackendUnavailable(ServiceUnavailable):
    """A server the programs depend on did not answer; `Retry-After` (and the `retryAfter`
    extension) says when to try again. Subclasses name the server (`subject`)."""

    RETRY_AFTER = 5
    subject = "the server"

    def __init__(self, detail: str | None = None, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(
            detail or f"{self.subject} did not answer; try again in {retry_after} s", retryAfter=retry_after
        )
        self.headers = {"Retry-After": str(retry_after)}


class DatabaseUnavailable(BackendUnavailable):
    """MongoDB could not be reached or did not answer in time (the api's answer to the
    driver's connection errors). The programs reconnect by themselves once the server is back."""

    slug, title = "database-unavailable", "Database unavailable"
    subject = "the database"


class TooManyRequests(Problem):
    """A rate limit refused the request; `Retry-After` says when to try again."""

    status, slug, title = 429, "too-many-requests", "Too many requests"


class RateLimitUnavailable(ServiceUnavailable):
    """A policy that fails closed could not be decided (Redis failed or was too slow)."""

    slug, title = "rate-limit-unavailable", "Rate limit unavailable"


class UnprocessableContent(Problem):
    status, slug, title = 422, "unprocessable", "Unprocessable request"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"
