"""The OpenID Provider's protocol endpoints: thin routes over `stackyard.auth.oidc`.

GET       /.well-known/openid-configuration  the provider's metadata (discovery)
GET|POST  /oauth2/authorize                  authorization request (code flow, PKCE)
GET       /oauth2/authorize/continue         carry on a request after the hosted login or consent
POST      /oauth2/token                      authorization_code, refresh_token, client_credentials
GET|POST  /oauth2/userinfo                   the claims of the access token's user
POST      /oauth2/revoke                     revoke a refresh or access token (RFC 7009)
POST      /oauth2/introspect                 is a token active, and what it grants (RFC 7662)
GET|POST  /oauth2/logout                     RP-initiated logout (end_session_endpoint)

The JWKS (`/.well-known/jwks.json`) is served by the auth router. Errors here are those of the
protocols, which client libraries read, not problem+json: at the authorize endpoint an error
goes back to the client's redirect URI (`error`, `error_description`, `state`, `iss`), or, when
the client or its redirect URI cannot be trusted, the browser gets an HTML error page; the
token, revocation and introspection endpoints answer RFC 6749 §5.2 JSON; userinfo answers 401
with `WWW-Authenticate: Bearer error=...` (RFC 6750)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from stackyard.auth.context import AuthContext
from stackyard.auth.contract_oidc import (
    IntrospectionResponse,
    OAuthErrorBody,
    ProviderMetadata,
    TokenResponse,
    UserInfo,
)
from stackyard.auth.oidc import (
    authorize,
    browser,
    discovery,
    grants,
    interaction,
    introspection,
    logout,
    revocation,
    userinfo,
)
from stackyard.auth.oidc.clients import AuthenticatedClient, authenticate_client
from stackyard.auth.oidc.errors import INVALID_REQUEST, INVALID_TOKEN, InvalidClientOrRedirect, OAuthError
from stackyard.auth.sessions import ClientInfo
from starlette.datastructures import FormData, QueryParams

from ..auth_deps import AuthDep, ClientDep
from ..errors import problem_responses
from ..hosted.render import error_page, origin_source

router = APIRouter(tags=["openid-provider"])

DISCOVERY_MAX_AGE = 300
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""Answers that carry tokens or codes are never cached (RFC 6749 §5.1)."""
SINGLE_VALUED = ("client_id", "redirect_uri")
"""Parameters whose repetition makes a request untrustworthy (no redirect at all)."""


# -- helpers ------------------------------------------------------------------------------


def _single(params: QueryParams | FormData) -> tuple[dict[str, str], list[str]]:
    """The parameters (first values; empty ones count as absent, RFC 6749 §3.1) and the names
    that came more than once."""
    values: dict[str, str] = {}
    seen: set[str] = set()
    repeated: set[str] = set()
    for name, value in params.multi_items():
        if not isinstance(value, str):
            continue
        if name in seen:
            repeated.add(name)
            continue
        seen.add(name)
        if value != "":
            values[name] = value
    return values, sorted(repeated)


def _browser_cookie(request: Request, ctx: AuthContext) -> str | None:
    return request.cookies.get(browser.cookie_name(ctx.settings.cookies.secure)) or None


MAX_GET_QUERY = 8000
"""The longest query _as_get puts in a URL."""


def _as_get(request: Request, ctx: AuthContext, form: FormData) -> RedirectResponse | None:
    """A form POST that arrived without the browser session cookie, sent again as a GET.

    The cookie is SameSite=Lax: a browser leaves it out of a form POST from the client's site,
    which would look like "not signed in" (a needless login, or a logout that ends nothing). A
    303 makes the browser repeat the request as a top-level GET, which carries the cookie.
    None when the cookie came, or the parameters are too long for a URL."""
    if _browser_cookie(request, ctx) is not None:
        return None
    items = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    query = urlencode(items)
    if len(query) > MAX_GET_QUERY:
        return None
    return RedirectResponse(discovery.url(ctx, f"{request.url.path}?{query}"), status_code=303, headers=NO_STORE)


def _to_client(response: authorize.ClientResponse) -> Response:
    """The authorization response: a 303 to the redirect URI, or the form_post page."""
    if response.response_mode == "form_post":
        csp = (
            "default-src 'none'; script-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'; "
            f"form-action {origin_source(response.redirect_uri) or 'none'}"
        )
        return HTMLResponse(authorize.form_post_html(response), headers=NO_STORE | {"Content-Security-Policy": csp})
    return RedirectResponse(response.url(), status_code=303, headers=NO_STORE)


