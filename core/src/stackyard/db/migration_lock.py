"""A lock with a lease in a MongoDB collection: one holder at a time, taken over when its
holder stops renewing it.

Holding is a chain of documents `{_id: "<name>.<epoch>", lock, epoch, owner, expiresAt,
acquiredAt, renewedAt}` in LOCK_COLLECTION; the highest epoch is the lock. A runner takes a
free or lapsed lock by *inserting* the next epoch: the unique `_id` lets exactly one of
several runners succeed, on MongoDB and on servers whose conditional updates are not atomic
(FerretDB 1.x runs `findAndModify` as a read then a write: two runners taking over the same
lapsed document both "win"). Only its owner ever writes an epoch's document afterwards
(renewals, release), so no two writers race on one document.

Times are the server's (its `hello.localTime`, corrected by half the round trip), so pods with
skewed clocks agree on when a lease lapses. The holder also keeps a local deadline on the
monotonic clock: the lease from the start of its last confirmed renewal, less a margin. Past
it the holder considers the lock lost, whatever the server says, because another runner may
already have taken it over. A renewal is confirmed only when the owner's document was updated,
no later epoch exists, and the previous deadline had not passed by the time both were seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

LOCK_COLLECTION = "_stackyard_locks"
KEPT_EPOCHS = 20
"""Epoch documents kept behind the current one (older ones are deleted by a new holder)."""

T = TypeVar("T")


class LockLost(Exception):
    """The lock is no longer certainly ours: stop before doing or recording anything more."""


class LockTimeout(Exception):
    """The lock stayed taken for longer than the caller would wait."""


def utc(value: datetime) -> datetime:
    """Dates read back from a client without tz_aware are naive UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class LeaseLock:
    def __init__(
        self,
        db: AsyncDatabase[Any],
        name: str,
        *,
        owner: str,
        lease: float,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if lease <= 0:
            raise ValueError("the lease must be positive")
        self.collection = db[LOCK_COLLECTION]
        self.admin = db.client.admin
        self.name = name
        self.owner = owner
        self.lease = lease
        self.margin = min(max(lease * 0.1, 0.2), 5.0)
        self.progress = progress or (lambda _line: None)
        self.epoch: int | None = None
        self.deadline = 0.0
        self._offset: float | None = None
        self._renewing = asyncio.Lock()
        self._lost = asyncio.Event()
        self.lost_reason: str | None = None

    # -- clock --------------------------------------------------------------------------

    async def server_now(self, refresh: bool = False) -> datetime:
        """The server's current time, from its clock offset to our monotonic clock."""
        if self._offset is None or refresh:
            sent = time.monotonic()
            hello = await self.admin.command("hello")
            received = time.monotonic()
            local_time = hello.get("localTime")
            server = utc(local_time).timestamp() if isinstance(local_time, datetime) else time.time()
            self._offset = server - (sent + received) / 2
        return datetime.fromtimestamp(time.monotonic() + self._offset, UTC)

    # -- reading ------------------------------------------------------------------------

    async def current(self) -> dict[str, Any] | None:
        """The highest epoch's document: the lock as it stands."""
        return await self.collection.find_one({"lock": self.name}, sort=[("epoch", DESCENDING)])

    async def describe_holder(self) -> str:
        doc = await self.current()
        if doc is None:
            return "nobody"
        left = (utc(doc["expiresAt"]) - await self.server_now()).total_seconds()
        return f"{doc['owner']} (lease ends in {max(left, 0):.0f}s)" if left > 0 else f"nobody ({doc['owner']} lapsed)"

    # -- taking and giving back -----------------------------------------------------------

    async def try_acquire(self) -> bool:
        doc = await self.current()
        now = await self.server_now(refresh=True)
        if doc is not None and utc(doc["expiresAt"]) > now:
            return False
        epoch = (int(doc["epoch"]) if doc is not None else 0) + 1
        started = time.monotonic()
        try:
            await self.collection.insert_one(
                {
                    "_id": f"{self.name}.{epoch:012d}",
                    "lock": self.name,
                    "epoch": epoch,
                    "owner": self.owner,
                    "expiresAt": now + timedelta(seconds=self.lease),
                    "acquiredAt": now,
                    "renewedAt": now,
                    "previousOwner": doc["owner"] if doc is not None else None,
                }
            )
        except DuplicateKeyError:
            return False  # another runner inserted this epoch first
        if await self._newer_epoch(epoch):
            return False  # we read a long-gone epoch; ours is not the lock
        self.epoch, self.deadline = epoch, started + self.lease - self.margin
        self._lost.clear()
        self.lost_reason = None
        if doc is not None and not doc.get("releasedAt"):
            self.progress(f"took over the lock from {doc['owner']}, whose lease had lapsed")
        await self.collection.delete_many({"lock": self.name, "epoch": {"$lt": epoch - KEPT_EPOCHS}})
        return True

    async def acquire(self, wait: float, poll: float = 0.5) -> float:
        """Take the lock, polling while another runner holds it; the seconds waited.
        LockTimeout after `wait` seconds."""
        started = time.monotonic()
        told: str | None = None
        while not await self.try_acquire():
            holder = await self.current()
            owner = holder["owner"] if holder else None
            if owner != told:
                told = owner
                self.progress(f"waiting for the lock held by {await self.describe_holder()}")
            waited = time.monotonic() - started
            if waited >= wait:
                raise LockTimeout(f"the lock stayed with {await self.describe_holder()} for {waited:.0f}s")
            await asyncio.sleep(min(poll, self.lease / 4, max(wait - waited, 0.01)))
        return time.monotonic() - started

    async def release(self) -> None:
        """Give the lock back (its lease ends now) if it is still ours; errors are ignored:
        the lease frees it anyway."""
        epoch, self.epoch = self.epoch, None
        if epoch is None:
            return
        with contextlib.suppress(PyMongoError):
            now = await self.server_now()
            await self.collection.update_one(
                {"_id": f"{self.name}.{epoch:012d}", "owner": self.owner},
                {"$set": {"expiresAt": now, "releasedAt": now}},
            )

    # -- holding ---------------------------------------------------------------------------

    async def renew(self) -> None:
        """Extend the lease, or raise LockLost when the lock may no longer be ours."""
        async with self._renewing:
            if self.epoch is None or self._lost.is_set():
                raise LockLost(self.lost_reason or "the lock is not held")
            previous_deadline = self.deadline
            if time.monotonic() > previous_deadline:
                self._lose("its lease ran out before it could be renewed")
            started = time.monotonic()
            now = await self.server_now(refresh=True)
            updated = await self.collection.update_one(
                {"_id": f"{self.name}.{self.epoch:012d}", "owner": self.owner},
                {"$set": {"expiresAt": now + timedelta(seconds=self.lease), "renewedAt": now}},
            )
            if updated.matched_count != 1:
                self._lose("its document is gone")
            if newer := await self._newer_epoch(self.epoch):
                self._lose(f"{newer['owner']} took it over")
            if time.monotonic() > previous_deadline:
                self._lose("its lease ran out while it was being renewed")
            self.deadline = started + self.lease - self.margin

    def _lose(self, reason: str) -> None:
        self.lost_reason = f"lost the lock: {reason}"
        self._lost.set()
        raise LockLost(self.lost_reason)

    async def _newer_epoch(self, epoch: int) -> dict[str, Any] | None:
        return await self.collection.find_one({"lock": self.name, "epoch": {"$gt": epoch}})

    async def _keep(self) -> None:
        """Renew every lease/3; on errors, retry until the local deadline, then give up."""
        while True:
            await asyncio.sleep(max(min(self.lease / 3, self.deadline - time.monotonic() - self.margin), 0.05))
            try:
                await self.renew()
            except LockLost:
                return
            except PyMongoError as exc:
                if time.monotonic() > self.deadline:
                    self.lost_reason = f"lost the lock: renewals failed until its lease ran out ({type(exc).__name__})"
                    self._lost.set()
                    return

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[LeaseLock]:
        """Keep renewing the (acquired) lock while the block runs; release it at the end."""
        keeper = asyncio.create_task(self._keep(), name=f"lock {self.name} renewal")
        try:
            yield self
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await self.release()

    async def guard(self, work: Awaitable[T]) -> T:
        """Run `work`, cancelling it and raising LockLost if the lock is lost meanwhile."""
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        lost: asyncio.Future[Any] = asyncio.create_task(self._lost.wait())
        try:
            await asyncio.wait([task, lost], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            lost.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise LockLost(self.lost_reason or "lost the lock")
        return task.result()
