"""The hosted login: /oauth2/ui/login (email and password, and the other methods' partials),
/oauth2/ui/mfa (the second factor), /oauth2/ui/cancel (back to the application with
access_denied), and the helpers the other login methods use (hosted/magic_link.py,
social.py, passkey.py):

- `load_request(ctx, ar)`: the waiting authorization request and its client, else RequestExpired.
- `complete_login(request, ctx, pending, outcome)`: after a core flow answered `TokenPair |
  MfaChallenge` (run with `session_kind=BROWSER_SESSION`). A TokenPair's session is the
  browser session: its refresh token becomes the `sy_op` cookie (checked, never rotated:
  `browser.current_browser_session`), the browser's previous session ends, then 303 to
  /oauth2/authorize/continue. An MfaChallenge goes to an HttpOnly cookie and the MFA page.
- `finish_login(request, ctx, pending, user, method)`: for a user who proved a first factor.
- `login_page(...)`: the login page again with an error or a notice.
- `problem_message(exc)`: what the visitor reads for an auth problem, and the status.
- `mail_link_template(ctx, path, ar)`: the link of a mail sent from the hosted pages (back to them).

Every flow is the core's (`flows.login`, `mfa.complete_mfa_login`), so the lockouts, the
per-address budget and the audit events are the same as through /v1/auth. Errors never say
whether an account exists."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from stackyard.auth import flows, mfa
from stackyard.auth.context import AuthContext
from stackyard.auth.errors import (
    AccountDisabled,
    AuthNotConfigured,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
    InvalidToken,
    TooManyAttempts,
    WeakPassword,
)
from stackyard.auth.flows import MFA_CHALLENGE_SECONDS, MfaChallenge
from stackyard.auth.oidc import authorize
from stackyard.auth.oidc.authorize import ClientResponse
from stackyard.auth.oidc.browser import cookie_name, end_browser_session
from stackyard.auth.oidc.clients import find_client
from stackyard.auth.oidc.discovery import signup_open
from stackyard.auth.oidc.interaction import PendingAuthorization, drop_pending, load_pending
from stackyard.auth.sessions import TokenPair
from stackyard.auth.users import UserRecord
from stackyard.problems import NotFound, Problem
from stackyard.resources.base import duration_seconds
from stackyard.resources.oidc import OIDCClientSpec
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, Response

from ..auth_deps import AuthDep, client_info
from ..routers.auth import after_answer
from .csrf import CsrfForm, issue_csrf
from .render import PREFIX, HostedRoute, render

router = APIRouter(route_class=HostedRoute)

CONTINUE = "/oauth2/authorize/continue"
MFA_COOKIE = "sy_op_mfa"
BROWSER_SESSION = "op"
"""The session kind of the provider's browser session (`Sessions.start`, `browser.py`)."""
START_AGAIN = "Go back to the application and sign in again."


class RequestExpired(Problem):
    """An unknown or expired `ar`, or a client gone or disabled since: nothing to continue."""

    status, slug, title = 400, "authorization-request-expired", "This sign-in has expired"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or f"This sign-in page is no longer valid (it lasts 30 minutes). {START_AGAIN}")


def mfa_cookie_name(secure: bool) -> str:
    return f"__Host-{MFA_COOKIE}" if secure else MFA_COOKIE


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def load_request(ctx: AuthContext, ar: Any) -> tuple[PendingAuthorization, OIDCClientSpec]:
    """The waiting authorization request `ar` and its client (enabled); else RequestExpired."""
    pending = await load_pending(ctx, ar if isinstance(ar, str) else None)
    if pending is None:
        raise RequestExpired()
    client = find_client(ctx, pending.client_id)
    if client is None:
        raise RequestExpired(f"This application can no longer sign you in here. {START_AGAIN}")
    return pending, client


async def waiting_request(ctx: AuthContext, ar: str) -> tuple[PendingAuthorization, OIDCClientSpec] | None:
    """The request and its client while it still waits, else None (for pages reached from a
    mail, which may come after the request expired)."""
    try:
        return await load_request(ctx, ar)
    except RequestExpired:
        return None


def mail_link_template(ctx: AuthContext, path: str, request_id: str) -> str:
    """The link of a mail sent from the hosted pages, {token} to be filled: the hosted page
    `path` (under /oauth2/ui) of the request, so the person comes back to the same sign-in
    (confirmation, reset, sign-in link)."""
    return f"{ctx.issuer.rstrip('/')}{PREFIX}{path}?ar={quote(request_id)}&token={{token}}"


