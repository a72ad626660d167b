"""/oauth2/ui/logout: "Sign out of <app>?", the confirmation the end-session endpoint asks for
when the request does not prove it comes from the signed-in user's app (no id_token_hint, or
one about someone else); and /oauth2/ui/logged-out, where a sign-out without a
post_logout_redirect_uri ends.

The end-session endpoint validates the request, keeps it (`logout.save_logout`) and sends the
browser to `/oauth2/ui/logout?lr=<token>`. Confirming is a form post with the CSRF token:
`logout.end_session` ends the browser session and its grants without offline_access, the
cookie is cleared, and the browser goes to the post-logout redirect URI (with `state`) or to
the logged-out page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from stackyard.auth.oidc import logout
from stackyard.auth.oidc.browser import cookie_name, current_browser_session
from stackyard.auth.oidc.clients import find_client
from stackyard.problems import Problem
from starlette.responses import Response

from ..auth_deps import AuthDep, client_info
from .csrf import CsrfForm, issue_csrf
from .login import form_field, redirect
from .render import HostedRoute, render

router = APIRouter(route_class=HostedRoute)


class LogoutExpired(Problem):
    status, slug, title = 400, "logout-request-expired", "This sign-out has expired"

    def __init__(self) -> None:
        super().__init__(
            "This sign-out page is no longer valid (it lasts 10 minutes). You may still be signed in: "
            "go back to the application and sign out again."
        )


@router.get("/logout")
async def logout_page(request: Request, ctx: AuthDep) -> Response:
    token = request.query_params.get("lr")
    wanted = await logout.load_logout(ctx, token)
    if wanted is None:
        raise LogoutExpired()
    cookie = request.cookies.get(cookie_name(ctx.settings.cookies.secure))
    browser = await current_browser_session(ctx, cookie)
    user = await ctx.users.by_id(browser.user_id) if browser is not None else None
    client = find_client(ctx, wanted.client_id)
    issue_csrf(request, ctx)
    return render(
        request,
        "hosted/logout.html",
        form_action=[wanted.post_logout_redirect_uri],
        images=[client.logo_uri if client else None],
        token=token,
        client=client,
        client_name=(client.display_name or wanted.client_id) if client else None,
        user_email=user.email if user else None,
    )


@router.post("/logout")
async def confirm_logout(request: Request, ctx: AuthDep, form: CsrfForm) -> Response:
    wanted = await logout.load_logout(ctx, form_field(form, "lr"), consume=True)
    if wanted is None:
        raise LogoutExpired()
    secure = ctx.settings.cookies.secure
    cookie = request.cookies.get(cookie_name(secure))
    target = await logout.end_session(ctx, wanted, cookie, await client_info(request))
    response = redirect(target)
    response.delete_cookie(cookie_name(secure), path="/", httponly=True, secure=secure, samesite="lax")
    return response


@router.get("/logged-out")
async def logged_out(request: Request) -> Response:
    return render(request, "hosted/logged_out.html")
