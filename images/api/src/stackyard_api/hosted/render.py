"""How every hosted page is answered: the themed templates, the security headers, and the
error page.

- `render(request, "hosted/x.html", form_action=[...], images=[...], **context)`: a page with
  the common context (app name, theme, CSRF token) and a strict Content-Security-Policy whose
  `form-action` also allows the origins a form's answer redirects to (the client's redirect
  URI: browsers apply form-action to the redirects after a form post) and whose `img-src`
  allows the logos shown.
- `error_page(request, title=..., detail=..., status=...)`: the themed error page; it never
  redirects and never shows a secret (the detail is written for the visitor).
- `HostedRoute`: the route class of every hosted router. It adds the security headers to
  answers that have none, and turns a Problem, an HTTPException or a malformed request
  raised in a hosted route into the error page (HTML, not problem+json); any other
  exception is logged and shown as a 500 error page without its details."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from stackyard.problems import Problem
from stackyard.resources.stack import HostedPagesSettings
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response

log = logging.getLogger(__name__)

PREFIX = "/oauth2/ui"
STATIC = f"{PREFIX}/static"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

BASE_HEADERS: dict[str, str] = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
_SOURCE = re.compile(r"^(https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+:)$")
"""http(s) origins, and the private-use schemes of native apps, which are reverse domain names
(RFC 8252 §7.1: com.example.app:), so never javascript: or data:."""


def origin_source(uri: str | None) -> str | None:
    """The CSP source expression of a URI's origin (https://host[:port]; `scheme:` for a
    native app's private-use scheme such as com.example.app:), or None when it is not one
    that may be written into a policy safely."""
    if not uri:
        return None
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        source = f"{scheme}://{parts.netloc.lower()}"
        if "@" in parts.netloc:
            return None
    elif scheme:
        source = f"{scheme}:"
    else:
        return None
    return source if _SOURCE.match(source) or _is_bracketed(source) else None


def _is_bracketed(source: str) -> bool:
    scheme, _, rest = source.partition("://")
    return scheme in ("http", "https") and bool(re.fullmatch(r"\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?", rest))


def content_security_policy(form_action: Iterable[str | None] = (), images: Iterable[str | None] = ()) -> str:
    """default-src 'self', no inline script or style, no framing; form-action and img-src add
    the origins of `form_action` and `images` (URIs; unsafe ones are left out)."""
    forms = " ".join(dict.fromkeys(s for s in (origin_source(u) for u in form_action) if s))
    imgs = " ".join(dict.fromkeys(s for s in (origin_source(u) for u in images) if s))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self'{' ' + imgs if imgs else ''}; object-src 'none'; base-uri 'none'; "
        f"form-action 'self'{' ' + forms if forms else ''}; frame-ancestors 'none'"
    )


def secure_headers(response: Response, csp: str | None = None) -> Response:
    """The security headers on `response` (those it already has are kept)."""
    for name, value in BASE_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("content-security-policy", csp or content_security_policy())
    return response


def hosted_settings(request: Request) -> tuple[HostedPagesSettings, str]:
    """The Stack's `spec.auth.hostedPages` and the app name shown (appName, else the Stack's
    name); the defaults while no config is in force."""
    runtime = getattr(request.app.state, "runtime", None)
    applied = runtime.live.current if runtime is not None else None
    if applied is None:
        return HostedPagesSettings(), "stackyard"
    settings = applied.config.spec.auth.hosted_pages
    return settings, settings.app_name or applied.config.stack


def common_context(request: Request) -> dict[str, Any]:
    settings, app_name = hosted_settings(request)
    return {
        "app_name": app_name,
        "theme": settings,
        "static": STATIC,
        "prefix": PREFIX,
        "csrf_token": getattr(request.state, "hosted_csrf", ""),
    }


def render(
    request: Request,
    name: str,
    /,
    *,
    status_code: int = 200,
    form_action: Iterable[str | None] = (),
    images: Iterable[str | None] = (),
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """The template `name` with the common context and `context`, and the security headers."""
    settings, _ = hosted_settings(request)
    response = templates.TemplateResponse(
        request, name, common_context(request) | context, status_code=status_code, headers=headers
    )
    csp = content_security_policy(form_action, [settings.logo_url, *images])
    secure_headers(response, csp)
    # Set by the CSRF helpers: a pre-login cookie made for this page.
    for setter in getattr(request.state, "hosted_cookies", []):
        setter(response)
    assert isinstance(response, HTMLResponse)
    return response


def error_page(request: Request, *, title: str, detail: str, status: int) -> HTMLResponse:
    """The themed error page: `title` as its heading, `detail` for the visitor (what happened
    and what to do: "Go back to the application and sign in again"). No redirect, no secret."""
    return render(request, "hosted/error.html", status_code=status, title=title, detail=detail)


_TITLES = {400: "Request not valid", 403: "Refused", 404: "Not found", 429: "Too many attempts"}


def problem_page(request: Request, exc: Exception) -> HTMLResponse:
    """A Problem, HTTPException or validation error raised in a hosted route, as the error page."""
    if isinstance(exc, Problem):
        status, detail = exc.status, exc.detail or exc.title
        page = error_page(request, title=exc.title, detail=_sentence(detail), status=status)
        if "Retry-After" in exc.headers:
            page.headers["Retry-After"] = exc.headers["Retry-After"]
        return page
    if isinstance(exc, HTTPException):
        status = exc.status_code
        return error_page(
            request, title=_TITLES.get(status, "Something went wrong"), detail=str(exc.detail), status=status
        )
    return error_page(
        request,
        title="Request not valid",
        detail="This page was opened with a request it does not understand. Go back to the application and try again.",
        status=400,
    )


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")) if text else text


class HostedRoute(APIRoute):
    """Every hosted route: security headers on its answers; its errors as the error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def hosted_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except (Problem, HTTPException, RequestValidationError) as exc:
                return problem_page(request, exc)
            except Exception:
                log.exception("a hosted page failed: %s %s", request.method, request.url.path)
                return error_page(
                    request,
                    title="Something went wrong",
                    detail="This page could not be shown. Try again in a moment; if it keeps happening, "
                    "go back to the application and sign in again.",
                    status=500,
                )
            return secure_headers(response)

        return hosted_handler
