"""CSRF protection of the hosted pages' forms, before anyone is signed in.

Double submit with a pre-login cookie: the first page with a form sets `sy_op_csrf`
(`__Host-sy_op_csrf` when cookies are secure: no other host can plant it) to a random token,
HttpOnly, SameSite=Lax, and writes the same token in a hidden field. A POST must carry both,
equal (compared in constant time), and come from the issuer's own origin (its Origin header,
else its Referer; a request with neither is refused too, as every browser sends Origin on a
form post). Anything else is answered 403 with the error page and nothing is done.

    @router.post("/login")
    async def login(request: Request, ctx: AuthDep, form: CsrfForm) -> Response: ...

fetch() callers (passkey.js) send the token in the `X-CSRF-Token` header instead.

Lax, not Strict: the login page is reached by a redirect from the client's site, a cross-site
navigation that would not carry a Strict cookie, so every such arrival would make a new token
and break the forms of the browser's other tabs. The protection is the token and the origin
check; SameSite adds nothing to a double submit."""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from stackyard.auth.context import AuthContext
from stackyard.auth.errors import CsrfRefused
from starlette.datastructures import FormData
from starlette.responses import Response

from ..auth_deps import AuthDep

COOKIE = "sy_op_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{43}$")


def cookie_name(secure: bool) -> str:
    return f"__Host-{COOKIE}" if secure else COOKIE


def issue_csrf(request: Request, ctx: AuthContext) -> str:
    """The token of this browser (from its cookie), or a new one whose cookie the page
    rendered for this request sets; also `csrf_token` in that page's context."""
    secure = ctx.settings.cookies.secure
    name = cookie_name(secure)
    token = request.cookies.get(name, "")
    if not _TOKEN.match(token):
        token = secrets.token_urlsafe(32)

        def set_cookie(response: Response) -> None:
            response.set_cookie(name, token, path="/", httponly=True, secure=secure, samesite="lax")

        request.state.hosted_cookies = [*getattr(request.state, "hosted_cookies", []), set_cookie]
    request.state.hosted_csrf = token
    return token


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def same_origin(request: Request, issuer: str) -> bool:
    """Whether the request's Origin (else Referer) is the issuer's origin."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if not sent or sent == "null":
        return False
    return hmac.compare_digest(origin_of(sent).encode(), origin_of(issuer).encode())


async def check_csrf(request: Request, ctx: AuthContext) -> FormData:
    """The POST's form, once its origin and CSRF token are right; else CsrfRefused (403)."""
    if not same_origin(request, ctx.issuer):
        raise CsrfRefused("This form was sent from another site and was refused. Nothing was changed.")
    form = await request.form()
    sent = form.get(FIELD) or request.headers.get(HEADER) or ""
    cookie = request.cookies.get(cookie_name(ctx.settings.cookies.secure), "")
    if not isinstance(sent, str) or not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        raise CsrfRefused(
            "This form has expired or was not sent by this page. Go back to the application and sign in again."
        )
    request.state.hosted_csrf = cookie
    return form


async def csrf_form(request: Request, ctx: AuthDep) -> FormData:
    return await check_csrf(request, ctx)


CsrfForm = Annotated[FormData, Depends(csrf_form)]