def _invalid_client_page(request: Request, error: InvalidClientOrRedirect) -> HTMLResponse:
    page = error_page(request, title=error.title, detail=error.description, status=400)
    page.headers.update(NO_STORE)
    return page


async def _decided(request: Request, ctx: AuthContext, pending: interaction.PendingAuthorization) -> Response:
    session = await browser.current_browser_session(ctx, _browser_cookie(request, ctx))
    try:
        decision = await authorize.decide(ctx, pending, session)
    except InvalidClientOrRedirect as error:
        return _invalid_client_page(request, error)
    if isinstance(decision, authorize.Respond):
        return _to_client(decision.response)
    return RedirectResponse(decision.location, status_code=303, headers=NO_STORE)


async def _authorization_request(
    request: Request, ctx: AuthContext, params: Mapping[str, str], repeated: list[str]
) -> Response:
    if any(name in SINGLE_VALUED for name in repeated):
        error = InvalidClientOrRedirect("The sign-in link names its application or return address more than once.")
        return _invalid_client_page(request, error)
    try:
        pending = authorize.validate(ctx, params)
    except InvalidClientOrRedirect as error:
        return _invalid_client_page(request, error)
    except authorize.AuthorizeError as error:
        return _to_client(error.response)
    if repeated:
        description = f"parameters sent more than once: {', '.join(repeated)[:200]}"
        return _to_client(authorize.error_response(ctx, pending, INVALID_REQUEST, description))
    return await _decided(request, ctx, pending)


# -- discovery ----------------------------------------------------------------------------


@router.get(
    "/.well-known/openid-configuration",
    response_model=ProviderMetadata,
    summary="OpenID Provider metadata (discovery)",
    description=(
        "The discovery document (OpenID Connect Discovery 1.0, RFC 8414) that OIDC client libraries read "
        "first: the issuer, the endpoints, the supported scopes (the standard ones and every scope a "
        "registered OIDCClient may ask for), grants, client authentication methods, PKCE (S256 only) and "
        "the signing algorithms of the Stack's published keys. Cacheable for 5 minutes."
    ),
    responses={
        200: {"headers": {"Cache-Control": {"description": "Cacheable for 5 minutes.", "schema": {"type": "string"}}}}
    }
    | problem_responses(503),
)
async def openid_configuration(ctx: AuthDep) -> JSONResponse:
    return JSONResponse(discovery.metadata(ctx), headers={"Cache-Control": f"public, max-age={DISCOVERY_MAX_AGE}"})


# -- authorization endpoint -------------------------------------------------------------

AUTHORIZE_DESCRIPTION = (
    "The start of the authorization code flow (RFC 6749 §4.1, OpenID Connect Core §3.1.2), reached "
    "by a browser: `response_type=code`, `client_id`, `redirect_uri` (exactly as registered), `scope` "
    "(with `openid` for OpenID Connect), `state`, `nonce`, PKCE `code_challenge` with "
    "`code_challenge_method=S256` (required for public clients and by default), and optionally "
    "`prompt` (none, login, consent, select_account), `max_age`, `login_hint`, `ui_locales`, "
    "`response_mode` (query, form_post).\n\n"
    "Answers: 303 to the hosted login or consent page when the user must sign in or consent; 303 to "
    "the redirect URI with `code`, `state` and `iss` when the user is signed in; errors go to the "
    "redirect URI as `error`, `error_description`, `state`, `iss` (with `prompt=none`: "
    "login_required, consent_required). An unknown or disabled client or an unregistered "
    "redirect URI gets an HTML error page (400) and no redirect."
)
AUTHORIZE_PARAMETERS = {
    "response_type": "code (the only one supported).",
    "client_id": "The OIDCClient's name.",
    "redirect_uri": "One of the client's redirectUris, exactly (may be left out when it has only one).",
    "scope": "Space-separated, within the client's scopes; openid makes it an OpenID Connect request.",
    "state": "Returned as is with the response (CSRF protection of the client).",
    "nonce": "Put in the ID token (replay protection of the client).",
    "code_challenge": "PKCE: BASE64URL(SHA256(code_verifier)), 43 characters.",
    "code_challenge_method": "S256 (plain is refused).",
    "prompt": "none, login, consent or select_account.",
    "max_age": "Seconds since the login after which the user must sign in again.",
    "login_hint": "The email address to sign in with.",
    "ui_locales": "Preferred languages of the hosted pages.",
    "response_mode": "query (default) or form_post.",
}
LOGOUT_PARAMETERS = {
    "id_token_hint": "An ID token the client got (expired ones are accepted).",
    "client_id": "The client (needed with post_logout_redirect_uri when there is no id_token_hint).",
    "post_logout_redirect_uri": "One of the client's postLogoutRedirectUris, exactly.",
    "state": "Returned as is with the post-logout redirect.",
    "ui_locales": "Preferred languages of the confirmation page.",
}


