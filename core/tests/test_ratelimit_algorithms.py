"""Each algorithm's Lua script, run on the real Redis, decides exactly as a reference
model in Python does, over request timings and costs that hypothesis chooses; and the
guarantee each algorithm makes holds whatever the timings."""

from __future__ import annotations

import dataclasses
import math
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stackyard.clients import redis_client
from stackyard.ratelimit import Policy, RateLimiter
from stackyard.resources.ratelimit import RateLimitPolicySpec

# A microsecond clock near today's, as Redis's TIME gives it.
EPOCH_US = 1_760_000_000_000_000
WINDOWS_US = [1_000, 250_000, 1_000_000, 7_500_000, 3_600_000_000]


@dataclass
class FixedWindowModel:
    limit: int
    window: int
    counts: dict[int, int] = field(default_factory=dict)

    def decide(self, now: int, cost: int) -> tuple[bool, int, int, int]:
        index = math.floor(now / self.window)
        reset = (index + 1) * self.window - now
        used = self.counts.get(index, 0)
        if used + cost > self.limit:
            return False, max(0, self.limit - used), reset, reset
        self.counts[index] = used + cost
        return True, self.limit - used - cost, reset, 0


@dataclass
class SlidingWindowModel:
    """The two-window estimate: the previous window's count weighted by how much of it
    still overlaps the sliding window, plus the current window's count."""

    limit: int
    window: int
    counts: dict[int, int] = field(default_factory=dict)

    def decide(self, now: int, cost: int) -> tuple[bool, int, int, int]:
        w = float(self.window)
        index = math.floor(now / w)
        elapsed = now - index * self.window
        reset = self.window - elapsed
        current, previous = self.counts.get(index, 0), self.counts.get(index - 1, 0)
        used = math.floor(float(previous) * float(self.window - elapsed) / w) + current
        if used + cost > self.limit:
            room = self.limit - current - cost
            if room >= 0:
                retry = math.floor(w - float(room + 1) * w / previous) + 1 - elapsed
            else:
                room = self.limit - cost
                retry = reset
                if current > room:
                    retry = reset + math.floor(w - float(room + 1) * w / current) + 1
            return False, max(0, self.limit - used), reset, retry
        self.counts[index] = current + cost
        return True, self.limit - used - cost, reset, 0


def _g17(value: float) -> float:
    """What Redis keeps of a number the script stores with %.17g: the same double."""
    return float(f"{value:.17g}")


@dataclass
class TokenBucketModel:
    limit: int
    window: int
    capacity: int
    tokens: float | None = None
    stamp: float = 0.0

    def decide(self, now: int, cost: int) -> tuple[bool, int, int, int]:
        tokens = float(self.capacity)
        if self.tokens is not None:
            tokens = min(float(self.capacity), self.tokens + max(0.0, now - self.stamp) * self.limit / self.window)
        if tokens + 1e-9 < cost:
            retry = math.ceil((cost - tokens) * self.window / self.limit)
            full = math.ceil((self.capacity - tokens) * self.window / self.limit)
            return False, math.floor(tokens + 1e-9), full, retry
        tokens -= cost
        self.tokens, self.stamp = _g17(tokens), float(now)
        full = math.ceil((self.capacity - tokens) * self.window / self.limit)
        return True, math.floor(tokens + 1e-9), full, 0


@dataclass
class GcraModel:
    """Generic cell rate algorithm: a theoretical arrival time that each request pushes
    forward by cost * (window / limit); refused when it would run further ahead of now
    than burst emission intervals (1 µs of slack for rounding)."""

    limit: int
    window: int
    burst: int
    tat: float | None = None

    def decide(self, now: int, cost: int) -> tuple[bool, int, int, int]:
        interval = self.window / self.limit
        tolerance = interval * self.burst + 1
        behind = 0.0 if self.tat is None else max(0.0, self.tat - now)
        ahead = behind + cost * interval
        if ahead > tolerance:
            remaining = max(0, math.floor((tolerance - behind) / interval))
            return False, remaining, math.ceil(behind), math.ceil(ahead - tolerance)
        self.tat = _g17(now + ahead)
        return True, math.floor((tolerance - ahead) / interval), math.ceil(ahead), 0


def policy(algorithm: str, limit: int, window_us: int, burst: int | None) -> Policy:
    spec = RateLimitPolicySpec.model_validate(
        {
            "stackRef": {"name": "demo"},
            "algorithm": algorithm,
            "limit": limit,
            "window": f"{window_us // 1000}ms",
            "burst": burst,
            "timeout": "5s",
        }
    )
    return Policy.from_spec(f"prop-{algorithm.lower()}", spec)


def model_for(p: Policy):
    if p.algorithm == "fixedWindow":
        return FixedWindowModel(p.limit, p.window_us)
    if p.algorithm == "slidingWindow":
        return SlidingWindowModel(p.limit, p.window_us)
    if p.algorithm == "tokenBucket":
        return TokenBucketModel(p.limit, p.window_us, p.capacity)
    return GcraModel(p.limit, p.window_us, p.capacity)


