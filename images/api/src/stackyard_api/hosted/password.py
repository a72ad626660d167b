"""Forgotten passwords on the hosted pages, so a user of an OIDC client can get back in
without the app having reset pages of its own.

GET|POST /oauth2/ui/password/forgot?ar=   ask for a link (the same answer whether or not the
                                          address has an account; the mail goes after it)
GET|POST /oauth2/ui/password/reset?ar=&token=
                                          choose a new password (`flows.reset_password`: the
                                          policy applies, every session of the account ends)

The mail's link is `<issuer>/oauth2/ui/password/reset?ar=<request>&token=<token>`. Opening it
spends nothing; the form post with the CSRF token does. Afterwards the login page of the
request says the password changed, or, when the request expired meanwhile, a page says to go
back to the application."""

from __future__ import annotations

from fastapi import APIRouter, Request
from stackyard.auth import flows
from stackyard.auth.context import AuthContext
from stackyard.auth.errors import InvalidToken
from stackyard.auth.oidc.interaction import PendingAuthorization
from stackyard.problems import Problem
from stackyard.resources.oidc import OIDCClientSpec
from starlette.responses import Response

from ..auth_deps import AuthDep, client_info
from ..routers.auth import after_answer
from .csrf import CsrfForm, issue_csrf
from .login import (
    RequestExpired,
    form_field,
    load_request,
    login_page,
    mail_link_template,
    problem_message,
    request_page,
    waiting_request,
)
from .render import HostedRoute, render

router = APIRouter(route_class=HostedRoute)


def _offered(ctx: AuthContext) -> None:
    if not ctx.settings.hosted_pages.password:
        raise RequestExpired("Passwords are not used here. Go back to the application and sign in another way.")


def _forgot_page(
    request: Request,
    ctx: AuthContext,
    pending: PendingAuthorization,
    client: OIDCClientSpec,
    *,
    email: str,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    return request_page(
        request,
        ctx,
        pending,
        client,
        "hosted/password_forgot.html",
        status=status,
        to_client=False,
        email=email,
        error=error,
        notice=notice,
    )


@router.get("/password/forgot")
async def forgot_page(request: Request, ctx: AuthDep, ar: str | None = None) -> Response:
    _offered(ctx)
    pending, client = await load_request(ctx, ar)
    return _forgot_page(request, ctx, pending, client, email=pending.login_hint or "")


@router.post("/password/forgot")
async def forgot(request: Request, ctx: AuthDep, form: CsrfForm, ar: str | None = None) -> Response:
    _offered(ctx)
    pending, client = await load_request(ctx, ar or form_field(form, "ar"))
    email = form_field(form, "email").strip()[:320]
    if not email:
        return _forgot_page(request, ctx, pending, client, email="", error="Enter your email address.", status=422)
    try:
        await flows.forgot_password(
            ctx,
            email,
            await client_info(request),
            later=after_answer,
            link_template=mail_link_template(ctx, "/password/reset", pending.id),
        )
    except Problem as exc:
        message, status = problem_message(exc)
        return _forgot_page(request, ctx, pending, client, email=email, error=message, status=status)
    lifetime = flows.human_duration(ctx.settings.reset_token_lifetime)
    notice = f"If {email} has an account, a link to choose a new password is on its way. It works once, for {lifetime}."
    return _forgot_page(request, ctx, pending, client, email=email, notice=notice)


def _reset_page(
    request: Request, ctx: AuthContext, ar: str, token: str, *, error: str | None = None, status: int = 200
) -> Response:
    issue_csrf(request, ctx)
    return render(
        request,
        "hosted/password_reset.html",
        status_code=status,
        ar=ar,
        token=token,
        error=error,
        min_length=ctx.settings.password_policy.min_length,
    )


@router.get("/password/reset")
async def reset_page(request: Request, ctx: AuthDep, ar: str = "", token: str = "") -> Response:
    _offered(ctx)
    return _reset_page(request, ctx, ar[:64], token[:200])


@router.post("/password/reset")
async def reset(request: Request, ctx: AuthDep, form: CsrfForm) -> Response:
    _offered(ctx)
    ar, token = form_field(form, "ar")[:64], form_field(form, "token")[:200]
    password = form_field(form, "password")
    if not password:
        return _reset_page(request, ctx, ar, token, error="Enter a new password.", status=422)
    try:
        await flows.reset_password(ctx, token, password, await client_info(request))
    except InvalidToken:
        message = "This link is invalid, has expired or was already used. Ask for a new one."
        return _reset_page(request, ctx, ar, token, error=message, status=400)
    except Problem as exc:
        message, status = problem_message(exc)
        return _reset_page(request, ctx, ar, token, error=message, status=status)
    waiting = await waiting_request(ctx, ar)
    if waiting is None:
        return render(request, "hosted/password_done.html")
    pending, client = waiting
    notice = "Your password is changed, and every other session of your account has ended. Sign in with it now."
    return await login_page(request, ctx, pending, client, notice=notice)
