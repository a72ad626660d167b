"""CORS from the Stack's spec.api.cors, followed live.

Starlette's CORSMiddleware decides, but it takes its settings once, at construction. So
`LiveCORS` builds one for each config that turns CORS on (once per config hash) and hands the
request to it; with allowedOrigins empty, or before a config is loaded, requests pass through
untouched, without CORS headers. Two answers differ from Starlette's: a preflight that is
allowed is `204` with no body, and one that is not is `403` problem+json without any CORS header
(the browser then refuses the request; the body says to a person what was not allowed).

The OpenID Provider's routes that single-page apps call (token, userinfo, revocation, discovery,
JWKS: `OIDC_CORS_PATHS`) have rules of their own: the origins of the registered OIDCClients'
redirect URIs are allowed there besides the Stack's, without cookies, so that a public client
works without listing its origin twice.

It runs outside the principal and rate-limit middlewares: a preflight is answered before either,
and every answer of the api (the rate limiter's 429 and 503 included) carries the headers a page
needs to read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from stackyard.config import LiveConfig, RuntimeConfig
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


OIDC_CORS_PATHS = frozenset(
    {
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/oauth2/token",
        "/oauth2/userinfo",
        "/oauth2/revoke",
    }
)
"""The OpenID Provider's routes that single-page apps (public OIDCClients) call with fetch."""


def web_origin(uri: str) -> str | None:
    """scheme://host[:port] of an http(s) URI, in lower case, without a default port; None for
    other schemes (a native app's private-use scheme has no web origin)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def oidc_cors(config: RuntimeConfig) -> CorsSettings:
    """The CORS rules of the OIDC_CORS_PATHS: the Stack's allowed origins and the origins of the
    enabled OIDCClients' redirect URIs (where their pages run), without cookies; what a page
    reads of the answer includes WWW-Authenticate (userinfo's error)."""
    stack = config.spec.api.cors
    origins = set(stack.allowed_origins)
    for client in config.oidc_clients.values():
        if client.enabled:
            found = (web_origin(uri) for uri in [*client.redirect_uris, *client.post_logout_redirect_uris])
            origins.update(origin for origin in found if origin)
    if "*" in origins:
        origins = {"*"}
    # Built, not validated: more origins than a Stack may list by hand (100) are fine here.
    return CorsSettings.model_construct(
        allowed_origins=sorted(origins),
        allowed_methods=["GET", "POST"],
        allowed_headers=sorted({"Authorization", "Content-Type", *stack.allowed_headers}),
        exposed_headers=sorted({*stack.exposed_headers, "WWW-Authenticate"}),
        allow_credentials=False,
        max_age=stack.max_age,
    )


@dataclass(frozen=True)
class CorsRules:
    """The middlewares of one config: the Stack's rules, and the OpenID Provider's rules for
    OIDC_CORS_PATHS (None: no CORS headers there)."""

    settings: CorsSettings
    oidc_settings: CorsSettings
    stack: StackCORS | None
    oidc: StackCORS | None

    def for_path(self, path: str) -> StackCORS | None:
        return self.oidc if path in OIDC_CORS_PATHS else self.stack


class LiveCORS:
    """The CORS rules of the config a LiveConfig holds: rebuilt when the config changes."""

    def __init__(self, app: ASGIApp, live: LiveConfig) -> None:
        self.app = app
        self.live = live
        self._built: tuple[str, CorsRules] | None = None

    def current(self) -> CorsRules | None:
        applied = self.live.current
        if applied is None:
            return None
        built = self._built
        if built is None or built[0] != applied.hash:
            cors, oidc = applied.config.spec.api.cors, oidc_cors(applied.config)
            previous = built[1] if built is not None else None
            if previous is not None and previous.settings == cors and previous.oidc_settings == oidc:
                rules = previous
            else:
                rules = CorsRules(
                    cors,
                    oidc,
                    StackCORS(self.app, cors) if cors.allowed_origins else None,
                    StackCORS(self.app, oidc) if oidc.allowed_origins else None,
                )
            built = self._built = (applied.hash, rules)
        return built[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rules = self.current() if scope["type"] == "http" else None
        handler = rules.for_path(scope["path"]) if rules is not None else None
        if handler is None:
            await self.app(scope, receive, send)
        else:
            await handler(scope, receive, send)
