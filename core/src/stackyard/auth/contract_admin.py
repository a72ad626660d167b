"""The admin API's request and response bodies (/v1/auth/admin), shared by the api's router
and the SDK, apart from `contract` because only back-office tools use them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from .contract import Email, Metadata, Password, Profile, SessionView, User, Wire

Match = Literal["contains", "prefix"]
"""How the user search's `q` matches the normalised email address."""


class UserCreate(Wire):
    model_config = Wire.model_config | {
        "json_schema_extra": {"examples": [{"email": "ana@example.com", "emailVerified": True}]}
    }
    email: Email
    password: Password | None = Field(
        default=None, description="Checked against the password policy; omit for link or provider sign-in."
    )
    email_verified: bool = False
    profile: Profile = Field(default_factory=Profile)
    metadata: Metadata = Field(default_factory=dict, max_length=50)
    app_metadata: Metadata = Field(default_factory=dict, max_length=50, description="Only admins change it.")


class UserUpdate(Wire):
    profile: Profile | None = Field(default=None, description="Fields given replace those stored; null clears one.")
    metadata: Metadata | None = Field(default=None, max_length=50, description="Replaces the whole object.")
    app_metadata: Metadata | None = Field(default=None, max_length=50, description="Replaces the whole object.")
    email_verified: bool | None = None


class UserPage(Wire):
    items: list[User]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last.")


class PasskeySummary(Wire):
    """A passkey in a user's MFA state (the user's own view is `contract_mfa.Passkey`)."""

    id: str | None
    name: str | None
    created_at: datetime | None
    last_used_at: datetime | None


class MfaState(Wire):
    totp: bool
    recovery_codes_left: int
    passkeys: list[PasskeySummary]


class OrgMembership(Wire):
    org_id: str
    role: str
    joined_at: datetime


class UserDetail(User):
    """A user as an admin sees them: with their live sessions, MFA state and organisations."""

    sessions: list[SessionView]
    mfa: MfaState
    organizations: list[OrgMembership]


class Deleted(Wire):
    id: str
    sessions_revoked: int
    events_erased: int
    stream_entries_erased: int
    organizations_transferred: dict[str, str] = Field(description="Organisation id -> its new owner.")
    organizations_deleted: list[str] = Field(description="Organisations the user was the only member of.")


class Revoked(Wire):
    sessions_revoked: int


class AuditEvent(Wire):
    id: str
    type: str
    user_id: str | None
    ip: str | None
    user_agent: str | None
    at: datetime
    data: dict[str, Any]


class AuditPage(Wire):
    items: list[AuditEvent]
    next_cursor: str | None
