"""The SDK's rate-limit and api calls (`ratelimit.check`, `ratelimit.policies`, `config.get`,
`health.live`, `health.ready`) against the real api on real Redis: a check allowed until the
policy's budget is spent, then refused as an answer (200, never retried); the api's own
RateLimitPolicy answering 429 with Retry-After, retried no sooner than it says; problem+json
answers as typed exceptions with every problem field; a not-ready /readyz read as an answer
(on a stub transport: the real api is ready).

Redis database 27."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from stackyard.client import (
    NO_RETRY,
    AppliedConfigInfo,
    AsyncStackyard,
    CheckResult,
    NotFound,
    RateLimited,
    RetryPolicy,
    Stackyard,
    Unprocessable,
)
from stackyard.problems import PROBLEM_BASE
from stackyard_harness.auth_stack import AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink

REDIS_DATABASE = 27
EXPORTS = {"algorithm": "tokenBucket", "limit": 3, "window": "1m", "timeout": "2s", "enforceInApi": False}
"""A policy for the user's own services: the api does not enforce it on its routes. A token
bucket (3, one back every 20 s) has no window edge a test could straddle."""
PER_USER = EXPORTS | {"key": {"type": "user"}}
"""Counted by the signed-in user: a check without a key and without a user has none to count."""
GUARD = {
    "match": {"paths": ["/v1/ratelimit/check"], "methods": ["POST"]},
    "algorithm": "gcra",
    "limit": 1,
    "window": "2s",
    "timeout": "2s",
}
"""The api's own limit on the check route: one check every two seconds (gcra: no window edge
to let a second check through early)."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, mongo_server: Any) -> Iterator[AuthStack]:
    with SmtpSink() as sink:
        redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
        running = AuthStack(
            tmp_path_factory.mktemp("sdk-ratelimit"), redis_url, mongo_server.url, sink, run_worker=False
        )
        yield from running.serve()


@pytest.fixture
def limits(stack: AuthStack) -> AuthStack:
    """The exports policies in force, and no counter left by the test before."""
    stack.configure(rate_limit_policies={"exports": EXPORTS, "per-user": PER_USER})
    stack.reset()
    return stack


@dataclass(frozen=True)
class Sent:
    path: str
    status: int
    answered_at: float
    retry_after: str | None


