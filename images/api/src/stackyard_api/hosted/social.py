"""Sign in with the Stack's IdentityProviders (Google, GitHub, any OpenID provider), on the
OpenID Provider's hosted pages.

GET /oauth2/ui/social/{provider}?ar=<request>   to the provider (state, nonce, PKCE S256)
GET /oauth2/ui/social/{provider}/callback       where the provider sends the browser back

The provider must have `<issuer>/oauth2/ui/social/<name>/callback` among its registered
redirect URIs (next to the api's own `<issuer>/v1/auth/oauth/<name>/callback`). The state
names the waiting authorization request and is bound to the browser that started the login:
an HttpOnly cookie holds it, and a callback whose state is not the cookie's is refused (a
login started in another browser, or a callback URL sent to someone, signs no one in). Who
signs in is decided as for the api's social login (`federation.link_identity`: linked before,
linked by a verified email, or a new account when sign-up is open); then the MFA step when
the account has one, else the browser session and /oauth2/authorize/continue. A refusal at
the provider (access_denied, ...) or a login that cannot be completed goes back to the login
page with a message."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

import httpx
from fastapi import APIRouter, Path, Query, Request
from stackyard.auth import federation
from stackyard.auth.context import AuthContext
from stackyard.problems import NotFound, Problem
from starlette.responses import RedirectResponse, Response

from ..auth_deps import AuthDep, ClientDep
from ..deps import RuntimeDep
from .login import BROWSER_SESSION, complete_login, load_request, login_page, problem_message
from .render import PREFIX, HostedRoute, error_page, secure_headers

log = logging.getLogger(__name__)
router = APIRouter(route_class=HostedRoute)
ProviderName = Annotated[str, Path(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
PROVIDER_TIMEOUT = 10.0
COOKIE = "sy_op_social"
"""Holds the state of the login this browser started (HttpOnly, SameSite=Lax: the provider's
redirect back is a top-level navigation from its site), for 10 minutes."""
REFUSED = "Signing in with {provider} did not work: {reason}"


def cookie_name(secure: bool) -> str:
    return f"__Host-{COOKIE}" if secure else COOKIE


def callback_url(ctx: AuthContext, provider: str) -> str:
    """The redirect URI registered at the provider for the hosted pages."""
    return f"{ctx.issuer.rstrip('/')}{PREFIX}/social/{provider}/callback"


def _offered(ctx: AuthContext) -> None:
    if not ctx.settings.hosted_pages.social:
        raise NotFound("Signing in with another account is not offered here. Choose another way to sign in.")


@router.get("/social/{provider}")
async def begin(
    request: Request, provider: ProviderName, ctx: AuthDep, ar: Annotated[str, Query(max_length=64)]
) -> Response:
    """To the provider's sign-in page; the state goes into this browser's cookie."""
    _offered(ctx)
    pending, oidc_client = await load_request(ctx, ar)
    try:
        async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT) as http:
            url, state = await federation.begin_hosted_login(
                ctx, http, provider, callback_url=callback_url(ctx, provider), request_id=pending.id
            )
    except Problem as exc:
        message, status = _message(exc, _label(ctx, provider))
        return await login_page(request, ctx, pending, oidc_client, error=message, status=status)
    response = RedirectResponse(url, status_code=303)
    secure = ctx.settings.cookies.secure
    response.set_cookie(
        cookie_name(secure),
        state,
        max_age=federation.STATE_SECONDS,
        path="/",
        httponly=True,
        secure=secure,
        samesite="lax",
    )
    return secure_headers(response)


@router.get("/social/{provider}/callback")
async def callback(
    request: Request,
    provider: ProviderName,
    ctx: AuthDep,
    client: ClientDep,
    runtime: RuntimeDep,
    state: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
    iss: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    name = cookie_name(ctx.settings.cookies.secure)
    held = request.cookies.get(name, "")
    if not state or not held or not hmac.compare_digest(state.encode(), held.encode()):
        return _forget(request, ctx, _start_again(request, "This sign-in was not started in this browser."))
    try:
        taken = await federation.take_state(ctx, provider, state, hosted=True)
    except federation.InvalidOAuthState:
        return _forget(request, ctx, _start_again(request, "This sign-in has expired or was already used."))
    assert taken.request_id is not None
    pending, oidc_client = await load_request(ctx, taken.request_id)
    label = _label(ctx, provider)
    if error or not code:
        reason = "you cancelled it, or it was refused." if error == "access_denied" else "it was refused."
        if error and error_description and error != "access_denied":
            reason = f"it was refused ({error_description[:200]})."
        page = await login_page(
            request, ctx, pending, oidc_client, error=REFUSED.format(provider=label, reason=reason), status=400
        )
        return _forget(request, ctx, page)
    try:
        secret = runtime.config.credentials.get(federation.client_secret_key(provider))
        async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT) as http:
            identity = await federation.identify(ctx, http, taken, code, secret=secret, iss=iss)
        user = await federation.link_identity(ctx, provider, identity, client)
        outcome = await federation.finish_login(ctx, user, client, provider, session_kind=BROWSER_SESSION)
    except Problem as exc:
        message, status = _message(exc, label)
        page = await login_page(request, ctx, pending, oidc_client, error=message, status=status)
        return _forget(request, ctx, page)
    return _forget(request, ctx, await complete_login(request, ctx, pending, outcome))


def _message(exc: Problem, label: str) -> tuple[str, int]:
    """What the visitor reads: the provider's failures without their technical detail (logged)."""
    if isinstance(exc, federation.OAuthLoginFailed | federation.IdentityProviderUnavailable):
        log.warning("hosted sign-in with %s failed: %s", label, exc.detail)
        return REFUSED.format(provider=label, reason="try again, or choose another way to sign in."), exc.status
    return problem_message(exc)


def _label(ctx: AuthContext, provider: str) -> str:
    spec = ctx.identity_providers.get(provider)
    return spec.label(provider) if spec is not None else provider


def _start_again(request: Request, what: str) -> Response:
    return error_page(
        request,
        title="Sign-in not completed",
        detail=f"{what} Go back to the application and sign in again.",
        status=400,
    )


def _forget(request: Request, ctx: AuthContext, response: Response) -> Response:
    """The state cookie goes, whatever the outcome (a state is good for one callback)."""
    secure = ctx.settings.cookies.secure
    if cookie_name(secure) in request.cookies:
        response.delete_cookie(cookie_name(secure), path="/", secure=secure, httponly=True, samesite="lax")
    return response