def client_name(pending: PendingAuthorization, client: OIDCClientSpec) -> str:
    return client.display_name or pending.client_id


def client_context(pending: PendingAuthorization, client: OIDCClientSpec) -> dict[str, Any]:
    """What every page of a request shows of it."""
    return {
        "ar": pending.id,
        "client": client,
        "client_id": pending.client_id,
        "client_name": client_name(pending, client),
        "login_hint": pending.login_hint or "",
    }


def request_page(
    request: Request,
    ctx: AuthContext,
    pending: PendingAuthorization,
    client: OIDCClientSpec,
    name: str,
    /,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    to_client: bool = True,
    **context: Any,
) -> Response:
    """The page `name` of the request `pending`: with a CSRF token for its form, the client's
    logo allowed, what every page of a request shows of it (`client_context`) and `context`;
    `to_client`: its form may end at the client's redirect URI (allowed as a form action)."""
    issue_csrf(request, ctx)
    return render(
        request,
        name,
        status_code=status,
        form_action=[pending.redirect_uri] if to_client else [],
        images=[client.logo_uri],
        headers=headers,
        **context,
        **client_context(pending, client),
    )


def to_client(request: Request, response: ClientResponse) -> Response:
    """Back to the client with an authorization response: 303 to its redirect URI
    (response_mode=query), or a page whose form posts the parameters there (form_post; sent
    by static/form_post.js, or by its button without JavaScript)."""
    if response.response_mode == "form_post":
        return render(
            request,
            "hosted/form_post.html",
            form_action=[response.redirect_uri],
            redirect_uri=response.redirect_uri,
            params=response.params,
        )
    return redirect(response.url())


def deny(request: Request, ctx: AuthContext, pending: PendingAuthorization, description: str) -> Response:
    """access_denied for the client (the visitor cancelled or refused); the request is forgotten
    by the caller."""
    return to_client(request, authorize.error_response(ctx, pending, "access_denied", description))


# -- what the visitor reads ------------------------------------------------------------


