"""Organisations and their members (MongoDB `organizations` and `memberships`).

An organisation is {_id "org_…", name, slug (unique), metadata, createdAt, updatedAt}; a
membership is {orgId, userId, role, createdAt}, one per (orgId, userId). Roles:

- owner: everything, including deleting the organisation and making or demoting owners;
- admin: renames the organisation and manages members and admins, never owners;
- member: sees the organisation and its members.

Every check reads the membership from the database, never the token's `orgs` claim, which
may be up to one access-token lifetime old. An organisation always keeps an owner: the
last one cannot leave, be removed or be demoted. Without multi-document transactions
(FerretDB has none) two owners demoting each other at once could both pass the check, so
every change that takes an owner away counts the owners again afterwards and undoes itself
when none is left.

`org_claims(db)` gives the `orgs` claim of access tokens: {org id: role} of at most
MAX_ORG_CLAIMS organisations (those joined first); an application whose users belong to
more reads GET /v1/auth/orgs instead."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ..db.indexes import IndexPolicy
from ..db.schema import ensure_capability_indexes
from ..jobs.ids import sortable_id
from ..problems import Conflict, NotFound, UnprocessableContent
from .errors import Forbidden

if TYPE_CHECKING:
    from .context import AuthContext
    from .sessions import ClientInfo

ORGANIZATIONS = "organizations"
MEMBERSHIPS = "memberships"
MAX_ORG_CLAIMS = 50
Role = Literal["owner", "admin", "member"]
ROLES: tuple[Role, ...] = ("owner", "admin", "member")
MANAGERS: frozenset[str] = frozenset({"owner", "admin"})
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

_indexed: set[str] = set()


class OrgRoleRequired(Forbidden):
    slug, title = "org-role", "Your role in the organisation does not allow this"


class LastOwner(Conflict):
    slug, title = "last-owner", "An organisation needs an owner"


class OrgSlugTaken(Conflict):
    slug, title = "org-slug-taken", "Organisation slug already in use"


class AlreadyMember(Conflict):
    slug, title = "already-member", "Already a member"


class InvalidSlug(UnprocessableContent):
    slug, title = "invalid-slug", "Invalid organisation slug"


def slugify(name: str) -> str:
    """ "Acme Corp." -> "acme-corp": ASCII letters and digits joined by single hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-")
    return slug or "org"


def check_slug(slug: str) -> str:
    if not SLUG.match(slug):
        raise InvalidSlug("slug: 1 to 63 lower-case letters, digits and hyphens, not starting or ending with one")
    return slug


@dataclass(frozen=True)
class Membership:
    org_id: str
    user_id: str
    role: Role
    created_at: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Membership:
        return cls(org_id=doc["orgId"], user_id=doc["userId"], role=doc["role"], created_at=aware(doc["createdAt"]))


def aware(value: datetime) -> datetime:
    """MongoDB hands back naive UTC datetimes."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def org_body(doc: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    """An organisation as the API shows it; `role` is the caller's."""
    body = {
        "id": doc["_id"],
        "name": doc["name"],
        "slug": doc["slug"],
        "metadata": doc.get("metadata") or {},
        "createdAt": aware(doc["createdAt"]),
        "updatedAt": aware(doc.get("updatedAt") or doc["createdAt"]),
    }
    if role is not None:
        body["role"] = role
    return body


def org_claims(db: AsyncDatabase[Any]) -> Callable[[str], Awaitable[dict[str, str]]]:
    """The `orgs` claim for a user: {org id: role}, at most MAX_ORG_CLAIMS (the first joined)."""
    memberships = db[MEMBERSHIPS]

    async def claims(user_id: str) -> dict[str, str]:
        cursor = memberships.find({"userId": user_id}, {"orgId": 1, "role": 1, "_id": 0})
        docs = await cursor.sort("createdAt", ASCENDING).limit(MAX_ORG_CLAIMS).to_list()
        return {d["orgId"]: d["role"] for d in docs}

    return claims


