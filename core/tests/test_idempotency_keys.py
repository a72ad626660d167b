"""Idempotency keys on a real Redis: the first request owns a key, the same request gets its
answer back, another request is a 409 naming the first, a released key can be claimed anew,
and Stacks sharing a Redis do not share keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel
from stackyard.clients import AnyRedis, redis_client
from stackyard.idempotency import IdempotencyKeys
from stackyard.problems import Conflict


class Send(BaseModel):
    to: str


@pytest.fixture
async def redis(redis_server) -> AsyncIterator[AnyRedis]:  # type: ignore[no-untyped-def]
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


def keys(redis: AnyRedis, scope: str = "ns/demo", window: float = 60) -> IdempotencyKeys:
    return IdempotencyKeys(redis, prefix=f"test:idem:{uuid.uuid4().hex}:", scope=scope, window=window, what="message")


async def test_the_first_request_owns_the_key_and_the_same_request_gets_its_answer(redis: AnyRedis) -> None:
    store = keys(redis)
    assert await store.claim("k1", Send(to="a@x.dev"), {"id": "m1", "status": "queued"}) is None
    assert await store.claim("k1", Send(to="a@x.dev"), {"id": "m2"}) == {"id": "m1", "status": "queued"}


async def test_another_request_with_the_key_is_a_conflict_naming_the_first(redis: AnyRedis) -> None:
    store = keys(redis)
    await store.claim("k1", Send(to="a@x.dev"), {"id": "m1"})
    with pytest.raises(Conflict, match="different request; use a new key for a new message") as refused:
        await store.claim("k1", Send(to="b@x.dev"), {"id": "m2"})
    assert refused.value.extensions["id"] == "m1"


async def test_a_released_key_is_free_and_only_its_owner_releases_it(redis: AnyRedis) -> None:
    store = keys(redis)
    await store.claim("k1", Send(to="a@x.dev"), {"id": "m1"})
    await store.release("k1", "someone-else")
    assert await store.claim("k1", Send(to="a@x.dev"), {"id": "m2"}) == {"id": "m1"}
    await store.release("k1", "m1")
    assert await store.claim("k1", Send(to="b@x.dev"), {"id": "m3"}) is None


async def test_keys_are_per_stack_and_expire_with_the_window(redis: AnyRedis) -> None:
    one = keys(redis, scope="ns/one", window=1)
    other = IdempotencyKeys(redis, prefix=one.prefix, scope="ns/other", window=1, what="message")
    await one.claim("k1", Send(to="a@x.dev"), {"id": "m1"})
    assert await other.claim("k1", Send(to="b@x.dev"), {"id": "m2"}) is None
    assert 0 < await redis.ttl(one._key("k1")) <= 1
