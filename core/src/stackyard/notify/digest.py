"""Digest and throttle steps: their state in Redis, decided atomically by Lua scripts.

Digest. The triggers of one workflow for one recipient (and one rendered `key`) within a
window become one run. The first run that reaches the digest step owns the digest: it
records the window's end and sleeps until then (JobContext.sleep_until: no worker waits).
Every later run appends its trigger's data and ends `digested`, pointing at the owner. At
the window's end the owner takes the items and removes the digest in one script, so a
trigger after that starts a new digest, and none falls between two. Each script remembers
its answer per run, so a step retried after its worker died answers as the first time.

Throttle. A fixed window (aligned on the epoch) counts the runs of one workflow for one
recipient (and key); the runs after the first `limit` of a window end `throttled`. The
count is kept per run, so a retried step gets the same place in the window.

Keys: sy:notify:<scope>:digest:{<id>}:... and sy:notify:<scope>:throttle:{<id>}:<window>,
where <id> hashes the workflow, the recipient and the key (one hash slot per digest).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import orjson

from ..clients import AnyRedis
from ..luascript import LuaScript

PREFIX = "sy:notify:"
GRACE = 3600.0
"""Seconds a digest outlives its window (an owner whose job waits for a worker still finds it)."""
REMEMBER = 7 * 86400.0
"""Seconds the answer of a digest step is remembered for a retry."""

_JOIN = LuaScript(
    """
local answered = redis.call('GET', KEYS[5])
if answered then return answered end
local owner = redis.call('GET', KEYS[1])
if not owner then
  owner = ARGV[1] .. '|' .. ARGV[4]
  redis.call('SET', KEYS[1], owner, 'PX', ARGV[5])
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
end
if redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[4])
  if redis.call('LLEN', KEYS[2]) < tonumber(ARGV[3]) then redis.call('RPUSH', KEYS[2], ARGV[2]) end
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
redis.call('SET', KEYS[5], owner, 'PX', ARGV[6])
return owner
"""
)

_TAKE = LuaScript(
    """
local taken = redis.call('GET', KEYS[5])
if taken then return taken end
local owner = redis.call('GET', KEYS[1])
local items = {}
local total = 0
if owner and string.sub(owner, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  items = redis.call('LRANGE', KEYS[2], 0, -1)
  total = tonumber(redis.call('GET', KEYS[4]) or '0')
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
end
local result = '{"total":' .. total .. ',"items":[' .. table.concat(items, ',') .. ']}'
redis.call('SET', KEYS[5], result, 'PX', ARGV[2])
return result
"""
)

_THROTTLE = LuaScript(
    """
local place = redis.call('HGET', KEYS[1], ARGV[1])
if not place then
  place = redis.call('HINCRBY', KEYS[1], '#', 1)
  redis.call('HSET', KEYS[1], ARGV[1], place)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return tonumber(place)
"""
)


def identity(scope: str, workflow: str, recipient: str, key: str | None) -> str:
    raw = "\0".join((scope, workflow, recipient, key or ""))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DigestJoin:
    owner: str
    """The run that owns the digest (this run when `owns`)."""
    until: float
    """When the window ends (epoch seconds)."""
    owns: bool


class Digests:
    def __init__(self, redis: AnyRedis, scope: str) -> None:
        self.redis = redis
        self.scope = scope

    def _keys(self, ident: str, run_id: str, last: str) -> list[str]:
        base = f"{PREFIX}{self.scope}:digest:{{{ident}}}:"
        return [base + "owner", base + "items", base + "members", base + "total", f"{base}{last}:{run_id}"]

    async def join(
        self,
        *,
        workflow: str,
        recipient: str,
        key: str | None,
        run_id: str,
        data: Any,
        window: float,
        max_items: int,
        now: float | None = None,
    ) -> DigestJoin:
        """Add this run's data to the open digest, opening it (owned by this run) if none is."""
        ident = identity(self.scope, workflow, recipient, key)
        until = (time.time() if now is None else now) + window
        args: list[str | int | bytes] = [
            run_id,
            orjson.dumps(data),
            max_items,
            str(int(until * 1000)),
            math.ceil((window + GRACE) * 1000),
            int(REMEMBER * 1000),
        ]
        raw = await _JOIN(self.redis, self._keys(ident, run_id, "joined"), args)
        owner, _, until_ms = (raw.decode() if isinstance(raw, bytes) else str(raw)).rpartition("|")
        return DigestJoin(owner=owner, until=int(until_ms) / 1000, owns=owner == run_id)

    async def take(self, *, workflow: str, recipient: str, key: str | None, run_id: str) -> dict[str, Any]:
        """{total, items} of the digest this run owns, which is closed (a later trigger opens
        a new one); the same answer again for the same run."""
        ident = identity(self.scope, workflow, recipient, key)
        raw = await _TAKE(self.redis, self._keys(ident, run_id, "taken"), [run_id, int(REMEMBER * 1000)])
        taken: dict[str, Any] = orjson.loads(raw)
        return taken


def window_index(now: float, window: float) -> int:
    """Which fixed window `now` falls in (windows start on multiples of `window` since the epoch)."""
    return int(now // window)


class Throttles:
    def __init__(self, redis: AnyRedis, scope: str) -> None:
        self.redis = redis
        self.scope = scope

    async def place(
        self, *, workflow: str, recipient: str, key: str | None, run_id: str, window: float, now: float | None = None
    ) -> int:
        """This run's place (1-based) among the runs of its window; the same for a retry."""
        at = time.time() if now is None else now
        index = window_index(at, window)
        ident = identity(self.scope, workflow, recipient, key)
        redis_key = f"{PREFIX}{self.scope}:throttle:{{{ident}}}:{index}"
        ttl = math.ceil(((index + 1) * window - at + GRACE) * 1000)
        return int(await _THROTTLE(self.redis, [redis_key], [run_id, ttl]))


__all__ = ["DigestJoin", "Digests", "Throttles", "identity", "window_index"]
