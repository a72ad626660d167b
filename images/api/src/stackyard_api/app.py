"""The FastAPI application, built by `create_app` around a Runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from stackyard.runtime import Runtime

from .errors import install_error_handlers
from .routers import config, health

DESCRIPTION = """\
The stackyard API: authentication and sessions, transactional email, durable jobs,
rate limiting and more, on your own cluster. Errors are RFC 9457 problem+json.
"""


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="stackyard", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(config.router)
    return app
