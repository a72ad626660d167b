"""`AsyncAccount.orgs`: the signed-in user's organisations, their members and roles. What
each call sends is in `account_calls`."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackyard.auth.contract_orgs import Member, Organization, Role

from . import account_calls

if TYPE_CHECKING:
    from .async_client import AsyncStackyard


class AsyncOrgs:
    """Every role check is made on the api against the database: Forbidden when the user's
    role does not allow the call, NotFound for an organisation they are not a member of."""

    def __init__(self, client: AsyncStackyard, token: str) -> None:
        self._client = client
        self._token = token

    def __repr__(self) -> str:
        return "AsyncOrgs()"

    async def list(self) -> builtins.list[Organization]:
        """The user's organisations, each with their role in it."""
        return (await self._client.send(account_calls.list_orgs(self._token))).items

    async def create(
        self, name: str, *, slug: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Organization:
        """A new organisation, of which the user is the owner; the slug is made from the
        name unless given. Conflict when the slug is taken."""
        return await self._client.send(account_calls.create_org(self._token, name, slug, metadata))

    async def get(self, org_id: str) -> Organization:
        return await self._client.send(account_calls.get_org(self._token, org_id))

    async def update(
        self,
        org_id: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Organization:
        """Rename it, give it another slug, or replace its metadata (owner, admin)."""
        return await self._client.send(account_calls.update_org(self._token, org_id, name, slug, metadata))

    async def delete(self, org_id: str) -> None:
        """Delete it with its memberships (owner)."""
        await self._client.send(account_calls.delete_org(self._token, org_id))

    async def members(self, org_id: str) -> builtins.list[Member]:
        return (await self._client.send(account_calls.list_members(self._token, org_id))).items

    async def add_member(
        self, org_id: str, *, user_id: str | None = None, email: str | None = None, role: Role = "member"
    ) -> Member:
        """Add an existing user, named by id or by email (owner, admin)."""
        return await self._client.send(account_calls.add_member(self._token, org_id, user_id, email, role))

    async def change_role(self, org_id: str, user_id: str, role: Role) -> Member:
        """Owner; an admin may change the roles of those who are not owners. LastOwner when
        it would leave the organisation without an owner."""
        return await self._client.send(account_calls.change_role(self._token, org_id, user_id, role))

    async def remove_member(self, org_id: str, user_id: str) -> None:
        await self._client.send(account_calls.remove_member(self._token, org_id, user_id))

    async def leave(self, org_id: str) -> None:
        """Leave it; LastOwner for its last owner."""
        await self._client.send(account_calls.leave_org(self._token, org_id))
