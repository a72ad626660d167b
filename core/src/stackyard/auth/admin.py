"""What the admin API does to users: find, inspect, create, change, disable, delete.

The callers hold the Stack's admin API key; every change is recorded in the audit log with
the admin's client and `by: "admin"`.

Deleting a user erases their personal data: the user document (profile, identities, MFA,
passkeys), their sessions, their memberships, the failed-login counter kept under their
address, their audit events (`AuditLog.forget_user`) and the entries about them on the
event stream. One-time tokens (links in emails) cannot be listed, so they die on their
own: every flow looks the user up again and finds nobody. Organisations they were the last
owner of are handled as the admin chooses (`on_sole_owner`): refused by default, or
ownership moves to the longest-standing admin (else member); an organisation with no
other member is deleted with them. Finally one `user.deleted` event is recorded: the user
id and nothing personal, so subscribers can erase their own copies."""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any, Literal

from pymongo import DESCENDING

from ..problems import NotFound, UnprocessableContent
from .audit import event_stream
from .orgs import LastOwner, Organizations
from .passwords import check_policy
from .users import UserRecord, normalise_email, public_user

if TYPE_CHECKING:
    from .context import AuthContext
    from .sessions import ClientInfo

ADMIN = "admin"
MAX_PAGE = 200
STREAM_BATCH = 500
Match = Literal["prefix", "contains"]
SoleOwnerPolicy = Literal["refuse", "transfer"]


def _cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def _after(cursor: str, prefix: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor.encode()).decode()
    except Exception:
        value = ""
    if not value.startswith(prefix):
        raise UnprocessableContent("cursor: not a cursor from this list")
    return value


async def search_users(
    ctx: AuthContext, *, query: str | None = None, match: Match = "contains", limit: int = 50, cursor: str | None = None
) -> dict[str, Any]:
    """Users newest first, optionally those whose (normalised) email starts with or contains
    `query`; pass nextCursor back for the next page. Ids sort by creation time, so the
    cursor is the last id shown."""
    limit = max(1, min(limit, MAX_PAGE))
    filters: dict[str, Any] = {}
    if query:
        text = re.escape(query.strip().lower())
        filters["emailNormalized"] = {"$regex": f"^{text}" if match == "prefix" else text}
    if cursor:
        filters["_id"] = {"$lt": _after(cursor, "usr_")}
    docs = await ctx.users.collection.find(filters).sort("_id", DESCENDING).limit(limit + 1).to_list()
    items = [public_user(UserRecord.from_document(d), admin=True) for d in docs[:limit]]
    more = len(docs) > limit
    return {"items": items, "nextCursor": _cursor(docs[limit - 1]["_id"]) if more else None}


