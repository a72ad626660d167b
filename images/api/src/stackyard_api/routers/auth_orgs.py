"""/v1/auth/orgs: organisations, their members and roles, for the signed-in user.

Every role check reads the membership from the database, not the token's `orgs` claim
(which can be one access-token lifetime old): a demoted admin loses their rights at once.

GET    /v1/auth/orgs                               your organisations, with your role
POST   /v1/auth/orgs                               create one (you become its owner)
GET    /v1/auth/orgs/{orgId}                       one of yours
PATCH  /v1/auth/orgs/{orgId}                       rename, new slug or metadata (owner, admin)
DELETE /v1/auth/orgs/{orgId}                       delete it (owner)
GET    /v1/auth/orgs/{orgId}/members               its members (any member)
POST   /v1/auth/orgs/{orgId}/members               add an existing user by id or email (owner, admin)
PATCH  /v1/auth/orgs/{orgId}/members/{userId}      change a role (owner; admin for non-owners)
DELETE /v1/auth/orgs/{orgId}/members/{userId}      remove a member (owner; admin for non-owners)
POST   /v1/auth/orgs/{orgId}/leave                 leave (not the last owner)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from stackyard.auth.contract_orgs import (
    Member,
    MemberAdd,
    MemberList,
    Organization,
    OrganizationList,
    OrgCreate,
    OrgUpdate,
    RoleChange,
)
from stackyard.auth.orgs import Organizations

from ..auth_deps import AuthDep, ClaimsDep, ClientDep
from ..errors import problem_responses

router = APIRouter(prefix="/v1/auth/orgs", tags=["auth: organisations"])

OrgId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^org_[0-9a-z]+$")]
UserId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^usr_[0-9a-z]+$")]


def organizations(context: AuthDep) -> Organizations:
    return Organizations(context)


@router.get(
    "",
    response_model=OrganizationList,
    response_model_by_alias=True,
    summary="Your organisations",
    responses=problem_responses(401, 403, 503),
)
async def list_organizations(claims: ClaimsDep, context: AuthDep) -> dict[str, Any]:
    return {"items": await organizations(context).list_mine(claims.sub)}


@router.post(
    "",
    status_code=201,
    response_model=Organization,
    response_model_by_alias=True,
    summary="Create an organisation",
    description="You become its owner. The `orgs` claim of your access tokens shows it from the next refresh.",
    responses=problem_responses(400, 401, 403, 409, 422, 503),
)
async def create_organization(
    body: OrgCreate, claims: ClaimsDep, context: AuthDep, client: ClientDep
) -> dict[str, Any]:
    return await organizations(context).create(
        claims.sub, body.name, slug=body.slug, metadata=body.metadata, client=client
    )


@router.get(
    "/{org_id}",
    response_model=Organization,
    response_model_by_alias=True,
    summary="One of your organisations",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_organization(org_id: OrgId, claims: ClaimsDep, context: AuthDep) -> dict[str, Any]:
    return await organizations(context).get(claims.sub, org_id)


@router.patch(
    "/{org_id}",
    response_model=Organization,
    response_model_by_alias=True,
    summary="Rename an organisation, change its slug or metadata",
    description="Owners and admins.",
    responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
)
async def update_organization(
    org_id: OrgId, body: OrgUpdate, claims: ClaimsDep, context: AuthDep, client: ClientDep
) -> dict[str, Any]:
    return await organizations(context).update(
        claims.sub, org_id, name=body.name, slug=body.slug, metadata=body.metadata, client=client
    )


@router.delete(
    "/{org_id}",
    status_code=204,
    summary="Delete an organisation",
    description="Owners only; every membership ends with it.",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def delete_organization(org_id: OrgId, claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Response:
    await organizations(context).delete(claims.sub, org_id, client=client)
    return Response(status_code=204)


@router.get(
    "/{org_id}/members",
    response_model=MemberList,
    response_model_by_alias=True,
    summary="An organisation's members",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def list_members(org_id: OrgId, claims: ClaimsDep, context: AuthDep) -> dict[str, Any]:
    return {"items": await organizations(context).list_members(claims.sub, org_id)}


@router.post(
    "/{org_id}/members",
    status_code=201,
    response_model=Member,
    response_model_by_alias=True,
    summary="Add a member",
    description=(
        "An existing user, by id or email address, with a role. Owners and admins; only an owner adds an owner."
    ),
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429, 503),
)
async def add_member(
    org_id: OrgId, body: MemberAdd, claims: ClaimsDep, context: AuthDep, client: ClientDep
) -> dict[str, Any]:
    return await organizations(context).add_member(
        claims.sub, org_id, user_id=body.user_id, email=body.email, role=body.role, client=client
    )


@router.patch(
    "/{org_id}/members/{user_id}",
    response_model=Member,
    response_model_by_alias=True,
    summary="Change a member's role",
    description=(
        "Owners change anyone's role; admins move people between member and admin, never touching an "
        "owner. The last owner cannot be demoted (409 last-owner)."
    ),
    responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
)
async def change_role(
    org_id: OrgId, user_id: UserId, body: RoleChange, claims: ClaimsDep, context: AuthDep, client: ClientDep
) -> dict[str, Any]:
    return await organizations(context).change_role(claims.sub, org_id, user_id, body.role, client=client)


@router.delete(
    "/{org_id}/members/{user_id}",
    status_code=204,
    summary="Remove a member",
    description="Owners remove anyone, admins members and admins. Removing yourself is leaving.",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def remove_member(
    org_id: OrgId, user_id: UserId, claims: ClaimsDep, context: AuthDep, client: ClientDep
) -> Response:
    await organizations(context).remove_member(claims.sub, org_id, user_id, client=client)
    return Response(status_code=204)


@router.post(
    "/{org_id}/leave",
    status_code=204,
    summary="Leave an organisation",
    description="The last owner cannot leave (409 last-owner): make another owner first, or delete it.",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def leave(org_id: OrgId, claims: ClaimsDep, context: AuthDep, client: ClientDep) -> Response:
    await organizations(context).leave(claims.sub, org_id, client=client)
    return Response(status_code=204)
