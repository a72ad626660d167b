"""Sign-up on the hosted pages, so a user of an OIDC client can make an account without the
app having pages of its own (what Auth0's and Clerk's hosted sign-up do).

GET|POST /oauth2/ui/signup?ar=          name, email and password (`flows.sign_up`: the password
                                        policy, the per-IP budget and the audit are the API's)
GET|POST /oauth2/ui/verify-email?ar=&token=
                                        confirm the address (`flows.verify_email`)

Open while `signup_open` (the Stack's allowSignup, and passwords offered on the hosted pages);
`prompt=create` at /oauth2/authorize starts here. With email verification on (the default)
the answer is the same whether or not the address has an account, and the mail's link is
`<issuer>/oauth2/ui/verify-email?ar=<request>&token=<token>`. Opening it spends nothing (mail
scanners open links); the button's post does, and then the request's login page asks for the
password. With verification off the new account is signed in at once, as a login is."""

from __future__ import annotations

from fastapi import APIRouter, Request
from stackyard.auth import flows
from stackyard.auth.context import AuthContext
from stackyard.auth.errors import InvalidToken, WeakPassword
from stackyard.auth.oidc.discovery import signup_open
from stackyard.auth.oidc.interaction import PendingAuthorization
from stackyard.problems import NotFound, Problem
from stackyard.resources.oidc import OIDCClientSpec
from starlette.responses import Response

from ..auth_deps import AuthDep, client_info
from ..routers.auth import after_answer
from .csrf import CsrfForm, issue_csrf
from .login import (
    BROWSER_SESSION,
    complete_login,
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

MAX_NAME = 200


def _open(ctx: AuthContext) -> None:
    if not signup_open(ctx):
        raise NotFound("Sign-up is not open here. Go back to the application and sign in, or ask for an account.")


def _signup_page(
    request: Request,
    ctx: AuthContext,
    pending: PendingAuthorization,
    client: OIDCClientSpec,
    *,
    email: str = "",
    name: str = "",
    error: str | None = None,
    error_field: str | None = None,
    status: int = 200,
) -> Response:
    return request_page(
        request,
        ctx,
        pending,
        client,
        "hosted/signup.html",
        status=status,
        email=email or pending.login_hint or "",
        name=name,
        error=error,
        error_field=error_field,
        min_length=ctx.settings.password_policy.min_length,
    )


@router.get("/signup")
async def signup_form(request: Request, ctx: AuthDep, ar: str | None = None) -> Response:
    _open(ctx)
    pending, client = await load_request(ctx, ar)
    return _signup_page(request, ctx, pending, client)


@router.post("/signup")
async def signup(request: Request, ctx: AuthDep, form: CsrfForm, ar: str | None = None) -> Response:
    _open(ctx)
    pending, client = await load_request(ctx, ar or form_field(form, "ar"))
    email = form_field(form, "email").strip()[:320]
    password = form_field(form, "password")
    name = " ".join(form_field(form, "name").split())[:MAX_NAME]
    entered = {"email": email, "name": name}
    if not email or not password:
        missing, field = ("your email address", "email") if not email else ("a password", "password")
        return _signup_page(
            request, ctx, pending, client, **entered, error=f"Enter {missing}.", error_field=field, status=422
        )
    try:
        outcome = await flows.sign_up(
            ctx,
            email,
            password,
            await client_info(request),
            profile={"name": name} if name else None,
            later=after_answer,
            link_template=mail_link_template(ctx, "/verify-email", pending.id),
            session_kind=BROWSER_SESSION,
        )
    except Problem as exc:
        message, status = problem_message(exc)
        field = "password" if isinstance(exc, WeakPassword) else "email"
        return _signup_page(request, ctx, pending, client, **entered, error=message, error_field=field, status=status)
    if outcome is not None:
        return await complete_login(request, ctx, pending, outcome)
    lifetime = flows.human_duration(ctx.settings.verification_token_lifetime)
    notice = (
        f"If {email} can be used for a new account, a link to confirm it is on its way. It works once, for {lifetime}."
    )
    return request_page(request, ctx, pending, client, "hosted/signup_sent.html", to_client=False, notice=notice)


def _verify_page(
    request: Request, ctx: AuthContext, ar: str, token: str, *, error: str | None = None, status: int = 200
) -> Response:
    issue_csrf(request, ctx)
    return render(request, "hosted/verify_email.html", status_code=status, ar=ar, token=token, error=error)


@router.get("/verify-email")
async def verify_form(request: Request, ctx: AuthDep, ar: str = "", token: str = "") -> Response:
    return _verify_page(request, ctx, ar[:64], token[:200])


@router.post("/verify-email")
async def verify(request: Request, ctx: AuthDep, form: CsrfForm) -> Response:
    ar, token = form_field(form, "ar")[:64], form_field(form, "token")[:200]
    try:
        user = await flows.verify_email(ctx, token, await client_info(request))
    except InvalidToken:
        message = "This link is invalid, has expired or was already used."
        return _verify_page(request, ctx, ar, token, error=message, status=400)
    waiting = await waiting_request(ctx, ar)
    if waiting is None:
        return render(request, "hosted/verify_email_done.html")
    pending, client = waiting
    notice = "Your email address is confirmed. Sign in with your password."
    return await login_page(request, ctx, pending, client, notice=notice, email=user.email)
