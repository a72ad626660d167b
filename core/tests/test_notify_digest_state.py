"""Digest and throttle state in a real Redis: concurrent joins make exactly one owner, the
owner takes every item once and closes the digest, a retried step answers as the first time,
throttle places per window."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from stackyard.clients import AnyRedis, redis_client
from stackyard.notify.digest import Digests, Throttles, window_index


@pytest.fixture
async def redis(redis_server) -> AsyncIterator[AnyRedis]:  # type: ignore[no-untyped-def]
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def scope() -> str:
    return f"test/{uuid.uuid4().hex[:8]}"  # keys of their own: no flush needed


async def test_concurrent_triggers_make_one_owner_and_every_item_is_taken_once(redis: AnyRedis, scope: str) -> None:
    digests = Digests(redis, scope)
    joins = await asyncio.gather(
        *(
            digests.join(workflow="w", recipient="u", key=None, run_id=f"r{i}", data={"i": i}, window=60, max_items=100)
            for i in range(20)
        )
    )
    owners = {join.owner for join in joins}
    assert len(owners) == 1
    owner = owners.pop()
    assert [join.owns for join in joins].count(True) == 1
    assert len({join.until for join in joins}) == 1
    taken = await digests.take(workflow="w", recipient="u", key=None, run_id=owner)
    assert taken["total"] == 20
    assert sorted(item["i"] for item in taken["items"]) == list(range(20))

    # closed: the next trigger owns a new digest
    later = await digests.join(workflow="w", recipient="u", key=None, run_id="r99", data={}, window=60, max_items=100)
    assert later.owns and later.owner == "r99"


async def test_a_retried_step_answers_as_the_first_time(redis: AnyRedis, scope: str) -> None:
    digests = Digests(redis, scope)
    first = await digests.join(workflow="w", recipient="u", key="k", run_id="a", data={"n": 1}, window=60, max_items=5)
    second = await digests.join(workflow="w", recipient="u", key="k", run_id="b", data={"n": 2}, window=60, max_items=5)
    again = await digests.join(workflow="w", recipient="u", key="k", run_id="b", data={"n": 2}, window=60, max_items=5)
    assert first.owns and not second.owns and again == second
    taken = await digests.take(workflow="w", recipient="u", key="k", run_id="a")
    assert taken == {"total": 2, "items": [{"n": 1}, {"n": 2}]}
    assert await digests.take(workflow="w", recipient="u", key="k", run_id="a") == taken  # the same again
    # a join retried after the take still answers its first answer (not a new digest)
    assert (
        await digests.join(workflow="w", recipient="u", key="k", run_id="b", data={}, window=60, max_items=5) == second
    )


async def test_items_stop_at_max_items_and_total_counts_all(redis: AnyRedis, scope: str) -> None:
    digests = Digests(redis, scope)
    for i in range(7):
        await digests.join(workflow="w", recipient="u", key=None, run_id=f"r{i}", data=i, window=60, max_items=3)
    assert await digests.take(workflow="w", recipient="u", key=None, run_id="r0") == {"total": 7, "items": [0, 1, 2]}


async def test_digests_are_apart_per_recipient_key_workflow_and_scope(redis: AnyRedis, scope: str) -> None:
    digests = Digests(redis, scope)
    joins = [
        await digests.join(workflow="w", recipient="u", key=None, run_id="1", data=1, window=60, max_items=9),
        await digests.join(workflow="w", recipient="v", key=None, run_id="2", data=2, window=60, max_items=9),
        await digests.join(workflow="w", recipient="u", key="post-1", run_id="3", data=3, window=60, max_items=9),
        await digests.join(workflow="x", recipient="u", key=None, run_id="4", data=4, window=60, max_items=9),
        await Digests(redis, scope + "-other").join(
            workflow="w", recipient="u", key=None, run_id="5", data=5, window=60, max_items=9
        ),
    ]
    assert all(join.owns for join in joins)


async def test_only_the_owner_takes_the_items(redis: AnyRedis, scope: str) -> None:
    digests = Digests(redis, scope)
    await digests.join(workflow="w", recipient="u", key=None, run_id="a", data=1, window=60, max_items=9)
    await digests.join(workflow="w", recipient="u", key=None, run_id="b", data=2, window=60, max_items=9)
    assert await digests.take(workflow="w", recipient="u", key=None, run_id="b") == {"total": 0, "items": []}
    assert (await digests.take(workflow="w", recipient="u", key=None, run_id="a"))["total"] == 2


async def test_the_window_ends_window_seconds_after_the_first_join(redis: AnyRedis, scope: str) -> None:
    digests = Digests(redis, scope)
    first = await digests.join(
        workflow="w", recipient="u", key=None, run_id="a", data=1, window=30, max_items=9, now=1000.0
    )
    later = await digests.join(
        workflow="w", recipient="u", key=None, run_id="b", data=2, window=30, max_items=9, now=1020.0
    )
    assert first.until == later.until == 1030.0


async def test_the_throttle_passes_limit_runs_per_window_and_keeps_a_runs_place(redis: AnyRedis, scope: str) -> None:
    throttles = Throttles(redis, scope)
    places = await asyncio.gather(
        *(
            throttles.place(workflow="w", recipient="u", key=None, run_id=f"r{i}", window=3600, now=7200.5)
            for i in range(5)
        )
    )
    assert sorted(places) == [1, 2, 3, 4, 5]
    assert await throttles.place(workflow="w", recipient="u", key=None, run_id="r3", window=3600, now=7300) == places[3]
    # the next window counts from one; another recipient or key has its own count
    assert await throttles.place(workflow="w", recipient="u", key=None, run_id="n", window=3600, now=10800) == 1
    assert await throttles.place(workflow="w", recipient="v", key=None, run_id="n", window=3600, now=7200.5) == 1
    assert await throttles.place(workflow="w", recipient="u", key="k", run_id="n", window=3600, now=7200.5) == 1


def test_windows_are_aligned_on_the_epoch() -> None:
    assert window_index(3599.9, 3600) == 0
    assert window_index(3600.0, 3600) == 1
