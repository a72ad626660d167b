"""/v1/auth/oauth and /v1/auth/identities: login with the Stack's IdentityProviders (Google,
GitHub, any OpenID provider) and the identities linked to an account.

GET    /v1/auth/oauth/providers               the enabled providers (for a login page)
GET    /v1/auth/oauth/{provider}/authorize    302 to the provider (state, nonce, PKCE)
GET    /v1/auth/oauth/{provider}/callback     where the provider returns: 302 to redirect_to
POST   /v1/auth/oauth/exchange                code mode: the one-time code -> session
GET    /v1/auth/identities                    the caller's linked identities
DELETE /v1/auth/identities/{provider}         unlink one (not the only way to log in)

The flow's rules are in `stackyard.auth.federation`."""

from __future__ import annotations

import secrets
from typing import Annotated

import httpx
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from stackyard.auth import federation, flows
from stackyard.auth.context import AuthContext
from stackyard.auth.contract import MfaRequired, Session
from stackyard.auth.contract_oauth import ExchangeRequest, IdentityList, IdentityView, ProviderInfo, ProviderList

from ..auth_deps import AuthDep, ClaimsDep, ClientDep, set_session_cookies
from ..deps import RuntimeDep
from ..errors import problem_responses
from .auth import login_answer

router = APIRouter(tags=["auth"])
ProviderName = Annotated[str, Path(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
PROVIDER_TIMEOUT = 10.0
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def callback_url(request: Request, context: AuthContext, provider: str) -> str:
    """The redirect_uri registered at the provider: under spec.auth.issuer (the api's public URL,
    as in the discovery document) when it is set, else under the URL this request came to."""
    if context.settings.issuer:
        return f"{context.settings.issuer.rstrip('/')}/v1/auth/oauth/{provider}/callback"
    return str(request.url_for("oauth_callback", provider=provider))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=302, headers=REDIRECT_HEADERS)


@router.get(
    "/v1/auth/oauth/providers",
    response_model=ProviderList,
    response_model_by_alias=True,
    summary="The identity providers a login page may offer",
    responses=problem_responses(503),
)
async def providers(context: AuthDep) -> ProviderList:
    return ProviderList(items=[ProviderInfo.model_validate(p) for p in federation.enabled_providers(context)])


@router.get(
    "/v1/auth/oauth/{provider}/authorize",
    status_code=302,
    response_class=RedirectResponse,
    summary="Start a login with an identity provider",
    description=(
        "Redirects the browser to the provider with state, nonce and a PKCE challenge (S256), kept for 10 "
        "minutes. redirect_to (default: spec.auth.appUrl) must be under appUrl or one of "
        "spec.auth.allowedRedirectUrls. mode=cookie: the callback starts a session in cookies and returns "
        "to redirect_to; mode=code: it returns to redirect_to with a one-time `code` (60 s) for "
        "POST /v1/auth/oauth/exchange, bound to code_challenge (S256) when one is given."
    ),
    responses={302: {"description": "To the provider's authorization page"}}
    | problem_responses(400, 404, 422, 502, 503),
)
async def authorize(
    provider: ProviderName,
    request: Request,
    context: AuthDep,
    redirect_to: Annotated[str | None, Query(max_length=2000)] = None,
    mode: Annotated[federation.LoginMode, Query()] = "cookie",
    code_challenge: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{43}$")] = None,
) -> RedirectResponse:
    callback = callback_url(request, context, provider)
    async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT) as http:
        url = await federation.begin_login(
            context,
            http,
            provider,
            callback_url=callback,
            redirect_to=redirect_to,
            mode=mode,
            app_code_challenge=code_challenge,
        )
    return _redirect(url)


@router.get(
    "/v1/auth/oauth/{provider}/callback",
    name="oauth_callback",
    status_code=302,
    response_class=RedirectResponse,
    summary="Where the identity provider sends the browser back",
    description=(
        "Consumes the state (once), redeems the code with the PKCE verifier, verifies the id_token "
        "(signature, issuer, audience, expiry, nonce) or reads GitHub's user and emails, then logs in the "
        "linked, matched or new account. A provider's error (error=access_denied, ...) returns to "
        "redirect_to with error and error_description; a bad state, or a login that cannot be completed, "
        "answers problem+json (409 for an email the provider has not verified that an account uses)."
    ),
    responses={302: {"description": "To redirect_to"}} | problem_responses(400, 401, 403, 404, 409, 422, 502, 503),
)
async def callback(
    provider: ProviderName,
    context: AuthDep,
    client: ClientDep,
    runtime: RuntimeDep,
    state: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
    iss: Annotated[str | None, Query(max_length=500)] = None,
) -> RedirectResponse:
    taken = await federation.take_state(context, provider, state)
    if error:
        return _redirect(federation.provider_error_redirect(taken, error, error_description))
    if not code:
        raise federation.InvalidOAuthState("the provider's answer has neither a code nor an error")
    secret = runtime.config.credentials.get(federation.client_secret_key(provider))
    async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT) as http:
        identity = await federation.identify(context, http, taken, code, secret=secret, iss=iss)
    user = await federation.link_identity(context, provider, identity, client)
    if taken.mode == "code":
        login_code = await federation.issue_login_code(context, user, taken, client)
        return _redirect(federation.with_query(taken.redirect_to, {"code": login_code}))
    result = await federation.finish_login(context, user, client, provider)
    if isinstance(result, flows.MfaChallenge):
        # The second factor is asked by the app: POST /v1/auth/login/mfa with this token.
        params = {"mfa_token": result.token, "mfa_methods": ",".join(result.methods)}
        return _redirect(federation.with_query(taken.redirect_to, params))
    response = _redirect(taken.redirect_to)
    set_session_cookies(response, context, result, secrets.token_urlsafe(24))
    return response


@router.post(
    "/v1/auth/oauth/exchange",
    response_model=Session | MfaRequired,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Trade a login's one-time code for a session (code mode)",
    description=(
        "The `code` that redirect_to received (usable once, for 60 seconds), with the code_verifier when "
        "authorize had a code_challenge. Answers the session, or mfaRequired when the account has a second "
        "factor (finish at POST /v1/auth/login/mfa)."
    ),
    responses=problem_responses(400, 403, 422, 503),
)
async def exchange(body: ExchangeRequest, context: AuthDep, response: Response) -> Session | MfaRequired:
    result = await federation.exchange_login_code(context, body.code, body.code_verifier)
    return login_answer(result, body.mode, response, context)


@router.get(
    "/v1/auth/identities",
    response_model=IdentityList,
    response_model_by_alias=True,
    summary="Your linked identities",
    responses=problem_responses(401, 503),
)
async def identities(context: AuthDep, claims: ClaimsDep) -> IdentityList:
    user = await flows.current_user(context, claims)
    return IdentityList(items=[IdentityView.model_validate(i) for i in federation.identities_of(context, user)])


@router.delete(
    "/v1/auth/identities/{provider}",
    status_code=204,
    summary="Unlink an identity",
    description="Refused (409) when it is the account's only way to log in (no password, passkey or other identity).",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def unlink(provider: ProviderName, context: AuthDep, claims: ClaimsDep, client: ClientDep) -> Response:
    user = await flows.current_user(context, claims)
    await federation.unlink(context, user, provider, client)
    return Response(status_code=204)
