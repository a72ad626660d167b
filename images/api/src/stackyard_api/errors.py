"""Every error the api answers is RFC 9457 problem+json, rendered here and only here.

Each answer carries `traceId` when the request has a span context (telemetry on), so that a
user's bug report leads to the request's trace; RateLimitMiddleware's 429 and 503 do too.

MongoDB away (no server, a dropped connection, a timeout: `stackyard.db.probe.is_connection_error`)
is no bug of the api: the answer is 503 `database-unavailable` with Retry-After, whatever route
or middleware met it, and the log says only the error's type (the driver's text names hosts)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError
from stackyard.db.probe import is_connection_error
from stackyard.problems import PROBLEM_BASE, DatabaseUnavailable, Problem
from stackyard.telemetry import current_trace_id
from starlette.exceptions import HTTPException as StarletteHTTPException

from .telemetry import record_unexpected

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    if trace_id := current_trace_id():
        body = body | {"traceId": trace_id}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.body(request.url.path), exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()
    ]
    first = errors[0] if errors else {"location": "body", "message": "invalid"}
    return problem_response(
        422,
        {
            "type": PROBLEM_BASE + "validation",
            "title": "Invalid request",
            "status": 422,
            "detail": f"{first['location']}: {first['message']}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            "instance": request.url.path,
            "errors": errors,
        },
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(
        exc.status_code,
        {
            "type": PROBLEM_BASE + slug,
            "title": title,
            "status": exc.status_code,
            "detail": detail,
            "instance": request.url.path,
        },
        dict(exc.headers or {}),
    )


def database_unavailable(method: str, path: str, exc: Exception) -> JSONResponse:
    """The 503 answer when MongoDB could not be reached; logged as a warning, by type only."""
    log.warning("database unavailable on %s %s: %s", method, path, type(exc).__name__)
    problem = DatabaseUnavailable()
    return problem_response(problem.status, problem.body(path), problem.headers)


async def _driver_error(request: Request, exc: Exception) -> JSONResponse:
    if not is_connection_error(exc):
        raise exc  # a bug or a refused operation: the 500 of UnexpectedErrorMiddleware
    return database_unavailable(request.method, request.url.path, exc)


def unexpected_answer(method: str, path: str, exc: Exception) -> JSONResponse:
    """What an exception that no handler took gets: 503 database-unavailable when MongoDB
    is away (also when the driver's error is the cause of another), else the 500."""
    if is_connection_error(exc):
        return database_unavailable(method, path, exc)
    return internal_error(method, path, exc)


def internal_error(method: str, path: str, exc: Exception) -> JSONResponse:
    """The 500 answer to an exception nothing handled, recorded on the request's span and
    logged once (the log line also reaches Sentry, when configured, through its logging
    integration)."""
    record_unexpected(exc)
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return problem_response(
        500,
        {
            "type": PROBLEM_BASE + "internal",
            "title": "Internal error",
            "status": 500,
            "detail": "the server failed; the error is in its log",
            "instance": path,
        },
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return unexpected_answer(request.method, request.url.path, exc)


class UnexpectedErrorMiddleware:
    """Answers the 500 problem for an exception that no handler took, without raising it
    further. Starlette's ServerErrorMiddleware (which calls `_unexpected`) would answer the
    same but then re-raise, and the server would log the error a second time (a second
    Sentry event, a second exception on the span). Added last, so it wraps the api's other
    middlewares; an exception after the answer started still goes on to the server."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise
            await unexpected_answer(scope["method"], scope["path"], exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """The problem handlers; call after adding the other middlewares (see UnexpectedErrorMiddleware)."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(PyMongoError, _driver_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(UnexpectedErrorMiddleware)


PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "traceId": {
            "type": "string",
            "pattern": "^[0-9a-f]{32}$",
            "description": "The W3C trace id of the request, when telemetry traced it: quote it in bug reports.",
        },
    },
    "required": ["type", "title", "status"],
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for problem+json answers."""
    descriptions = {
        400: "Bad request",
        401: "Not authenticated",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict",
        413: "Payload too large",
        422: "Invalid request",
        429: "Too many requests",
        503: "Not ready, or a dependency away (database-unavailable: MongoDB; retry after Retry-After)",
    }
    responses: dict[int | str, dict[str, Any]] = {}
    for s in statuses:
        responses[s] = {
            "description": descriptions.get(s, "Error"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        if s == 429:
            responses[s]["description"] = "Too many requests: a RateLimitPolicy refused this request"
            responses[s]["headers"] = RATE_LIMITED_HEADERS
            responses[s]["content"][PROBLEM_JSON]["example"] = {
                "type": PROBLEM_BASE + "too-many-requests",
                "title": "Too many requests",
                "status": 429,
                "detail": "rate limit login exceeded; retry in 12 s",
                "instance": "/v1/auth/login",
                "policy": "login",
                "retryAfter": 12,
            }
    return responses


RATE_LIMITED_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "RateLimit-Policy": {
        "description": 'The quota policies that apply (draft-ietf-httpapi-ratelimit-headers), e.g. "login";q=10;w=60',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What remains of each and when it is whole again, e.g. "login";r=0;t=12',
        "schema": {"type": "string"},
    },
}
