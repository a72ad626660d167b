"""`stackyard.ratelimit.decisions`: every decision a RateLimiter makes, by policy and outcome,
through the OpenTelemetry API (without an SDK installed the counter does nothing and costs
next to nothing).

Recorded in `RateLimiter.decide`, the one place the api's own routes (RateLimitMiddleware)
and other services (POST /v1/ratelimit/check) are decided, so both count alike. Policy names
come from the Stack's RateLimitPolicies, never from a request: the attributes stay few.
"""

from __future__ import annotations

from typing import Literal

from opentelemetry import metrics
from opentelemetry.metrics import Meter

from .decision import Decision

Outcome = Literal["allowed", "denied", "dry_run_denied", "failed_open", "failed_closed"]
OUTCOMES: tuple[Outcome, ...] = ("allowed", "denied", "dry_run_denied", "failed_open", "failed_closed")


def outcome(decision: Decision) -> Outcome:
    """The outcome as the metric names it (pure). Redis failing decides by the policy's
    failure mode (fail-open, fail-closed; a dryRun policy always fails open); otherwise a
    refusal is `denied`, or `dry_run_denied` when the policy only reports it. A refusal from
    the local deny cache is `denied` like one from Redis."""
    if decision.source == "fail-closed":
        return "failed_closed"
    if decision.source == "fail-open":
        return "failed_open"
    if decision.allowed:
        return "allowed"
    return "dry_run_denied" if decision.dry_run else "denied"


class RateLimitMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("stackyard.ratelimit")
        self.decisions = meter.create_counter(
            "stackyard.ratelimit.decisions",
            unit="{decision}",
            description="Rate limit decisions by policy and outcome (allowed, denied, dry_run_denied, "
            "failed_open, failed_closed).",
        )

    def decided(self, decision: Decision) -> None:
        self.decisions.add(
            1, {"stackyard.ratelimit.policy": decision.policy, "stackyard.ratelimit.outcome": outcome(decision)}
        )


DEFAULT_METRICS = RateLimitMetrics()
"""The instruments every RateLimiter shares unless given its own (the SDK's meters are global)."""
