"""A RateLimitPolicy made ready to decide: its numbers in the units the scripts use and
its request matcher compiled once (per config, never per request)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ..resources.base import duration_seconds
from ..resources.ratelimit import RateLimitPolicySpec

Algorithm = Literal["fixedWindow", "slidingWindow", "tokenBucket", "gcra"]
ALGORITHMS: tuple[Algorithm, ...] = ("fixedWindow", "slidingWindow", "tokenBucket", "gcra")


def path_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for a list of path patterns, or None for "every path".

    A pattern is a list of segments: `*` is exactly one segment, `**` any number of
    segments (none included), and `*` inside a segment any characters but `/`
    (`/v1/files/*.png`). Matched against the request path without its trailing slash.
    """
    alternatives = []
    for pattern in patterns:
        parts = []
        for segment in pattern.strip("/").split("/") if pattern.strip("/") else []:
            if segment == "**":
                parts.append("(?:/[^/]+)*")
            else:
                parts.append("/" + "[^/]*".join(re.escape(part) for part in segment.split("*")))
        alternatives.append("".join(parts))
    if not alternatives:
        return None
    return re.compile("^(?:" + "|".join(alternatives) + ")$")


def normalise_path(path: str) -> str:
    return path.rstrip("/")


def host_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for host patterns (`api.example.com`, `*.example.com`, `example.com:8443`),
    or None for "every host". `*.` stands for one or more labels; a pattern without a port
    matches any port."""
    alternatives = []
    for pattern in patterns:
        pattern = pattern.lower()
        host, _, port = pattern.partition(":")
        body = r"(?:[^.:]+\.)+" + re.escape(host[2:]) if host.startswith("*.") else re.escape(host)
        alternatives.append(body + (":" + re.escape(port) if port else r"(?::[0-9]+)?"))
    if not alternatives:
        return None
    return re.compile("^(?:" + "|".join(alternatives) + ")$")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    algorithm: Algorithm
    limit: int
    window_us: int
    capacity: int
    """The most that may pass at once: limit, or burst for tokenBucket and gcra."""
    mode: Literal["enforce", "dryRun"]
    failure_mode: Literal["open", "closed"]
    timeout: float
    key_type: Literal["ip", "user", "apiKey", "header", "global"]
    key_header: str | None
    enforce_in_api: bool
    paths: re.Pattern[str] | None
    methods: frozenset[str] | None
    hosts: re.Pattern[str] | None

    @classmethod
    def from_spec(cls, name: str, spec: RateLimitPolicySpec) -> Policy:
        bursty = spec.algorithm in ("tokenBucket", "gcra")
        return cls(
            name=name,
            algorithm=spec.algorithm,
            limit=spec.limit,
            window_us=max(1, round(duration_seconds(spec.window) * 1_000_000)),
            capacity=(spec.burst or spec.limit) if bursty else spec.limit,
            mode=spec.mode,
            failure_mode=spec.failure_mode,
            timeout=duration_seconds(spec.timeout),
            key_type=spec.key.type,
            key_header=spec.key.header.lower() if spec.key.header else None,
            enforce_in_api=spec.enforce_in_api,
            paths=path_regex(spec.match.paths),
            methods=frozenset(spec.match.methods) or None,
            hosts=host_regex(spec.match.hosts),
        )

    @property
    def window(self) -> float:
        return self.window_us / 1_000_000

    @property
    def dry_run(self) -> bool:
        return self.mode == "dryRun"

    @property
    def counting(self) -> tuple[str, str, int, int, int]:
        """What a remembered refusal depends on: a change of any of it forgets the refusal."""
        return (self.name, self.algorithm, self.limit, self.window_us, self.capacity)

    def matches(self, method: str, host: str, path: str) -> bool:
        """`path` already normalised (no trailing slash), `host` lower-case."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.paths is not None and not self.paths.match(path):
            return False
        return self.hosts is None or bool(self.hosts.match(host))


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The policies of one config, compiled; built once per config hash."""

    policies: Mapping[str, Policy]
    trusted_proxies: tuple[str, ...] = ()
    version: str = ""

    @classmethod
    def from_specs(
        cls, specs: Mapping[str, RateLimitPolicySpec], trusted_proxies: Iterable[str] = (), version: str = ""
    ) -> PolicySet:
        return cls(
            {name: Policy.from_spec(name, spec) for name, spec in sorted(specs.items())},
            tuple(trusted_proxies),
            version,
        )

    def matching(self, method: str, host: str, path: str, *, api: bool = False) -> list[Policy]:
        """The policies that apply to a request (`api`: only those the api enforces itself)."""
        path = normalise_path(path)
        host = host.lower()
        return [p for p in self.policies.values() if (p.enforce_in_api or not api) and p.matches(method, host, path)]
