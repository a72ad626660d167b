"""/v1/auth: sign-up, email verification, login, tokens, logout, the user's own account and
sessions, password and email changes, magic links; and the public keys that let other
services verify access tokens on their own (the OpenID discovery document is the OpenID
Provider's: routers/oidc.py).

POST   /v1/auth/signup                    create an account (202, or 201 with a session)
POST   /v1/auth/verify-email              confirm an address with the emailed token
POST   /v1/auth/verify-email/resend       send a new verification link (202 whatever the address)
POST   /v1/auth/login                     password login: a session, or an MFA challenge
POST   /v1/auth/token/refresh             rotate the refresh token, new access token
POST   /v1/auth/logout                    end the current session
GET    /v1/auth/me                        who the access token says you are
GET    /v1/auth/user                      your account; PATCH changes profile and metadata
POST   /v1/auth/password/forgot           send a reset link (202 whatever the address)
POST   /v1/auth/password/reset            new password from a reset link; ends every session
POST   /v1/auth/password/change           new password (current one needed); ends other sessions
POST   /v1/auth/email/change              send a confirmation link to a new address
POST   /v1/auth/email/change/confirm      switch to the new address
POST   /v1/auth/magic-link                send a sign-in link (202 whatever the address)
POST   /v1/auth/magic-link/verify         sign in with it
GET    /v1/auth/sessions                  your sessions; DELETE one, or all but this one
GET    /.well-known/jwks.json             the public signing keys
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from stackyard.auth import flows
from stackyard.auth.context import AuthContext
from stackyard.auth.contract import (
    Accepted,
    ChangeEmailRequest,
    ChangePasswordRequest,
    EmailRequest,
    JsonWebKeySet,
    LoginRequest,
    MagicLinkVerify,
    Me,
    MfaRequired,
    Mode,
    RefreshRequest,
    ResetPasswordRequest,
    Session,
    SessionList,
    SessionView,
    SignUpRequest,
    TokenRequest,
    UpdateUserRequest,
    User,
)
from stackyard.auth.errors import InvalidToken
from stackyard.auth.sessions import TokenPair
from stackyard.auth.users import public_user
from stackyard.problems import NotFound

from ..auth_deps import (
    AuthDep,
    ClaimsDep,
    ClientDep,
    check_csrf,
    clear_session_cookies,
    cookie_token,
    set_session_cookies,
)
from ..errors import problem_responses

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])
after_answer_tasks: set[asyncio.Task[None]] = set()
"""The work of after_answer still running (kept so that it is not garbage-collected)."""
JWKS_MAX_AGE = 300
ACCEPTED_DETAIL = {
    "signup": "if the address can be used, a confirmation link is on its way",
    "resend": "if the address has an unconfirmed account, a new link is on its way",
    "forgot": "if the address has an account, a reset link is on its way",
    "magic": "if the address can sign in, a link is on its way",
}


def after_answer(work: flows.Work) -> None:
    """Runs the part of sign-up, resend, forgot password and magic link that depends on the
    address (lookup, account, mail) in a task of its own, so the answer leaves at the same
    time whether or not the address has an account. Not a background task of the request:
    the next request on the same keep-alive connection would wait for it, and tell."""

    async def run() -> None:
        try:
            await work()
        except Exception:
            log.exception("an auth flow failed after answering")

    task = asyncio.create_task(run())
    after_answer_tasks.add(task)
    task.add_done_callback(after_answer_tasks.discard)


def session_body(pair: TokenPair, mode: Mode, response: Response, context: AuthContext) -> Session:
    """Bearer mode: the tokens in the body. Cookie mode: the tokens in HttpOnly cookies."""
    if mode == "cookie":
        csrf = secrets.token_urlsafe(24)
        set_session_cookies(response, context, pair, csrf)
        return Session(expires_in=pair.expires_in, session_id=pair.session_id, csrf_token=csrf)
    response.headers["Cache-Control"] = "no-store"
    return Session(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        session_id=pair.session_id,
    )


def login_answer(
    result: TokenPair | flows.MfaChallenge, mode: Mode, response: Response, context: AuthContext
) -> Session | MfaRequired:
    if isinstance(result, flows.MfaChallenge):
        return MfaRequired.model_validate(result.body())
    return session_body(result, mode, response, context)


@router.post(
    "/v1/auth/signup",
    status_code=202,
    response_model=Accepted | Session,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Create an account",
    description=(
        "With email verification on (the default) the answer is 202 whether or not the address already "
        "has an account (its owner gets a notice instead), so sign-up does not reveal who is registered. "
        "Without it, 201 with a session, and 409 for an address in use."
    ),
    responses={201: {"description": "Created and logged in (email verification off)", "model": Session}}
    | problem_responses(400, 403, 409, 422, 429, 503),
)
async def sign_up(body: SignUpRequest, context: AuthDep, client: ClientDep, response: Response) -> Accepted | Session:
    pair = await flows.sign_up(
        context,
        body.email,
        body.password,
        client,
        profile=body.profile.model_dump(by_alias=True, exclude_none=True),
        metadata=body.metadata,
        later=after_answer,
    )
    if pair is None:
        return Accepted(detail=ACCEPTED_DETAIL["signup"])
    response.status_code = 201
    return session_body(pair, body.mode, response, context)


@router.post(
    "/v1/auth/verify-email",
    response_model=User,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Confirm an email address",
    responses=problem_responses(400, 401, 422, 503),
)
async def verify_email(body: TokenRequest, context: AuthDep, client: ClientDep) -> dict[str, Any]:
    return public_user(await flows.verify_email(context, body.token, client))


@router.post(
    "/v1/auth/verify-email/resend",
    status_code=202,
    response_model=Accepted,
    summary="Send a new verification link",
    responses=problem_responses(400, 422, 429, 503),
)
async def resend_verification(body: EmailRequest, context: AuthDep, client: ClientDep) -> Accepted:
    await flows.resend_verification(context, body.email, client, later=after_answer)
    return Accepted(detail=ACCEPTED_DETAIL["resend"])


@router.post(
    "/v1/auth/login",
    response_model=Session | MfaRequired,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Log in with a password",
    description=(
        "A session (tokens, or cookies with mode=cookie), or, when the account has a second factor, "
        "an MFA challenge to finish at POST /v1/auth/login/mfa. Failed logins lock the account for a "
        "growing delay (spec.auth.lockout); the answer is the same for an unknown address."
    ),
    responses=problem_responses(400, 401, 403, 422, 429, 503),
)
async def login(body: LoginRequest, context: AuthDep, client: ClientDep, response: Response) -> Session | MfaRequired:
    result = await flows.login(context, body.email, body.password, client)
    return login_answer(result, body.mode, response, context)


@router.post(
    "/v1/auth/token/refresh",
    response_model=Session,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Rotate the refresh token",
    description=(
        "Answers a new access token and a new refresh token; the old refresh token stops working. "
        "Presenting an old one again is taken as theft: the whole session is revoked (401 refresh-token-reused)."
    ),
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def refresh(
    body: RefreshRequest, request: Request, context: AuthDep, client: ClientDep, response: Response
) -> Session:
    token = body.refresh_token
    if token is None:
        token = cookie_token(request, context, "refresh")
        if token is not None:
            check_csrf(request, context)
    if token is None:
        raise InvalidToken("give refreshToken, or call in cookie mode with the session cookies")
    pair = await context.sessions.refresh(token, client)
    return session_body(pair, body.mode if body.refresh_token else "cookie", response, context)


@router.post(
    "/v1/auth/logout",
    status_code=204,
    summary="End the current session",
    responses=problem_responses(401, 403, 503),
)
async def logout(claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Response:
    await context.sessions.revoke(claims.sid, "logout", client)
    response = Response(status_code=204)
    clear_session_cookies(response, context)
    return response


@router.get(
    "/v1/auth/me",
    response_model=Me,
    response_model_by_alias=True,
    summary="Who the access token says you are",
    description="From the verified token and a live session; no database read. GET /v1/auth/user reads the account.",
    responses=problem_responses(401, 403, 503),
)
async def me(claims: ClaimsDep) -> Me:
    return Me(
        id=claims.sub,
        email=claims.email,
        email_verified=claims.email_verified,
        name=claims.name,
        session_id=claims.sid,
        amr=claims.amr,
        orgs=claims.orgs,
        expires_at=datetime.fromtimestamp(claims.exp, UTC),
    )


@router.get(
    "/v1/auth/user",
    response_model=User,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Your account",
    responses=problem_responses(401, 403, 503),
)
async def get_user(claims: ClaimsDep, context: AuthDep) -> dict[str, Any]:
    return public_user(await flows.current_user(context, claims))


@router.patch(
    "/v1/auth/user",
    response_model=User,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Change your profile or metadata",
    description="profile fields given replace those stored (null clears one); metadata replaces the whole object.",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def update_user(
    body: UpdateUserRequest, claims: ClaimsDep, context: AuthDep, client: ClientDep
) -> dict[str, Any]:
    user = await flows.current_user(context, claims)
    fields: dict[str, Any] = {}
    if body.profile is not None:
        for name, value in body.profile.model_dump(by_alias=True, exclude_unset=True).items():
            fields[f"profile.{name}"] = value
    if body.metadata is not None:
        fields["metadata"] = body.metadata
    if fields:
        updated = await context.users.set_fields(user.id, fields, now=context.clock())
        if updated is None:
            raise NotFound("the account no longer exists")
        user = updated
        await context.audit.record("user.updated", user_id=user.id, client=client, fields=sorted(fields))
    return public_user(user)


@router.post(
    "/v1/auth/password/forgot",
    status_code=202,
    response_model=Accepted,
    summary="Send a password reset link",
    responses=problem_responses(400, 422, 429, 503),
)
async def forgot_password(body: EmailRequest, context: AuthDep, client: ClientDep) -> Accepted:
    await flows.forgot_password(context, body.email, client, later=after_answer)
    return Accepted(detail=ACCEPTED_DETAIL["forgot"])


@router.post(
    "/v1/auth/password/reset",
    status_code=204,
    summary="Set a new password with a reset link",
    description="Every session of the account ends; the link works once and dies if the password changes.",
    responses=problem_responses(400, 401, 422, 503),
)
async def reset_password(body: ResetPasswordRequest, context: AuthDep, client: ClientDep) -> Response:
    await flows.reset_password(context, body.token, body.password, client)
    return Response(status_code=204)


@router.post(
    "/v1/auth/password/change",
    status_code=204,
    summary="Change your password",
    description="Needs the current password; every other session of the account ends.",
    responses=problem_responses(400, 401, 403, 422, 429, 503),
)
async def change_password(
    body: ChangePasswordRequest, claims: ClaimsDep, context: AuthDep, client: ClientDep
) -> Response:
    await flows.change_password(context, claims, body.current_password, body.new_password, client)
    return Response(status_code=204)


@router.post(
    "/v1/auth/email/change",
    status_code=202,
    response_model=Accepted,
    summary="Change your email address",
    description="Sends a link to the new address; the address changes (verified) when it is opened.",
    responses=problem_responses(400, 401, 403, 409, 422, 429, 503),
)
async def change_email(body: ChangeEmailRequest, claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Accepted:
    await flows.request_email_change(context, claims, body.new_email, body.password, client)
    return Accepted(detail="a confirmation link is on its way to the new address")


@router.post(
    "/v1/auth/email/change/confirm",
    response_model=User,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Confirm a new email address",
    responses=problem_responses(400, 401, 409, 422, 503),
)
async def confirm_email_change(body: TokenRequest, context: AuthDep, client: ClientDep) -> dict[str, Any]:
    return public_user(await flows.confirm_email_change(context, body.token, client))


@router.post(
    "/v1/auth/magic-link",
    status_code=202,
    response_model=Accepted,
    summary="Send a sign-in link",
    responses=problem_responses(400, 422, 429, 503),
)
async def magic_link(body: EmailRequest, context: AuthDep, client: ClientDep) -> Accepted:
    await flows.request_magic_link(context, body.email, client, later=after_answer)
    return Accepted(detail=ACCEPTED_DETAIL["magic"])


@router.post(
    "/v1/auth/magic-link/verify",
    response_model=Session | MfaRequired,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Sign in with a link",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def verify_magic_link(
    body: MagicLinkVerify, context: AuthDep, client: ClientDep, response: Response
) -> Session | MfaRequired:
    result = await flows.verify_magic_link(context, body.token, client)
    return login_answer(result, body.mode, response, context)


@router.get(
    "/v1/auth/sessions",
    response_model=SessionList,
    response_model_by_alias=True,
    summary="Your sessions",
    responses=problem_responses(401, 403, 503),
)
async def list_sessions(claims: ClaimsDep, context: AuthDep) -> SessionList:
    sessions = await context.sessions.list(claims.sub)
    return SessionList(items=[SessionView.model_validate(s.body(claims.sid)) for s in sessions])


@router.delete(
    "/v1/auth/sessions/{session_id}",
    status_code=204,
    summary="End one of your sessions",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def revoke_session(session_id: str, claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Response:
    session = await context.sessions.get(session_id)
    if session is None or session.user_id != claims.sub:
        raise NotFound(f"you have no session {session_id}")
    await context.sessions.revoke(session_id, "revoked by the user", client)
    return Response(status_code=204)


@router.delete(
    "/v1/auth/sessions",
    status_code=204,
    summary="End every other session",
    responses=problem_responses(401, 403, 503),
)
async def revoke_other_sessions(claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Response:
    await context.sessions.revoke_all(claims.sub, "revoked by the user", except_session=claims.sid, client=client)
    return Response(status_code=204)


class JwkSetResponse(JSONResponse):
    media_type = "application/jwk-set+json"


CACHED = {"Cache-Control": {"description": "Cacheable for 5 minutes.", "schema": {"type": "string"}}}


@router.get(
    "/.well-known/jwks.json",
    response_model=JsonWebKeySet,
    response_class=JwkSetResponse,
    summary="Public keys of access tokens",
    description=(
        "Every published key, the next one included before it signs; verify an access token with the "
        "key whose kid its header names. Cacheable for 5 minutes."
    ),
    responses={200: {"headers": CACHED}} | problem_responses(503),
)
async def jwks(context: AuthDep) -> JSONResponse:
    return JwkSetResponse(
        context.keys.jwks(context.clock()), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"}
    )
