"""The harness's Redis Cluster: three masters sharing every hash slot, and a cluster
client that follows keys to the node that serves them."""

from __future__ import annotations

import redis.asyncio as redis


async def test_three_masters_serve_every_slot_and_route_keys(redis_cluster):
    client = redis.RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        info = await client.cluster_info(target_nodes=redis.RedisCluster.RANDOM)
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == 16384
        assert len(client.get_primaries()) == 3
        for i in range(30):
            await client.set(f"harness:{i}", i)
        assert [int(await client.get(f"harness:{i}")) for i in range(30)] == list(range(30))
        owners = {client.get_node_from_key(f"harness:{i}").port for i in range(30)}
        assert len(owners) == 3, "keys should spread over the three masters"
        # Keys with one hash tag share a slot, so one script may use them all.
        script = client.register_script("return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])")
        assert await script(keys=["{tag}:a", "{tag}:b"]) == 2
    finally:
        await client.aclose()
