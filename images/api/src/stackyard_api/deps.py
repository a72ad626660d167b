"""Shared request context, through FastAPI dependencies (async: FastAPI runs a plain `def`
dependency in its thread pool, a hand-off that costs more than these functions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from stackyard.ratelimit import LivePolicies, RateLimiter
from stackyard.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def get_policy_source(request: Request) -> LivePolicies:
    source: LivePolicies = request.app.state.rate_limit_policies
    return source


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
LimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
PolicySourceDep = Annotated[LivePolicies, Depends(get_policy_source)]
