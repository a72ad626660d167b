"""What the console tests do over HTTP: log in with the admin key, read a page's CSRF token,
and post a console form as a browser would (same origin, with the token)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from stackyard_harness.auth_stack import ADMIN_API_KEY

COOKIE = "stackyard_console"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_login(http: httpx.Client, key: str = ADMIN_API_KEY) -> httpx.Response:
    """Log `http` in to the console (its cookie jar keeps the session); the 303 answer."""
    answer = http.post("/console/login", data={"api_key": key, "next": "/console"})
    assert answer.status_code == 303, answer.text
    return answer


def csrf_token(http: httpx.Client, page: str = "/console") -> str:
    """The CSRF token of the logged-in session, as a page's forms carry it."""
    answer = http.get(page)
    assert answer.status_code == 200, answer.text
    match = _CSRF.search(answer.text)
    assert match, f"no csrf_token field on {page}"
    return match.group(1)


def post_form(http: httpx.Client, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
    """POST a console form with the session's CSRF token and the browser's Origin header."""
    token = csrf_token(http)
    headers = {"Origin": str(http.base_url).rstrip("/")} | kwargs.pop("headers", {})
    return http.post(url, data={"csrf_token": token} | (data or {}), headers=headers, **kwargs)
