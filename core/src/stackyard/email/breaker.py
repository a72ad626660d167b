"""CircuitBreaker: one per email provider, its state shared by every worker replica in Redis.

    closed ──(failureThreshold consecutive failures)──► open
    open ──(openDuration passed; one caller gets the probe)──► half-open
    half-open ──(halfOpenProbes successes in a row)──► closed
    half-open ──(a probe fails)──► open (for another openDuration)

While open, no replica sends to the provider (the pipeline fails over at once). In half-open
exactly one send at a time is let through as a probe, across all replicas: the probe holds a
lease (the provider's send timeout) so a replica that dies mid-probe does not wedge it.
Every transition is one Lua script, so replicas never disagree on the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..clients import AnyRedis
from ..luascript import LuaScript

KEY_PREFIX = "sy:email:breaker:"

_PRELUDE = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local threshold, open_ms, probes, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local f = redis.call('HMGET', key, 'state', 'failures', 'opened', 'ok', 'probe_until')
local state = f[1] or 'closed'
local failures, opened = tonumber(f[2] or '0'), tonumber(f[3] or '0')
local ok, probe_until = tonumber(f[4] or '0'), tonumber(f[5] or '0')
local function open()
  redis.call('HSET', key, 'state', 'open', 'opened', now, 'ok', 0, 'probe_until', 0)
  redis.call('HINCRBY', key, 'opens', 1)
end
"""

# Answers {allowed (1/0), probe (1/0), ms until a send may be tried (0 when allowed), state}.
ALLOW = LuaScript(
    _PRELUDE
    + """
if state == 'open' then
  local wait = opened + open_ms - now
  if wait > 0 then return {0, 0, wait, 'open'} end
  state = 'half_open'
  redis.call('HSET', key, 'state', 'half_open', 'ok', 0, 'probe_until', 0)
  probe_until = 0
end
if state == 'half_open' then
  if probe_until > now then return {0, 0, probe_until - now, 'half_open'} end
  redis.call('HSET', key, 'probe_until', now + lease_ms)
  return {1, 1, 0, 'half_open'}
end
return {1, 0, 0, 'closed'}
"""
)

# ARGV[5]: '1' success, '0' failure. Answers the state after.
RECORD = LuaScript(
    _PRELUDE
    + """
local success = ARGV[5] == '1'
if state == 'closed' then
  if success then
    if failures > 0 then redis.call('HSET', key, 'failures', 0) end
  else
    failures = redis.call('HINCRBY', key, 'failures', 1)
    if failures >= threshold then open() return 'open' end
  end
  return 'closed'
end
if state == 'half_open' then
  if not success then open() return 'open' end
  ok = redis.call('HINCRBY', key, 'ok', 1)
  if ok >= probes then
    redis.call('HSET', key, 'state', 'closed', 'failures', 0, 'ok', 0, 'probe_until', 0)
    return 'closed'
  end
  redis.call('HSET', key, 'probe_until', 0)
  return 'half_open'
end
return state
"""
)

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int = 5
    open_duration: float = 30.0
    half_open_probes: int = 1
    probe_lease: float = 10.0
    """How long a probe may hold half-open before another caller may probe (the send timeout)."""


@dataclass(frozen=True)
class Permit:
    allowed: bool
    probe: bool
    """This send is the half-open probe: its outcome decides the breaker."""
    retry_in: float
    """Seconds until a send may be tried, when not allowed."""
    state: BreakerState


@dataclass(frozen=True)
class BreakerSnapshot:
    state: BreakerState
    consecutive_failures: int
    opened_at: float | None
    """Unix seconds when it last opened."""
    times_opened: int


class CircuitBreaker:
    def __init__(
        self,
        redis: AnyRedis,
        provider: str,
        settings: BreakerSettings,
        *,
        on_state: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        """`on_state(provider, state)` is told every state a call answers (the state gauge
        keeps the last one: it cannot ask Redis from the SDK's thread)."""
        self.redis: Any = redis
        self.provider = provider
        self.settings = settings
        self.key = KEY_PREFIX + provider
        self._on_state = on_state

    def _seen(self, state: BreakerState) -> BreakerState:
        if self._on_state is not None:
            self._on_state(self.provider, state)
        return state

    def _args(self) -> list[str | int | bytes]:
        s = self.settings
        return [s.failure_threshold, round(s.open_duration * 1000), s.half_open_probes, round(s.probe_lease * 1000)]

    async def allow(self) -> Permit:
        allowed, probe, wait_ms, state = await ALLOW(self.redis, [self.key], self._args())
        return Permit(bool(allowed), bool(probe), int(wait_ms) / 1000, self._seen(_state(state)))

    async def success(self) -> BreakerState:
        return self._seen(_state(await RECORD(self.redis, [self.key], [*self._args(), "1"])))

    async def failure(self) -> BreakerState:
        return self._seen(_state(await RECORD(self.redis, [self.key], [*self._args(), "0"])))

    async def snapshot(self) -> BreakerSnapshot:
        state, failures, opened, opens = await self.redis.hmget(self.key, ["state", "failures", "opened", "opens"])
        return BreakerSnapshot(
            state=self._seen(_state(state or b"closed")),
            consecutive_failures=int(failures or 0),
            opened_at=int(opened) / 1000 if opened else None,
            times_opened=int(opens or 0),
        )

    async def reset(self) -> None:
        await self.redis.delete(self.key)


def _state(raw: bytes | str) -> BreakerState:
    value = raw.decode() if isinstance(raw, bytes) else raw
    if value not in ("closed", "open", "half_open"):
        raise ValueError(f"unknown breaker state {value!r}")
    return value  # type: ignore[return-value]