def _wait(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def problem_message(exc: Problem) -> tuple[str, int]:
    """The sentence the visitor reads for an auth problem, and the page's status. It never
    tells whether an address has an account."""
    if isinstance(exc, TooManyAttempts):
        retry = int(exc.extensions.get("retryAfter") or 60)
        return f"Too many attempts. For your security, signing in is paused: try again in {_wait(retry)}.", 429
    if isinstance(exc, InvalidCredentials):
        return "The email address or the password is not right.", 401
    if isinstance(exc, EmailNotVerified):
        return "Confirm your email address first: open the link in the email we sent you, then sign in.", 403
    if isinstance(exc, AccountDisabled):
        return "This account is disabled. Contact the application's support.", 403
    if isinstance(exc, InvalidEmail):
        return "Enter a valid email address, like name@example.com.", 422
    if isinstance(exc, InvalidToken):
        return "This sign-in step has expired or was already used. Sign in again.", 401
    if isinstance(exc, WeakPassword):
        return exc.detail[:1].upper() + exc.detail[1:] + ".", exc.status
    if isinstance(exc, EmailTaken):  # sign-up with verification off: nothing to hide then
        return "This email address already has an account. Sign in instead.", exc.status
    if isinstance(exc, AuthNotConfigured):
        return "Signing in this way is not available at the moment. Try another way or come back later.", 503
    detail = (exc.detail or exc.title).strip()
    return detail[:1].upper() + detail[1:], exc.status


# -- pages ------------------------------------------------------------------------------


def _methods(ctx: AuthContext) -> dict[str, bool]:
    settings = ctx.settings.hosted_pages
    return {
        "password": settings.password,
        "magic_link": settings.magic_link,
        "passkeys": _passkeys_usable(ctx),
        "social": settings.social,
        "signup": signup_open(ctx),
    }


def _passkeys_usable(ctx: AuthContext) -> bool:
    """Offered, and spec.auth.passkeys serves the issuer: passkey.py's own check (the one that
    answers 503), so the page never shows a button that can only say "not available"."""
    from . import passkey  # it imports this module

    return passkey.usable(ctx)


def _providers(ctx: AuthContext) -> list[dict[str, str]]:
    if not ctx.settings.hosted_pages.social:
        return []
    from stackyard.auth import federation

    return federation.enabled_providers(ctx)


async def login_page(
    request: Request,
    ctx: AuthContext,
    pending: PendingAuthorization,
    client: OIDCClientSpec,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    email: str | None = None,
    headers: dict[str, str] | None = None,
    offer_resend: bool = False,
) -> Response:
    """The login page of `pending`, with an error (announced and focused) or a notice;
    `offer_resend` adds a button that sends the address's confirmation link again."""
    return request_page(
        request,
        ctx,
        pending,
        client,
        "hosted/login.html",
        status=status,
        headers=headers,
        error=error,
        notice=notice,
        email=(pending.login_hint or "") if email is None else email,
        methods=_methods(ctx),
        providers=_providers(ctx),
        offer_resend=offer_resend,
    )


def _mfa_page(
    request: Request,
    ctx: AuthContext,
    pending: PendingAuthorization,
    client: OIDCClientSpec,
    *,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return request_page(request, ctx, pending, client, "hosted/mfa.html", status=status, headers=headers, error=error)


def _retry_after(exc: Problem) -> dict[str, str] | None:
    value = exc.headers.get("Retry-After")
    return {"Retry-After": value} if value else None


def browser_cookie_max_age(ctx: AuthContext) -> int:
    return int(duration_seconds(ctx.settings.refresh_token_lifetime))


async def complete_login(
    request: Request, ctx: AuthContext, pending: PendingAuthorization, outcome: TokenPair | MfaChallenge
) -> Response:
    """After a core login flow: the MFA page for a challenge; else the browser session's
    cookie and 303 to /oauth2/authorize/continue?ar=<id>."""
    secure = ctx.settings.cookies.secure
    if isinstance(outcome, MfaChallenge):
        # Lax: a social login comes back from the provider's site, and the MFA page that
        # follows in that redirect chain must see the challenge.
        response = redirect(f"{PREFIX}/mfa?ar={quote(pending.id)}")
        response.set_cookie(
            mfa_cookie_name(secure),
            outcome.token,
            max_age=MFA_CHALLENGE_SECONDS,
            path="/",
            httponly=True,
            secure=secure,
            samesite="lax",
        )
        return response
    # The session the flow started is the provider's browser session (browser.py keeps the
    # refresh token in the cookie and never rotates it), so no second session is made. The
    # browser's previous one (another account, or prompt=login) ends with its grants: left
    # without its cookie, a sign-out could no longer reach it.
    previous = request.cookies.get(cookie_name(secure))
    if previous and previous != outcome.refresh_token:
        await end_browser_session(ctx, previous, await client_info(request))
    response = redirect(f"{CONTINUE}?ar={quote(pending.id)}")
    response.set_cookie(
        cookie_name(secure),
        outcome.refresh_token,
        max_age=browser_cookie_max_age(ctx),
        path="/",
        httponly=True,
        secure=secure,
        samesite="lax",
    )
    response.delete_cookie(mfa_cookie_name(secure), path="/", httponly=True, secure=secure, samesite="lax")
    return response


async def finish_login(
    request: Request, ctx: AuthContext, pending: PendingAuthorization, user: UserRecord, method: str
) -> Response:
    """For a user who proved a first factor `method` ("email", "oauth:<name>", ...): disabled
    and unverified accounts refused (the login page with the reason), the second factor asked
    when the account has one, else the browser session (see complete_login)."""
    client = find_client(ctx, pending.client_id)
    try:
        outcome = await flows.finish_first_factor(
            ctx, user, await client_info(request), method, session_kind=BROWSER_SESSION
        )
    except Problem as exc:
        if client is None:
            raise
        message, status = problem_message(exc)
        return await login_page(request, ctx, pending, client, error=message, status=status)
    return await complete_login(request, ctx, pending, outcome)


def json_from_redirect(response: Response) -> JSONResponse:
    """For fetch() callers: {"redirect": <where complete_login sends the browser>}, with its cookies."""
    answer = JSONResponse({"redirect": response.headers["location"]})
    for name, value in response.raw_headers:
        if name.lower() == b"set-cookie":
            answer.raw_headers.append((name, value))
    return answer


def form_field(form: FormData, name: str) -> str:
    """A text field of a posted form ("" when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.get("/login")
async def login_form(request: Request, ctx: AuthDep, ar: str | None = None) -> Response:
    pending, client = await load_request(ctx, ar)
    return await login_page(request, ctx, pending, client)


@router.post("/login")
async def login(request: Request, ctx: AuthDep, form: CsrfForm, ar: str | None = None) -> Response:
    pending, client = await load_request(ctx, ar or form_field(form, "ar"))
    if not ctx.settings.hosted_pages.password:
        raise NotFound("Signing in with a password is not offered here.")
    email, password = form_field(form, "email").strip(), form_field(form, "password")
    if not email or not password:
        missing = (
            "your email address and your password"
            if not email and not password
            else ("your email address" if not email else "your password")
        )
        return await login_page(request, ctx, pending, client, error=f"Enter {missing}.", status=422, email=email)
    try:
        outcome = await flows.login(ctx, email, password, await client_info(request), session_kind=BROWSER_SESSION)
    except Problem as exc:
        message, status = problem_message(exc)
        return await login_page(
            request,
            ctx,
            pending,
            client,
            error=message,
            status=status,
            email=email,
            headers=_retry_after(exc),
            offer_resend=isinstance(exc, EmailNotVerified),
        )
    return await complete_login(request, ctx, pending, outcome)


@router.post("/verify-email/resend")
async def resend_verification(request: Request, ctx: AuthDep, form: CsrfForm, ar: str | None = None) -> Response:
    """A new confirmation link for an address that must be verified before a password login.
    The answer is the same whether or not the address has such an account (the mail goes
    after the answer, as with POST /v1/auth/verify-email/resend)."""
    pending, client = await load_request(ctx, ar or form_field(form, "ar"))
    email = form_field(form, "email").strip()[:320]
    try:
        await flows.resend_verification(
            ctx,
            email,
            await client_info(request),
            later=after_answer,
            link_template=mail_link_template(ctx, "/verify-email", pending.id),
        )
    except Problem as exc:
        message, status = problem_message(exc)
        return await login_page(
            request, ctx, pending, client, error=message, status=status, email=email, headers=_retry_after(exc)
        )
    notice = f"If {email} has an account waiting for confirmation, a new link is on its way. Open it, then sign in."
    return await login_page(request, ctx, pending, client, notice=notice, email=email)


@router.get("/mfa")
async def mfa_form(request: Request, ctx: AuthDep, ar: str | None = None) -> Response:
    pending, client = await load_request(ctx, ar)
    if not request.cookies.get(mfa_cookie_name(ctx.settings.cookies.secure)):
        return redirect(f"{PREFIX}/login?ar={quote(pending.id)}")
    return _mfa_page(request, ctx, pending, client)


@router.post("/mfa")
async def mfa_step(request: Request, ctx: AuthDep, form: CsrfForm, ar: str | None = None) -> Response:
    pending, client = await load_request(ctx, ar or form_field(form, "ar"))
    secure = ctx.settings.cookies.secure
    challenge = request.cookies.get(mfa_cookie_name(secure), "")
    code = form_field(form, "code").strip()
    if not challenge:
        message = "This sign-in step has expired. Sign in again."
        return await login_page(request, ctx, pending, client, error=message, status=401)
    if not code:
        return _mfa_page(request, ctx, pending, client, error="Enter the code.", status=422)
    try:
        outcome = await mfa.complete_mfa_login(
            ctx, challenge, code, await client_info(request), session_kind=BROWSER_SESSION
        )
    except InvalidToken:
        page = await login_page(
            request, ctx, pending, client, error="This sign-in step has expired. Sign in again.", status=401
        )
        page.delete_cookie(mfa_cookie_name(secure), path="/", httponly=True, secure=secure, samesite="lax")
        return page
    except InvalidCredentials:
        message = "That code is not right, or it was already used. Try the next code your app shows."
        return _mfa_page(request, ctx, pending, client, error=message, status=401)
    except Problem as exc:
        message, status = problem_message(exc)
        return _mfa_page(request, ctx, pending, client, error=message, status=status, headers=_retry_after(exc))
    return await complete_login(request, ctx, pending, outcome)


@router.post("/cancel")
async def cancel(request: Request, ctx: AuthDep, form: CsrfForm, ar: str | None = None) -> Response:
    """The visitor gave up: back to the application with access_denied."""
    pending, _ = await load_request(ctx, ar or form_field(form, "ar"))
    await drop_pending(ctx, pending.id)
    return deny(request, ctx, pending, "the user cancelled the sign-in")
