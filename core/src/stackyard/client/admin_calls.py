"""What each call of the admin API sends (as `calls` does for jobs and email): every one
carries the Stack's admin API key as its bearer token, and none is sent without one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stackyard.auth.contract import User
from stackyard.auth.contract_admin import (
    AuditPage,
    Deleted,
    Match,
    Revoked,
    UserCreate,
    UserDetail,
    UserPage,
    UserUpdate,
)

from .auth_calls import ProfileLike
from .calls import ADMIN_KEY_ENV, Call, Params, _segment

USERS = "/v1/auth/admin/users"


class AdminKeyMissing(ValueError):
    """An admin call without an admin API key: nothing was sent."""

    def __init__(self) -> None:
        super().__init__(f"the admin API needs the Stack's admin API key: admin_key=... or ${ADMIN_KEY_ENV}")


def admin(key: str | None) -> dict[str, str]:
    """The Authorization header of one admin call."""
    if not key:
        raise AdminKeyMissing()
    return {"Authorization": f"Bearer {key}"}


def _user_path(user_id: str, *rest: str) -> str:
    return "/".join((USERS, _segment(user_id), *rest))


def list_users(key: str | None, search: str | None, match: Match, limit: int, cursor: str | None) -> Call[UserPage]:
    params: Params = {"limit": limit}
    if search:
        params["q"] = search
        params["match"] = match
    if cursor:
        params["cursor"] = cursor
    return Call("GET", USERS, UserPage, params=params, headers=admin(key), repeatable=True)


def get_user(key: str | None, user_id: str) -> Call[UserDetail]:
    return Call("GET", _user_path(user_id), UserDetail, headers=admin(key), repeatable=True)


def create_user(
    key: str | None,
    email: str,
    *,
    password: str | None,
    email_verified: bool,
    profile: ProfileLike | None,
    metadata: Mapping[str, Any] | None,
    app_metadata: Mapping[str, Any] | None,
) -> Call[User]:
    """POST /v1/auth/admin/users: not repeatable (sent twice, the second finds the address taken)."""
    request = UserCreate.model_validate(
        {
            "email": email,
            "password": password,
            "email_verified": email_verified,
            "profile": profile or {},
            "metadata": dict(metadata or {}),
            "app_metadata": dict(app_metadata or {}),
        }
    )
    body = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Call("POST", USERS, User, json=body, headers=admin(key))


def update_user(
    key: str | None,
    user_id: str,
    *,
    profile: ProfileLike | None,
    metadata: Mapping[str, Any] | None,
    app_metadata: Mapping[str, Any] | None,
    email_verified: bool | None,
) -> Call[User]:
    """PATCH: only what is given is sent (a profile field None clears it); repeatable."""
    given: dict[str, Any] = {"profile": profile, "metadata": metadata, "app_metadata": app_metadata}
    given = {name: value for name, value in given.items() if value is not None}
    if email_verified is not None:
        given["email_verified"] = email_verified
    body = UserUpdate.model_validate(given).model_dump(mode="json", by_alias=True, exclude_unset=True)
    return Call("PATCH", _user_path(user_id), User, json=body, headers=admin(key), repeatable=True)


def disable_user(key: str | None, user_id: str) -> Call[User]:
    return Call("POST", _user_path(user_id, "disable"), User, headers=admin(key), repeatable=True)


def enable_user(key: str | None, user_id: str) -> Call[User]:
    return Call("POST", _user_path(user_id, "enable"), User, headers=admin(key), repeatable=True)


def delete_user(key: str | None, user_id: str, transfer_sole_owned: bool) -> Call[Deleted]:
    """DELETE: not repeatable (sent again, it finds no user and answers 404)."""
    params: Params = {"soleOwnedOrganizations": "transfer" if transfer_sole_owned else "refuse"}
    return Call("DELETE", _user_path(user_id), Deleted, params=params, headers=admin(key))


def revoke_sessions(key: str | None, user_id: str) -> Call[Revoked]:
    return Call("DELETE", _user_path(user_id, "sessions"), Revoked, headers=admin(key), repeatable=True)


def list_events(
    key: str | None, user_id: str | None, type: str | None, limit: int, cursor: str | None
) -> Call[AuditPage]:
    params: Params = {"limit": limit}
    if user_id:
        params["userId"] = user_id
    if type:
        params["type"] = type
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/v1/auth/admin/events", AuditPage, params=params, headers=admin(key), repeatable=True)
