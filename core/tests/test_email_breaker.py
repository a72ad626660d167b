"""The providers' circuit breaker on the real Redis, shared by two replicas: failures open it
for everyone, one probe at a time in half-open, a good probe closes it and a bad one
re-opens it; and a model check with hypothesis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stackyard.clients import redis_client
from stackyard.email.breaker import BreakerSettings, CircuitBreaker

FAST = BreakerSettings(failure_threshold=3, open_duration=0.3, half_open_probes=2, probe_lease=0.5)


@pytest.fixture
async def replicas(redis_server):
    """Two breakers for the same provider, on two clients: what two worker replicas hold."""
    clients = [redis_client(redis_server.url) for _ in range(2)]
    name = f"resend-{uuid.uuid4().hex[:8]}"
    yield [CircuitBreaker(c, name, FAST) for c in clients]
    for c in clients:
        await c.aclose()


async def test_consecutive_failures_open_it_for_every_replica(replicas):
    a, b = replicas
    assert (await a.allow()).allowed
    assert await a.failure() == "closed"
    assert await b.failure() == "closed"
    await a.success()  # a success in between resets the count
    for breaker in (a, b, a):
        state = await breaker.failure()
    assert state == "open"
    refused = await b.allow()
    assert not refused.allowed and refused.state == "open" and 0.2 < refused.retry_in <= 0.3
    snapshot = await b.snapshot()
    assert snapshot.state == "open" and snapshot.times_opened == 1 and snapshot.consecutive_failures == 3


async def test_half_open_lets_one_probe_at_a_time_and_closes_after_enough_good_ones(replicas):
    a, b = replicas
    for _ in range(3):
        await a.failure()
    await asyncio.sleep(0.35)
    permits = await asyncio.gather(a.allow(), b.allow(), a.allow(), b.allow())
    assert sum(p.allowed for p in permits) == 1, "one probe across replicas"
    assert all(p.state == "half_open" for p in permits)
    assert await a.success() == "half_open", "two good probes are needed"
    probe = await b.allow()
    assert probe.allowed and probe.probe
    assert await b.success() == "closed"
    assert (await a.allow()).allowed and not (await a.allow()).probe


async def test_a_failed_probe_opens_it_again(replicas):
    a, b = replicas
    for _ in range(3):
        await a.failure()
    await asyncio.sleep(0.35)
    assert (await b.allow()).probe
    assert await b.failure() == "open"
    assert not (await a.allow()).allowed
    assert (await a.snapshot()).times_opened == 2


async def test_a_probe_whose_replica_died_is_given_to_another_after_its_lease(replicas):
    a, b = replicas
    for _ in range(3):
        await a.failure()
    await asyncio.sleep(0.35)
    assert (await a.allow()).probe  # and replica a dies before it reports
    assert not (await b.allow()).allowed
    await asyncio.sleep(0.55)
    assert (await b.allow()).probe


def model(events: list[str], threshold: int) -> str:
    """The closed-state part of the breaker as plain Python: consecutive failures only."""
    failures, state = 0, "closed"
    for event in events:
        if state == "open":
            break
        failures = 0 if event == "ok" else failures + 1
        if failures >= threshold:
            state = "open"
    return state


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["ok", "fail"]), max_size=12), st.integers(1, 4))
async def test_it_opens_exactly_when_the_model_says(redis_server, events, threshold):
    client = redis_client(redis_server.url)
    breaker = CircuitBreaker(client, f"m-{uuid.uuid4().hex[:8]}", BreakerSettings(failure_threshold=threshold))
    try:
        state = "closed"
        for event in events:
            if state == "open":
                break
            state = await (breaker.success() if event == "ok" else breaker.failure())
        assert state == model(events, threshold)
    finally:
        await breaker.reset()
        await client.aclose()
