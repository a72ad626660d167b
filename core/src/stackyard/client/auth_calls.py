"""What each auth call of the SDK sends and how its answer is read (as `calls` does for jobs
and email): the public flows and the calls made with a user's access token (the admin API
is in `admin_calls`). The bodies are `stackyard.auth.contract`'s models (`contract_mfa` for the login's second step).

Calls that present a credential (a password, an MFA code, a refresh token, a sign-in link)
are never sent twice on their own: not after a broken connection (a refresh token sent
twice looks like theft and revokes the session), and not after a 401 or a 429 whatever the
retry policy (another attempt only counts another failure toward the account's lockout)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, RootModel

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
    OpenIdConfiguration,
    Profile,
    RefreshRequest,
    ResetPasswordRequest,
    Session,
    SessionList,
    SignUpRequest,
    TokenRequest,
    UpdateUserRequest,
    User,
)
from stackyard.auth.contract_mfa import MfaLoginRequest

from .calls import Call, NoContent, _segment

CREDENTIAL_ANSWERS = frozenset({401, 429})
"""Answers after which a call presenting a credential is not sent again."""

ProfileLike = Profile | Mapping[str, Any]
TokenLike = str | Session
"""An access token, or the Session that carries it."""


class SignUpAnswer(RootModel[Accepted | Session]):
    """202 Accepted (a confirmation link is on its way), or 201 with a Session when the Stack
    does not verify addresses."""


class LoginAnswer(RootModel[Session | MfaRequired]):
    """A Session, or an MFA challenge to finish with `login_mfa`."""


def _body(request: BaseModel) -> dict[str, Any]:
    return request.model_dump(mode="json", by_alias=True, exclude_none=True)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of one call (the client's own token is left alone)."""
    return {"Authorization": f"Bearer {token}"}


def access_token(token: TokenLike) -> str:
    """The access token of a Session, or the token itself."""
    if isinstance(token, Session):
        if token.access_token is None:
            raise ValueError("this Session has no access token (a cookie-mode session)")
        return token.access_token
    if not token:
        raise ValueError("an access token is needed: auth.with_token(session) after a login")
    return token


# The public flows.


def sign_up(
    email: str, password: str, profile: ProfileLike | None, metadata: Mapping[str, Any] | None
) -> Call[SignUpAnswer]:
    request = SignUpRequest.model_validate(
        {"email": email, "password": password, "profile": profile or {}, "metadata": dict(metadata or {})}
    )
    return Call("POST", "/v1/auth/signup", SignUpAnswer, json=_body(request))


def verify_email(token: str) -> Call[User]:
    return Call("POST", "/v1/auth/verify-email", User, json=_body(TokenRequest(token=token)))


def resend_verification(email: str) -> Call[Accepted]:
    return Call("POST", "/v1/auth/verify-email/resend", Accepted, json=_body(EmailRequest(email=email)))


def login(email: str, password: str) -> Call[LoginAnswer]:
    body = _body(LoginRequest(email=email, password=password))
    return Call("POST", "/v1/auth/login", LoginAnswer, json=body, never_retry=CREDENTIAL_ANSWERS)


def login_mfa(challenge: str | MfaRequired, code: str) -> Call[Session]:
    mfa_token = challenge.mfa_token if isinstance(challenge, MfaRequired) else challenge
    body = _body(MfaLoginRequest(mfa_token=mfa_token, code=code))
    return Call("POST", "/v1/auth/login/mfa", Session, json=body, never_retry=CREDENTIAL_ANSWERS)


def refresh(refresh_token: str | Session) -> Call[Session]:
    if isinstance(refresh_token, Session):
        if refresh_token.refresh_token is None:
            raise ValueError("this Session has no refresh token (a cookie-mode session)")
        refresh_token = refresh_token.refresh_token
    body = _body(RefreshRequest(refresh_token=refresh_token))
    return Call("POST", "/v1/auth/token/refresh", Session, json=body, never_retry=CREDENTIAL_ANSWERS)


def forgot_password(email: str) -> Call[Accepted]:
    return Call("POST", "/v1/auth/password/forgot", Accepted, json=_body(EmailRequest(email=email)))


def reset_password(token: str, password: str) -> Call[NoContent]:
    body = _body(ResetPasswordRequest(token=token, password=password))
    return Call("POST", "/v1/auth/password/reset", NoContent, json=body)


def confirm_email_change(token: str) -> Call[User]:
    return Call("POST", "/v1/auth/email/change/confirm", User, json=_body(TokenRequest(token=token)))


def magic_link(email: str) -> Call[Accepted]:
    return Call("POST", "/v1/auth/magic-link", Accepted, json=_body(EmailRequest(email=email)))


def verify_magic_link(token: str) -> Call[LoginAnswer]:
    body = _body(MagicLinkVerify(token=token))
    return Call("POST", "/v1/auth/magic-link/verify", LoginAnswer, json=body, never_retry=CREDENTIAL_ANSWERS)


def jwks() -> Call[JsonWebKeySet]:
    return Call("GET", "/.well-known/jwks.json", JsonWebKeySet, repeatable=True)


def openid_configuration() -> Call[OpenIdConfiguration]:
    return Call("GET", "/.well-known/openid-configuration", OpenIdConfiguration, repeatable=True)


# With a user's access token.


def me(token: str) -> Call[Me]:
    return Call("GET", "/v1/auth/me", Me, headers=bearer(token), repeatable=True)


def get_user(token: str) -> Call[User]:
    return Call("GET", "/v1/auth/user", User, headers=bearer(token), repeatable=True)


def update_user(token: str, profile: ProfileLike | None, metadata: Mapping[str, Any] | None) -> Call[User]:
    """PATCH /v1/auth/user: only the profile fields given are sent (None clears one), and
    metadata, when given, replaces the whole object. Setting the same fields again changes
    nothing more, so it is repeatable."""
    given: dict[str, Any] = {}
    if profile is not None:
        given["profile"] = profile
    if metadata is not None:
        given["metadata"] = dict(metadata)
    request = UpdateUserRequest.model_validate(given)
    body = request.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return Call("PATCH", "/v1/auth/user", User, json=body, headers=bearer(token), repeatable=True)


def logout(token: str) -> Call[NoContent]:
    return Call("POST", "/v1/auth/logout", NoContent, headers=bearer(token))


def change_password(token: str, current_password: str | None, new_password: str) -> Call[NoContent]:
    body = _body(ChangePasswordRequest(current_password=current_password, new_password=new_password))
    return Call(
        "POST", "/v1/auth/password/change", NoContent, json=body, headers=bearer(token), never_retry=CREDENTIAL_ANSWERS
    )


def change_email(token: str, new_email: str, password: str | None) -> Call[Accepted]:
    body = _body(ChangeEmailRequest(new_email=new_email, password=password))
    return Call(
        "POST", "/v1/auth/email/change", Accepted, json=body, headers=bearer(token), never_retry=CREDENTIAL_ANSWERS
    )


def list_sessions(token: str) -> Call[SessionList]:
    return Call("GET", "/v1/auth/sessions", SessionList, headers=bearer(token), repeatable=True)


def revoke_session(token: str, session_id: str) -> Call[NoContent]:
    path = f"/v1/auth/sessions/{_segment(session_id)}"
    return Call("DELETE", path, NoContent, headers=bearer(token))


def revoke_other_sessions(token: str) -> Call[NoContent]:
    return Call("DELETE", "/v1/auth/sessions", NoContent, headers=bearer(token), repeatable=True)
