"""The OpenID Provider's hosted pages under /oauth2/ui (HTML, server-rendered, not in the
OpenAPI schema): login, the MFA step, consent, logout, the theme and their static files.

`router` holds them all; the api includes it (app.py). Pages are Jinja2 templates under
templates/hosted/ extending "hosted/base.html"; every route uses `render.HostedRoute`, so its
answers carry the security headers (strict CSP, no framing, no caching) and its errors become
the themed error page (`render.error_page`)."""

from __future__ import annotations

from fastapi import APIRouter

from . import theme
from .render import PREFIX, HostedRoute, error_page

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=HostedRoute)
router.include_router(theme.router, include_in_schema=False)

__all__ = ["error_page", "router"]
