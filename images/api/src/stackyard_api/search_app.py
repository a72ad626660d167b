"""The search component's FastAPI application: the search routes (routers/search.py) over one
SearchService, the probes, GET /v1/config, and the problem+json handlers, with the search
errors of core (an unknown index, a bad filter, a bad document, a write to an index that
follows MongoDB) answered as their problems with Meilisearch's `code`.

    app = create_search_app(runtime, service)

By default the app's lifespan starts the Runtime (the config source) and the service's task
workers, and stops both; a program that runs them itself passes `lifespan=`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from stackyard.problems import Problem
from stackyard.search.filter_ast import FilterError

from .errors import install_error_handlers, problem_response
from .routers import config
from .routers import search as search_router
from .routers.health import Health
from .telemetry import instrument

if TYPE_CHECKING:
    from stackyard.runtime import Runtime
    from stackyard.search.service import SearchService

DESCRIPTION = """\
The stackyard search component: typo-tolerant, faceted, instant search over the Stack's
SearchIndexes, in Meilisearch's shapes. The api proxies these routes; errors are RFC 9457
problem+json with Meilisearch's `code`.
"""

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

health = APIRouter(tags=["health"])


@health.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@health.get(
    "/readyz",
    response_model=Health,
    summary="Readiness: config loaded and the search service running",
    responses={503: {"model": Health, "description": "Not ready; `checks` says why"}},
)
@health.get("/healthz/ready", response_model=Health, include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    live = runtime.live
    if live.current is None:
        checks["config"] = "not loaded" + (f": {live.last_error}" if live.last_error else "")
    else:
        checks["config"] = f"ok ({live.current.hash})"
    service = getattr(request.app.state, "search_service", None)
    checks["search"] = "ok" if service is not None else "not running"
    ready = all(value.startswith("ok") for value in checks.values())
    body = Health(status="ok" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def install_search_error_handlers(app: FastAPI) -> None:
    """The search errors of core as their problems (call after install_error_handlers)."""
    from stackyard.search.engine import DocumentError
    from stackyard.search.service import IndexFollowsSource, IndexNotFound

    def answer(request: Request, problem: Problem) -> JSONResponse:
        return problem_response(problem.status, problem.body(request.url.path), problem.headers)

    async def filter_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FilterError)
        return answer(request, search_router.filter_problem(exc))

    async def index_not_found(request: Request, exc: Exception) -> JSONResponse:
        return answer(request, search_router.IndexNotFoundProblem(str(exc) or "no such index"))

    async def follows_source(request: Request, exc: Exception) -> JSONResponse:
        return answer(request, search_router.IndexFollowsSourceProblem(str(exc) or "the index follows its source"))

    async def document_error(request: Request, exc: Exception) -> JSONResponse:
        code = getattr(exc, "code", None) or "invalid_document"
        return answer(request, search_router.InvalidDocument(getattr(exc, "message", None) or str(exc), code=code))

    app.add_exception_handler(FilterError, filter_error)
    app.add_exception_handler(IndexNotFound, index_not_found)
    app.add_exception_handler(IndexFollowsSource, follows_source)
    app.add_exception_handler(DocumentError, document_error)


def create_search_app(runtime: Runtime, service: SearchService, *, lifespan: Lifespan | None = None) -> FastAPI:
    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            await service.start()
            try:
                yield
            finally:
                await service.stop()
        finally:
            await runtime.stop()

    app = FastAPI(title="stackyard search", version="0.1.0", description=DESCRIPTION, lifespan=lifespan or run)
    app.state.runtime = runtime
    app.state.search_service = service
    install_error_handlers(app)
    install_search_error_handlers(app)
    app.include_router(health)
    app.include_router(config.router)
    app.include_router(search_router.router)
    instrument(app)
    return app
