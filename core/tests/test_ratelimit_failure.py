"""A Redis that is down or too slow: each policy fails open or closed as it declares,
within its time budget, and decisions come back from Redis once it does."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
from stackyard.clients import redis_client
from stackyard.ratelimit import Policy, RateLimiter
from stackyard.resources.ratelimit import RateLimitPolicySpec
from stackyard_harness.redis import RedisServer

BUDGET = "50ms"
# Far above the budget, far below the client's own 2 s connect and 5 s read timeouts: an
# answer within it came from the budget, not from a socket timing out.
PROMPT = 1.0


@pytest.fixture
def own_redis(redis_server, tools, tmp_path):
    """A Redis of this test's own, to stop and freeze (the session's stays untouched)."""
    server = RedisServer(tools, tmp_path).start()
    yield server
    if server.process and server.process.proc:
        os.kill(server.process.proc.pid, signal.SIGCONT)
    server.stop()


def policy(failure_mode: str, mode: str = "enforce") -> Policy:
    spec = RateLimitPolicySpec.model_validate(
        {
            "stackRef": {"name": "demo"},
            "limit": 100,
            "window": "1m",
            "timeout": BUDGET,
            "failureMode": failure_mode,
            "mode": mode,
        }
    )
    return Policy.from_spec(f"fail-{failure_mode}-{uuid.uuid4().hex[:6]}", spec)


async def timed(limiter, p):
    t0 = time.perf_counter()
    decision = await limiter.decide(p, "k")
    return decision, time.perf_counter() - t0


async def test_stopped_redis_fails_open_and_closed_as_declared(own_redis):
    client = redis_client(own_redis.url)
    limiter = RateLimiter(client)
    opened, closed, dry = policy("open"), policy("closed"), policy("closed", mode="dryRun")
    try:
        assert (await limiter.decide(closed, "k")).source == "redis"
        own_redis.stop()
        decision, took = await timed(limiter, opened)
        assert (decision.allowed, decision.blocks, decision.source) == (True, False, "fail-open")
        assert took < PROMPT
        decision, took = await timed(limiter, closed)
        assert (decision.allowed, decision.blocks, decision.source) == (False, True, "fail-closed")
        assert decision.retry_after > 0 and took < PROMPT
        decision, _ = await timed(limiter, dry)
        assert not decision.blocks, "a dryRun policy never blocks, even failing closed"
        assert limiter.counts[closed.name].failed == 1

        own_redis.start()
        assert (await limiter.decide(closed, "k")).source == "redis"
    finally:
        await client.aclose()


async def test_redis_slower_than_the_budget_fails_open_and_closed_within_it(own_redis):
    client = redis_client(own_redis.url)
    limiter = RateLimiter(client)
    opened, closed = policy("open"), policy("closed")
    try:
        assert (await limiter.decide(opened, "k")).source == "redis"
        os.kill(own_redis.process.proc.pid, signal.SIGSTOP)  # alive, connected, silent
        decision, took = await timed(limiter, opened)
        assert decision.source == "fail-open" and decision.allowed
        assert 0.04 < took < PROMPT
        decision, took = await timed(limiter, closed)
        assert decision.source == "fail-closed" and decision.blocks
        assert 0.04 < took < PROMPT
        os.kill(own_redis.process.proc.pid, signal.SIGCONT)
        assert (await limiter.decide(closed, "k")).source == "redis"
    finally:
        await client.aclose()
