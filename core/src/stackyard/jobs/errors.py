"""Exceptions a job function raises to steer its retries."""

from __future__ import annotations


class NonRetryable(Exception):
    """The job failed and another attempt cannot help (bad input, a 4xx answer): it goes
    straight to the dead letters, whatever attempts remain."""


class RetryAfter(Exception):
    """The job failed and may be tried again no sooner than `seconds` from now (a 429 with
    Retry-After, a dependency's maintenance window). None: the queue's backoff decides."""

    def __init__(self, message: str, seconds: float | None = None) -> None:
        super().__init__(message)
        self.seconds = seconds
