"""`AsyncStackyard.databases`: the Stack's Databases as the api reaches them, and their
migration history, sent with the Stack's admin API key. What each call sends is in
`database_calls`."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from stackyard.db.contract import DatabaseView, MigrationRecord

from . import database_calls
from .errors import MigrationFailed, MigrationWaitTimeout

if TYPE_CHECKING:
    from .async_client import AsyncStackyard


class AsyncDatabases:
    """Every call raises AdminKeyMissing (a ValueError) before sending anything when the
    client has no admin key, AdminKeyRefused when the api refuses it, NotFound for a name the
    Stack's config does not hold."""

    def __init__(self, client: AsyncStackyard, key: str | None) -> None:
        self._client = client
        self._key = key

    def __repr__(self) -> str:
        return "AsyncDatabases()"

    async def list(self) -> builtins.list[DatabaseView]:
        """Every Database of the Stack, by name: its server as the api reaches it now (or
        why it cannot), the driver's pool, the index policy and the migration state."""
        return (await self._client.send(database_calls.list_databases(self._key))).items

    async def get(self, name: str) -> DatabaseView:
        return await self._client.send(database_calls.get_database(self._key, name))

    async def migrations(self, name: str) -> builtins.list[MigrationRecord]:
        """The migration history of Database `name`, newest first."""
        return (await self._client.send(database_calls.migration_history(self._key, name))).items

    async def wait_migrated(
        self,
        name: str,
        version: int | None = None,
        *,
        since: DatabaseView | None = None,
        timeout: float | None = 600.0,
        poll: float = 1.0,
        on_update: Callable[[DatabaseView], object] | None = None,
    ) -> DatabaseView:
        """Read the Database every `poll` seconds until its migrations reach `version`
        (default: its spec.migrations.version) and return it. MigrationFailed when a run
        fails meanwhile: a failure that `since` (the Database as read before the run was
        asked for; default: the first read here) already reported does not count.
        MigrationWaitTimeout after `timeout` seconds (None: no limit). `on_update` sees every
        state read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        view = await self.get(name)
        before = database_calls.failure(since or view)
        while True:
            if on_update is not None:
                on_update(view)
            target = version if version is not None else view.migration.desired_version if view.migration else None
            if target is not None and database_calls.migration_reached(view, target):
                return view
            failed = database_calls.failure(view)
            if failed is not None and failed != before:
                raise MigrationFailed(view)
            if deadline is not None and time.monotonic() >= deadline:
                raise MigrationWaitTimeout(view, target or 0, timeout or 0.0)
            await asyncio.sleep(poll if deadline is None else min(poll, max(deadline - time.monotonic(), 0.0)))
            view = await self.get(name)
