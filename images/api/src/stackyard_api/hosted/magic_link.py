"""Sign in with a link by email, on the OpenID Provider's hosted pages.

POST /oauth2/ui/magic-link                 send the link (the same answer whether or not the
                                           address has an account: "check your email")
GET  /oauth2/ui/magic-link/callback        where the mail's link lands: a page that asks to go
                                           on ("Sign in as ana@example.com"), the link unspent
POST /oauth2/ui/magic-link/callback        spends the link, then the MFA step or the browser
                                           session and /oauth2/authorize/continue

The link is `<issuer>/oauth2/ui/magic-link/callback?ar=<request>&token=<token>` (not the app's
spec.auth.links.magicLink). Opening it does not spend it: mail scanners and link previews fetch
links with GET, and would use it up before its owner clicks. It is spent by the button of the
page it opens, a form post from this origin with the page's CSRF token. The flow's rules (one
use, lifetime spec.auth.magicLinkLifetime, the per-address mail budget, an account made for a
new address when sign-up is open) are `stackyard.auth.flows`'s."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from stackyard.auth import flows
from stackyard.auth.context import AuthContext
from stackyard.problems import NotFound, Problem
from starlette.datastructures import FormData
from starlette.responses import Response

from ..auth_deps import AuthDep, ClientDep
from ..routers.auth import after_answer
from .csrf import CsrfForm
from .login import (
    BROWSER_SESSION,
    complete_login,
    load_request,
    login_page,
    mail_link_template,
    problem_message,
    request_page,
)
from .render import HostedRoute

router = APIRouter(route_class=HostedRoute)
RequestId = Annotated[str, Query(max_length=64)]
Token = Annotated[str, Query(max_length=200)]
SENT = "Check your email: if {email} can sign in, a sign-in link is on its way. It works once, for {lifetime}."
SPENT = "This sign-in link is invalid, has expired or was already used. Ask for a new one below."


def _offered(ctx: AuthContext) -> None:
    if not ctx.settings.hosted_pages.magic_link:
        raise NotFound("Sign-in links are not offered here. Go back and choose another way to sign in.")


def _field(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


@router.post("/magic-link")
async def send_link(request: Request, ctx: AuthDep, client: ClientDep, form: CsrfForm) -> Response:
    _offered(ctx)
    pending, oidc_client = await load_request(ctx, _field(form, "ar", 64))
    email = _field(form, "email", 320)
    try:
        await flows.request_magic_link(
            ctx,
            email,
            client,
            later=after_answer,
            link_template=mail_link_template(ctx, "/magic-link/callback", pending.id),
        )
    except Problem as exc:
        message, status = problem_message(exc)
        return await login_page(request, ctx, pending, oidc_client, error=message, status=status, email=email)
    notice = SENT.format(email=email, lifetime=flows.human_duration(ctx.settings.magic_link_lifetime))
    return await login_page(request, ctx, pending, oidc_client, notice=notice, email=email)


@router.get("/magic-link/callback")
async def confirm_page(request: Request, ctx: AuthDep, ar: RequestId, token: Token) -> Response:
    """The page the link opens: who it signs in and a button that does it (nothing spent yet)."""
    _offered(ctx)
    pending, oidc_client = await load_request(ctx, ar)
    address = await flows.magic_link_address(ctx, token)
    if address is None:
        return await login_page(request, ctx, pending, oidc_client, error=SPENT, status=400)
    return request_page(
        request, ctx, pending, oidc_client, "hosted/magic_link_confirm.html", token=token, email=address
    )


@router.post("/magic-link/callback")
async def sign_in(request: Request, ctx: AuthDep, client: ClientDep, form: CsrfForm) -> Response:
    """Spends the link: the MFA step when the account has one, else the browser session and
    on to the authorization request."""
    _offered(ctx)
    pending, oidc_client = await load_request(ctx, _field(form, "ar", 64))
    try:
        outcome = await flows.verify_magic_link(ctx, _field(form, "token", 200), client, session_kind=BROWSER_SESSION)
    except Problem as exc:
        message, status = problem_message(exc)
        if exc.status == 401:  # InvalidToken: spent, expired or for a changed address
            message, status = SPENT, 400
        return await login_page(request, ctx, pending, oidc_client, error=message, status=status)
    return await complete_login(request, ctx, pending, outcome)