class Organizations:
    """What a signed-in user does with organisations; `actor` is the caller's user id."""

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx
        self.orgs = ctx.db[ORGANIZATIONS]
        self.members = ctx.db[MEMBERSHIPS]

    async def ensure_indexes(self, policy: IndexPolicy = "enforce") -> None:
        """Once per database and process: unique slugs and memberships (stackyard.db.schema)."""
        name = self.ctx.db.name
        if name in _indexed:
            return
        await ensure_capability_indexes(self.ctx.db, [ORGANIZATIONS, MEMBERSHIPS], policy)
        _indexed.add(name)

    # -- reading -----------------------------------------------------------------------

    async def membership(self, org_id: str, user_id: str) -> Membership | None:
        doc = await self.members.find_one({"orgId": org_id, "userId": user_id})
        return Membership.from_document(doc) if doc else None

    async def _require(self, org_id: str, actor: str, roles: frozenset[str] | None = None) -> Membership:
        """The actor's membership; 404 when they are not a member (an outsider learns nothing
        about the organisation), 403 when their role is not in `roles`."""
        found = await self.membership(org_id, actor)
        if found is None:
            raise NotFound(f"you are not a member of an organisation {org_id}")
        if roles is not None and found.role not in roles:
            raise OrgRoleRequired(f"this needs the role {' or '.join(sorted(roles))}; yours is {found.role}")
        return found

    async def _org(self, org_id: str) -> dict[str, Any]:
        doc = await self.orgs.find_one({"_id": org_id})
        if doc is None:
            raise NotFound(f"no organisation {org_id}")
        result: dict[str, Any] = doc
        return result

    async def get(self, actor: str, org_id: str) -> dict[str, Any]:
        mine = await self._require(org_id, actor)
        return org_body(await self._org(org_id), mine.role)

    async def list_mine(self, actor: str) -> list[dict[str, Any]]:
        """The actor's organisations with their role, in the order they joined."""
        memberships = await self.members.find({"userId": actor}).sort("createdAt", ASCENDING).to_list()
        roles = {m["orgId"]: m["role"] for m in memberships}
        docs = await self.orgs.find({"_id": {"$in": list(roles)}}).to_list() if roles else []
        by_id = {d["_id"]: d for d in docs}
        return [org_body(by_id[o], roles[o]) for o in roles if o in by_id]

    async def list_members(self, actor: str, org_id: str) -> list[dict[str, Any]]:
        await self._require(org_id, actor)
        docs = await self.members.find({"orgId": org_id}).sort("createdAt", ASCENDING).to_list()
        users = await self.ctx.users.collection.find(
            {"_id": {"$in": [d["userId"] for d in docs]}}, {"email": 1, "profile.name": 1}
        ).to_list()
        by_id = {u["_id"]: u for u in users}
        return [
            {
                "userId": d["userId"],
                "email": by_id.get(d["userId"], {}).get("email"),
                "name": (by_id.get(d["userId"], {}).get("profile") or {}).get("name"),
                "role": d["role"],
                "joinedAt": aware(d["createdAt"]),
            }
            for d in docs
        ]

    # -- the organisation ----------------------------------------------------------------

    async def create(
        self,
        actor: str,
        name: str,
        *,
        slug: str | None = None,
        metadata: dict[str, Any] | None = None,
        client: ClientInfo | None = None,
    ) -> dict[str, Any]:
        """A new organisation whose first owner is the actor."""
        await self.ensure_indexes()
        now = self.ctx.clock()
        doc = {
            "_id": "org_" + sortable_id(int(now.timestamp() * 1000)),
            "name": name.strip(),
            "slug": check_slug(slug) if slug else slugify(name),
            "metadata": metadata or {},
            "createdAt": now,
            "updatedAt": now,
        }
        try:
            await self.orgs.insert_one(doc)
        except DuplicateKeyError:
            raise OrgSlugTaken(f"the slug {doc['slug']!r} is taken; choose another") from None
        try:
            await self.members.insert_one({"orgId": doc["_id"], "userId": actor, "role": "owner", "createdAt": now})
        except BaseException:
            await self.orgs.delete_one({"_id": doc["_id"]})  # no owner, no organisation
            raise
        await self.ctx.audit.record("org.created", user_id=actor, client=client, org=doc["_id"], slug=doc["slug"])
        return org_body(doc, "owner")

    async def update(
        self,
        actor: str,
        org_id: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        metadata: dict[str, Any] | None = None,
        client: ClientInfo | None = None,
    ) -> dict[str, Any]:
        """Rename, change the slug or replace the metadata (owners and admins)."""
        mine = await self._require(org_id, actor, MANAGERS)
        fields: dict[str, Any] = {}
        if name is not None:
            fields["name"] = name.strip()
        if slug is not None:
            fields["slug"] = check_slug(slug)
        if metadata is not None:
            fields["metadata"] = metadata
        if not fields:
            return org_body(await self._org(org_id), mine.role)
        fields["updatedAt"] = self.ctx.clock()
        try:
            await self.orgs.update_one({"_id": org_id}, {"$set": fields})
        except DuplicateKeyError:
            raise OrgSlugTaken(f"the slug {slug!r} is taken; choose another") from None
        await self.ctx.audit.record(
            "org.updated",
            user_id=actor,
            client=client,
            org=org_id,
            fields=sorted(k for k in fields if k != "updatedAt"),
        )
        return org_body(await self._org(org_id), mine.role)

    async def delete(self, actor: str, org_id: str, *, client: ClientInfo | None = None) -> None:
        """Owners only: the organisation and every membership of it."""
        await self._require(org_id, actor, frozenset({"owner"}))
        await self.remove_organization(org_id)
        await self.ctx.audit.record("org.deleted", user_id=actor, client=client, org=org_id)

    async def remove_organization(self, org_id: str) -> None:
        """The document first: from then on every check answers 404, so no member is added
        to an organisation on its way out."""
        await self.orgs.delete_one({"_id": org_id})
        await self.members.delete_many({"orgId": org_id})

    # -- members -------------------------------------------------------------------------

    async def add_member(
        self,
        actor: str,
        org_id: str,
        *,
        user_id: str | None = None,
        email: str | None = None,
        role: Role = "member",
        client: ClientInfo | None = None,
    ) -> dict[str, Any]:
        """Add an existing user (by id or email) with a role; owners and admins, and only an
        owner makes another owner."""
        mine = await self._require(org_id, actor, MANAGERS)
        if role == "owner" and mine.role != "owner":
            raise OrgRoleRequired("only an owner can make another owner")
        if user_id:
            user = await self.ctx.users.by_id(user_id)
        elif email:
            # The answer tells whether the address has an account: counted like sign-ups and
            # reset requests (spec.auth.lockout.ipMaxAttempts per ipWindow).
            await self.ctx.attempts.check_ip(client.ip if client else None)
            user = await self.ctx.users.by_email(email)
        else:
            user = None
        if user is None:
            raise NotFound("no user with this id or email address")
        await self.ensure_indexes()
        now = self.ctx.clock()
        try:
            await self.members.insert_one({"orgId": org_id, "userId": user.id, "role": role, "createdAt": now})
        except DuplicateKeyError:
            raise AlreadyMember(f"{user.id} is already a member of {org_id}") from None
        await self.ctx.audit.record("org.member_added", user_id=user.id, client=client, org=org_id, role=role, by=actor)
        return {"userId": user.id, "email": user.email, "name": user.name, "role": role, "joinedAt": now}

    async def change_role(
        self, actor: str, org_id: str, member_id: str, role: Role, *, client: ClientInfo | None = None
    ) -> dict[str, Any]:
        """Owners change anyone's role; admins move people between member and admin but never
        touch an owner nor make one; the last owner stays an owner."""
        mine = await self._require(org_id, actor, MANAGERS)
        target = await self.membership(org_id, member_id)
        if target is None:
            raise NotFound(f"{member_id} is not a member of {org_id}")
        if mine.role != "owner" and (target.role == "owner" or role == "owner"):
            raise OrgRoleRequired("only an owner can change an owner's role or make an owner")
        if target.role == role:
            return await self._member_body(target, role)
        if target.role == "owner" and await self._owners(org_id) <= 1:
            raise LastOwner("the last owner cannot be demoted: make another owner first")
        await self.members.update_one({"orgId": org_id, "userId": member_id}, {"$set": {"role": role}})
        if target.role == "owner":
            await self._keep_an_owner(org_id, member_id, previous=target, action="demoted")
        await self.ctx.audit.record(
            "org.role_changed", user_id=member_id, client=client, org=org_id, role=role, previous=target.role, by=actor
        )
        return await self._member_body(target, role)

    async def remove_member(self, actor: str, org_id: str, member_id: str, *, client: ClientInfo | None = None) -> None:
        """Owners remove anyone, admins remove members and admins; removing yourself is leaving."""
        if member_id == actor:
            await self.leave(actor, org_id, client=client)
            return
        mine = await self._require(org_id, actor, MANAGERS)
        target = await self.membership(org_id, member_id)
        if target is None:
            raise NotFound(f"{member_id} is not a member of {org_id}")
        if target.role == "owner" and mine.role != "owner":
            raise OrgRoleRequired("only an owner can remove an owner")
        await self._remove(target, actor, client)

    async def leave(self, actor: str, org_id: str, *, client: ClientInfo | None = None) -> None:
        mine = await self._require(org_id, actor)
        await self._remove(mine, actor, client)

    async def _remove(self, target: Membership, actor: str, client: ClientInfo | None) -> None:
        if target.role == "owner" and await self._owners(target.org_id) <= 1:
            raise LastOwner("the last owner cannot leave or be removed: make another owner first, or delete it")
        await self.members.delete_one({"orgId": target.org_id, "userId": target.user_id})
        if target.role == "owner":
            await self._keep_an_owner(target.org_id, target.user_id, previous=target, action="removed")
        await self.ctx.audit.record(
            "org.member_removed", user_id=target.user_id, client=client, org=target.org_id, by=actor
        )

    async def _owners(self, org_id: str) -> int:
        return await self.members.count_documents({"orgId": org_id, "role": "owner"})

    async def _keep_an_owner(self, org_id: str, member_id: str, *, previous: Membership, action: str) -> None:
        """Counted after the write: undo it when it left the organisation with no owner."""
        if await self._owners(org_id) > 0 or await self.orgs.count_documents({"_id": org_id}) == 0:
            return
        await self.members.replace_one(
            {"orgId": org_id, "userId": member_id},
            {"orgId": org_id, "userId": member_id, "role": "owner", "createdAt": previous.created_at},
            upsert=True,
        )
        raise LastOwner(f"the last owner cannot be {action}: make another owner first")

    async def _member_body(self, member: Membership, role: str) -> dict[str, Any]:
        user = await self.ctx.users.by_id(member.user_id)
        return {
            "userId": member.user_id,
            "email": user.email if user else None,
            "name": user.name if user else None,
            "role": role,
            "joinedAt": member.created_at,
        }

    # -- for the admin API ------------------------------------------------------------------

    async def memberships_of(self, user_id: str) -> list[Membership]:
        docs = await self.members.find({"userId": user_id}).sort("createdAt", ASCENDING).to_list()
        return [Membership.from_document(d) for d in docs]

    async def successor(self, org_id: str, leaving: str) -> Membership | None:
        """Who inherits ownership when `leaving` goes: the longest-standing admin, else member."""
        for role in ("admin", "member"):
            doc = await self.members.find_one(
                {"orgId": org_id, "role": role, "userId": {"$ne": leaving}}, sort=[("createdAt", ASCENDING)]
            )
            if doc is not None:
                return Membership.from_document(doc)
        return None

    async def promote(self, org_id: str, member: Membership, *, by: str) -> None:
        await self.members.update_one({"orgId": org_id, "userId": member.user_id}, {"$set": {"role": "owner"}})
        await self.ctx.audit.record(
            "org.role_changed", user_id=member.user_id, org=org_id, role="owner", previous=member.role, by=by
        )
