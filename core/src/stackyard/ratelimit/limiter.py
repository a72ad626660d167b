"""RateLimiter: one atomic Redis round trip per policy, within the policy's time budget,
with a local deny cache in front and the policy's failure mode behind."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from ..clients import AnyRedis
from ..problems import UnprocessableContent
from .decision import Decision, Verdict
from .metrics import DEFAULT_METRICS, RateLimitMetrics
from .policy import Policy
from .scripts import SCRIPTS, ScriptBatch, parse_reply

log = logging.getLogger(__name__)

KEY_PREFIX = "stackyard:rl"
FAIL_CLOSED_RETRY = 1.0
_SUFFIXES = {"fixedWindow": (":fw",), "slidingWindow": (":sw0", ":sw1"), "tokenBucket": (":tb",), "gcra": (":gcra",)}


class DenyCache:
    """Refusals remembered in this process: a key refused until a time is refused from
    memory, without Redis, until then. Keyed by the policy's counting parameters too, so a
    changed limit forgets what the old one refused."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._until: dict[tuple[tuple[str, str, int, int, int], str], tuple[float, int]] = {}

    def __len__(self) -> int:
        return len(self._until)

    def remember(self, policy: Policy, key: str, cost: int, seconds: float) -> None:
        if seconds <= 0:
            return
        if len(self._until) >= self.max_entries:
            self._prune()
        self._until[(policy.counting, key)] = (self.clock() + seconds, cost)

    def refused_for(self, policy: Policy, key: str, cost: int) -> float | None:
        """Seconds a request of `cost` stays refused, or None when Redis must be asked
        (nothing remembered, expired, or a smaller cost that may fit)."""
        entry = self._until.get((policy.counting, key))
        if entry is None:
            return None
        until, refused_cost = entry
        left = until - self.clock()
        if left <= 0:
            del self._until[(policy.counting, key)]
            return None
        return left if cost >= refused_cost else None

    def _prune(self) -> None:
        now = self.clock()
        for entry_key, (until, _) in list(self._until.items()):
            if until <= now:
                del self._until[entry_key]
        if len(self._until) >= self.max_entries:  # all live: drop the oldest half
            for entry_key in list(self._until)[: len(self._until) // 2]:
                del self._until[entry_key]


@dataclass
class PolicyCounts:
    """What one process decided for one policy since it started."""

    allowed: int = 0
    limited: int = 0
    would_limit: int = 0
    failed: int = 0


class RateLimiter:
    """Decides requests against Redis (one server or a cluster) with the scripts of
    `stackyard.ratelimit.scripts`. `redis` is a client or a function returning the client
    in force (the api's clients are remade when the credentials change)."""

    def __init__(
        self,
        redis: AnyRedis | Callable[[], AnyRedis],
        *,
        deny_cache: DenyCache | None = None,
        use_deny_cache: bool = True,
        key_prefix: str = KEY_PREFIX,
        batch: bool = True,
        metrics: RateLimitMetrics | None = None,
    ) -> None:
        self._redis: Callable[[], AnyRedis] = (
            (lambda: redis) if isinstance(redis, (aioredis.Redis, aioredis.RedisCluster)) else redis
        )
        self.deny_cache = (deny_cache or DenyCache()) if use_deny_cache else None
        self.key_prefix = key_prefix
        self._batch = ScriptBatch() if batch else None
        self.counts: dict[str, PolicyCounts] = {}
        self._failure_logged: Counter[str] = Counter()
        self.metrics = metrics or DEFAULT_METRICS
        self._warming: set[asyncio.Task[None]] = set()

    def warm_soon(self) -> None:
        """`warm()` in the background (nothing without a running event loop): for the api,
        on every config applied, which may bring a new Redis."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.warm())
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def warm(self) -> None:
        """Load every algorithm's script into Redis (which opens a connection too), so that
        the first decision after a start or a new Redis is one EVALSHA within its time budget,
        not a connect, a NOSCRIPT and an EVAL that a 10 ms budget fails open on."""
        try:
            client = self._redis()
            for script in SCRIPTS.values():
                await client.script_load(script.source)
        except Exception as exc:  # the first decisions load them then; the type only: a URL may hold a password
            log.warning("rate limit scripts not preloaded into Redis (%s)", type(exc).__name__)

    def redis_keys(self, policy: Policy, key: str) -> list[str]:
        """The Redis keys of one policy and key, all under one hash tag (one cluster slot)."""
        tag = f"{{{self.key_prefix}:{policy.name}:{key}}}"
        return [tag + suffix for suffix in _SUFFIXES[policy.algorithm]]

    def _count(self, policy: Policy) -> PolicyCounts:
        counts = self.counts.get(policy.name)
        if counts is None:
            counts = self.counts[policy.name] = PolicyCounts()
        return counts

    async def decide(self, policy: Policy, key: str, cost: int = 1, *, now_us: int | None = None) -> Decision:
        """Charge `cost` to `key` under `policy` if it fits; refused requests are not charged.
        Every decision is counted in `counts` and in the `stackyard.ratelimit.decisions` metric."""
        decision = await self._decide(policy, key, cost, now_us)
        self.metrics.decided(decision)
        return decision

    async def _decide(self, policy: Policy, key: str, cost: int, now_us: int | None) -> Decision:
        if cost < 0 or cost > policy.capacity:
            raise UnprocessableContent(
                f"cost {cost} can never pass policy {policy.name}: it must be between 0 and {policy.capacity}",
                policy=policy.name,
            )
        counts = self._count(policy)
        if self.deny_cache is not None and not policy.dry_run:
            left = self.deny_cache.refused_for(policy, key, cost)
            if left is not None:
                counts.limited += 1
                return Decision(
                    policy.name, key, False, policy.capacity, 0, left, left, policy.window, policy.mode, "deny-cache"
                )
        script = SCRIPTS[policy.algorithm]
        args: list[str | int] = [
            "" if now_us is None else now_us,
            policy.limit,
            policy.window_us,
            policy.capacity,
            cost,
        ]
        try:
            client, keys = self._redis(), self.redis_keys(policy, key)
            if self._batch is not None:
                allowed, remaining, reset_us, retry_us = parse_reply(
                    await self._batch.run(client, script, keys, args, policy.timeout)
                )
            else:
                async with asyncio.timeout(policy.timeout):
                    allowed, remaining, reset_us, retry_us = parse_reply(await script(client, keys, args))
        except Exception as exc:
            return self._failed(policy, key, exc, counts)
        retry = (retry_us if retry_us >= 0 else policy.window_us) / 1_000_000
        decision = Decision(
            policy.name,
            key,
            bool(allowed),
            policy.capacity,
            remaining,
            reset_us / 1_000_000,
            retry,
            policy.window,
            policy.mode,
            "redis",
        )
        if decision.allowed:
            counts.allowed += 1
        elif policy.dry_run:
            counts.would_limit += 1
            log.info("dry run: policy %s would refuse key %s (retry in %.3f s)", policy.name, key, retry)
        else:
            counts.limited += 1
            if self.deny_cache is not None:
                self.deny_cache.remember(policy, key, cost, retry)
        return decision

    def _failed(self, policy: Policy, key: str, exc: Exception, counts: PolicyCounts) -> Decision:
        counts.failed += 1
        closed = policy.failure_mode == "closed" and not policy.dry_run
        what = "timed out" if isinstance(exc, TimeoutError) else f"failed: {type(exc).__name__}: {exc}"
        # One line per policy per 100 failures: a dead Redis must not flood the log.
        if self._failure_logged[policy.name] % 100 == 0:
            log.warning(
                "rate limit %s %s (budget %.0f ms); failing %s",
                policy.name,
                what,
                policy.timeout * 1000,
                "closed" if closed else "open",
            )
        self._failure_logged[policy.name] += 1
        return Decision(
            policy.name,
            key,
            not closed,
            policy.capacity,
            0,
            0.0,
            FAIL_CLOSED_RETRY if closed else 0.0,
            policy.window,
            policy.mode,
            "fail-closed" if closed else "fail-open",
        )

    async def decide_all(self, hits: Sequence[tuple[Policy, str]], cost: int = 1) -> Verdict:
        """Every (policy, key) charged at once, each in its own round trip (their keys live
        in different slots); the most restrictive decision wins."""
        if len(hits) == 1:
            policy, key = hits[0]
            return Verdict((await self.decide(policy, key, cost),))
        return Verdict.of(await asyncio.gather(*(self.decide(policy, key, cost) for policy, key in hits)))