class RecordingTransport(httpx.HTTPTransport):
    """The real transport, remembering each answer and when it came."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Sent] = []
        self.started: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.started.append(time.monotonic())
        response = super().handle_request(request)
        self.sent.append(
            Sent(request.url.path, response.status_code, time.monotonic(), response.headers.get("Retry-After"))
        )
        return response


class AsyncRecordingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Sent] = []
        self.started: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started.append(time.monotonic())
        response = await super().handle_async_request(request)
        answered = Sent(request.url.path, response.status_code, time.monotonic(), response.headers.get("Retry-After"))
        self.sent.append(answered)
        return response


def assert_retried_after_retry_after(sent: list[Sent], started: list[float]) -> None:
    statuses = [s.status for s in sent]
    assert statuses[:2] == [200, 429] and statuses[-1] == 200 and set(statuses[2:-1]) <= {429}
    for refused, retry in zip(sent[1:-1], started[2:], strict=True):
        assert refused.retry_after is not None and int(refused.retry_after) >= 1
        waited = retry - refused.answered_at
        assert waited >= int(refused.retry_after), f"retried after {waited:.2f} s, Retry-After {refused.retry_after}"


def test_a_check_is_allowed_until_the_budget_is_spent_then_refused_as_an_answer(limits: AuthStack):
    transport = RecordingTransport()
    with Stackyard(limits.url, transport=transport) as client:
        first = client.ratelimit.check("exports", key="user-a", cost=2)
        assert isinstance(first, CheckResult)
        assert first.allowed and first.remaining == 1 and first.limit == 3 and first.retry_after == 0
        assert first.policy == "exports" and first.mode == "enforce" and first.source == "redis"
        assert client.ratelimit.check("exports", key="user-a", cost=0).remaining == 1, "cost 0 only looks"
        assert client.ratelimit.check("exports", key="user-a").allowed

        refused = client.ratelimit.check("exports", key="user-a")
        assert not refused.allowed and refused.remaining == 0
        assert 0 < refused.retry_after <= 20 and refused.window == 60
        assert client.ratelimit.check("exports", key="user-b").allowed, "each key has its own budget"
    assert [s.status for s in transport.sent] == [200] * 5, "a refusal is a 200 answer, sent once, not retried"


def test_policies_lists_the_policies_in_force_with_their_counts(limits: AuthStack):
    with Stackyard(limits.url) as client:
        for _ in range(4):
            client.ratelimit.check("exports", key="user-c")
        listed = client.ratelimit.policies()
        applied = client.config.get()
    assert set(listed.policies) == {"exports", "per-user"}
    exports = listed.policies["exports"]
    assert exports.spec.limit == 3 and exports.spec.algorithm == "tokenBucket" and not exports.spec.enforce_in_api
    assert (exports.counts.allowed, exports.counts.limited) >= (3, 1), "this api process's decisions since it started"
    assert listed.hash == applied.hash


def test_config_says_which_configuration_the_api_applies(limits: AuthStack):
    with Stackyard(limits.url) as client:
        applied = client.config.get()
        assert isinstance(applied, AppliedConfigInfo)
        assert applied.generation == limits.generation and applied.stack == "demo"
        assert len(applied.hash) >= 16 and applied.last_error is None
        assert applied.rate_limit_policies == ["exports", "per-user"] and applied.email_providers == ["relay"]
        live, ready = client.health.live(), client.health.ready()
    assert live.ready and ready.ready and ready.checks["redis"] == "ok"


def test_an_unknown_policy_raises_not_found_with_the_problem_fields(limits: AuthStack):
    transport = RecordingTransport()
    with Stackyard(limits.url, transport=transport) as client, pytest.raises(NotFound) as raised:
        client.ratelimit.check("no-such-policy", key="user-a")
    problem = raised.value
    assert (problem.status, problem.title) == (404, "Not found")
    assert problem.type == PROBLEM_BASE + "not-found"
    assert problem.detail == "no RateLimitPolicy 'no-such-policy' in this Stack's config"
    assert problem.instance == "/v1/ratelimit/check"
    assert problem.extensions["policy"] == "no-such-policy"
    assert "no RateLimitPolicy 'no-such-policy'" in str(problem) and "HTTP 404" in str(problem)
    assert len(transport.sent) == 1


def test_a_policy_that_needs_a_key_raises_unprocessable_when_there_is_none(limits: AuthStack):
    with Stackyard(limits.url) as client, pytest.raises(Unprocessable) as raised:
        client.ratelimit.check("per-user")
    assert raised.value.type == PROBLEM_BASE + "unprocessable"
    assert raised.value.extensions["policy"] == "per-user" and "pass a key" in raised.value.detail


def test_the_apis_own_429_is_retried_no_sooner_than_its_retry_after(limits: AuthStack):
    limits.configure(rate_limit_policies={"exports": EXPORTS, "guard": GUARD})
    transport = RecordingTransport()
    with Stackyard(limits.url, transport=transport, retry=RetryPolicy(backoff=0.05, total=20)) as client:
        assert client.ratelimit.check("exports", key="user-d").allowed
        second = client.ratelimit.check("exports", key="user-d")
    assert second.allowed and second.remaining == 1, "the refused request was not charged; its retry was, once"
    assert_retried_after_retry_after(transport.sent, transport.started)


def test_the_async_client_retries_the_apis_own_429_no_sooner_than_its_retry_after(limits: AuthStack):
    limits.configure(rate_limit_policies={"exports": EXPORTS, "guard": GUARD})
    transport = AsyncRecordingTransport()

    async def scenario() -> CheckResult:
        retry = RetryPolicy(backoff=0.05, total=20)
        async with AsyncStackyard(limits.url, transport=transport, retry=retry) as client:
            assert (await client.ratelimit.check("exports", key="user-g")).allowed
            return await client.ratelimit.check("exports", key="user-g")

    assert asyncio.run(scenario()).remaining == 1
    assert_retried_after_retry_after(transport.sent, transport.started)


def test_a_429_still_refused_after_the_retries_raises_rate_limited_with_the_problem(limits: AuthStack):
    limits.configure(rate_limit_policies={"exports": EXPORTS, "guard": GUARD | {"window": "1m"}})
    with Stackyard(limits.url, retry=NO_RETRY) as client:
        client.ratelimit.check("exports", key="user-e")
        with pytest.raises(RateLimited) as raised:
            client.ratelimit.check("exports", key="user-e")
    problem = raised.value
    assert problem.status == 429 and problem.type == PROBLEM_BASE + "too-many-requests"
    assert problem.title == "Too many requests" and problem.extensions["policy"] == "guard"
    assert problem.retry_after is not None and 1 <= problem.retry_after <= 60
    assert problem.extensions["retryAfter"] == problem.retry_after
    assert problem.detail == f"rate limit guard exceeded; retry in {problem.retry_after:g} s"


def test_the_async_client_checks_lists_and_reads_the_config(limits: AuthStack):
    async def scenario() -> tuple[list[bool], set[str], str, bool]:
        async with AsyncStackyard(limits.url) as client:
            decisions = [(await client.ratelimit.check("exports", key="user-f", cost=2)).allowed for _ in range(2)]
            listed = await client.ratelimit.policies()
            applied = await client.config.get()
            ready = await client.health.ready()
            with pytest.raises(NotFound):
                await client.ratelimit.check("nope")
            return decisions, set(listed.policies), applied.hash, ready.ready

    decisions, names, config_hash, ready = asyncio.run(scenario())
    assert decisions == [True, False] and names == {"exports", "per-user"} and config_hash and ready


def test_not_ready_is_an_answer_read_once_not_an_error():
    sent: list[str] = []

    def not_ready(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(503, json={"status": "not ready", "checks": {"config": "ok", "redis": "unreachable"}})

    with Stackyard("http://127.0.0.1:9", transport=httpx.MockTransport(not_ready)) as client:
        health = client.health.ready()
    assert not health.ready and health.checks["redis"] == "unreachable"
    assert sent == ["/readyz"], "a 503 of /readyz is not retried"
