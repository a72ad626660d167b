"""Live feed events across processes: Redis pub/sub, one channel per Stack and user.

Whoever changes a feed (the worker delivering a message, any api replica marking one)
publishes a small JSON event on `sy:feed:<scope>:user:<user id>` (`publish`). Each api
process holds ONE pub/sub connection (`FeedHub`), pattern-subscribed to its Stack's channels,
and fans each event out to the in-process subscribers of that user (the SSE streams). A
subscriber is a bounded asyncio.Queue: a consumer too slow to keep up is dropped (its queue
gets `None`, its stream ends and the client reconnects with Last-Event-ID) rather than
holding up the others.

Pub/sub keeps nothing: an event published while a process is not subscribed is lost for
it. So when the hub's subscription is established again after Redis went away, every
subscriber gets a `resync` event, and the stream reads what it missed from MongoDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import RedisCluster
from redis.exceptions import RedisError

from ..clients import AnyRedis
from ..problems import Problem
from .feed_contract import FeedMessage

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
"""Events one subscriber may have waiting; one more and it is dropped."""
STREAMS_PER_USER = 16
"""Streams one user may hold in one process; a new one beyond drops the oldest."""
POLL_SECONDS = 1.0
RECONNECT_MIN, RECONNECT_MAX = 0.1, 2.0

EventKind = Literal["message", "update", "resync"]


def channel_prefix(scope: str) -> str:
    return f"sy:feed:{scope}:user:"


def user_channel(scope: str, user_id: str) -> str:
    return channel_prefix(scope) + user_id


def channel_pattern(scope: str) -> str:
    """Every user channel of the Stack `scope`; glob characters in the scope taken literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", channel_prefix(scope)) + "*"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def publish_message(redis: AnyRedis, scope: str, message: FeedMessage) -> None:
    """A new message for its recipient's live streams, on every api process."""
    payload = {"type": "message", "message": message.model_dump(mode="json", by_alias=True)}
    await redis.publish(user_channel(scope, message.recipient), _dumps(payload))


async def publish_update(
    redis: AnyRedis,
    scope: str,
    user_id: str,
    action: str,
    ids: list[str] | None,
    *,
    tenant: str | None = None,
) -> None:
    """Marks on the user's messages (`ids`, or None for all of them, of `tenant` when given)."""
    payload: dict[str, Any] = {"type": "update", "action": action}
    if ids is None:
        payload |= {"all": True, "tenant": tenant}
    else:
        payload["ids"] = ids
    await redis.publish(user_channel(scope, user_id), _dumps(payload))


@dataclass(frozen=True)
class FeedEvent:
    """One event as the streams use it: `data` is the JSON the SSE `data:` line carries
    (the FeedMessage for a message; {action, ids | all} for an update)."""

    kind: EventKind
    data: str = "{}"
    message_id: str | None = None
    created_at: str | None = None
    tenant: str | None = None


RESYNC = FeedEvent("resync")


def parse_event(raw: bytes | str) -> FeedEvent | None:
    """The FeedEvent of a published payload; None for anything else (logged)."""
    try:
        payload = json.loads(raw)
        kind = payload["type"]
        if kind == "message":
            message = payload["message"]
            return FeedEvent(
                "message",
                _dumps(message),
                message_id=str(message["id"]),
                created_at=str(message["createdAt"]),
                tenant=message.get("tenant"),
            )
        if kind == "update":
            return FeedEvent("update", _dumps({k: v for k, v in payload.items() if k != "type"}))
    except (ValueError, KeyError, TypeError):
        pass
    log.warning("feed: an event of another shape on the feed channel was ignored")
    return None


