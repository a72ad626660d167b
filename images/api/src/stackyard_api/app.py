"""The FastAPI application, built by `create_app` around a Runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from stackyard.ratelimit import LivePolicies, RateLimiter, RateLimitMiddleware
from stackyard.runtime import Runtime

from . import console, hosted
from .auth_deps import AuthState, PrincipalMiddleware
from .cors import LiveCORS
from .errors import install_error_handlers
from .routers import (
    auth,
    auth_admin,
    auth_mfa,
    auth_oauth,
    auth_orgs,
    config,
    databases,
    emails,
    feed,
    files,
    health,
    jobs,
    notify,
    oidc,
    push,
    ratelimit,
    search_proxy,
    webhooks,
)
from .telemetry import instrument

DESCRIPTION = """\
The stackyard API: authentication and sessions, transactional email, durable jobs,
rate limiting, file storage and more, on your own cluster. Errors are RFC 9457 problem+json.
"""


def _auth_state(app: FastAPI) -> AuthState:
    app.state.auth = AuthState()
    return app.state.auth


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            if isinstance(email := getattr(app.state, "email", None), emails.EmailState):
                await email.http.aclose()
            if (buckets := getattr(app.state, "buckets", None)) is not None:
                await buckets.close()
            await search_proxy.close(app)
            await console.close(app)
            await runtime.stop()

    app = FastAPI(title="stackyard", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    # Rate limits: the live policies (compiled once per config hash) on every request but
    # the probes, decided against the Redis client of the config in force.
    app.state.rate_limiter = RateLimiter(lambda: runtime.redis)
    runtime.live.subscribe(lambda _applied: app.state.rate_limiter.warm_soon())
    app.state.rate_limit_policies = LivePolicies(runtime.live)
    app.add_middleware(
        RateLimitMiddleware, policies=app.state.rate_limit_policies, limiter=app.state.rate_limiter, api=True
    )
    # Added last, so it runs first: rate limits keyed by user see the verified token's subject.
    app.add_middleware(PrincipalMiddleware, runtime=runtime, state=_auth_state(app))
    # Outside both: preflights are answered before auth and rate limits, and every answer
    # (429 and 503 included) carries the CORS headers of the Stack's spec.api.cors.
    app.add_middleware(LiveCORS, live=runtime.live)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(config.router)
    app.include_router(ratelimit.router)
    app.include_router(jobs.router)
    app.include_router(emails.router)
    app.include_router(auth.router)
    app.include_router(auth_orgs.router)
    app.include_router(auth_admin.router)
    app.include_router(auth_mfa.router)
    app.include_router(auth_oauth.router)
    app.include_router(oidc.router)
    app.include_router(hosted.router)
    app.include_router(databases.router)
    app.include_router(files.router)
    app.include_router(notify.router)
    app.include_router(feed.router)
    app.include_router(push.router)
    app.include_router(webhooks.router)
    # /v1/indexes, /v1/multi-search, /v1/search/tasks: passed on to the search component.
    search_proxy.install(app)
    # /console: the admin console (server-rendered pages for the admin API key's holder).
    console.install(app)
    # Outermost: every request but the probes gets a span and counts in the RED metrics,
    # also those the middlewares answer (429, 503) or that fail (500).
    instrument(app)
    return app
