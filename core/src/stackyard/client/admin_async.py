"""`AsyncStackyard.auth.admin`: the admin API (users and the audit log), sent with the
Stack's admin API key. What each call sends is in `admin_calls`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from stackyard.auth.contract import User
from stackyard.auth.contract_admin import AuditEvent, AuditPage, Deleted, Match, UserDetail, UserPage

from . import admin_calls
from .auth_calls import ProfileLike

if TYPE_CHECKING:
    from .async_client import AsyncStackyard


class AsyncAuthAdmin:
    """`users` and `events`. Every call raises AdminKeyMissing (a ValueError) before sending
    anything when the client has no admin key, AdminKeyRefused when the api refuses it."""

    def __init__(self, client: AsyncStackyard, key: str | None) -> None:
        self.users = AsyncAdminUsers(client, key)
        self.events = AsyncAdminEvents(client, key)

    def __repr__(self) -> str:
        return "AsyncAuthAdmin()"


class AsyncAdminUsers:
    def __init__(self, client: AsyncStackyard, key: str | None) -> None:
        self._client = client
        self._key = key

    def __repr__(self) -> str:
        return "AsyncAdminUsers()"

    async def list(
        self, *, search: str | None = None, match: Match = "contains", limit: int = 50, cursor: str | None = None
    ) -> UserPage:
        """One page of users, newest first; `search`: part of the email address (its start
        with match="prefix")."""
        return await self._client.send(admin_calls.list_users(self._key, search, match, limit, cursor))

    async def iter(
        self, *, search: str | None = None, match: Match = "contains", page_size: int = 100
    ) -> AsyncIterator[User]:
        """Every user that `search` selects, newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.list(search=search, match=match, limit=page_size, cursor=cursor)
            for user in page.items:
                yield user
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def get(self, user_id: str) -> UserDetail:
        """The user with their live sessions, MFA state and organisations. NotFound."""
        return await self._client.send(admin_calls.get_user(self._key, user_id))

    async def create(
        self,
        email: str,
        *,
        password: str | None = None,
        email_verified: bool = False,
        profile: ProfileLike | None = None,
        metadata: Mapping[str, Any] | None = None,
        app_metadata: Mapping[str, Any] | None = None,
    ) -> User:
        """A new user (no email is sent). EmailTaken, WeakPassword."""
        call = admin_calls.create_user(
            self._key,
            email,
            password=password,
            email_verified=email_verified,
            profile=profile,
            metadata=metadata,
            app_metadata=app_metadata,
        )
        return await self._client.send(call)

    async def update(
        self,
        user_id: str,
        *,
        profile: ProfileLike | None = None,
        metadata: Mapping[str, Any] | None = None,
        app_metadata: Mapping[str, Any] | None = None,
        email_verified: bool | None = None,
    ) -> User:
        """Change what is given: profile fields (None clears one), metadata and app_metadata
        (each replaced whole), email_verified."""
        call = admin_calls.update_user(
            self._key,
            user_id,
            profile=profile,
            metadata=metadata,
            app_metadata=app_metadata,
            email_verified=email_verified,
        )
        return await self._client.send(call)

    async def disable(self, user_id: str) -> User:
        """Every session ends now; login answers AccountDisabled until `enable`."""
        return await self._client.send(admin_calls.disable_user(self._key, user_id))

    async def enable(self, user_id: str) -> User:
        return await self._client.send(admin_calls.enable_user(self._key, user_id))

    async def delete(self, user_id: str, *, transfer_sole_owned: bool = False) -> Deleted:
        """Delete the user with all their personal data (sessions, memberships, audit events).
        LastOwner when they own an organisation with other members, unless
        `transfer_sole_owned` hands it to its longest-standing admin (else member)."""
        return await self._client.send(admin_calls.delete_user(self._key, user_id, transfer_sole_owned))

    async def revoke_sessions(self, user_id: str) -> int:
        """End every session of the user; how many there were."""
        return (await self._client.send(admin_calls.revoke_sessions(self._key, user_id))).sessions_revoked


class AsyncAdminEvents:
    def __init__(self, client: AsyncStackyard, key: str | None) -> None:
        self._client = client
        self._key = key

    def __repr__(self) -> str:
        return "AsyncAdminEvents()"

    async def list(
        self, *, user_id: str | None = None, type: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> AuditPage:
        """One page of the audit log, newest first: of one user, of one type (login.failed...)."""
        return await self._client.send(admin_calls.list_events(self._key, user_id, type, limit, cursor))

    async def iter(
        self, *, user_id: str | None = None, type: str | None = None, page_size: int = 100
    ) -> AsyncIterator[AuditEvent]:
        """Every event the filters select, newest first, a page at a time."""
        cursor: str | None = None
        while True:
            page = await self.list(user_id=user_id, type=type, limit=page_size, cursor=cursor)
            for event in page.items:
                yield event
            if not page.next_cursor:
                return
            cursor = page.next_cursor