def _query(parameters: dict[str, str]) -> dict[str, Any]:
    """OpenAPI query parameters (all optional strings) of a route that reads them itself."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
            for name, text in parameters.items()
        ]
    }


def _form(parameters: dict[str, str]) -> dict[str, Any]:
    """An OpenAPI form body (optional string fields) of a route that reads it itself."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "description": text} for name, text in parameters.items()},
    }
    return {"requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": schema}}}}


AUTHORIZE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "response_mode=form_post: a page that posts the response to the client",
        "content": {"text/html": {}},
    },
    303: {"description": "To the hosted login or consent page, or back to the client's redirect URI"},
    400: {
        "description": "Unknown client or unregistered redirect URI: an HTML error page",
        "content": {"text/html": {}},
    },
}


@router.get(
    "/oauth2/authorize",
    summary="Authorization request (code flow)",
    description=AUTHORIZE_DESCRIPTION,
    response_class=Response,
    responses=AUTHORIZE_RESPONSES | problem_responses(503),
    openapi_extra=_query(AUTHORIZE_PARAMETERS),
)
async def authorize_get(request: Request, ctx: AuthDep) -> Response:
    params, repeated = _single(request.query_params)
    return await _authorization_request(request, ctx, params, repeated)


@router.post(
    "/oauth2/authorize",
    summary="Authorization request (form post)",
    description=(
        "The same request as GET /oauth2/authorize, its parameters form-encoded in the body. Without the "
        "provider's session cookie (SameSite=Lax: a browser leaves it out of a POST from another site) "
        "the answer is a 303 to the GET form of the same request, which the browser sends with the cookie."
    ),
    response_class=Response,
    responses=AUTHORIZE_RESPONSES | problem_responses(503),
    openapi_extra=_form(AUTHORIZE_PARAMETERS),
)
async def authorize_post(request: Request, ctx: AuthDep) -> Response:
    form = await request.form()
    if (again := _as_get(request, ctx, form)) is not None:
        return again
    params, repeated = _single(form)
    return await _authorization_request(request, ctx, params, repeated)


@router.get(
    "/oauth2/authorize/continue",
    summary="Continue an authorization request",
    description=(
        "Where the hosted login and consent pages send the browser once the user signed in or "
        "consented: the saved request (`ar`) is decided again, as at /oauth2/authorize. An unknown or "
        "expired request (30 minutes) gets an HTML error page; the user starts again at the application."
    ),
    response_class=Response,
    responses={
        303: AUTHORIZE_RESPONSES[303],
        400: {"description": "Unknown or expired request: an HTML error page", "content": {"text/html": {}}},
    }
    | problem_responses(503),
)
async def authorize_continue(request: Request, ctx: AuthDep, ar: str | None = None) -> Response:
    pending = await interaction.load_pending(ctx, ar)
    if pending is None:
        expired = InvalidClientOrRedirect(
            "This sign-in took too long or was already finished. Go back to the application and sign in again.",
            title="This sign-in has expired",
        )
        return _invalid_client_page(request, expired)
    return await _decided(request, ctx, pending)


# -- token, revocation, introspection -----------------------------------------------------


def _oauth_error(error: OAuthError) -> JSONResponse:
    """RFC 6749 §5.2: {"error", "error_description"}, never cached."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers | NO_STORE)


async def _client_form(request: Request) -> dict[str, str]:
    """The form of a token, revocation or introspection request (application/x-www-form-urlencoded,
    every parameter once, RFC 6749 §3.2); raises OAuthError invalid_request otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError(INVALID_REQUEST, "send the parameters form-encoded (application/x-www-form-urlencoded)")
    form, repeated = _single(await request.form())
    if repeated:
        raise OAuthError(INVALID_REQUEST, f"parameters sent more than once: {', '.join(repeated)[:200]}")
    return form


