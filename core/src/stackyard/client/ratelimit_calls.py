"""What each call of /v1/ratelimit sends, shared by `ratelimit_async` and `ratelimit_sync`.

A check the policy refuses is an answer like any other (200, `allowed` false): it is never
retried. A 429 is the api's own RateLimitPolicies refusing the check request itself before
it was decided, so it is retried as any 429 is."""

from __future__ import annotations

from stackyard.ratelimit.contract import CheckRequest, CheckResult, PolicyList

from .calls import Call

CHECK = "/v1/ratelimit/check"
POLICIES = "/v1/ratelimit/policies"


def check(policy: str, key: str | None, cost: int) -> Call[CheckResult]:
    """POST /v1/ratelimit/check. Not repeatable after a broken connection: the api may have
    charged the cost already. Raises pydantic's ValidationError before sending a request the
    contract refuses (an empty policy name, a negative cost)."""
    body = CheckRequest(policy=policy, key=key, cost=cost).model_dump(mode="json", by_alias=True, exclude_none=True)
    return Call("POST", CHECK, CheckResult, json=body)


def policies() -> Call[PolicyList]:
    return Call("GET", POLICIES, PolicyList, repeatable=True)
