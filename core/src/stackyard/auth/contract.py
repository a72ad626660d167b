"""The auth API's request and response bodies (camelCase on the wire), shared by the api
and the SDK."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

Email = Annotated[str, StringConstraints(min_length=3, max_length=320)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
Mode = Literal["bearer", "cookie"]


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Profile(Wire):
    name: str | None = Field(default=None, max_length=200)
    given_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    picture: str | None = Field(default=None, max_length=2000, pattern=r"^https://")
    locale: str | None = Field(default=None, max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")


class SignUpRequest(Wire):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ana@example.com", "password": "a long passphrase of yours"}]}
    )
    email: Email
    password: Password
    profile: Profile = Field(default_factory=Profile)
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=50, description="Yours; the user may edit it.")
    mode: Mode = Field(default="bearer", description="cookie: session in HttpOnly cookies (when sign-up logs in).")


class Accepted(Wire):
    status: Literal["accepted"] = "accepted"
    detail: str


class LoginRequest(Wire):
    email: Email
    password: Password
    mode: Mode = "bearer"


class TokenRequest(Wire):
    token: Token


class RefreshRequest(Wire):
    refresh_token: Token | None = Field(default=None, description="Omit in cookie mode (the cookie carries it).")
    mode: Mode = "bearer"


class EmailRequest(Wire):
    email: Email


class MagicLinkVerify(Wire):
    token: Token
    mode: Mode = "bearer"


class ResetPasswordRequest(Wire):
    token: Token
    password: Password


class ChangePasswordRequest(Wire):
    current_password: Password | None = Field(default=None, description="Required when the account has a password.")
    new_password: Password


class ChangeEmailRequest(Wire):
    new_email: Email
    password: Password | None = Field(default=None, description="Required when the account has a password.")


class UpdateUserRequest(Wire):
    profile: Profile | None = None
    metadata: dict[str, Any] | None = Field(default=None, max_length=50)


class Session(Wire):
    """A login: tokens in bearer mode; in cookie mode the tokens are in cookies and only the
    CSRF token is here."""

    access_token: str | None = None
    refresh_token: str | None = None
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    session_id: str
    csrf_token: str | None = None


class MfaRequired(Wire):
    mfa_required: Literal[True] = True
    mfa_token: str
    methods: list[str]
    expires_in: int


class Me(Wire):
    """Who the access token says the caller is (no database read)."""

    id: str
    email: str | None
    email_verified: bool
    name: str | None
    session_id: str
    amr: list[str]
    orgs: dict[str, str]
    expires_at: datetime


class User(Wire):
    id: str
    email: str
    email_verified: bool
    profile: dict[str, Any]
    metadata: dict[str, Any]
    has_password: bool
    mfa_enabled: bool
    passkeys: int
    identities: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    app_metadata: dict[str, Any] | None = None
    disabled: bool | None = None


class SessionView(Wire):
    id: str
    device: str
    ip: str | None
    user_agent: str | None
    amr: list[str]
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool


class SessionList(Wire):
    items: list[SessionView]
