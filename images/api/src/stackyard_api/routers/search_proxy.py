"""The api's side of search: every route of routers/search.py, checked for its API key here and
then passed on to the search component (STACKYARD_SEARCH_URL, else http://<stack>-search:7700),
the search component being the only process that holds the index files.

Request and answer bodies are streamed through, never held whole (a documents batch may be
100 MiB). Passed on: Authorization, Content-Type, Content-Length, Accept, X-Request-Id and the
trace context (traceparent, tracestate; the httpx instrumentation writes the api's own span
instead when the request is traced). A search component that cannot be reached answers 503
search-unavailable with Retry-After, which the SDK retries.

The api's OpenAPI document describes these routes with the search component's own models
(`install` puts them in it); the proxy routes themselves are left out of it."""

from __future__ import annotations

import os
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from stackyard.problems import BackendUnavailable
from stackyard.runtime import Runtime
from stackyard.search.contract import IndexList, TaskPage
from starlette.background import BackgroundTask

from . import search

SEARCH_URL_ENV = "STACKYARD_SEARCH_URL"
SEARCH_PORT = 7700
FORWARDED_REQUEST_HEADERS = (
    "authorization",
    "content-type",
    "content-length",
    "accept",
    "x-request-id",
    "traceparent",
    "tracestate",
)
FORWARDED_ANSWER_HEADERS = ("content-type", "content-length", "retry-after", "location", "x-request-id")
SEARCHING_ROUTES = frozenset({"search", "search_get", "multi_search"})
"""The routes the search-only API key may call."""


class SearchUnavailable(BackendUnavailable):
    """The search component did not answer (not deployed yet, restarting, or down)."""

    slug, title = "search-unavailable", "Search unavailable"
    subject = "the search component"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.extensions["code"] = "search_unavailable"


def search_url(runtime: Runtime) -> str:
    """$STACKYARD_SEARCH_URL, else the search component's Service in the Stack's namespace."""
    configured = os.environ.get(SEARCH_URL_ENV, "").strip()
    if configured:
        return configured.rstrip("/")
    return f"http://{runtime.config.config.stack}-search:{SEARCH_PORT}"


class SearchProxy:
    """One pooled HTTP client to the search component, made at the first request."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(60.0, connect=3.0),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )
        return self._client

    async def forward(self, request: Request, base_url: str) -> Response:
        headers = {name: value for name in FORWARDED_REQUEST_HEADERS if (value := request.headers.get(name))}
        headers["accept-encoding"] = "identity"  # the body is passed on as it comes
        body = request.stream() if request.method in ("POST", "PUT", "PATCH") else None
        url = base_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        outgoing = self.client.build_request(request.method, url, headers=headers, content=body)
        try:
            answer = await self.client.send(outgoing, stream=True)
        except httpx.TransportError as exc:
            raise SearchUnavailable(
                f"the search component at {base_url} did not answer ({type(exc).__name__}); "
                f"try again in {SearchUnavailable.RETRY_AFTER} s"
            ) from None
        passed = {name: value for name in FORWARDED_ANSWER_HEADERS if (value := answer.headers.get(name))}
        return StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code, headers=passed, background=BackgroundTask(answer.aclose)
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def without_component(runtime: Runtime, request: Request) -> Response | None:
    """The answer the api gives itself, without asking the search component: 404 for an index
    the config in force does not declare (the search component is not even deployed while the
    Stack has no SearchIndex), and the empty lists when there is none at all."""
    indexes = runtime.config.config.search_indexes
    uid = request.path_params.get("uid")
    if uid is not None and uid not in indexes:
        raise search.IndexNotFoundProblem(f"the Stack has no SearchIndex {uid!r}")
    if indexes:
        return None
    if request.url.path == "/v1/indexes":
        return JSONResponse(IndexList(results=[], total=0).model_dump(mode="json", by_alias=True))
    if request.url.path == "/v1/search/tasks":
        return JSONResponse(TaskPage(results=[], limit=20, total=0).model_dump(mode="json", by_alias=True))
    raise search.IndexNotFoundProblem("the Stack has no SearchIndex")


def _proxy(route: APIRoute) -> Any:
    searching = route.name in SEARCHING_ROUTES

    async def endpoint(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        search.search_access(runtime, request, searching=searching)
        if (answer := without_component(runtime, request)) is not None:
            return answer
        proxy: SearchProxy = request.app.state.search_proxy
        return await proxy.forward(request, search_url(runtime))

    endpoint.__name__ = f"proxy_{route.name}"
    return endpoint


router = APIRouter()
for _route in search.router.routes:
    if isinstance(_route, APIRoute):
        router.add_api_route(
            _route.path, _proxy(_route), methods=sorted(_route.methods), include_in_schema=False, name=_route.name
        )


def install(app: FastAPI) -> None:
    """Serve the search routes in `app` by proxy, and describe them in its OpenAPI document."""
    app.state.search_proxy = SearchProxy()
    app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=[*app.routes, *search.router.routes],
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def close(app: FastAPI) -> None:
    """Close the proxy's connections (at the app's shutdown)."""
    proxy: SearchProxy | None = getattr(app.state, "search_proxy", None)
    if proxy is not None:
        await proxy.aclose()
