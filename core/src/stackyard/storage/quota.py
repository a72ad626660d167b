"""Per-owner quotas of a Bucket, kept in Redis: `stackyard:storage:<bucket>:usage:<owner>`
holds the bytes an owner stores (and is uploading) in the Bucket.

An upload reserves its bytes as they arrive (one part at a time) with a Lua script that adds
them only when the total stays within the quota, atomically: two uploads of one owner at
once cannot both pass a quota that only one of them fits. A failed upload and a delete
release what they reserved.

When the key is missing (a new owner, a flushed or replaced Redis) it is rebuilt from
MongoDB first: the sum of the sizes of the owner's files in the Bucket (a pending direct
upload counts its declared size), written only if the key is still missing (SET NX), so
that a reservation made meanwhile by another process is not overwritten. Uploads under way
while the key was lost are not in that sum; their release never takes the usage below 0.

A Bucket without `limits.quotaPerOwner` keeps no usage at all.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from ..clients import AnyRedis
from ..luascript import LuaScript
from .problems import QuotaExceeded

__all__ = ["Quota", "usage_key"]

# KEYS[1] usage; ARGV[1] bytes, ARGV[2] quota. -> {1, usage after} reserved,
# {0, usage} refused, {-1, 0} the key is missing (rebuild, then call again).
RESERVE = LuaScript(
    """
local usage = redis.call('GET', KEYS[1])
if not usage then return {-1, 0} end
usage = tonumber(usage)
local wanted = tonumber(ARGV[1])
if usage + wanted > tonumber(ARGV[2]) then return {0, usage} end
return {1, redis.call('INCRBY', KEYS[1], wanted)}
"""
)

# KEYS[1] usage; ARGV[1] bytes. Never below 0; nothing when the key is missing (the
# rebuild will count from MongoDB). -> the usage after.
RELEASE = LuaScript(
    """
local usage = redis.call('GET', KEYS[1])
if not usage then return -1 end
local after = tonumber(usage) - tonumber(ARGV[1])
if after < 0 then after = 0 end
redis.call('SET', KEYS[1], after)
return after
"""
)


def usage_key(bucket: str, owner: str) -> str:
    return f"stackyard:storage:{bucket}:usage:{owner}"


class Quota:
    """The quota of one Bucket (`limit` bytes per owner; None: no quota, nothing kept)."""

    def __init__(self, redis: AnyRedis, files: AsyncCollection[Any], bucket: str, limit: int | None) -> None:
        self.redis = redis
        self.files = files
        self.bucket = bucket
        self.limit = limit

    async def reserve(self, owner: str, size: int) -> None:
        """Add `size` bytes to the owner's usage, or raise QuotaExceeded (nothing added)."""
        if self.limit is None or size <= 0:
            return
        key = usage_key(self.bucket, owner)
        for _ in range(3):
            done, usage = await RESERVE(self.redis, [key], [size, self.limit])
            if int(done) == 1:
                return
            if int(done) == 0:
                raise QuotaExceeded(
                    f"the quota of {self.limit} bytes per owner in this Bucket is used: {int(usage)} bytes stored, "
                    f"{size} more refused",
                    quota=self.limit,
                    usage=int(usage),
                )
            await self.rebuild(owner)
        raise QuotaExceeded("the usage could not be counted; try again", quota=self.limit)

    async def release(self, owner: str, size: int) -> None:
        if self.limit is None or size <= 0:
            return
        await RELEASE(self.redis, [usage_key(self.bucket, owner)], [size])

    async def usage(self, owner: str) -> int:
        """Bytes counted for the owner (rebuilt when missing); 0 without a quota."""
        if self.limit is None:
            return 0
        value = await self.redis.get(usage_key(self.bucket, owner))
        if value is None:
            await self.rebuild(owner)
            value = await self.redis.get(usage_key(self.bucket, owner))
        return int(value or 0)

    async def rebuild(self, owner: str) -> int:
        """Count the owner's bytes from MongoDB and store them unless the key appeared meanwhile."""
        total = 0
        cursor = self.files.find({"bucket": self.bucket, "owner": owner}, {"size": 1, "expectedSize": 1, "state": 1})
        async for document in cursor:
            total += int(document.get("size") or document.get("expectedSize") or 0)
        await self.redis.set(usage_key(self.bucket, owner), total, nx=True)
        return total
