"""The admin console: server-rendered pages under /console, for the holder of the admin API key.

`install(app)` adds the login, the five pages, the static files, the security headers of
every console answer and the console's error pages (HTML, not problem+json).

A page is one module of `pages/` with its router, and its templates under
templates/console/<page>/:

    router = APIRouter(prefix="/console/jobs", include_in_schema=False)

    @router.get("")
    async def queues(request: Request, session: ConsoleDep, runtime: RuntimeDep) -> Response:
        return render(request, "console/jobs/queues.html", queues=...)

    @router.post("/{name}/dead/replay")
    async def replay(request: Request, name: str, session: CsrfDep, runtime: RuntimeDep) -> Response:
        ...                                   # the same core call as the JSON router
        flash(request, f"Replayed {n} jobs.")
        return redirect(f"/console/jobs/{name}")

Templates extend "console/base.html" (block `title`, block `content`) and import the macros
with context: `{% import "console/_macros.html" as ui with context %}`. A Problem raised in
a console route (NotFound, CapabilityOff, …) is shown as the error page with its status. No
inline script or style: the CSP refuses them; console.js does live regions (`id` +
`data-live="5"`) and confirmations (`data-confirm` on a form)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from stackyard.problems import Problem
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from . import session
from .pages import emails, jobs, notify, overview, users
from .session import ConsoleForbidden, LoginRequired, redirect, render

PREFIX = "/console"
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
_REPLACED = {name for name, _ in SECURITY_HEADERS}


def install(app: FastAPI) -> None:
    app.include_router(session.router)
    for page in (overview, users, emails, jobs, notify):
        app.include_router(page.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ConsoleForbidden, _forbidden)
    _wrap_handler(app, Problem, lambda exc: (exc.status, exc.detail or exc.title))
    _wrap_handler(app, StarletteHTTPException, lambda exc: (exc.status_code, str(exc.detail)))
    _wrap_handler(app, RequestValidationError, lambda exc: (422, _invalid(exc)))
    app.add_middleware(ConsoleMiddleware)


async def close(app: FastAPI) -> None:
    """Close the Kubernetes client the overview opened, if it did."""
    cluster = getattr(app.state, "console_cluster", None)
    if cluster is not None:
        await cluster.close()


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return redirect(exc.next_url)


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleForbidden)
    return render(request, "console/error.html", status_code=403, status=403, message=exc.message)


def _invalid(exc: RequestValidationError) -> str:
    fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'the request'}: {e['msg']}" for e in exc.errors())
    return f"The request was not understood ({fields}). Nothing was changed."


def _wrap_handler(app: FastAPI, kind: type[Exception], describe: Any) -> None:
    """Console requests get the error page; the api's own keep their problem+json handler."""
    previous = app.exception_handlers[kind]

    async def handler(request: Request, exc: Exception) -> Response:
        if not is_console(request.url.path):
            answer = previous(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        status, message = describe(exc)
        return render(request, "console/error.html", status_code=status, status=status, message=message)

    app.add_exception_handler(kind, handler)


class ConsoleMiddleware:
    """On every /console answer: the security headers (strict CSP, no framing, no caching), and
    the flash messages a route left (stored in Redis before the answer goes out)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_console(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_secured(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state") or {}
                pending, console = state.get("console_pending_flashes"), state.get("console_session")
                if pending and console is not None:
                    await session.store_flashes(scope["app"].state.runtime.redis, console.id, pending)
                    state["console_pending_flashes"] = []
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _REPLACED]
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, send_secured)