@st.composite
def scenarios(draw, algorithm: str):
    window = draw(st.sampled_from(WINDOWS_US))
    limit = draw(st.integers(1, 12))
    burst = None
    if algorithm == "tokenBucket":
        burst = draw(st.none() | st.integers(limit, 3 * limit))
    elif algorithm == "gcra":
        burst = draw(st.none() | st.integers(1, 3 * limit))
    p = policy(algorithm, limit, window, burst)
    # Gaps from "at once" to more than two windows, biased to the interesting short ones.
    gap = st.one_of(
        st.just(0),
        st.integers(0, max(1, window // limit)),
        st.integers(0, 2 * window + 1),
    )
    steps = draw(st.lists(st.tuples(gap, st.integers(0, p.capacity)), min_size=1, max_size=40))
    start = EPOCH_US + draw(st.integers(0, 10 * window))
    return p, start, steps


@pytest.fixture(scope="module")
def limiter(redis_server):
    return RateLimiter(redis_client(redis_server.url), use_deny_cache=False)


async def run(limiter, p: Policy, start: int, steps):
    key = uuid.uuid4().hex
    model = model_for(p)
    now = start
    trace = []
    for gap, cost in steps:
        now += gap
        decision = await limiter.decide(p, key, cost, now_us=now)
        assert decision.source == "redis"
        got = (
            decision.allowed,
            decision.remaining,
            round(decision.reset_after * 1e6),
            round(decision.retry_after * 1e6),
        )
        expected = model.decide(now, cost)
        assert got == expected, f"at t={now - start} us cost {cost}: script {got}, model {expected}"
        trace.append((now, cost, decision.allowed))
    return trace


def assert_window_bound(p: Policy, trace) -> None:
    """What passed within each aligned window is at most the limit."""
    per_window: dict[int, int] = {}
    for now, cost, allowed in trace:
        if allowed:
            per_window[now // p.window_us] = per_window.get(now // p.window_us, 0) + cost
    assert all(total <= p.limit for total in per_window.values())


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(scenarios("fixedWindow"))
async def test_fixed_window_matches_model_and_never_exceeds_limit_per_window(limiter, scenario):
    p, start, steps = scenario
    assert_window_bound(p, await run(limiter, p, start, steps))


@PROPERTY
@given(scenarios("slidingWindow"))
async def test_sliding_window_matches_model_and_never_exceeds_limit_per_window(limiter, scenario):
    p, start, steps = scenario
    assert_window_bound(p, await run(limiter, p, start, steps))


def assert_rate_bound(p: Policy, trace, slack_us: float = 0.0):
    """Between any two moments, what passed is at most the burst plus the refill (over
    the elapsed time plus the algorithm's slack)."""
    passed = [(now, cost) for now, cost, allowed in trace if allowed]
    for i in range(len(passed)):
        total = 0
        for j in range(i, len(passed)):
            total += passed[j][1]
            elapsed = passed[j][0] - passed[i][0]
            assert total <= p.capacity + (elapsed + slack_us) * p.limit / p.window_us + 1e-6


@PROPERTY
@given(scenarios("tokenBucket"))
async def test_token_bucket_matches_model_and_bounds_the_rate(limiter, scenario):
    p, start, steps = scenario
    assert_rate_bound(p, await run(limiter, p, start, steps))


@PROPERTY
@given(scenarios("gcra"))
async def test_gcra_matches_model_and_bounds_the_rate(limiter, scenario):
    p, start, steps = scenario
    assert_rate_bound(p, await run(limiter, p, start, steps), slack_us=1.0)


@pytest.mark.parametrize("algorithm", ["fixedWindow", "slidingWindow", "tokenBucket", "gcra"])
async def test_a_request_may_cost_its_whole_capacity_and_a_refused_one_costs_nothing(limiter, algorithm):
    p = policy(algorithm, 5, 60_000_000, None)
    key = uuid.uuid4().hex
    assert (await limiter.decide(p, key, 3, now_us=EPOCH_US)).remaining == 2
    refused = await limiter.decide(p, key, 3, now_us=EPOCH_US)
    assert not refused.allowed and refused.retry_after > 0
    assert (await limiter.decide(p, key, 2, now_us=EPOCH_US)).allowed, "the refused request was charged"
    assert not (await limiter.decide(p, key, 1, now_us=EPOCH_US)).allowed


@pytest.mark.parametrize("algorithm", ["fixedWindow", "slidingWindow", "tokenBucket", "gcra"])
async def test_waiting_the_retry_after_lets_the_request_pass(limiter, algorithm):
    p = policy(algorithm, 4, 10_000_000, None)
    key = uuid.uuid4().hex
    now = EPOCH_US + 3_000_000
    for _ in range(4):
        assert (await limiter.decide(p, key, 1, now_us=now)).allowed
    refused = await limiter.decide(p, key, 2, now_us=now)
    assert not refused.allowed
    wait = round(refused.retry_after * 1e6)
    assert not (await limiter.decide(p, key, 2, now_us=now + wait - 1)).allowed
    assert (await limiter.decide(p, key, 2, now_us=now + wait)).allowed


async def test_without_a_given_time_the_scripts_use_the_redis_server_clock(limiter, redis_server):
    p = policy("fixedWindow", 2, 3_600_000_000, None)
    key = uuid.uuid4().hex
    seconds, micros = await limiter._redis().time()
    server_now = seconds * 1_000_000 + micros
    decision = await limiter.decide(p, key)
    expected_reset = (server_now // p.window_us + 1) * p.window_us - server_now
    assert abs(decision.reset_after * 1e6 - expected_reset) < 1_000_000


@PROPERTY
@given(st.sampled_from(["fixedWindow", "slidingWindow", "tokenBucket", "gcra"]).flatmap(scenarios))
async def test_dry_run_never_blocks_and_reports_what_enforce_would_do(limiter, scenario):
    p, start, steps = scenario
    dry = dataclasses.replace(p, mode="dryRun")
    key = uuid.uuid4().hex
    model = model_for(p)
    now = start
    for gap, cost in steps:
        now += gap
        decision = await limiter.decide(dry, key, cost, now_us=now)
        assert not decision.blocks
        assert decision.allowed == model.decide(now, cost)[0]
