"""What the answer says: IETF RateLimit headers, Retry-After, and which decision of
several decides (pure)."""

from __future__ import annotations

from stackyard.ratelimit import Decision, Verdict
from stackyard.ratelimit.headers import ratelimit, ratelimit_policy, response_headers, retry_after, sf_string
from stackyard.ratelimit.middleware import refusal


def decision(policy="login", allowed=True, remaining=3, retry=0.0, mode="enforce", source="redis", **kw):
    fields = {"limit": 10, "reset_after": 41.2, "window": 60.0} | kw
    return Decision(
        policy, "k", allowed, fields["limit"], remaining, fields["reset_after"], retry, fields["window"], mode, source
    )


def test_ietf_header_fields_are_structured_lists():
    decisions = [decision(), decision("burst", limit=5, remaining=0, reset_after=0.2, window=0.5)]
    assert ratelimit_policy(decisions) == '"login";q=10;w=60, "burst";q=5;w=1'
    assert ratelimit(decisions) == '"login";r=3;t=42, "burst";r=0;t=1'
    assert sf_string('a"b\\c') == '"a\\"b\\\\c"'


def test_retry_after_is_whole_seconds_and_at_least_one():
    assert [retry_after(s) for s in (0.0, 0.001, 1.0, 1.2, 59.9)] == ["1", "1", "1", "2", "60"]


def test_headers_leave_out_dry_run_and_failed_decisions():
    decisions = [decision("dry", mode="dryRun"), decision("open", source="fail-open"), decision("real")]
    assert response_headers(decisions) == [("RateLimit-Policy", '"real";q=10;w=60'), ("RateLimit", '"real";r=3;t=42')]
    assert response_headers([decision("dry", mode="dryRun")]) == []


def test_the_most_restrictive_decision_decides():
    roomy, tight = decision("roomy", remaining=9), decision("tight", remaining=1)
    assert Verdict.of([roomy, tight]).deciding == tight
    short = decision("short", allowed=False, remaining=0, retry=2.0)
    long = decision("long", allowed=False, remaining=0, retry=30.0)
    verdict = Verdict.of([roomy, short, long])
    assert not verdict.allowed and verdict.deciding == long and verdict.retry_after == 30.0
    dry = Verdict.of([decision("dry", allowed=False, retry=5.0, mode="dryRun")])
    assert dry.allowed and dry.deciding is None
    closed = decision("closed", allowed=False, remaining=0, retry=1.0, source="fail-closed")
    assert Verdict.of([long, closed]).unavailable, "a policy that cannot be decided and fails closed says so"


def test_refusal_is_a_429_problem_with_retry_after_and_the_headers():
    verdict = Verdict.of([decision("login", allowed=False, remaining=0, retry=11.3)])
    problem, headers = refusal(verdict, "/v1/auth/login")
    assert problem.status == 429
    assert problem.body("/v1/auth/login") == {
        "type": "https://stackyard.dev/problems/too-many-requests",
        "title": "Too many requests",
        "status": 429,
        "detail": "rate limit login exceeded; retry in 12 s",
        "instance": "/v1/auth/login",
        "policy": "login",
        "retryAfter": 12,
    }
    assert dict(headers) == {
        "Retry-After": "12",
        "RateLimit-Policy": '"login";q=10;w=60',
        "RateLimit": '"login";r=0;t=42',
    }
    closed = Verdict.of([decision("login", allowed=False, remaining=0, retry=1.0, source="fail-closed")])
    problem, headers = refusal(closed, "/x")
    assert problem.status == 503 and dict(headers) == {"Retry-After": "1"}
