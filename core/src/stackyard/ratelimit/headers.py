"""The answer's headers: `Retry-After` (RFC 9110) and `RateLimit-Policy` / `RateLimit`
from draft-ietf-httpapi-ratelimit-headers (structured-field lists, one item per policy):

    RateLimit-Policy: "login";q=10;w=60
    RateLimit: "login";r=3;t=42

q is the quota (the limit, or the burst of tokenBucket and gcra), w the window in seconds,
r what remains and t the seconds until the quota is whole again. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .decision import Decision


def sf_string(value: str) -> str:
    """A structured-field String (RFC 8941 §3.3.3)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-9))


def ratelimit_policy(decisions: Sequence[Decision]) -> str:
    return ", ".join(f"{sf_string(d.policy)};q={d.limit};w={max(1, _seconds(d.window))}" for d in decisions)


def ratelimit(decisions: Sequence[Decision]) -> str:
    return ", ".join(f"{sf_string(d.policy)};r={d.remaining};t={_seconds(d.reset_after)}" for d in decisions)


def retry_after(seconds: float) -> str:
    """Whole seconds, at least 1 (a client that retries at once would be refused again)."""
    return str(max(1, _seconds(seconds)))


def response_headers(decisions: Sequence[Decision]) -> list[tuple[str, str]]:
    """The RateLimit headers for the decisions that are counted and enforced."""
    shown = [d for d in decisions if d.counted and not d.dry_run]
    if not shown:
        return []
    return [("RateLimit-Policy", ratelimit_policy(shown)), ("RateLimit", ratelimit(shown))]
