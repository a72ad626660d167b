"""The OpenID Provider's hosted pages under /oauth2/ui (HTML, server-rendered, not in the
OpenAPI schema): login, the MFA step, consent, logout, the theme and their static files.

`router` holds them all; the api includes it (app.py). Pages are Jinja2 templates under
templates/hosted/ extending "hosted/base.html"; every route uses `render.HostedRoute`, so its
answers carry the security headers (strict CSP, no framing, no caching) and its errors become
the themed error page (`render.error_page`).

- login.py: /login, /mfa, /cancel, and the helpers the other login methods use
- password.py: /password/forgot, /password/reset (a forgotten password)
- signup.py: /signup, /verify-email (a new account, and the confirmation of its address)
- magic_link.py, social.py, passkey.py: those methods (included when present)
- consent.py: /consent; logout.py: /logout, /logged-out; theme.py: /theme.css, /static/
- csrf.py: the pre-login CSRF cookie and the origin check of every POST"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

from . import consent, login, logout, password, signup, theme
from .render import PREFIX, HostedRoute, error_page

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=HostedRoute)
for _page in (theme, login, password, signup, consent, logout):
    router.include_router(_page.router, include_in_schema=False)

for _method in ("magic_link", "social", "passkey"):
    try:
        _module = importlib.import_module(f"{__name__}.{_method}")
    except ModuleNotFoundError as exc:  # that login method is not built yet
        if exc.name != f"{__name__}.{_method}":
            raise
        continue
    router.include_router(_module.router, include_in_schema=False)

__all__ = ["error_page", "router"]
