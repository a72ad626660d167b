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

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError, ResponseError

from ..clients import AnyRedis
from ..luascript import LuaScript

READ_TIMEOUT = 5.0
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


@dataclass(slots=True)
class _Call:
    client: Any
    script: LuaScript
    keys: list[str]
    args: list[str | int]
    future: asyncio.Future[list[int]]
    deadline: float


class ScriptBatch:
    """Coalesces the script calls made in one event-loop turn: per client, one write of
    all their EVALSHAs and one read of all the answers on one connection (a pipeline, not
    a transaction: each script is atomic by itself, and they need not share a slot; on a
    cluster, redis-py's cluster pipeline sends each to its node). Each call has its own
    deadline: one timer per batch fails the calls whose time budget ran out with
    TimeoutError, and the batch goes on for the others."""

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self._pending: list[_Call] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def run(
        self, client: AnyRedis, script: LuaScript, keys: list[str], args: list[str | int], timeout: float
    ) -> asyncio.Future[list[int]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        self._pending.append(_Call(client, script, keys, args, future, loop.time() + timeout))
        if self._scheduled_on is not loop:  # (a loop that closed before flushing is replaced)
            self._scheduled_on = loop
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        loop, self._scheduled_on = self._scheduled_on, None
        pending = [c for c in self._pending if c.future.get_loop() is loop]
        self._pending = []
        by_client: dict[int, list[_Call]] = {}
        for call in pending:
            by_client.setdefault(id(call.client), []).append(call)
        for calls in by_client.values():
            for start in range(0, len(calls), self.max_batch):
                task = asyncio.ensure_future(self._send(calls[start : start + self.max_batch]))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, calls: list[_Call]) -> None:
        deadlines = _Deadlines(calls)
        try:
            replies = await _execute(calls[0].client, calls, whole=False)
            reload = []
            for call, reply in zip(calls, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    reload.append(call)
                else:
                    _settle(call.future, reply)
            if reload:
                for call, reply in zip(reload, await _execute(reload[0].client, reload, whole=True), strict=True):
                    _settle(call.future, reply)
        except Exception as exc:
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(exc)
        finally:
            deadlines.cancel()


class _Deadlines:
    """One timer for a batch: it fails each call whose deadline has passed with
    TimeoutError, and is set again for the next deadline."""

    def __init__(self, calls: list[_Call]) -> None:
        self.calls = calls
        self.loop = asyncio.get_running_loop()
        self.handle = self.loop.call_at(min(c.deadline for c in calls), self._fire)

    def _fire(self) -> None:
        now = self.loop.time()
        later = []
        for call in self.calls:
            if call.future.done():
                continue
            if call.deadline <= now:
                call.future.set_exception(TimeoutError())
            else:
                later.append(call.deadline)
        if later:
            self.handle = self.loop.call_at(min(later), self._fire)

    def cancel(self) -> None:
        self.handle.cancel()


async def _execute(client: Any, calls: list[_Call], whole: bool) -> list[Any]:
    """The replies (or the error of each) of `calls`, in order, in one round trip."""
    if isinstance(client, redis.Redis):
        # One connection, one write, N reads: what a pipeline does, without building one.
        pool = client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(b"".join(c.script.pack(c.keys, c.args, whole) for c in calls))
            replies: list[Any] = []
            # One socket timeout for the whole batch rather than one per reply.
            async with asyncio.timeout(conn.socket_timeout or READ_TIMEOUT):
                for _ in calls:
                    try:
                        replies.append(await conn.read_response(disable_decoding=True, timeout=math.inf))
                    except ResponseError as exc:
                        replies.append(exc)
            return replies
        except BaseException:
            await conn.disconnect()  # half read: never reused
            raise
        finally:
            await pool.release(conn)
    # A cluster: redis-py's cluster pipeline sends each call to the master of its slot
    # (its evalsha() method is refused in pipelines, the command itself is routed by key).
    pipe = client.pipeline(transaction=False)
    for c in calls:
        if whole:
            pipe.execute_command("EVAL", c.script.source, len(c.keys), *c.keys, *c.args)
        else:
            pipe.execute_command("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)
    return list(await pipe.execute(raise_on_error=False))


def _settle(future: asyncio.Future[list[int]], reply: Any) -> None:
    if future.done():
        return
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(parse_reply(reply))
