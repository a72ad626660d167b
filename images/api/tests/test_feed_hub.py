"""FeedHub against the real Redis: one pub/sub connection fanning a user's events out to
that user's subscribers only, a slow subscriber dropped while the others get everything,
and the subscription made again (with a resync for every subscriber) after Redis dropped it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from stackyard.notify.live import (
    RESYNC,
    STREAMS_PER_USER,
    FeedEvent,
    FeedHub,
    channel_pattern,
    parse_event,
    publish_update,
)


@pytest.fixture
async def client(redis_server) -> AsyncIterator[redis.Redis]:  # type: ignore[no-untyped-def]
    name = "feed-hub-" + uuid.uuid4().hex[:8]
    connection = redis.Redis.from_url(redis_server.url, client_name=name)
    yield connection
    await connection.aclose()


@pytest.fixture
async def scope() -> str:
    return f"test-{uuid.uuid4().hex[:8]}/demo"


@pytest.fixture
async def hub(client: redis.Redis, scope: str) -> AsyncIterator[FeedHub]:
    feed_hub = FeedHub(lambda: client, lambda: scope, queue_size=8)
    yield feed_hub
    await feed_hub.stop()


async def next_event(queue: asyncio.Queue[FeedEvent | None], timeout: float = 3.0) -> FeedEvent | None:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_each_users_events_reach_that_users_subscribers_only(client: redis.Redis, scope: str, hub: FeedHub):
    ana, ana_again, bob = hub.subscribe("ana"), hub.subscribe("ana"), hub.subscribe("bob")
    await asyncio.wait_for(hub.subscribed.wait(), 3)
    await publish_update(client, scope, "ana", "read", ["msg_1"])
    await publish_update(client, f"other-{scope}", "ana", "read", ["msg_other_stack"])
    for queue in (ana.queue, ana_again.queue):
        event = await next_event(queue)
        assert event is not None and event.kind == "update" and event.data == '{"action":"read","ids":["msg_1"]}'
    await publish_update(client, scope, "bob", "archive", None)
    event = await next_event(bob.queue)
    assert event is not None and event.data == '{"action":"archive","all":true,"tenant":null}'
    assert ana.queue.empty() and ana_again.queue.empty()  # nor the other Stack's
    hub.unsubscribe(ana_again)
    assert hub.subscribers("ana") == 1 and hub.subscribers() == 2


async def test_a_slow_subscriber_is_dropped_and_the_others_get_every_event(
    client: redis.Redis, scope: str, hub: FeedHub
):
    fast, slow = hub.subscribe("ana"), hub.subscribe("ana")
    await asyncio.wait_for(hub.subscribed.wait(), 3)
    received: list[FeedEvent] = []

    async def read_fast() -> None:
        while len(received) < 20:
            event = await next_event(fast.queue)
            assert event is not None
            received.append(event)

    reader = asyncio.create_task(read_fast())
    for i in range(20):
        await publish_update(client, scope, "ana", "seen", [f"msg_{i}"])
    await asyncio.wait_for(reader, 5)
    assert [e.data for e in received] == [f'{{"action":"seen","ids":["msg_{i}"]}}' for i in range(20)]
    assert slow.dropped and await next_event(slow.queue) is None  # its stream ends
    assert hub.subscribers("ana") == 1 and hub.dropped == 1


async def test_the_subscription_comes_back_after_redis_drops_it_with_a_resync(
    client: redis.Redis, scope: str, hub: FeedHub
):
    ana = hub.subscribe("ana")
    await asyncio.wait_for(hub.subscribed.wait(), 3)
    name = client.connection_pool.connection_kwargs["client_name"]
    listed = await client.client_list(_type="pubsub")
    ids = [c["id"] for c in listed if c.get("name") == name]
    assert len(ids) == 1  # one connection for the whole hub
    await client.client_kill_filter(_id=ids[0])
    event = await next_event(ana.queue, timeout=10)
    assert event is RESYNC  # the stream reads back what it may have missed
    await asyncio.wait_for(hub.subscribed.wait(), 3)
    await publish_update(client, scope, "ana", "read", ["msg_after"])
    event = await next_event(ana.queue)
    assert event is not None and event.kind == "update" and "msg_after" in event.data


def test_the_channel_pattern_takes_glob_characters_literally_and_odd_payloads_are_ignored():
    assert channel_pattern("ns/a*b") == r"sy:feed:ns/a\*b:user:*"
    assert parse_event(b"not json") is None
    assert parse_event(b'{"type": "other"}') is None
    event = parse_event(b'{"type":"message","message":{"id":"msg_1","createdAt":"2026-11-26T12:00:00Z"}}')
    assert event is not None and event.message_id == "msg_1" and event.tenant is None


async def test_on_a_redis_cluster_events_published_through_any_node_reach_the_hub(redis_cluster):  # type: ignore[no-untyped-def]
    from redis.crc import key_slot
    from stackyard.clients import redis_client
    from stackyard.notify.live import user_channel

    scope = f"test-{uuid.uuid4().hex[:8]}/demo"
    client = redis_client(redis_cluster.stackyard_url)  # a cluster client
    hub = FeedHub(lambda: client, lambda: scope)
    try:
        users = [f"user-{i}" for i in range(6)]
        subscriptions = {user: hub.subscribe(user) for user in users}
        await asyncio.wait_for(hub.subscribed.wait(), 5)
        nodes = {client.nodes_manager.get_node_from_slot(key_slot(user_channel(scope, u).encode())).name for u in users}
        assert len(nodes) > 1  # published to other nodes than the one subscribed to
        for user in subscriptions:
            await publish_update(client, scope, user, "read", [f"msg_{user}"])
        for user, subscription in subscriptions.items():
            event = await next_event(subscription.queue)
            assert event is not None and f"msg_{user}" in event.data
    finally:
        await hub.stop()
        await client.aclose()


async def test_a_user_opening_more_streams_than_allowed_ends_their_oldest(hub: FeedHub):
    oldest, *others = [hub.subscribe("ana") for _ in range(STREAMS_PER_USER)]
    newest = hub.subscribe("ana")
    assert oldest.dropped and await next_event(oldest.queue) is None
    assert not any(s.dropped for s in [*others, newest]) and hub.subscribers("ana") == STREAMS_PER_USER
