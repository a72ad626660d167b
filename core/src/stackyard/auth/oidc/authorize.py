"""The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2), as functions.

`validate` checks a request's parameters; `decide` says what happens next for the user's
browser session: sign in (`Login`), consent (`Consent`) or go back to the client (`Respond`,
with a code or an error). The api turns `Login`/`Consent` into a 303 to their `location`,
and `Respond` into a 303 to `response.url()` (`response_mode=query`) or the page of
`form_post_html(response)` (`response_mode=form_post`).

Errors are sent to the client's redirect URI with `error`, `error_description`, `state`
and `iss` (RFC 9207) — except when the client or the redirect URI cannot be trusted
(`InvalidClientOrRedirect`: the api shows an error page instead, RFC 6749 §4.1.2.1)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ...resources.base import duration_seconds
from ..errors import InvalidEmail
from ..users import normalise_email
from . import consents
from .browser import BrowserSession
from .clients import find_client, redirect_uri_registered
from .codes import CodeGrant, issue_code
from .discovery import CONSENT_PAGE, LOGIN_PAGE, PROMPT_VALUES, RESPONSE_MODES, SIGNUP_PAGE, signup_open, url
from .errors import (
    ACCESS_DENIED,
    CONSENT_REQUIRED,
    INVALID_REQUEST,
    INVALID_SCOPE,
    LOGIN_REQUIRED,
    UNAUTHORIZED_CLIENT,
    UNSUPPORTED_RESPONSE_TYPE,
    InvalidClientOrRedirect,
    OAuthError,
)
from .interaction import PendingAuthorization, drop_pending, save_pending, update_pending

if TYPE_CHECKING:
    from ...resources.oidc import OIDCClientSpec
    from ..context import AuthContext

PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""A S256 challenge: BASE64URL(SHA256(verifier)) without padding, 43 characters."""
MAX_STATE = 2048
MAX_NONCE = 512


@dataclass(frozen=True)
class ClientResponse:
    """An authorization response for the client: parameters for its redirect URI."""

    redirect_uri: str
    params: dict[str, str]
    response_mode: str = "query"

    def url(self) -> str:
        """The redirect URI with the parameters added to its query."""
        separator = "&" if "?" in self.redirect_uri else "?"
        return self.redirect_uri + separator + urlencode(self.params)


def form_post_html(response: ClientResponse) -> str:
    """The page of `response_mode=form_post` (OAuth 2.0 Form Post Response Mode): a form
    that posts the parameters to the redirect URI, sent by a one-line script (or a button)."""
    fields = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in response.params.items()
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Signing in</title></head>"
        '<body onload="document.forms[0].submit()">'
        f'<form method="post" action="{html.escape(response.redirect_uri)}">{fields}'
        "<noscript><button type=submit>Continue</button></noscript></form></body></html>"
    )


class AuthorizeError(OAuthError):
    """An error for the client, to be sent to its redirect URI: `response`."""

    def __init__(self, error: str, description: str, response: ClientResponse) -> None:
        super().__init__(error, description)
        self.response = response


@dataclass(frozen=True)
class Login:
    """The user must sign in: 303 to `location` (the hosted login page with `?ar=`)."""

    pending: PendingAuthorization
    location: str


@dataclass(frozen=True)
class Consent:
    """The user must consent: 303 to `location` (the hosted consent page with `?ar=`)."""

    pending: PendingAuthorization
    location: str


@dataclass(frozen=True)
class Respond:
    """Back to the client with a code or an error."""

    response: ClientResponse


Decision = Login | Consent | Respond


def _response(
    ctx: AuthContext, redirect_uri: str, response_mode: str, state: str | None, params: dict[str, str]
) -> ClientResponse:
    extra = {"state": state} if state is not None else {}
    return ClientResponse(redirect_uri, params | extra | {"iss": ctx.issuer}, response_mode)


def error_response(ctx: AuthContext, pending: PendingAuthorization, error: str, description: str) -> ClientResponse:
    """The error response for a validated request (RFC 6749 §4.1.2.1 + RFC 9207 `iss`)."""
    params = {"error": error, "error_description": description}
    return _response(ctx, pending.redirect_uri, pending.response_mode, pending.state, params)


def error_redirect(ctx: AuthContext, pending: PendingAuthorization, error: str, description: str) -> str:
    """The URL of `error_response` (query response mode)."""
    return error_response(ctx, pending, error, description).url()


def _scopes(value: str | None) -> list[str]:
    return list(dict.fromkeys((value or "").split()))


