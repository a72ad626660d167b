"""/v1/auth/admin: the admin API, for the application's back office and support tools.

Every route needs `Authorization: Bearer <admin API key>` (the key in the Secret named by
spec.auth.adminApiKeySecretRef): 401 admin-key for a missing or wrong key, 503 when the
Stack has no admin key (the admin API is off).

GET    /v1/auth/admin/users                   list and search (email prefix or substring), newest first
POST   /v1/auth/admin/users                   create a user
GET    /v1/auth/admin/users/{userId}          a user with their sessions, MFA state and organisations
PATCH  /v1/auth/admin/users/{userId}          profile, metadata, appMetadata, emailVerified
POST   /v1/auth/admin/users/{userId}/disable  disable (every session ends; login answers 403)
POST   /v1/auth/admin/users/{userId}/enable   enable again
DELETE /v1/auth/admin/users/{userId}          delete with all personal data
DELETE /v1/auth/admin/users/{userId}/sessions end every session
GET    /v1/auth/admin/events                  the audit log (by user, by type), newest first
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from stackyard.auth import admin
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
from stackyard.auth.users import public_user

from ..auth_deps import AdminDep, ClientDep
from ..errors import problem_responses

router = APIRouter(prefix="/v1/auth/admin", tags=["auth: admin"])

UserId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^usr_[0-9a-z]+$")]
Limit = Annotated[int, Query(ge=1, le=admin.MAX_PAGE, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=200, description="nextCursor of the page before.")]


@router.get(
    "/users",
    response_model=UserPage,
    response_model_by_alias=True,
    summary="List and search users",
    description=(
        "Newest first. `q` matches the normalised (lower-case) email address: a substring by default, "
        "its start with match=prefix."
    ),
    responses=problem_responses(401, 422, 503),
)
async def list_users(
    context: AdminDep,
    q: Annotated[str | None, Query(max_length=320, description="Part of an email address.")] = None,
    match: Annotated[Match, Query()] = "contains",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await admin.search_users(context, query=q, match=match, limit=limit, cursor=cursor)


@router.post(
    "/users",
    status_code=201,
    response_model=User,
    response_model_by_alias=True,
    summary="Create a user",
    responses=problem_responses(400, 401, 409, 422, 503),
)
async def create_user(body: UserCreate, context: AdminDep, client: ClientDep) -> dict[str, Any]:
    user = await admin.create_user(
        context,
        body.email,
        password=body.password,
        email_verified=body.email_verified,
        profile=body.profile.model_dump(by_alias=True, exclude_none=True),
        metadata=body.metadata,
        app_metadata=body.app_metadata,
        client=client,
    )
    return public_user(user, admin=True)


@router.get(
    "/users/{user_id}",
    response_model=UserDetail,
    response_model_by_alias=True,
    summary="A user, with their sessions, MFA state and organisations",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_user(user_id: UserId, context: AdminDep) -> dict[str, Any]:
    return await admin.user_detail(context, user_id)


@router.patch(
    "/users/{user_id}",
    response_model=User,
    response_model_by_alias=True,
    summary="Change a user's profile, metadata or appMetadata",
    responses=problem_responses(400, 401, 404, 422, 503),
)
async def update_user(user_id: UserId, body: UserUpdate, context: AdminDep, client: ClientDep) -> dict[str, Any]:
    user = await admin.update_user(
        context,
        user_id,
        profile=body.profile.model_dump(by_alias=True, exclude_unset=True) if body.profile else None,
        metadata=body.metadata,
        app_metadata=body.app_metadata,
        email_verified=body.email_verified,
        client=client,
    )
    return public_user(user, admin=True)


@router.post(
    "/users/{user_id}/disable",
    response_model=User,
    response_model_by_alias=True,
    summary="Disable a user",
    description="Every session ends now; logging in answers 403 account-disabled until enabled again.",
    responses=problem_responses(401, 404, 422, 503),
)
async def disable_user(user_id: UserId, context: AdminDep, client: ClientDep) -> dict[str, Any]:
    return public_user(await admin.disable_user(context, user_id, client=client), admin=True)


@router.post(
    "/users/{user_id}/enable",
    response_model=User,
    response_model_by_alias=True,
    summary="Enable a disabled user",
    responses=problem_responses(401, 404, 422, 503),
)
async def enable_user(user_id: UserId, context: AdminDep, client: ClientDep) -> dict[str, Any]:
    return public_user(await admin.enable_user(context, user_id, client=client), admin=True)


@router.delete(
    "/users/{user_id}",
    response_model=Deleted,
    response_model_by_alias=True,
    summary="Delete a user and their personal data",
    description=(
        "Erases the account, its sessions, memberships and audit events, then records one user.deleted "
        "event (the id only). When the user is the last owner of an organisation with other members the "
        "answer is 409 last-owner (listing them) unless soleOwnedOrganizations=transfer, which makes the "
        "longest-standing admin (else member) its owner. Organisations with no other member are deleted."
    ),
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def delete_user(
    user_id: UserId,
    context: AdminDep,
    client: ClientDep,
    sole_owned: Annotated[Literal["refuse", "transfer"], Query(alias="soleOwnedOrganizations")] = "refuse",
) -> dict[str, Any]:
    return await admin.delete_user(context, user_id, on_sole_owner=sole_owned, client=client)


@router.delete(
    "/users/{user_id}/sessions",
    response_model=Revoked,
    response_model_by_alias=True,
    summary="End every session of a user",
    description="Refresh tokens stop working at once; access tokens are refused by this api at once.",
    responses=problem_responses(401, 404, 422, 503),
)
async def revoke_sessions(user_id: UserId, context: AdminDep, client: ClientDep) -> Revoked:
    return Revoked(sessions_revoked=await admin.revoke_sessions(context, user_id, client=client))


@router.get(
    "/events",
    response_model=AuditPage,
    response_model_by_alias=True,
    summary="The audit log",
    description="Security events newest first, by user and by type (e.g. login.failed).",
    responses=problem_responses(401, 422, 503),
)
async def list_events(
    context: AdminDep,
    user_id: Annotated[str | None, Query(alias="userId", max_length=40)] = None,
    type: Annotated[str | None, Query(max_length=60)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await admin.audit_events(context, user_id=user_id, type=type, limit=limit, cursor=cursor)
