"""CORS from the Stack's spec.api.cors, followed live.

Starlette's CORSMiddleware decides, but it takes its settings once, at construction. So
`LiveCORS` builds one for each config that turns CORS on (once per config hash) and hands the
request to it; with allowedOrigins empty, or before a config is loaded, requests pass through
untouched, without CORS headers. Two answers differ from Starlette's: a preflight that is
allowed is `204` with no body, and one that is not is `403` problem+json without any CORS header
(the browser then refuses the request; the body says to a person what was not allowed).

It runs outside the principal and rate-limit middlewares: a preflight is answered before either,
and every answer of the api (the rate limiter's 429 and 503 included) carries the headers a page
needs to read it."""

from __future__ import annotations

import json

from stackyard.config import LiveConfig
from stackyard.problems import Problem
from stackyard.resources.base import duration_seconds
from stackyard.resources.stack import CorsSettings
from stackyard.telemetry.context import current_trace_id
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

_FAILURE = "Disallowed CORS "
"""How Starlette's refused preflight answer begins, before the list of what was refused."""


class CorsNotAllowed(Problem):
    status, slug, title = 403, "cors-not-allowed", "Cross-origin request not allowed"


class StackCORS(CORSMiddleware):
    """Starlette's CORS rules for one CorsSettings, with the api's preflight answers."""

    def __init__(self, app: ASGIApp, cors: CorsSettings) -> None:
        super().__init__(
            app,
            allow_origins=cors.allowed_origins,
            allow_methods=cors.allowed_methods,
            allow_headers=cors.allowed_headers,
            allow_credentials=cors.allow_credentials,
            expose_headers=cors.exposed_headers,
            max_age=int(duration_seconds(cors.max_age)),
        )
        self.settings = cors

    def preflight_response(self, request_headers: Headers) -> Response:
        decided = super().preflight_response(request_headers)
        if decided.status_code < 400:
            kept = {k: v for k, v in decided.headers.items() if k.startswith("access-control-") or k == "vary"}
            return Response(status_code=204, headers=kept)
        refused = bytes(decided.body).decode().removeprefix(_FAILURE)
        problem = CorsNotAllowed(
            f"not allowed from another origin here: {refused} (the Stack's spec.api.cors)",
            refused=refused.split(", "),
        )
        body = problem.body()
        if trace_id := current_trace_id():  # as every problem+json of the api
            body["traceId"] = trace_id
        return Response(
            json.dumps(body),
            status_code=problem.status,
            media_type="application/problem+json",
            headers={"Vary": "Origin"},
        )


class LiveCORS:
    """The CORS rules of the config a LiveConfig holds: rebuilt when the config changes."""

    def __init__(self, app: ASGIApp, live: LiveConfig) -> None:
        self.app = app
        self.live = live
        self._built: tuple[str, StackCORS | None] | None = None

    def current(self) -> StackCORS | None:
        applied = self.live.current
        if applied is None:
            return None
        built = self._built
        if built is None or built[0] != applied.hash:
            cors = applied.config.spec.api.cors
            if built is not None and built[1] is not None and built[1].settings == cors:
                built = (applied.hash, built[1])
            else:
                built = (applied.hash, StackCORS(self.app, cors) if cors.allowed_origins else None)
            self._built = built
        return built[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rules = self.current() if scope["type"] == "http" else None
        if rules is None:
            await self.app(scope, receive, send)
        else:
            await rules(scope, receive, send)
