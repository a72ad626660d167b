"""RateLimitMiddleware: a plain ASGI middleware for any Starlette or FastAPI app.

Per request it takes the policies in force once, finds those that match (method, host,
path), works out each one's key, charges them all in parallel round trips, and either
passes the request on with `RateLimit-Policy` / `RateLimit` headers added to the answer,
or answers itself: 429 problem+json with `Retry-After`, or 503 when a policy that fails
closed could not be decided.

    app.add_middleware(RateLimitMiddleware, policy="exports", policies=..., redis_url="redis://…")
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ..clients import redis_client
from ..problems import Problem, RateLimitUnavailable, TooManyRequests
from ..resources.ratelimit import RateLimitPolicySpec
from ..telemetry.context import current_trace_id
from .decision import Verdict
from .headers import response_headers, retry_after
from .keys import RequestFacts, headers_from_asgi, parse_networks, request_key
from .limiter import RateLimiter
from .policy import Policy, normalise_path
from .sources import PolicySource, StaticPolicies

log = logging.getLogger(__name__)

Scope = dict[str, Any]
PROBE_PATHS = ("/healthz", "/readyz")


def refusal(verdict: Verdict, path: str) -> tuple[Problem, list[tuple[str, str]]]:
    """The problem and headers of a refused request (pure)."""
    deciding = verdict.deciding
    assert deciding is not None and deciding.blocks
    wait = retry_after(deciding.retry_after)
    problem: Problem
    if verdict.unavailable:
        problem = RateLimitUnavailable(
            f"rate limit {deciding.policy} could not be decided and fails closed; retry in {wait} s",
            policy=deciding.policy,
        )
    else:
        problem = TooManyRequests(
            f"rate limit {deciding.policy} exceeded; retry in {wait} s",
            policy=deciding.policy,
            retryAfter=int(wait),
        )
    return problem, [("Retry-After", wait), *response_headers(verdict.decisions)]


class RateLimitMiddleware:
    """`policies`: a PolicySource (LivePolicies, RemotePolicies, StaticPolicies) or a
    mapping of names to specs. `policy`: apply only this one (its match still applies);
    None applies every policy that matches (with `api`, only those with enforceInApi).
    Decides with `limiter`, or with a new RateLimiter on `redis_url`."""

    def __init__(
        self,
        app: Any,
        *,
        policies: PolicySource | Mapping[str, RateLimitPolicySpec],
        policy: str | None = None,
        limiter: RateLimiter | None = None,
        redis_url: str | None = None,
        exempt_paths: Iterable[str] = PROBE_PATHS,
        api: bool = False,
    ) -> None:
        if limiter is None:
            if redis_url is None:
                raise ValueError("RateLimitMiddleware needs a limiter or a redis_url")
            limiter = RateLimiter(redis_client(redis_url))
        self.app = app
        self.source: PolicySource = StaticPolicies(policies) if isinstance(policies, Mapping) else policies
        self.policy = policy
        self.limiter = limiter
        self.exempt = frozenset(exempt_paths)
        self.api = api

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        policy_set = await self.source.get()
        if policy_set is None or not policy_set.policies:
            await self.app(scope, receive, send)
            return
        headers = headers_from_asgi(scope["headers"])
        method, host, path = scope["method"], headers.get("host", ""), scope["path"]
        candidates: list[Policy]
        if self.policy is not None:
            named = policy_set.policies.get(self.policy)
            candidates = [named] if named and named.matches(method, host.lower(), normalise_path(path)) else []
        else:
            candidates = policy_set.matching(method, host, path, api=self.api)
        if not candidates:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        facts = RequestFacts(
            method, host, path, client[0] if client else None, headers, scope.get("state", {}).get("principal")
        )
        trusted = parse_networks(policy_set.trusted_proxies)
        hits = [(p, k) for p in candidates if (k := request_key(p, facts, trusted)) is not None]
        if not hits:
            await self.app(scope, receive, send)
            return
        verdict = await self.limiter.decide_all(hits)
        if not verdict.allowed:
            await self._refuse(verdict, path, send)
            return
        extra = [(n.lower().encode(), v.encode()) for n, v in response_headers(verdict.decisions)]
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(self, verdict: Verdict, path: str, send: Any) -> None:
        problem, headers = refusal(verdict, path)
        answer = problem.body(path)
        # As every problem+json of the api: the trace id leads from the answer to its trace.
        if trace_id := current_trace_id():
            answer["traceId"] = trace_id
        body = json.dumps(answer).encode()
        raw = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            *((n.lower().encode(), v.encode()) for n, v in headers),
        ]
        await send({"type": "http.response.start", "status": problem.status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
