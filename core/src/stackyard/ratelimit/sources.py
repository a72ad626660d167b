"""Where a process gets its policies: fixed specs, the live config of a stackyard process,
or (in client.py) the stackyard api. Each returns a compiled PolicySet, rebuilt only when
the policies change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..config.live import LiveConfig
from ..resources.ratelimit import RateLimitPolicySpec
from .policy import PolicySet


class PolicySource(Protocol):
    async def get(self) -> PolicySet | None:
        """The policies in force now, or None when none are known yet."""
        ...


class StaticPolicies:
    def __init__(self, specs: Mapping[str, RateLimitPolicySpec], trusted_proxies: tuple[str, ...] = ()) -> None:
        self.policy_set = PolicySet.from_specs(specs, trusted_proxies, version="static")

    async def get(self) -> PolicySet:
        return self.policy_set


class LivePolicies:
    """The policies of the config a LiveConfig holds: compiled once per config hash."""

    def __init__(self, live: LiveConfig) -> None:
        self.live = live
        self._compiled: PolicySet | None = None

    def current(self) -> PolicySet | None:
        applied = self.live.current
        if applied is None:
            return None
        compiled = self._compiled
        if compiled is None or compiled.version != applied.hash:
            config = applied.config
            specs = config.rate_limit_policies if config.spec.capabilities.rate_limit else {}
            compiled = self._compiled = PolicySet.from_specs(specs, config.spec.api.trusted_proxies, applied.hash)
        return compiled

    async def get(self) -> PolicySet | None:
        return self.current()
