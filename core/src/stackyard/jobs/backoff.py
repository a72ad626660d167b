"""What happens after a failed attempt: pure decisions, unit-tested with plain numbers."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .settings import RetryPolicy


def backoff_cap(attempt: int, policy: RetryPolicy) -> float:
    """The longest wait after failed attempt `attempt` (1-based): initial * multiplier^(attempt-1), capped."""
    exponent = min(attempt - 1, 200)  # beyond this every cap is max_backoff anyway
    return float(min(policy.max_backoff, policy.initial_backoff * policy.multiplier**exponent))


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next attempt: "full jitter" (uniform between 0 and the cap),
    which spreads the retries of jobs that failed together (AWS Architecture Blog,
    "Exponential Backoff And Jitter"); the cap itself with jitter "none"."""
    cap = backoff_cap(attempt, policy)
    if policy.jitter == "none":
        return cap
    return (rng or random).uniform(0.0, cap)


@dataclass(frozen=True)
class AfterFailure:
    retry_in: float | None
    """Seconds until the next attempt; None: the job goes to the dead letters."""


def after_failure(
    attempt: int,
    max_attempts: int,
    policy: RetryPolicy,
    *,
    retryable: bool = True,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> AfterFailure:
    """Retry with backoff while attempts remain and the error allows it; a Retry-After the
    error carries (an HTTP 429) replaces the backoff."""
    if not retryable or attempt >= max_attempts:
        return AfterFailure(None)
    if retry_after is not None:
        return AfterFailure(max(0.0, retry_after))
    return AfterFailure(backoff_delay(attempt, policy, rng))
