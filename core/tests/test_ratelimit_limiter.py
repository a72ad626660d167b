"""RateLimiter against the real Redis: concurrent replicas never pass more than the limit,
the deny cache answers from memory, dryRun never blocks, several policies are all charged
and the most restrictive wins."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from stackyard.clients import redis_client
from stackyard.problems import UnprocessableContent
from stackyard.ratelimit import ALGORITHMS, DenyCache, Policy, RateLimiter
from stackyard.ratelimit.scripts import SCRIPTS
from stackyard.resources.ratelimit import RateLimitPolicySpec


def policy(algorithm: str = "fixedWindow", limit: int = 5, window: str = "1h", name: str | None = None, **spec):
    body = {"stackRef": {"name": "demo"}, "algorithm": algorithm, "limit": limit, "window": window, "timeout": "2s"}
    return Policy.from_spec(name or f"lim-{uuid.uuid4().hex[:8]}", RateLimitPolicySpec.model_validate(body | spec))


@pytest.fixture
async def redis_url(redis_server):
    return redis_server.url


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_concurrent_clients_on_two_replicas_never_pass_more_than_the_limit(redis_url, algorithm):
    replicas = [redis_client(redis_url) for _ in range(2)]
    limiters = [RateLimiter(r, use_deny_cache=False) for r in replicas]
    p = policy(algorithm, limit=50)
    try:
        decisions = await asyncio.gather(*(limiters[i % 2].decide(p, "shared") for i in range(300)))
        passed = sum(d.allowed for d in decisions)
        # An hour's window refills less than one request during the test.
        assert passed == 50, f"{passed} of 300 passed a limit of 50"
        costly = await asyncio.gather(*(limiters[i % 2].decide(p, "costly", cost=7) for i in range(40)))
        assert sum(7 for d in costly if d.allowed) <= 50
    finally:
        for r in replicas:
            await r.aclose()


async def test_the_deny_cache_answers_a_blocked_key_without_redis(redis_url):
    client = redis_client(redis_url)
    calls = 0

    def counted_redis():
        nonlocal calls
        calls += 1
        return client

    limiter = RateLimiter(counted_redis, deny_cache=DenyCache())
    p = policy("gcra", limit=2, window="1h")
    try:
        assert [(await limiter.decide(p, "k")).allowed for _ in range(3)] == [True, True, False]
        assert calls == 3
        for _ in range(100):
            cached = await limiter.decide(p, "k")
            assert (cached.allowed, cached.source) == (False, "deny-cache")
            assert 0 < cached.retry_after <= 1800
        assert calls == 3, "a blocked key must not reach Redis until its retry time"
        assert (await limiter.decide(p, "other")).allowed, "other keys are not affected"
        # A cost of 0 only looks: it may pass, so it goes to Redis.
        assert (await limiter.decide(p, "k", cost=0)).source == "redis"
        # A changed limit forgets what the old one refused.
        raised = policy("gcra", limit=3, window="1h", name=p.name)
        assert (await limiter.decide(raised, "k")).source == "redis"
    finally:
        await client.aclose()


async def test_the_deny_cache_forgets_a_key_once_its_time_has_come():
    now = [100.0]
    cache = DenyCache(clock=lambda: now[0])
    p = policy()
    cache.remember(p, "k", cost=2, seconds=1.5)
    assert cache.refused_for(p, "k", 2) == pytest.approx(1.5)
    assert cache.refused_for(p, "k", 1) is None, "a smaller cost may fit"
    now[0] += 1.5
    assert cache.refused_for(p, "k", 2) is None
    assert len(cache) == 0


def test_a_full_deny_cache_drops_expired_entries_then_the_oldest():
    now = [0.0]
    cache = DenyCache(max_entries=4, clock=lambda: now[0])
    p = policy()
    for i in range(4):
        cache.remember(p, f"k{i}", 1, seconds=10 if i else 1)
    now[0] = 2
    cache.remember(p, "new", 1, 10)
    assert cache.refused_for(p, "k0", 1) is None and cache.refused_for(p, "k1", 1) is not None
    for i in range(10):
        cache.remember(p, f"more{i}", 1, 10)
    assert len(cache) <= 4


async def test_dry_run_never_blocks_but_counts_and_logs(redis_url, caplog):
    caplog.set_level(logging.INFO, logger="stackyard.ratelimit")
    client = redis_client(redis_url)
    limiter = RateLimiter(client)
    p = policy("slidingWindow", limit=3, mode="dryRun")
    try:
        decisions = [await limiter.decide(p, "k") for _ in range(10)]
        assert not any(d.blocks for d in decisions)
        assert [d.allowed for d in decisions] == [True] * 3 + [False] * 7
        assert all(d.source == "redis" for d in decisions), "dryRun never answers from the deny cache"
        counts = limiter.counts[p.name]
        assert (counts.allowed, counts.would_limit, counts.limited) == (3, 7, 0)
        assert f"dry run: policy {p.name} would refuse key k" in caplog.text
    finally:
        await client.aclose()


async def test_all_matching_policies_are_charged_and_the_most_restrictive_wins(redis_url):
    client = redis_client(redis_url)
    limiter = RateLimiter(client, use_deny_cache=False)
    tight, loose = policy(limit=2), policy("tokenBucket", limit=10)
    try:
        first = await limiter.decide_all([(tight, "k"), (loose, "k")])
        assert first.allowed and first.deciding.policy == tight.name and first.deciding.remaining == 1
        await limiter.decide_all([(tight, "k"), (loose, "k")])
        refused = await limiter.decide_all([(tight, "k"), (loose, "k")])
        assert not refused.allowed and refused.deciding.policy == tight.name
        assert refused.retry_after > 0
        # The loose policy was charged by all three requests, the refused one included.
        assert next(d for d in refused.decisions if d.policy == loose.name).remaining == 7
    finally:
        await client.aclose()


async def test_a_cost_beyond_the_capacity_is_refused_as_a_problem(redis_url):
    limiter = RateLimiter(redis_client(redis_url))
    with pytest.raises(UnprocessableContent, match="cost 6 can never pass"):
        await limiter.decide(policy(limit=5), "k", cost=6)


async def test_decisions_of_one_loop_turn_share_a_round_trip_and_survive_a_script_flush(redis_url):
    client = redis_client(redis_url)
    limiter = RateLimiter(client, use_deny_cache=False)
    p = policy("tokenBucket", limit=3)
    try:
        await client.script_flush()
        await client.config_resetstat()
        decisions = await asyncio.gather(*(limiter.decide(p, f"k{i % 10}") for i in range(50)))
        assert all(d.source == "redis" for d in decisions)
        assert [sum(d.allowed for d in decisions if d.key == f"k{i}") for i in range(10)] == [3] * 10
        # 50 EVALSHAs refused with NOSCRIPT, then 50 EVALs that cache the script again.
        stats = await client.info("commandstats")
        assert (stats["cmdstat_evalsha"]["calls"], stats["cmdstat_eval"]["calls"]) == (50, 50)
        connections = (await client.info("stats"))["total_connections_received"]
        assert connections <= 1, "one connection carried the batch"
        assert await client.script_exists(SCRIPTS["tokenBucket"].sha) == [True]
    finally:
        await client.aclose()
