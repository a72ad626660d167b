"""When the client sends a request again: 429 and 503 answers and failed connections, with
exponential backoff and full jitter, honouring Retry-After, within a bounded number of
attempts and a bounded total time."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx


@dataclass(frozen=True)
class RetryPolicy:
    """How persistently one call is retried.

    attempts: sends at most (1 turns retries off). backoff: the first retry's delay bound,
    doubled each retry up to max_backoff; the delay is drawn uniformly below the bound (full
    jitter). A Retry-After answer waits what it says instead, plus up to `backoff` of jitter.
    total: seconds from the first send after which no retry starts; a Retry-After that ends
    later gives up at once.
    """

    attempts: int = 5
    backoff: float = 0.25
    max_backoff: float = 8.0
    total: float = 30.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0 or self.total < 0:
            raise ValueError("backoff, max_backoff and total cannot be negative")

    def start(self) -> Attempts:
        return Attempts(self)


NO_RETRY = RetryPolicy(attempts=1)


class Attempts:
    """The retry state of one call: after each failure, `next_delay` says how long to wait
    before the next send, or None to give up."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.sent = 1
        self.started = time.monotonic()

    def next_delay(self, retry_after: float | None = None) -> float | None:
        policy = self.policy
        if self.sent >= policy.attempts:
            return None
        if retry_after is not None:
            delay = retry_after + random.uniform(0, policy.backoff)  # noqa: S311 - jitter, not a secret
        else:
            delay = random.uniform(0, min(policy.max_backoff, policy.backoff * 2 ** (self.sent - 1)))  # noqa: S311
        if time.monotonic() - self.started + delay > policy.total:
            return None
        self.sent += 1
        return delay


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delay-seconds or an HTTP-date), None without one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def request_was_sent(exc: httpx.TransportError) -> bool:
    """Whether the api may have received the request before the failure: false when the
    connection was never made (refused, DNS, connect timeout, no free pooled connection)."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def is_retryable_failure(exc: httpx.TransportError) -> bool:
    """A failure that another attempt may not meet (not a malformed URL or a bad proxy setup)."""
    return not isinstance(exc, httpx.UnsupportedProtocol | httpx.ProxyError)