@dataclass(eq=False)
class Subscription:
    """One stream's place in the hub: its events arrive in `queue`; `None` means it was
    dropped (too slow, or the hub stopped) and the stream should end."""

    user_id: str
    queue: asyncio.Queue[FeedEvent | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: bool = False


class FeedHub:
    """One Redis pub/sub connection per process for the feed streams of the Stack `scope`.

    `redis` and `scope` are read at each (re)connection, so a new Redis URL in the config is
    followed: the hub reconnects when `redis()` gives another client. The connection is made
    with the first subscription (or `start()`), and kept until `stop()`."""

    def __init__(self, redis: Callable[[], AnyRedis], scope: Callable[[], str], queue_size: int = QUEUE_SIZE) -> None:
        self._redis = redis
        self._scope = scope
        self._queue_size = queue_size
        self._subscribers: dict[str, dict[Subscription, None]] = {}
        """Per user, their subscriptions oldest first (a dict as an ordered set)."""
        self._task: asyncio.Task[None] | None = None
        self._prefix = ""
        self._stopping = False
        self.subscribed = asyncio.Event()
        """Set while the pattern subscription is in place (tests and readiness wait on it)."""
        self.dropped = 0
        """Subscriptions dropped for being too slow, since start."""

    # -- subscribers ------------------------------------------------------------------------

    def subscribe(self, user_id: str) -> Subscription:
        subscription = Subscription(user_id, asyncio.Queue(self._queue_size))
        held = self._subscribers.setdefault(user_id, {})
        while len(held) >= STREAMS_PER_USER:
            self._drop(next(iter(held)))
            held = self._subscribers.setdefault(user_id, {})
        held[subscription] = None
        self.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        held = self._subscribers.get(subscription.user_id)
        if held is not None:
            held.pop(subscription, None)
            if not held:
                del self._subscribers[subscription.user_id]

    def subscribers(self, user_id: str | None = None) -> int:
        if user_id is not None:
            return len(self._subscribers.get(user_id, ()))
        return sum(len(s) for s in self._subscribers.values())

    def dispatch(self, user_id: str, event: FeedEvent) -> None:
        """Hand `event` to each subscriber of `user_id`; drop those whose queue is full."""
        for subscription in list(self._subscribers.get(user_id, ())):
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(subscription)
                self.dropped += 1
                log.info("feed: a live stream of user %s could not keep up and was dropped", user_id)

    def _broadcast(self, event: FeedEvent) -> None:
        for user_id in list(self._subscribers):
            self.dispatch(user_id, event)

    def _drop(self, subscription: Subscription) -> None:
        self.unsubscribe(subscription)
        subscription.dropped = True
        while not subscription.queue.empty():
            subscription.queue.get_nowait()
        subscription.queue.put_nowait(None)

    # -- the connection ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="feed hub")

    async def stop(self) -> None:
        task, self._task = self._task, None
        # A flag as well as the cancel: redis-py may turn a cancel while connecting into a
        # ConnectionError, which the loop would otherwise take for Redis going away.
        self._stopping = True
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task}, timeout=5)
        for held in list(self._subscribers.values()):
            for subscription in list(held):
                self._drop(subscription)
        self.subscribed.clear()

    async def _run(self) -> None:
        delay = RECONNECT_MIN
        established = False
        while not self._stopping:
            try:
                client = self._redis()
                scope = self._scope()
                self._prefix = channel_prefix(scope)
                if isinstance(client, RedisCluster):
                    # Its slots are learnt by the first command, which pubsub() is not. Any
                    # node will do: PUBLISH reaches every node of a cluster.
                    await client.initialize()
                async with client.pubsub() as pubsub:
                    await pubsub.psubscribe(channel_pattern(scope))
                    while self._redis() is client and not self._stopping:
                        message = await pubsub.get_message(timeout=POLL_SECONDS)
                        if message is None:
                            continue
                        if message["type"] == "psubscribe":
                            # The first confirmation, or redis-py's own reconnection: what was
                            # published in between is lost here, so every stream reads it back.
                            if established:
                                self._broadcast(RESYNC)
                            established = True
                            self.subscribed.set()
                            delay = RECONNECT_MIN
                        elif message["type"] == "pmessage":
                            self._deliver(message["channel"], message["data"])
                # Another Redis client (a new URL in the config): subscribe on that one.
                self.subscribed.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                if self._stopping:
                    return
                delay = await self._wait_to_retry(exc, delay)

    async def _wait_to_retry(self, exc: Exception, delay: float) -> float:
        """Log why the subscription failed, sleep before the next try; the next delay."""
        if isinstance(exc, Problem):  # no config yet
            log.info("feed: no live subscription yet: %s", exc.detail)
            await asyncio.sleep(RECONNECT_MAX)
            return delay
        if isinstance(exc, RedisError | OSError):
            log.warning("feed: the live subscription lost Redis (%s); retrying in %.1f s", type(exc).__name__, delay)
        else:
            log.error("feed: the live subscription failed; retrying in %.1f s", delay, exc_info=exc)
        await asyncio.sleep(delay)
        return min(delay * 2, RECONNECT_MAX)

    def _deliver(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        user_id = name[len(self._prefix) :]
        if not name.startswith(self._prefix) or user_id not in self._subscribers:
            return
        event = parse_event(data)
        if event is not None:
            self.dispatch(user_id, event)
