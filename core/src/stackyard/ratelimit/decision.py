"""What a limiter answers: one Decision per policy, and the Verdict of all the policies
that matched one request (the most restrictive wins; every one was charged)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Source = Literal["redis", "deny-cache", "fail-open", "fail-closed"]


@dataclass(frozen=True, slots=True)
class Decision:
    policy: str
    key: str
    allowed: bool
    """Whether the policy lets the request through (a dryRun policy's refusal is only
    reported here: `blocks` is what a caller acts on)."""
    limit: int
    """The quota: limit, or the burst of tokenBucket and gcra."""
    remaining: int
    reset_after: float
    """Seconds until the quota is whole again."""
    retry_after: float
    """Seconds until a request of the same cost may pass; 0 when allowed."""
    window: float
    mode: Literal["enforce", "dryRun"]
    source: Source
    """Who answered: Redis, the local deny cache, or the failure mode when Redis failed."""

    @property
    def dry_run(self) -> bool:
        return self.mode == "dryRun"

    @property
    def blocks(self) -> bool:
        return not self.allowed and not self.dry_run

    @property
    def counted(self) -> bool:
        """True when the numbers are real (not made up by a failure mode)."""
        return self.source in ("redis", "deny-cache")


@dataclass(frozen=True, slots=True)
class Verdict:
    decisions: tuple[Decision, ...]

    @classmethod
    def of(cls, decisions: Sequence[Decision]) -> Verdict:
        return cls(tuple(decisions))

    @property
    def allowed(self) -> bool:
        return not any(d.blocks for d in self.decisions)

    @property
    def deciding(self) -> Decision | None:
        """The most restrictive decision: of those that block, the one to wait longest for;
        else the enforced one with the least remaining."""
        blocking = [d for d in self.decisions if d.blocks]
        if blocking:
            return max(blocking, key=lambda d: (d.source == "fail-closed", d.retry_after))
        enforced = [d for d in self.decisions if not d.dry_run and d.counted]
        return min(enforced, key=lambda d: d.remaining) if enforced else None

    @property
    def retry_after(self) -> float:
        deciding = self.deciding
        return deciding.retry_after if deciding is not None and deciding.blocks else 0.0

    @property
    def unavailable(self) -> bool:
        """Refused because a policy that fails closed could not be decided."""
        deciding = self.deciding
        return deciding is not None and deciding.blocks and deciding.source == "fail-closed"
