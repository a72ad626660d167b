"""The worker's small HTTP surface: probes and the applied config, like the api's."""

from __future__ import annotations

from collections.abc import Callable

from stackyard.problems import NotConfigured
from stackyard.runtime import Runtime
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_http_app(runtime: Runtime, jobs: Callable[[], tuple[bool, str]] | None = None) -> Starlette:
    """`jobs` says whether the worker consumes its queues (ready, why not): /readyz waits for it."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        readiness = await runtime.readiness()
        ready, checks = readiness.ready, dict(readiness.checks)
        if jobs is not None and ready:
            consuming, checks["jobs"] = jobs()
            ready = ready and consuming
        body = {"status": "ok" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def config(request: Request) -> JSONResponse:
        try:
            return JSONResponse(runtime.describe_config())
        except NotConfigured as exc:
            return JSONResponse(
                exc.body(request.url.path), status_code=exc.status, media_type="application/problem+json"
            )

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/v1/config", config),
        ]
    )
