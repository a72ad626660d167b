"""Every error the api answers is RFC 9457 problem+json, rendered here and only here."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from stackyard.problems import PROBLEM_BASE, Problem
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
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


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        500,
        {
            "type": PROBLEM_BASE + "internal",
            "title": "Internal error",
            "status": 500,
            "detail": "the server failed; the error is in its log",
            "instance": request.url.path,
        },
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
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
        503: "Not ready",
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
