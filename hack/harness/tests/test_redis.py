"""The harness's Redis is Debian's redis-server: commands and Lua scripts run."""

from __future__ import annotations

import redis.asyncio as redis


async def test_commands_and_lua_script(redis_server):
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        await r.set("harness:greeting", "hello")
        assert await r.get("harness:greeting") == "hello"
        incr_to = r.register_script("local v = redis.call('INCRBY', KEYS[1], ARGV[1]); return v * 2")
        assert await incr_to(keys=["harness:counter"], args=[21]) == 42
        info = await r.info("server")
        assert info["redis_version"].split(".")[0] >= "7"
    finally:
        await r.aclose()