async def _authenticated(request: Request, ctx: AuthContext) -> tuple[AuthenticatedClient, dict[str, str]]:
    form = await _client_form(request)
    client = authenticate_client(ctx, authorization=request.headers.get("authorization"), form=form)
    return client, form


def _form_body(description: str, fields: dict[str, str], required: list[str]) -> dict[str, Any]:
    """The OpenAPI request body of a form-encoded endpoint."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "description": text} for name, text in fields.items()},
        "required": required,
    }
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


CLIENT_AUTH_FIELDS = {
    "client_id": "The client id (with client_secret_post or a public client; else in the Basic header).",
    "client_secret": "client_secret_post: the client secret (else use Authorization: Basic).",
}
NO_STORE_HEADERS = {
    "Cache-Control": {"description": "no-store", "schema": {"type": "string"}},
    "Pragma": {"description": "no-cache", "schema": {"type": "string"}},
}
OAUTH_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "An RFC 6749 error (invalid_request, invalid_grant, ...)"},
    401: {
        "model": OAuthErrorBody,
        "description": "invalid_client with Basic authentication (WWW-Authenticate: Basic)",
        "headers": {"WWW-Authenticate": {"description": "Basic realm=...", "schema": {"type": "string"}}},
    },
}


@router.post(
    "/oauth2/token",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    summary="Token endpoint",
    description=(
        "Form-encoded (RFC 6749 §3.2), one of three grants:\n\n"
        "- `grant_type=authorization_code`: `code`, `redirect_uri` (as in the authorization request), "
        "`code_verifier` (PKCE). A code works once within its lifetime (60 s by default); presenting it "
        "again is invalid_grant and revokes the tokens it gave.\n"
        "- `grant_type=refresh_token`: `refresh_token`, optionally a narrower `scope`. The refresh token is "
        "rotated: the answer has a new one, and presenting an old one again is invalid_grant and revokes "
        "the grant.\n"
        "- `grant_type=client_credentials` (machine clients): optionally `scope` within the client's scopes.\n\n"
        "Client authentication: `client_secret_basic` (Authorization: Basic), `client_secret_post` "
        "(client_id and client_secret in the form) or `none` for public clients (client_id only; they "
        "use PKCE). During a client secret rotation's grace period the previous secret works too.\n\n"
        "Errors are RFC 6749 §5.2 JSON (`error`, `error_description`), 400, or 401 with "
        "`WWW-Authenticate: Basic` for invalid_client when the Basic header was used. Answers are never "
        "cached (Cache-Control: no-store). Callable from single-page apps (CORS for the registered "
        "clients' origins)."
    ),
    responses={200: {"headers": NO_STORE_HEADERS}} | OAUTH_ERROR_RESPONSES | problem_responses(503),
    openapi_extra=_form_body(
        "The grant's parameters, form-encoded.",
        {
            "grant_type": "authorization_code, refresh_token or client_credentials.",
            "code": "authorization_code: the code of the authorization response.",
            "redirect_uri": "authorization_code: the redirect_uri of the authorization request.",
            "code_verifier": "authorization_code: the PKCE verifier (43-128 characters).",
            "refresh_token": "refresh_token: the refresh token.",
            "scope": "refresh_token: a narrower scope; client_credentials: the scopes asked.",
        }
        | CLIENT_AUTH_FIELDS,
        ["grant_type"],
    ),
)
async def token(request: Request, ctx: AuthDep, client_info: ClientDep) -> JSONResponse:
    try:
        client, form = await _authenticated(request, ctx)
        body = await grants.token_request(ctx, client, form, client_info=client_info)
    except OAuthError as error:
        return _oauth_error(error)
    return JSONResponse(body, headers=NO_STORE)


@router.post(
    "/oauth2/revoke",
    summary="Revoke a token (RFC 7009)",
    description=(
        "Form-encoded `token` (a refresh token or an access token) and optionally `token_type_hint`, with "
        "the client's authentication as at the token endpoint. Revoking a refresh token, or an access "
        "token of a user, ends the grant: its refresh token stops working and its access tokens are "
        "refused wherever the session (`sid`) is checked. The answer is 200 with an empty body whether "
        "or not the token was known, valid or the client's (a client cannot probe tokens); only a "
        "failed client authentication or a malformed request is an error."
    ),
    responses={200: {"description": "Done (or nothing to do)", "content": {"application/json": {}}}}
    | OAUTH_ERROR_RESPONSES
    | problem_responses(503),
    openapi_extra=_form_body(
        "The token to revoke, form-encoded.",
        {"token": "The token.", "token_type_hint": "refresh_token or access_token (only orders the lookups)."}
        | CLIENT_AUTH_FIELDS,
        ["token"],
    ),
)
async def revoke(request: Request, ctx: AuthDep, client_info: ClientDep) -> JSONResponse:
    try:
        client, form = await _authenticated(request, ctx)
        if "token" not in form:
            raise OAuthError(INVALID_REQUEST, "token is required")
        await revocation.revoke(ctx, client, form["token"], form.get("token_type_hint"), client_info=client_info)
    except OAuthError as error:
        return _oauth_error(error)
    return JSONResponse({}, headers=NO_STORE)


@router.post(
    "/oauth2/introspect",
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    summary="Introspect a token (RFC 7662)",
    description=(
        "For confidential and machine clients (client_secret_basic or client_secret_post; public clients "
        "are refused): form-encoded `token` and optionally `token_type_hint`. The answer says whether the "
        "token is active (one of this provider's, unexpired, its grant not revoked, issued to the asking "
        'client) and, when it is, what it grants. A token of another client is `{"active": false}`.'
    ),
    responses={200: {"headers": NO_STORE_HEADERS}} | OAUTH_ERROR_RESPONSES | problem_responses(503),
    openapi_extra=_form_body(
        "The token to introspect, form-encoded.",
        {"token": "The token.", "token_type_hint": "refresh_token or access_token (only orders the lookups)."}
        | CLIENT_AUTH_FIELDS,
        ["token"],
    ),
)
async def introspect(request: Request, ctx: AuthDep) -> JSONResponse:
    try:
        client, form = await _authenticated(request, ctx)
        if "token" not in form:
            raise OAuthError(INVALID_REQUEST, "token is required")
        body = await introspection.introspect(ctx, client, form["token"], form.get("token_type_hint"))
    except OAuthError as error:
        return _oauth_error(error)
    return JSONResponse(body, headers=NO_STORE)


# -- userinfo -----------------------------------------------------------------------------

USERINFO_DESCRIPTION = (
    "The signed-in user's claims for an access token of an OIDC client with the `openid` scope, while "
    "its grant lives: `sub`, and by scope `email`, `email_verified` (email) and `name`, `updated_at` "
    "(profile). The token goes in `Authorization: Bearer` (or, with POST, the `access_token` form field; "
    "RFC 6750). A malformed, expired or revoked token is 401 and one without `openid` 403, with "
    "`WWW-Authenticate: Bearer error=...` (RFC 6750 §3); a request without a token gets 401 with the bare "
    "challenge `Bearer realm=...`. Callable from single-page apps."
)
USERINFO_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": OAuthErrorBody,
        "description": "invalid_token: missing, malformed, expired or revoked",
        "headers": {
            "WWW-Authenticate": {"description": 'Bearer error="invalid_token", ...', "schema": {"type": "string"}}
        },
    },
    403: {"model": OAuthErrorBody, "description": "insufficient_scope: the token lacks openid"},
}


async def _userinfo(ctx: AuthContext, authorization: str | None, form_token: str | None) -> JSONResponse:
    try:
        token = userinfo.bearer_token(authorization, form_token)
        if token is None:
            # RFC 6750 §3.1: a request without any credentials gets the challenge alone, no error code.
            challenge = {"WWW-Authenticate": f'Bearer realm="{ctx.issuer}"'}
            raise OAuthError(INVALID_TOKEN, "an access token is required (Authorization: Bearer)", 401, challenge)
        claims = await userinfo.userinfo(ctx, token)
    except OAuthError as error:
        return _oauth_error(error)
    return JSONResponse(claims, headers=NO_STORE)


@router.get(
    "/oauth2/userinfo",
    response_model=UserInfo,
    response_model_exclude_none=True,
    summary="UserInfo endpoint",
    description=USERINFO_DESCRIPTION,
    responses=USERINFO_RESPONSES | problem_responses(503),
)
async def userinfo_get(request: Request, ctx: AuthDep) -> JSONResponse:
    return await _userinfo(ctx, request.headers.get("authorization"), None)


@router.post(
    "/oauth2/userinfo",
    response_model=UserInfo,
    response_model_exclude_none=True,
    summary="UserInfo endpoint (POST)",
    description=USERINFO_DESCRIPTION,
    responses=USERINFO_RESPONSES | problem_responses(503),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"access_token": {"type": "string", "description": "Instead of the header."}},
                    }
                }
            },
        }
    },
)
async def userinfo_post(request: Request, ctx: AuthDep) -> JSONResponse:
    form_token = None
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form, _ = _single(await request.form())
        form_token = form.get("access_token")
    return await _userinfo(ctx, request.headers.get("authorization"), form_token)


# -- end session ----------------------------------------------------------------------------

LOGOUT_DESCRIPTION = (
    "RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), reached by a browser: "
    "`id_token_hint` (an ID token the client got; expired ones are accepted), `client_id`, "
    "`post_logout_redirect_uri` (exactly one of the client's postLogoutRedirectUris), `state`, "
    "`ui_locales`. It ends the provider's browser session and the grants tied to it (refresh tokens "
    "without offline_access), then 303 to the post-logout URI with `state`, or to the provider's "
    "logged-out page. Without an id_token_hint of the signed-in user, a confirmation page asks first. "
    "An invalid request gets an HTML error page and no redirect."
)
LOGOUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    303: {"description": "To the post-logout redirect URI (with state), the logged-out page, or the confirmation page"},
    400: {"description": "An invalid logout request: an HTML error page", "content": {"text/html": {}}},
}


async def _logout(
    request: Request, ctx: AuthContext, client_info: ClientInfo, params: QueryParams | FormData
) -> Response:
    values, _ = _single(params)
    try:
        logout_request = logout.validate_logout(ctx, values)
    except OAuthError as error:
        page = error_page(
            request, title="This sign-out link is not valid", detail=_sentence(error.description), status=400
        )
        page.headers.update(NO_STORE)
        return page
    cookie = _browser_cookie(request, ctx)
    session = await browser.current_browser_session(ctx, cookie)
    if logout.needs_confirmation(logout_request, session):
        token = await logout.save_logout(ctx, logout_request)
        location = discovery.url(ctx, f"{discovery.LOGOUT_PAGE}?{urlencode({'lr': token})}")
        return RedirectResponse(location, status_code=303, headers=NO_STORE)
    location = await logout.end_session(ctx, logout_request, cookie, client_info)
    response = RedirectResponse(location, status_code=303, headers=NO_STORE)
    clear_browser_cookie(response, ctx)
    return response


def clear_browser_cookie(response: Response, ctx: AuthContext) -> None:
    """Removes the provider's browser session cookie (same name and attributes as when set)."""
    secure = ctx.settings.cookies.secure
    response.delete_cookie(browser.cookie_name(secure), path="/", secure=secure, httponly=True, samesite="lax")


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


@router.get(
    "/oauth2/logout",
    summary="End session (RP-initiated logout)",
    description=LOGOUT_DESCRIPTION,
    response_class=Response,
    responses=LOGOUT_RESPONSES | problem_responses(503),
    openapi_extra=_query(LOGOUT_PARAMETERS),
)
async def logout_get(request: Request, ctx: AuthDep, client_info: ClientDep) -> Response:
    return await _logout(request, ctx, client_info, request.query_params)


@router.post(
    "/oauth2/logout",
    summary="End session (form post)",
    description=(
        "The same request as GET /oauth2/logout, its parameters form-encoded in the body. Without the "
        "provider's session cookie (SameSite=Lax: a browser leaves it out of a POST from another site) "
        "the answer is a 303 to the GET form of the same request, which the browser sends with the cookie."
    ),
    response_class=Response,
    responses=LOGOUT_RESPONSES | problem_responses(503),
    openapi_extra=_form(LOGOUT_PARAMETERS),
)
async def logout_post(request: Request, ctx: AuthDep, client_info: ClientDep) -> Response:
    form = await request.form()
    if (again := _as_get(request, ctx, form)) is not None:
        return again
    return await _logout(request, ctx, client_info, form)
