"""/oauth2/ui/consent: a third-party client asks for the user's data.

The page names the client (its logo and links: home page, privacy policy, terms), says who is
signed in, and lists what the requested scopes let the client do, in plain words. Allow grants
the scopes (`authorize.approve_consent`: kept for later requests) and carries on at
/oauth2/authorize/continue; Deny sends access_denied to the client. Both are form posts with
the CSRF token, acting for the user of the browser session at the time of the post."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from stackyard.auth.context import AuthContext
from stackyard.auth.oidc import authorize
from stackyard.auth.oidc.browser import BrowserSession, cookie_name, current_browser_session
from starlette.responses import Response

from ..auth_deps import AuthDep
from .csrf import CsrfForm
from .login import CONTINUE, form_field, load_request, redirect, request_page, to_client
from .render import PREFIX, HostedRoute, hosted_settings

router = APIRouter(route_class=HostedRoute)

SCOPE_WORDS = {
    "openid": "Know who you are: your account's identifier at {app}",
    "profile": "See your profile: your name and when it last changed",
    "email": "See your email address and whether it is verified",
    "offline_access": "Stay connected when you are not using it (keep access until you sign out of it or revoke it)",
}


def scope_lines(scopes: list[str], app_name: str) -> list[tuple[str, str]]:
    """(scope, what it lets the client do) for each requested scope, standard ones first."""
    known = [s for s in SCOPE_WORDS if s in scopes]
    others = [s for s in scopes if s not in SCOPE_WORDS]
    return [(s, SCOPE_WORDS[s].format(app=app_name)) for s in known] + [
        (s, f"Use the permission “{s}” that {app_name} defines") for s in others
    ]


async def _browser(request: Request, ctx: AuthContext) -> BrowserSession | None:
    return await current_browser_session(ctx, request.cookies.get(cookie_name(ctx.settings.cookies.secure)))


@router.get("/consent")
async def consent_page(request: Request, ctx: AuthDep, ar: str | None = None) -> Response:
    pending, client = await load_request(ctx, ar)
    browser = await _browser(request, ctx)
    user = await ctx.users.by_id(browser.user_id) if browser is not None else None
    if browser is None or user is None:
        return redirect(f"{PREFIX}/login?ar={quote(pending.id)}")
    app_name = hosted_settings(request)[1]
    return request_page(
        request,
        ctx,
        pending,
        client,
        "hosted/consent.html",
        user_email=user.email,
        scopes=scope_lines(pending.scopes, app_name),
    )


@router.post("/consent")
async def consent(request: Request, ctx: AuthDep, form: CsrfForm, ar: str | None = None) -> Response:
    pending, _ = await load_request(ctx, ar or form_field(form, "ar"))
    decision = form_field(form, "decision")
    if decision == "deny":
        return to_client(request, await authorize.deny_consent(ctx, pending))
    browser = await _browser(request, ctx)
    if browser is None:
        return redirect(f"{PREFIX}/login?ar={quote(pending.id)}")
    if decision != "allow":
        return redirect(f"{PREFIX}/consent?ar={quote(pending.id)}")
    await authorize.approve_consent(ctx, pending, browser.user_id)
    return redirect(f"{CONTINUE}?ar={quote(pending.id)}")