def validate(ctx: AuthContext, params: Mapping[str, str]) -> PendingAuthorization:
    """A valid authorization request (not saved: its id is ""). Raises InvalidClientOrRedirect
    (unknown or disabled client, redirect URI missing or not registered) or AuthorizeError
    (anything else: unsupported_response_type, invalid_scope, invalid_request for PKCE,
    prompt, max_age..., unauthorized_client)."""
    client_id = params.get("client_id")
    spec = find_client(ctx, client_id)
    if client_id is None or spec is None:
        raise InvalidClientOrRedirect("The application that sent you here is not registered or is disabled.")
    redirect_uri = params.get("redirect_uri")
    extra: dict[str, object] = {}
    if redirect_uri is None and len(spec.redirect_uris) == 1:
        redirect_uri = spec.redirect_uris[0]
        extra["redirect_uri_omitted"] = True
    if redirect_uri is None or not redirect_uri_registered(spec, redirect_uri):
        raise InvalidClientOrRedirect(
            "The application asked to send you back to an address it has not registered (redirect_uri)."
        )
    state = params.get("state")
    response_mode = params.get("response_mode") or "query"

    def fail(error: str, description: str) -> AuthorizeError:
        mode = response_mode if response_mode in RESPONSE_MODES else "query"
        response = _response(ctx, redirect_uri, mode, state, {"error": error, "error_description": description})
        return AuthorizeError(error, description, response)

    if response_mode not in RESPONSE_MODES:
        raise fail(INVALID_REQUEST, f"response_mode must be one of {', '.join(RESPONSE_MODES)}")
    if state is not None and len(state) > MAX_STATE:
        raise fail(INVALID_REQUEST, "state is too long")
    if "request" in params:
        raise fail("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise fail("request_uri_not_supported", "request_uri is not supported")
    response_type = params.get("response_type")
    if not response_type:
        raise fail(INVALID_REQUEST, "response_type is required")
    if response_type != "code":
        raise fail(UNSUPPORTED_RESPONSE_TYPE, "only response_type=code is supported")
    if "authorization_code" not in spec.allowed_grants():
        raise fail(UNAUTHORIZED_CLIENT, "this client may not use the authorization code flow")
    scopes = _scopes(params.get("scope"))
    if not scopes:
        raise fail(INVALID_SCOPE, "scope is required (e.g. openid)")
    unknown = [s for s in scopes if s not in spec.scopes]
    if unknown:
        raise fail(INVALID_SCOPE, f"scope not allowed for this client: {' '.join(unknown)[:200]}")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise fail(INVALID_REQUEST, "code_challenge_method without code_challenge")
        if spec.require_pkce or spec.type == "public":
            raise fail(INVALID_REQUEST, "PKCE is required: send code_challenge with code_challenge_method=S256")
    else:
        if method != "S256":
            raise fail(INVALID_REQUEST, "code_challenge_method must be S256 (plain is not accepted)")
        if not PKCE_CHALLENGE.fullmatch(challenge):
            raise fail(INVALID_REQUEST, "code_challenge must be 43 base64url characters (S256)")
    prompt = _scopes(params.get("prompt"))
    if any(p not in PROMPT_VALUES for p in prompt):
        raise fail(INVALID_REQUEST, f"prompt must be among {' '.join(PROMPT_VALUES)}")
    if "none" in prompt and len(prompt) > 1:
        raise fail(INVALID_REQUEST, "prompt=none cannot be combined with other values")
    max_age: int | None = None
    if params.get("max_age") is not None:
        text = params["max_age"]
        if not text.isdigit() or len(text) > 10:
            raise fail(INVALID_REQUEST, "max_age must be a number of seconds")
        max_age = int(text)
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > MAX_NONCE:
        raise fail(INVALID_REQUEST, "nonce is too long")
    login_hint = params.get("login_hint")
    return PendingAuthorization(
        id="",
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        code_challenge_method=method,
        response_mode=response_mode,
        prompt=prompt,
        max_age=max_age,
        login_hint=login_hint[:320] if login_hint else None,
        ui_locales=(params.get("ui_locales") or None),
        created_at=ctx.clock().timestamp(),
        extra=extra,
    )


def _checked_client(ctx: AuthContext, pending: PendingAuthorization) -> OIDCClientSpec:
    spec = find_client(ctx, pending.client_id)
    if spec is None:
        raise InvalidClientOrRedirect("The application that sent you here is not registered or is disabled.")
    if not redirect_uri_registered(spec, pending.redirect_uri):
        raise InvalidClientOrRedirect("The application's redirect address is no longer registered.")
    return spec


async def _saved(ctx: AuthContext, pending: PendingAuthorization) -> PendingAuthorization:
    return pending if pending.id else await save_pending(ctx, pending)


def _hint_matches(hint: str | None, email: str) -> bool:
    if not hint or "@" not in hint:
        return True
    try:
        return normalise_email(hint) == normalise_email(email)
    except InvalidEmail:  # a hint that is not an address decides nothing
        return True


async def decide(ctx: AuthContext, pending: PendingAuthorization, browser: BrowserSession | None) -> Decision:
    """What happens next (the contract's flow): sign in when there is no browser session,
    prompt=login/select_account/create asks a login newer than the request, max_age is
    exceeded, or login_hint names someone else (prompt=create: the sign-up page, while
    sign-up is open); consent when prompt=consent or a third-party client
    asks scopes not granted yet; else a code for the client. With prompt=none the first two
    are login_required and consent_required errors. Saves the request (Login, Consent) or
    forgets it (Respond). Raises InvalidClientOrRedirect when the client went away."""
    spec = _checked_client(ctx, pending)
    now = ctx.clock().timestamp()
    user = await ctx.users.by_id(browser.user_id) if browser is not None else None
    needs_login = (
        browser is None
        or user is None
        or user.disabled
        or (
            any(p in pending.prompt for p in ("login", "select_account", "create"))
            and _auth_time(browser) < int(pending.created_at)
        )
        or (pending.max_age is not None and now - _auth_time(browser) > pending.max_age)
        or not _hint_matches(pending.login_hint, user.email)
    )
    if needs_login:
        if "none" in pending.prompt:
            return await _respond_error(ctx, pending, LOGIN_REQUIRED, "the user is not signed in")
        saved = await _saved(ctx, pending)
        page = SIGNUP_PAGE if "create" in pending.prompt and signup_open(ctx) else LOGIN_PAGE
        return Login(saved, url(ctx, f"{page}?ar={saved.id}"))
    assert browser is not None and user is not None
    consented = pending.extra.get("consented_by") == browser.user_id
    ask = "consent" in pending.prompt
    if not ask and spec.third_party:
        granted = await consents.granted_scopes(ctx, browser.user_id, pending.client_id)
        ask = not set(pending.scopes) <= granted
    if ask and not consented:
        if "none" in pending.prompt:
            return await _respond_error(ctx, pending, CONSENT_REQUIRED, "the user has not consented to these scopes")
        saved = await _saved(ctx, pending)
        return Consent(saved, url(ctx, f"{CONSENT_PAGE}?ar={saved.id}"))
    return Respond(await issue_code_response(ctx, pending, browser, spec))


def _auth_time(browser: BrowserSession | None) -> int:
    return int(browser.auth_time.timestamp()) if browser is not None else 0


async def _respond_error(ctx: AuthContext, pending: PendingAuthorization, error: str, description: str) -> Respond:
    if pending.id:
        await drop_pending(ctx, pending.id)
    return Respond(error_response(ctx, pending, error, description))


async def issue_code_response(
    ctx: AuthContext, pending: PendingAuthorization, browser: BrowserSession, spec: OIDCClientSpec
) -> ClientResponse:
    """Issues a code for the request and the signed-in user; the response carrying it."""
    grant = CodeGrant(
        client_id=pending.client_id,
        redirect_uri=pending.redirect_uri,
        user_id=browser.user_id,
        scopes=list(pending.scopes),
        browser_sid=browser.sid,
        auth_time=_auth_time(browser),
        amr=list(browser.amr),
        nonce=pending.nonce,
        code_challenge=pending.code_challenge,
        code_challenge_method=pending.code_challenge_method,
        redirect_uri_omitted=bool(pending.extra.get("redirect_uri_omitted")),
    )
    code = await issue_code(ctx, grant, duration_seconds(spec.token_lifetimes.authorization_code))
    if pending.id:
        await drop_pending(ctx, pending.id)
    return _response(ctx, pending.redirect_uri, pending.response_mode, pending.state, {"code": code})


async def approve_consent(ctx: AuthContext, pending: PendingAuthorization, user_id: str) -> PendingAuthorization:
    """The user approved the consent page: the scopes are granted to the client (kept for
    later requests) and this request is marked consented; then continue the request."""
    await consents.grant(ctx, user_id, pending.client_id, list(pending.scopes))
    marked = replace(pending, extra=pending.extra | {"consented_by": user_id})
    if marked.id:
        await update_pending(ctx, marked)
    return marked


async def deny_consent(ctx: AuthContext, pending: PendingAuthorization) -> ClientResponse:
    """The user refused: access_denied for the client; the request is forgotten."""
    if pending.id:
        await drop_pending(ctx, pending.id)
    return error_response(ctx, pending, ACCESS_DENIED, "the user did not allow access")


__all__ = [
    "AuthorizeError",
    "ClientResponse",
    "Consent",
    "Decision",
    "Login",
    "Respond",
    "approve_consent",
    "decide",
    "deny_consent",
    "error_redirect",
    "error_response",
    "form_post_html",
    "issue_code_response",
    "validate",
]
