"""What the SDK raises: the api's problem+json answers as typed exceptions, and the failure
to get an answer at all."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from stackyard.jobs.contract import Job

_PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance")


class StackyardError(Exception):
    """The api answered with an error: the fields of its RFC 9457 problem+json body.

    `extensions` holds the body's other members (`errors` of a 422, `retryAfter` of a 429,
    ...). `retry_after` is the answer's Retry-After in seconds, when it had one.
    """

    status_code: ClassVar[int | None] = None

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        type: str = "about:blank",
        instance: str | None = None,
        extensions: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{title}: {detail} (HTTP {status})" if detail else f"{title} (HTTP {status})")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.instance = instance
        self.extensions = extensions or {}
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: httpx.Response, retry_after: float | None = None) -> StackyardError:
        """The exception for an error answer, of the subclass its problem type or else its
        status names. A body that is not a problem (a proxy's HTML page) still gives a status
        and a title."""
        status = response.status_code
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if not isinstance(body, dict):
            text = " ".join(response.text.split())[:200] if response.content else ""
            body = {"title": response.reason_phrase or "HTTP error", "detail": text}
        slug = str(body.get("type") or "").rsplit("/", 1)[-1]
        error_class = _BY_TYPE.get(slug) or _BY_STATUS.get(status, StackyardError)
        return error_class(
            status,
            str(body.get("title") or response.reason_phrase or "HTTP error"),
            str(body.get("detail") or ""),
            type=str(body.get("type") or "about:blank"),
            instance=body.get("instance"),
            extensions={k: v for k, v in body.items() if k not in _PROBLEM_FIELDS},
            retry_after=retry_after,
        )


class NotFound(StackyardError):
    """404: no such job, queue, email, template, suppressed address or route."""

    status_code = 404


class Conflict(StackyardError):
    """409: the request does not fit the current state (cancelling a finished job or an email
    already sent, an idempotency key reused with another body)."""

    status_code = 409


class Unprocessable(StackyardError):
    """422: the body broke a rule of the contract; `extensions["errors"]` lists where."""

    status_code = 422


class RecipientSuppressed(Unprocessable):
    """422: a recipient of the email is on the suppression list. Nothing was sent; the
    delivery log holds the message as `suppressed` under `email_id`."""

    @property
    def suppressed(self) -> list[dict[str, str]]:
        """The refused recipients: [{"address": ..., "reason": ...}]."""
        return list(self.extensions.get("suppressed") or [])

    @property
    def email_id(self) -> str | None:
        value = self.extensions.get("id")
        return str(value) if value is not None else None


class RateLimited(StackyardError):
    """429: a rate limit refused the request, still after the client's retries."""

    status_code = 429


class Unavailable(StackyardError):
    """503: the api is not ready (no config yet, Redis gone), still after the client's retries."""

    status_code = 503


_BY_STATUS: dict[int, type[StackyardError]] = {
    c.status_code: c for c in (NotFound, Conflict, Unprocessable, RateLimited, Unavailable) if c.status_code
}


_BY_TYPE: dict[str, type[StackyardError]] = {"recipient-suppressed": RecipientSuppressed}
"""Problems more precise than their status, by the last segment of their type URI."""


class ApiUnreachable(Exception):
    """No answer from the api: the connection was refused, broke, or timed out, still after
    the client's retries. `url` is the api's base URL. When `maybe_applied` is true the
    request had been sent before the connection broke, so the api may have acted on it."""

    def __init__(self, url: str, reason: str, *, maybe_applied: bool = False) -> None:
        super().__init__(f"cannot reach the stackyard api at {url}: {reason}")
        self.url = url
        self.reason = reason
        self.maybe_applied = maybe_applied


class WaitTimeout(TimeoutError):
    """`jobs.wait` gave up before the job finished; `job` is the last state it read."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} did not finish within {timeout:g} s (state: {job.state})")
        self.job = job
        self.timeout = timeout
