"""Sign in with a passkey on the OpenID Provider's hosted pages (static/passkey.js calls these
with fetch(); the rest of the login page works without JavaScript).

POST /oauth2/ui/passkey/options   {ar, email?} -> {challengeToken, publicKey} for navigator.credentials.get()
POST /oauth2/ui/passkey/verify    {ar, challengeToken, credential} -> {redirect}: the MFA step, or
                                  /oauth2/authorize/continue with the browser session's cookie set

Both need the page's CSRF token in the X-CSRF-Token header and the issuer's Origin. The
relying party is spec.auth.passkeys: the hosted pages' origin (the issuer's) must be one of its
`origins`, and its `rpId` the issuer's host or a parent domain of it (rpId acme.dev serves
auth.acme.dev and app.acme.dev alike); otherwise these answer 503 saying so, and the login
page leaves its passkey button out (`usable`). Verification,
single-use challenges and the sign count are `stackyard.auth.passkeys`'s: with user
verification the passkey is both factors (amr ["webauthn"]); without it an account with TOTP
is asked for its code. Errors are JSON {"error": sentence} with the status, for the script to
show."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from pydantic import Field, StringConstraints
from stackyard.auth import passkeys
from stackyard.auth.context import AuthContext
from stackyard.auth.contract import Email, Wire
from stackyard.auth.contract_mfa import ChallengeToken
from stackyard.auth.errors import AuthNotConfigured, InvalidCredentials
from stackyard.problems import NotFound, Problem
from starlette.responses import JSONResponse, Response

from ..auth_deps import AuthDep, ClientDep
from .csrf import CsrfForm
from .login import BROWSER_SESSION, complete_login, json_from_redirect, load_request, problem_message
from .render import HostedRoute, secure_headers

log = logging.getLogger(__name__)
router = APIRouter(route_class=HostedRoute)
RequestId = Annotated[str, StringConstraints(max_length=64)]
NOT_SET_UP = "Passkeys are not set up for this sign-in page. Choose another way to sign in."
REFUSED = "This passkey was not accepted. Try again, or choose another way to sign in."
EXPIRED = "This passkey request has expired or was already used. Try again."


class PasskeyOptionsBody(Wire):
    ar: RequestId = Field(description="The waiting authorization request.")
    email: Email | None = Field(default=None, description="Omit for a discoverable (usernameless) login.")


class PasskeyVerifyBody(Wire):
    ar: RequestId
    challenge_token: ChallengeToken
    credential: dict[str, Any] = Field(description="The PublicKeyCredential, as PublicKeyCredential.toJSON() gives it.")


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return secure_headers(JSONResponse(body, status_code=status))


def _error(exc: Problem) -> Response:
    if isinstance(exc, InvalidCredentials):
        message, status = REFUSED, exc.status
    elif isinstance(exc, passkeys.PasskeyChallengeInvalid | passkeys.PasskeyRefused):
        message, status = EXPIRED, exc.status
    else:
        message, status = problem_message(exc)
    response = _json({"error": message}, status)
    if "Retry-After" in exc.headers:
        response.headers["Retry-After"] = exc.headers["Retry-After"]
    return response


def serves_issuer(ctx: AuthContext, rp: passkeys.RelyingParty) -> bool:
    """Whether `rp` can run ceremonies on the hosted pages: the issuer's origin is one of its
    origins and its id is the issuer's host or a parent domain of it."""
    origin = passkeys.origin_of(ctx.issuer.rstrip("/"))
    host = urlsplit(ctx.issuer).hostname or ""
    return origin in rp.origins and (host == rp.id or host.endswith("." + rp.id))


def usable(ctx: AuthContext) -> bool:
    """Whether the login page can offer passkeys: offered (spec.auth.hostedPages.passkeys) and
    spec.auth.passkeys serves the issuer (what `relying_party` checks before answering 503)."""
    if not ctx.settings.hosted_pages.passkeys:
        return False
    try:
        rp = passkeys.relying_party(ctx)
    except AuthNotConfigured:
        return False
    return serves_issuer(ctx, rp)


def relying_party(ctx: AuthContext) -> passkeys.RelyingParty:
    """spec.auth.passkeys, when it serves the hosted pages' origin; else AuthNotConfigured."""
    rp = passkeys.relying_party(ctx)
    if not serves_issuer(ctx, rp):
        origin = passkeys.origin_of(ctx.issuer.rstrip("/"))
        log.warning(
            "hosted passkey sign-in refused: the issuer's origin %s must be in spec.auth.passkeys.origins %s "
            "and its host under spec.auth.passkeys.rpId %r",
            origin,
            rp.origins,
            rp.id,
        )
        raise AuthNotConfigured(NOT_SET_UP)
    return rp


def _offered(ctx: AuthContext) -> None:
    if not ctx.settings.hosted_pages.passkeys:
        raise NotFound("Passkeys are not offered here. Choose another way to sign in.")


@router.post("/passkey/options")
async def options(request: Request, body: PasskeyOptionsBody, ctx: AuthDep, form: CsrfForm) -> Response:
    try:
        _offered(ctx)
        await load_request(ctx, body.ar)
        relying_party(ctx)
        token, public_key = await passkeys.authentication_options(ctx, body.email)
    except Problem as exc:
        return _error(exc)
    return _json({"challengeToken": token, "publicKey": public_key})


@router.post("/passkey/verify")
async def verify(
    request: Request, body: PasskeyVerifyBody, ctx: AuthDep, client: ClientDep, form: CsrfForm
) -> Response:
    try:
        _offered(ctx)
        pending, _ = await load_request(ctx, body.ar)
        relying_party(ctx)
        outcome = await passkeys.login(ctx, body.challenge_token, body.credential, client, session_kind=BROWSER_SESSION)
    except Problem as exc:
        return _error(exc)
    return secure_headers(json_from_redirect(await complete_login(request, ctx, pending, outcome)))