async def _user(ctx: AuthContext, user_id: str) -> UserRecord:
    user = await ctx.users.by_id(user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def mfa_state(user: UserRecord) -> dict[str, Any]:
    """What an admin sees of a user's second factors: whether they are on, never a secret."""
    mfa = user.raw.get("mfa") or {}
    return {
        "totp": bool((mfa.get("totp") or {}).get("confirmed")),
        "recoveryCodesLeft": len(mfa.get("recoveryCodes") or []),
        "passkeys": [
            {
                "id": p.get("id"),
                "name": p.get("name"),
                "createdAt": p.get("createdAt"),
                "lastUsedAt": p.get("lastUsedAt"),
            }
            for p in user.raw.get("passkeys") or []
        ],
    }


async def user_detail(ctx: AuthContext, user_id: str) -> dict[str, Any]:
    """The user as an admin sees them, with their live sessions, MFA state and organisations."""
    user = await _user(ctx, user_id)
    sessions = await ctx.sessions.list(user.id)
    memberships = await Organizations(ctx).memberships_of(user.id)
    return public_user(user, admin=True) | {
        "sessions": [s.body() for s in sessions],
        "mfa": mfa_state(user),
        "organizations": [{"orgId": m.org_id, "role": m.role, "joinedAt": m.created_at} for m in memberships],
    }


async def create_user(
    ctx: AuthContext,
    email: str,
    *,
    password: str | None = None,
    email_verified: bool = False,
    profile: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    app_metadata: dict[str, Any] | None = None,
    client: ClientInfo | None = None,
) -> UserRecord:
    """An account made by an admin; without a password the user signs in by email link, a
    reset link or an identity provider. A given password must meet the Stack's policy."""
    password_hash = None
    if password is not None:
        check_policy(password, ctx.settings.password_policy, email=email)
        password_hash = await ctx.hasher.hash(password)
    user = await ctx.users.create(
        email,
        password_hash=password_hash,
        email_verified=email_verified,
        profile=profile,
        metadata=metadata,
        now=ctx.clock(),
    )
    if app_metadata:
        user = await ctx.users.set_fields(user.id, {"appMetadata": app_metadata}, now=ctx.clock()) or user
    await ctx.audit.record("user.created", user_id=user.id, client=client, method=ADMIN, by=ADMIN)
    return user


async def update_user(
    ctx: AuthContext,
    user_id: str,
    *,
    profile: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    app_metadata: dict[str, Any] | None = None,
    email_verified: bool | None = None,
    client: ClientInfo | None = None,
) -> UserRecord:
    """profile fields given replace those stored (None clears one); metadata and appMetadata
    replace the whole object."""
    user = await _user(ctx, user_id)
    fields: dict[str, Any] = {f"profile.{k}": v for k, v in (profile or {}).items()}
    if metadata is not None:
        fields["metadata"] = metadata
    if app_metadata is not None:
        fields["appMetadata"] = app_metadata
    if email_verified is not None:
        fields["emailVerified"] = email_verified
    if not fields:
        return user
    updated = await ctx.users.set_fields(user.id, fields, now=ctx.clock())
    if updated is None:
        raise NotFound(f"no user {user_id}")
    await ctx.audit.record("user.updated", user_id=user.id, client=client, fields=sorted(fields), by=ADMIN)
    return updated


async def disable_user(ctx: AuthContext, user_id: str, *, client: ClientInfo | None = None) -> UserRecord:
    """A disabled user cannot log in (403 account-disabled) and every session ends now."""
    await _user(ctx, user_id)
    updated = await ctx.users.set_fields(user_id, {"disabled": True}, now=ctx.clock())
    if updated is None:
        raise NotFound(f"no user {user_id}")
    revoked = await ctx.sessions.revoke_all(user_id, "account disabled by an admin", client=client)
    await ctx.audit.record("user.disabled", user_id=user_id, client=client, sessionsRevoked=revoked, by=ADMIN)
    return updated


async def enable_user(ctx: AuthContext, user_id: str, *, client: ClientInfo | None = None) -> UserRecord:
    await _user(ctx, user_id)
    updated = await ctx.users.set_fields(user_id, {"disabled": False}, now=ctx.clock())
    if updated is None:
        raise NotFound(f"no user {user_id}")
    await ctx.audit.record("user.enabled", user_id=user_id, client=client, by=ADMIN)
    return updated


async def revoke_sessions(ctx: AuthContext, user_id: str, *, client: ClientInfo | None = None) -> int:
    await _user(ctx, user_id)
    return await ctx.sessions.revoke_all(user_id, "revoked by an admin", client=client)


async def delete_user(
    ctx: AuthContext, user_id: str, *, on_sole_owner: SoleOwnerPolicy = "refuse", client: ClientInfo | None = None
) -> dict[str, Any]:
    """Erase a user and their personal data (see the module's docstring); returns what was done."""
    user = await _user(ctx, user_id)
    orgs = Organizations(ctx)
    memberships = await orgs.memberships_of(user.id)
    transfers: list[tuple[str, Any]] = []
    orphaned: list[str] = []
    for membership in memberships:
        if membership.role != "owner":
            continue
        owners = await orgs.members.count_documents({"orgId": membership.org_id, "role": "owner"})
        if owners > 1:
            continue
        heir = await orgs.successor(membership.org_id, user.id)
        if heir is None:
            orphaned.append(membership.org_id)
        else:
            transfers.append((membership.org_id, heir))
    if transfers and on_sole_owner != "transfer":
        raise LastOwner(
            "the user is the last owner of organisations with other members; make another owner first, "
            "or delete with soleOwnedOrganizations=transfer",
            organizations=[org_id for org_id, _ in transfers],
        )
    # Disabled first, so no new session starts while the rest goes, and a deletion cut short
    # (MongoDB or Redis failing) can be run again. Sessions end before the events are
    # erased (ending them records events); the document goes before the events, so nothing
    # recorded after the erasure can name the user.
    await ctx.users.set_fields(user.id, {"disabled": True}, now=ctx.clock())
    revoked = await ctx.sessions.revoke_all(user.id, "account deleted")
    for org_id, heir in transfers:
        await orgs.promote(org_id, heir, by=ADMIN)
    for org_id in orphaned:
        await orgs.remove_organization(org_id)
    await orgs.members.delete_many({"userId": user.id})
    await ctx.users.delete(user.id)
    await ctx.attempts.succeeded(normalise_email(user.email))  # the failed-login counter names the address
    forgotten = await ctx.audit.forget_user(user.id)
    stream_entries = await forget_on_stream(ctx, user.id)
    await ctx.audit.record(
        "user.deleted",
        user_id=user.id,
        by=ADMIN,
        organizationsTransferred=[org_id for org_id, _ in transfers],
        organizationsDeleted=orphaned,
    )
    return {
        "id": user.id,
        "sessionsRevoked": revoked,
        "eventsErased": forgotten,
        "streamEntriesErased": stream_entries,
        "organizationsTransferred": {org_id: heir.user_id for org_id, heir in transfers},
        "organizationsDeleted": orphaned,
    }


async def forget_on_stream(ctx: AuthContext, user_id: str) -> int:
    """Delete the event stream's entries about a user (the stream holds at most about 10,000
    entries, read in batches). A subscriber that has not read them yet never will; the
    user.deleted event that follows tells it the user is gone."""
    stream = event_stream(ctx.scope)
    start, erased = "-", 0
    while True:
        entries = await ctx.redis.xrange(stream, min=start, max="+", count=STREAM_BATCH)
        if not entries:
            return erased
        doomed: list[bytes | str] = []
        for entry_id, fields in entries:
            raw = (fields or {}).get(b"event") or (fields or {}).get("event")
            try:
                about = json.loads(raw).get("userId") if raw else None
            except ValueError:
                about = None
            if about == user_id and entry_id is not None:
                doomed.append(entry_id)
        if doomed:
            erased += int(await ctx.redis.xdel(stream, *doomed))
        last = entries[-1][0]
        last_text = last.decode() if isinstance(last, bytes) else str(last)
        start = "(" + last_text
        if len(entries) < STREAM_BATCH:
            return erased


async def audit_events(
    ctx: AuthContext,
    *,
    user_id: str | None = None,
    type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    return await ctx.audit.page(user_id=user_id, type=type, limit=max(1, min(limit, MAX_PAGE)), cursor=cursor)
