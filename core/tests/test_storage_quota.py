"""Per-owner quotas (stackyard.storage.quota) against Redis, rebuilt from FerretDB's `files`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from stackyard.clients import redis_client
from stackyard.storage.problems import QuotaExceeded
from stackyard.storage.quota import Quota, usage_key


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[Any]:
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


def quota(redis: Any, db: Any, limit: int | None = 1000) -> Quota:
    return Quota(redis, db["files"], "b" + uuid.uuid4().hex[:10], limit)


async def stored(q: Quota, owner: str) -> int | None:
    value = await q.redis.get(usage_key(q.bucket, owner))
    return None if value is None else int(value)


async def test_reservations_add_up_to_the_quota_and_no_further(redis: Any, db: Any) -> None:
    q = quota(redis, db)
    await q.reserve("u1", 600)
    await q.reserve("u1", 400)
    with pytest.raises(QuotaExceeded) as refused:
        await q.reserve("u1", 1)
    assert refused.value.extensions == {"quota": 1000, "usage": 1000}
    assert await stored(q, "u1") == 1000
    await q.reserve("u2", 1000)  # another owner has a quota of its own


async def test_a_release_never_takes_the_usage_below_zero(redis: Any, db: Any) -> None:
    q = quota(redis, db)
    await q.reserve("u1", 300)
    await q.release("u1", 200)
    assert await stored(q, "u1") == 100
    await q.release("u1", 500)
    assert await stored(q, "u1") == 0


async def test_a_missing_usage_is_rebuilt_from_the_owners_documents(redis: Any, db: Any) -> None:
    q = quota(redis, db)
    now = datetime.now(UTC)
    await db["files"].insert_many(
        [
            {"_id": "f_1", "bucket": q.bucket, "owner": "u1", "size": 300, "state": "available", "createdAt": now},
            {"_id": "f_2", "bucket": q.bucket, "owner": "u1", "size": 0, "expectedSize": 200, "state": "pending"},
            {"_id": "f_3", "bucket": q.bucket, "owner": "u2", "size": 900, "state": "available"},
            {"_id": "f_4", "bucket": "elsewhere", "owner": "u1", "size": 900, "state": "available"},
        ]
    )
    assert await stored(q, "u1") is None
    with pytest.raises(QuotaExceeded):
        await q.reserve("u1", 501)
    assert await stored(q, "u1") == 500
    await q.reserve("u1", 500)
    assert await q.usage("u1") == 1000
    await redis.delete(usage_key(q.bucket, "u2"))
    assert await q.usage("u2") == 900


async def test_a_release_before_a_rebuild_leaves_the_key_missing(redis: Any, db: Any) -> None:
    q = quota(redis, db)
    await q.release("u1", 100)
    assert await stored(q, "u1") is None


async def test_concurrent_reservations_are_atomic(redis: Any, db: Any) -> None:
    q = quota(redis, db, limit=10_000)
    results = await asyncio.gather(*(q.reserve("u1", 1000) for _ in range(30)), return_exceptions=True)
    assert sum(r is None for r in results) == 10
    assert all(isinstance(r, QuotaExceeded) for r in results if r is not None)
    assert await stored(q, "u1") == 10_000


async def test_a_bucket_without_quota_keeps_no_usage(redis: Any, db: Any) -> None:
    q = quota(redis, db, limit=None)
    await q.reserve("u1", 10**12)
    await q.release("u1", 5)
    assert await stored(q, "u1") is None
    assert await q.usage("u1") == 0
