"""The bodies of the admin API (/v1/auth/admin) as the SDK sends and reads them.

The api declares them next to its router (images/api, `routers/auth_admin.py`), which core
cannot import; these are the same shapes, field for field, and the SDK's tests against the
real api keep them honest. Once the router's models move to `stackyard.auth.contract`,
this module becomes a list of re-exports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from stackyard.auth.contract import Email, Metadata, Password, Profile, SessionView, User, Wire

Match = Literal["contains", "prefix"]


class UserCreate(Wire):
    email: Email
    password: Password | None = None
    email_verified: bool = False
    profile: Profile = Field(default_factory=Profile)
    metadata: Metadata = Field(default_factory=dict, max_length=50)
    app_metadata: Metadata = Field(default_factory=dict, max_length=50)


class UserUpdate(Wire):
    profile: Profile | None = None
    metadata: Metadata | None = Field(default=None, max_length=50)
    app_metadata: Metadata | None = Field(default=None, max_length=50)
    email_verified: bool | None = None


class UserPage(Wire):
    items: list[User]
    next_cursor: str | None


class PasskeySummary(Wire):
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
    organizations_transferred: dict[str, str]
    organizations_deleted: list[str]


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
