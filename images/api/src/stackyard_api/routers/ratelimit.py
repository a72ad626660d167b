"""/v1/ratelimit: the decision for the user's other services, and the policies in force.

POST /v1/ratelimit/check     charge a key under a policy; 200 whether or not it is allowed
GET  /v1/ratelimit/policies  the Stack's policies (what RemotePolicies reads), ETag = config hash
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from stackyard.problems import NotFound, UnprocessableContent
from stackyard.ratelimit import CheckRequest, CheckResult, PolicyList
from stackyard.ratelimit.contract import PolicyCountsInfo, PolicyInfo
from stackyard.ratelimit.keys import RequestFacts, encode_key, parse_networks, request_key, secret_key

from ..deps import LimiterDep, PolicySourceDep, RuntimeDep
from ..errors import problem_responses

router = APIRouter(prefix="/v1/ratelimit", tags=["ratelimit"])


@router.post(
    "/check",
    response_model=CheckResult,
    response_model_by_alias=True,
    summary="Decide one request of another service",
    description=(
        "Charges `cost` to `key` under the named RateLimitPolicy, as the api does for its own routes: "
        "one atomic Redis round trip with the policy's algorithm, time budget and failure mode. "
        "The answer is 200 whether the request is allowed or not: act on `allowed`, and wait "
        "`retryAfter` seconds before trying again. A dryRun policy always allows and sets `wouldLimit`."
    ),
    responses=problem_responses(404, 422, 429, 503),
)
async def check(body: CheckRequest, request: Request, limiter: LimiterDep, policies: PolicySourceDep) -> CheckResult:
    policy_set = policies.current()
    if policy_set is None or body.policy not in policy_set.policies:
        raise NotFound(f"no RateLimitPolicy {body.policy!r} in this Stack's config", policy=body.policy)
    policy = policy_set.policies[body.policy]
    if body.key is not None:
        key = secret_key(body.key) if policy.key_type == "apiKey" else encode_key(body.key)
    else:
        facts = RequestFacts(
            request.method,
            request.headers.get("host", ""),
            request.url.path,
            request.client.host if request.client else None,
            {k.lower(): v for k, v in request.headers.items()},
            getattr(request.state, "principal", None),
        )
        found = request_key(policy, facts, parse_networks(policy_set.trusted_proxies))
        if found is None:
            raise UnprocessableContent(
                f"policy {policy.name} counts by {policy.key_type} and this request has none: pass a key",
                policy=policy.name,
            )
        key = found
    return CheckResult.of(await limiter.decide(policy, key, body.cost))


@router.get(
    "/policies",
    response_model=PolicyList,
    response_model_by_alias=True,
    summary="The rate limit policies in force",
    description=(
        "Every RateLimitPolicy of the Stack as the api applies it (none while the Stack's "
        "capabilities.rateLimit is false), with this process's decision counts "
        "(dryRun policies count in `wouldLimit`). The ETag is the config hash: send it as If-None-Match "
        "to get 304 while nothing changed."
    ),
    responses={304: {"description": "Not modified: the policies are still those of If-None-Match"}}
    | problem_responses(503),
)
async def list_policies(
    runtime: RuntimeDep,
    limiter: LimiterDep,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> PolicyList | Response:
    applied = runtime.config
    etag = f'"{applied.hash}"'
    if if_none_match in (etag, applied.hash):
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    config = applied.config
    counts = limiter.counts
    return PolicyList(
        hash=applied.hash,
        trusted_proxies=config.spec.api.trusted_proxies,
        policies={
            name: PolicyInfo(
                spec=spec,
                counts=PolicyCountsInfo(**vars(counts[name])) if name in counts else PolicyCountsInfo(),
            )
            for name, spec in sorted(config.rate_limit_policies.items())
            if config.spec.capabilities.rate_limit
        },
    )
