"""The four algorithms as Lua scripts: each decision is one atomic EVALSHA.

Every script reads the clock from Redis (`TIME`), so api replicas on hosts whose clocks
drift still agree, and takes:

    ARGV[1]  the time in microseconds, or "" for the Redis server's time (tests and
             replays pass a time; production never does)
    ARGV[2]  limit: cost units per window (the refill per window for tokenBucket and gcra)
    ARGV[3]  window in microseconds
    ARGV[4]  capacity: limit for the window algorithms, burst for tokenBucket and gcra
    ARGV[5]  cost of this request (0 only looks)

and answers "allowed remaining reset retry" (allowed 1 or 0; reset and retry in us, retry 0
when allowed and -1 when the cost can never pass). A refused request is not counted.

Decisions that start in the same turn of the event loop share one network round trip
(`ScriptBatch`): their EVALSHAs go out together as one pipeline, and each script still
runs atomically on its own. Every key of one decision
shares the hash tag `{stackyard:rl:<policy>:<key>}`, so the two-key sliding window runs
on a Redis Cluster as it does on one server. Keys expire a second after their state
stops mattering.
"""

from __future__ import annotations

from typing import Any

from ..luascript import LuaScript, ScriptBatch

_PRELUDE = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local capacity = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local function ttl_ms(us)
  return math.ceil(us / 1000) + 1000
end
local function answer(allowed, remaining, reset, retry)
  return string.format('%d %d %d %d', allowed, remaining, reset, retry)
end
"""

FIXED_WINDOW = (
    _PRELUDE
    + """
local index = math.floor(now / window)
local reset = (index + 1) * window - now
local state = redis.call('HMGET', KEYS[1], 'w', 'n')
local used = 0
if tonumber(state[1]) == index then used = tonumber(state[2]) end
if used + cost > limit then
  local retry = reset
  if cost > limit then retry = -1 end
  return answer(0, math.max(0, limit - used), reset, retry)
end
used = used + cost
redis.call('HSET', KEYS[1], 'w', index, 'n', used)
redis.call('PEXPIRE', KEYS[1], ttl_ms(reset))
return answer(1, limit - used, reset, 0)
"""
)

SLIDING_WINDOW = (
    _PRELUDE
    + """
local index = math.floor(now / window)
local elapsed = now - index * window
local reset = window - elapsed
local current_key = KEYS[(index % 2) + 1]
local previous_key = KEYS[((index + 1) % 2) + 1]
local current, previous = 0, 0
local state = redis.call('HMGET', current_key, 'w', 'n')
if tonumber(state[1]) == index then current = tonumber(state[2]) end
state = redis.call('HMGET', previous_key, 'w', 'n')
if tonumber(state[1]) == index - 1 then previous = tonumber(state[2]) end
local used = math.floor(previous * (window - elapsed) / window) + current
if used + cost > limit then
  local retry
  local room = limit - current - cost
  if room >= 0 then
    retry = math.floor(window - (room + 1) * window / previous) + 1 - elapsed
  elseif cost > limit then
    retry = -1
  else
    room = limit - cost
    retry = reset
    if current > room then retry = reset + math.floor(window - (room + 1) * window / current) + 1 end
  end
  return answer(0, math.max(0, limit - used), reset, retry)
end
redis.call('HSET', current_key, 'w', index, 'n', current + cost)
redis.call('PEXPIRE', current_key, ttl_ms(reset + window))
return answer(1, limit - used - cost, reset, 0)
"""
)

TOKEN_BUCKET = (
    _PRELUDE
    + """
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = capacity
if state[1] then
  tokens = math.min(capacity, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * limit / window)
end
if tokens + 1e-9 < cost then
  local retry = math.ceil((cost - tokens) * window / limit)
  if cost > capacity then retry = -1 end
  return answer(0, math.floor(tokens + 1e-9), math.ceil((capacity - tokens) * window / limit), retry)
end
tokens = tokens - cost
local full = math.ceil((capacity - tokens) * window / limit)
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], ttl_ms(full))
return answer(1, math.floor(tokens + 1e-9), full, 0)
"""
)

GCRA = (
    _PRELUDE
    + """
local interval = window / limit
local tolerance = interval * capacity + 1
local stored = redis.call('GET', KEYS[1])
local behind = 0
if stored then behind = math.max(0, tonumber(stored) - now) end
local ahead = behind + cost * interval
if ahead > tolerance then
  local retry = math.ceil(ahead - tolerance)
  if cost > capacity then retry = -1 end
  return answer(0, math.max(0, math.floor((tolerance - behind) / interval)), math.ceil(behind), retry)
end
redis.call('SET', KEYS[1], string.format('%.17g', now + ahead), 'PX', ttl_ms(ahead))
return answer(1, math.floor((tolerance - ahead) / interval), math.ceil(ahead), 0)
"""
)


def parse_reply(reply: Any) -> list[int]:
    """The scripts answer "allowed remaining reset retry" as one string: one bulk reply
    is cheaper for a client to read than an array of four integers."""
    return [int(v) for v in reply.split()]


SCRIPTS = {
    "fixedWindow": LuaScript(FIXED_WINDOW),
    "slidingWindow": LuaScript(SLIDING_WINDOW),
    "tokenBucket": LuaScript(TOKEN_BUCKET),
    "gcra": LuaScript(GCRA),
}

__all__ = ["SCRIPTS", "LuaScript", "ScriptBatch", "parse_reply"]
