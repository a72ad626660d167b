"""The same limiter, unchanged, against a real three-master Redis Cluster: every key of a
decision shares one hash tag, so the two-key sliding window runs in one slot, and keys of
different clients spread over the masters."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as redis
from stackyard.clients import redis_client
from stackyard.ratelimit import ALGORITHMS, Policy, RateLimiter
from stackyard.ratelimit.scripts import SCRIPTS
from stackyard.resources.ratelimit import RateLimitPolicySpec


@pytest.fixture
async def cluster_client(redis_cluster):
    client = redis_client(redis_cluster.stackyard_url)
    assert isinstance(client, redis.RedisCluster)
    yield client
    await client.aclose()


def policy(algorithm: str, limit: int = 3) -> Policy:
    spec = RateLimitPolicySpec.model_validate(
        {"stackRef": {"name": "demo"}, "algorithm": algorithm, "limit": limit, "window": "1h", "timeout": "2s"}
    )
    return Policy.from_spec(f"cluster-{algorithm.lower()}", spec)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_each_algorithm_limits_keys_spread_over_three_masters(cluster_client, algorithm):
    limiter = RateLimiter(cluster_client, use_deny_cache=False)
    p = policy(algorithm)
    keys = [f"client-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    for key in keys:
        outcomes = [(await limiter.decide(p, key)).allowed for _ in range(5)]
        assert outcomes == [True, True, True, False, False], key
    nodes = {cluster_client.get_node_from_key(limiter.redis_keys(p, key)[0]).port for key in keys}
    assert len(nodes) >= 2, "twelve keys should not all live on one master"
    for key in keys:
        slots = {cluster_client.keyslot(k) for k in limiter.redis_keys(p, key)}
        assert len(slots) == 1, "the keys of one decision must share a slot"


async def test_scripts_are_loaded_again_after_every_node_forgot_them(cluster_client):
    limiter = RateLimiter(cluster_client, use_deny_cache=False)
    p = policy("slidingWindow", limit=2)
    key = uuid.uuid4().hex
    assert (await limiter.decide(p, key)).allowed
    await cluster_client.execute_command("SCRIPT FLUSH", target_nodes=redis.RedisCluster.ALL_NODES)
    node = cluster_client.get_node_from_key(limiter.redis_keys(p, key)[0])
    sha = SCRIPTS["slidingWindow"].sha
    assert await cluster_client.execute_command("SCRIPT EXISTS", sha, target_nodes=node) == [False]
    assert (await limiter.decide(p, key)).remaining == 0
    assert await cluster_client.execute_command("SCRIPT EXISTS", sha, target_nodes=node) == [True]
    assert not (await limiter.decide(p, key)).allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_concurrent_decisions_batched_over_the_masters_keep_every_limit(cluster_client, algorithm):
    limiter = RateLimiter(cluster_client, use_deny_cache=False)
    p = policy(algorithm)
    keys = [f"burst-{uuid.uuid4().hex[:8]}" for _ in range(20)]
    await cluster_client.execute_command("SCRIPT FLUSH", target_nodes=redis.RedisCluster.ALL_NODES)
    decisions = await asyncio.gather(*(limiter.decide(p, keys[i % 20]) for i in range(200)))
    assert all(d.source == "redis" for d in decisions)
    for key in keys:
        assert sum(d.allowed for d in decisions if d.key == key) == 3, key
