"""What the SDK raises: the api's problem+json answers as typed exceptions, and the failure
to get an answer at all."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from stackyard.db.contract import DatabaseView
from stackyard.jobs.contract import Job

_PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance")


class StackyardError(Exception):
    """The api answered with an error: the fields of its RFC 9457 problem+json body.

    `extensions` holds the body's other members (`errors` of a 422, `retryAfter` of a 429,
    ...). `retry_after` is the answer's Retry-After in seconds, when it had one. `trace_id`
    is the request's trace id when the api traced it: quote it when reporting a failure.
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

    @property
    def code(self) -> str | None:
        """The problem's `code`, where the api gives one (the search API's Meilisearch codes:
        index_not_found, invalid_search_filter, invalid_document_id, ...)."""
        value = self.extensions.get("code")
        return value if isinstance(value, str) else None

    @property
    def trace_id(self) -> str | None:
        """The problem's `traceId` (32 hex digits), when the api's telemetry is on."""
        value = self.extensions.get("traceId")
        return value if isinstance(value, str) else None

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
        error_class = _BY_TYPE.get(slug)
        if error_class is None or error_class.status_code != status:
            error_class = _BY_STATUS.get(status, StackyardError)
        return error_class(
            status,
            str(body.get("title") or response.reason_phrase or "HTTP error"),
            str(body.get("detail") or ""),
            type=str(body.get("type") or "about:blank"),
            instance=body.get("instance"),
            extensions={k: v for k, v in body.items() if k not in _PROBLEM_FIELDS},
            retry_after=retry_after,
        )


class Unauthorized(StackyardError):
    """401: the request's credentials were refused (a password, a token, the admin key)."""

    status_code = 401


class Forbidden(StackyardError):
    """403: the caller is known but may not do this."""

    status_code = 403


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


# The auth problems (stackyard.auth.errors), each under the exception of its status.


class InvalidCredentials(Unauthorized):
    """401: the email and password (or the MFA code) do not match an account that may log in;
    the answer is the same for an address without an account."""


class InvalidToken(Unauthorized):
    """401: an access, refresh or emailed token that is missing, malformed, expired, used or
    revoked."""


class RefreshTokenReused(InvalidToken):
    """401: a refresh token presented after it was rotated. The api takes it as theft and has
    revoked the whole session: log in again."""


class AdminKeyRefused(Unauthorized):
    """401: the admin API key is missing or wrong."""


class EmailNotVerified(Forbidden):
    """403: the account's address is not confirmed yet (`auth.resend_verification`)."""


class AccountDisabled(Forbidden):
    """403: an admin disabled the account."""


class SignupDisabled(Forbidden):
    """403: the Stack does not let people sign up."""


class EmailTaken(Conflict):
    """409: another account has this address."""


class LastOwner(Conflict):
    """409: deleting the user would leave an organisation with members but no owner;
    `extensions` names the organisations (delete with transfer_sole_owned=True)."""


class InvalidEmail(Unprocessable):
    """422: not an email address the api accepts."""


class WeakPassword(Unprocessable):
    """422: the password policy refused the password; `detail` says why."""


class TooManyAttempts(RateLimited):
    """429: too many failed attempts for the account or from this address. Never retried by
    the client (another attempt would only extend a lockout): `retry_after` says in how many
    seconds to try again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.retry_after is None and isinstance(self.extensions.get("retryAfter"), int | float):
            self.retry_after = float(self.extensions["retryAfter"])


class BadRequest(StackyardError):
    """400: the request cannot be served as it is (`code` says why)."""

    status_code = 400


class InvalidOAuthState(BadRequest):
    """400: an OAuth login code (`auth.oauth_exchange`) that is unknown, expired, used, or
    sent without the code_verifier of its code_challenge."""


class LastLoginMethod(Conflict):
    """409: unlinking this identity would leave the account no way to log in."""


# The search API's problems (stackyard_api.routers.search).


class InvalidSearch(BadRequest):
    """400: a filter expression that does not parse or names an attribute that is not
    filterable (code invalid_search_filter), or a bad sort or facets; `position` is the
    0-based character offset of the error."""

    @property
    def position(self) -> int | None:
        value = self.extensions.get("position")
        return value if isinstance(value, int) else None


class InvalidDocument(BadRequest):
    """400: a document without its primary key (code missing_document_id), with an id that
    is not an integer or a string of A-Z a-z 0-9 _ - (invalid_document_id), or not an object."""


class IndexNotFound(NotFound):
    """404: the Stack has no SearchIndex of this name."""


class SearchKeyRefused(Unauthorized):
    """401: no API key, or one that is neither the admin API key nor the search API key."""


class SearchUnavailable(Unavailable):
    """503: the search component did not answer the api, still after the client's retries."""


class AuthNotConfigured(Unavailable):
    """503: something the auth flow needs is not set up (signing keys, email, the admin key)."""


_BY_STATUS: dict[int, type[StackyardError]] = {
    c.status_code: c
    for c in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unprocessable, RateLimited, Unavailable)
    if c.status_code
}


_BY_TYPE: dict[str, type[StackyardError]] = {
    "recipient-suppressed": RecipientSuppressed,
    "invalid-credentials": InvalidCredentials,
    "invalid-token": InvalidToken,
    "refresh-token-reused": RefreshTokenReused,
    "admin-key": AdminKeyRefused,
    "email-not-verified": EmailNotVerified,
    "account-disabled": AccountDisabled,
    "signup-disabled": SignupDisabled,
    "email-taken": EmailTaken,
    "last-owner": LastOwner,
    "invalid-email": InvalidEmail,
    "weak-password": WeakPassword,
    "too-many-attempts": TooManyAttempts,
    "auth-not-configured": AuthNotConfigured,
    "invalid-oauth-state": InvalidOAuthState,
    "last-login-method": LastLoginMethod,
    "invalid-search-filter": InvalidSearch,
    "invalid-search-sort": InvalidSearch,
    "invalid-search-facets": InvalidSearch,
    "invalid-document": InvalidDocument,
    "index-not-found": IndexNotFound,
    "search-key": SearchKeyRefused,
    "search-unavailable": SearchUnavailable,
}
"""Problems more precise than their status, by the last segment of their type URI. A slug
is trusted only under the status it belongs to (see `from_response`)."""


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


class MigrationFailed(Exception):
    """`databases.wait_migrated`: a migration run failed while it waited; `database` is the
    Database as last read (its migration's failed_version and error say which and why)."""

    def __init__(self, database: DatabaseView) -> None:
        migration = database.migration
        failed = migration.failed_version if migration else None
        error = migration.error if migration else None
        at = migration.version if migration else 0
        super().__init__(f"Database {database.name}: version {failed} failed: {error}; the database stays at {at}")
        self.database = database


class MigrationWaitTimeout(TimeoutError):
    """`databases.wait_migrated` gave up before the Database reached the version; `database`
    is the Database as last read."""

    def __init__(self, database: DatabaseView, version: int, timeout: float) -> None:
        at = database.migration.version if database.migration else None
        where = f"it is at {at}" if at is not None else f"its migration state is unknown ({database.error or 'none'})"
        super().__init__(f"Database {database.name} did not reach version {version} within {timeout:g} s; {where}")
        self.database = database
        self.version = version
        self.timeout = timeout
