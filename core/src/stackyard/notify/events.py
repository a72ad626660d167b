"""Platform events: user.created, email.delivered, job.dead, … become webhook deliveries.

    events = PlatformEvents.of_runtime(runtime)
    ids = await events.publish("user.created", {"id": ..., "email": ...}, idempotency_key=user_id)

`publish` makes one delivery per Webhook subscribed to the event type (its `events` patterns):
a record in `webhook_deliveries` (status pending) and a job `stackyard.webhooks.deliver` on the
`webhooks` queue (max attempts = the Webhook's maxAttempts, idempotency key = the delivery
id). A paused Webhook gets its delivery recorded as paused, and no job. With no Webhook
subscribed it costs one look at the config: nothing is written (it runs on hot paths).

The body sent is the Standard Webhooks envelope `{"type", "timestamp", "data"}`. The same
`idempotency_key` within a day makes no second delivery (the first one's id is answered).

Where the platform emits (auth users, the email delivery log, the jobs worker), the emitter is
an optional `EventSink` handed in, called through `emit`, which logs and swallows every
failure: an event that cannot be published never fails the user's request.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..clients import AnyRedis
from ..db.schema import WEBHOOK_DELIVERIES, ensure_capability_indexes_once, stack_index_policy
from ..jobs.contract import EnqueueRequest
from ..jobs.settings import WEBHOOKS_QUEUE, queues_from_config
from ..jobs.store import JobClient
from ..resources.base import duration_seconds
from ..resources.notify import WebhookSpec
from .deliveries import DeliveryStore, new_delivery_id
from .problems import DeliveryNotFound, WebhookNotFound
from .webhook_contract import WebhookDelivery
from .webhooks import DELIVER_FUNCTION, ROOT

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from ..config import RuntimeConfig
    from ..runtime import Runtime

__all__ = ["IDEMPOTENCY_WINDOW", "EventSink", "PlatformEvents", "emit", "envelope"]

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = 86400
"""Seconds an idempotency key of `publish` or `send_to` is remembered."""
JOB_TIMEOUT_MARGIN = 15.0
"""Seconds a delivery job may run beyond the Webhook's timeout (reading and writing the log)."""


class EventSink(Protocol):
    """What the emitting code needs of PlatformEvents."""

    def subscribed(self, event_type: str) -> bool: ...

    async def publish(
        self, event_type: str, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> list[str]: ...


DataSource = Mapping[str, Any] | Callable[[], Awaitable[Mapping[str, Any] | None]]


async def emit(
    sink: EventSink | None, event_type: str, data: DataSource, *, idempotency_key: str | None = None
) -> None:
    """Publish an event if a sink is there and a Webhook subscribes; `data` may be a coroutine
    function (called only then: a read that only the event needs costs nothing otherwise;
    answering None publishes nothing). Never raises: a failure is logged."""
    if sink is None:
        return
    try:
        if not sink.subscribed(event_type):
            return
        payload = await data() if callable(data) else data
        if payload is None:
            return
        await sink.publish(event_type, payload, idempotency_key=idempotency_key)
    except Exception as exc:
        log.warning("event %s not published: %s: %s", event_type, type(exc).__name__, exc)


def _iso_ms(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def envelope(event_type: str, data: Mapping[str, Any], at: datetime | None = None) -> dict[str, Any]:
    """The body of a delivery: {"type", "timestamp" (RFC 3339, UTC, ms), "data"}; the data as
    JSON would carry it (datetimes as RFC 3339 strings, any other object as its str)."""
    plain = orjson.loads(orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z))
    return {"type": event_type, "timestamp": _iso_ms(at or datetime.now(UTC)), "data": plain}


class PlatformEvents:
    """Publishes events to the Webhooks of the config `config_getter()` answers."""

    def __init__(
        self,
        redis_of: Callable[[], AnyRedis],
        database_of: Callable[[], AsyncDatabase[Any]],
        config_of: Callable[[], RuntimeConfig],
    ) -> None:
        """Each taken from its getter at each use; the Stack's scope (namespace/name) from the config."""
        self._redis_of = redis_of
        self._database_of = database_of
        self._config = config_of

    @classmethod
    def fixed(
        cls, redis: AnyRedis, database: AsyncDatabase[Any], config_getter: Callable[[], RuntimeConfig]
    ) -> PlatformEvents:
        """On one Redis and database (a job's, a test's)."""
        return cls(lambda: redis, lambda: database, config_getter)

    @classmethod
    def of_runtime(cls, runtime: Runtime) -> PlatformEvents:
        """Following the runtime's config, Redis and database as they change (the emitters
        the api and the worker hand to the auth, email and jobs code, made once)."""
        return cls(lambda: runtime.redis, lambda: runtime.database, lambda: runtime.config.config)

    def _scope_of(self) -> str:
        config = self._config()
        return f"{config.namespace}/{config.stack}"

    # -- reading ---------------------------------------------------------------------

    def subscribed(self, event_type: str) -> bool:
        """Whether any Webhook in force subscribes to the event type (a look at the config)."""
        return any(spec.subscribes_to(event_type) for spec in self._config().webhooks.values())

    async def store(self) -> DeliveryStore:
        """The delivery log, its indexes ensured once per database in this process."""
        database = self._database_of()
        await ensure_capability_indexes_once(database, [WEBHOOK_DELIVERIES], stack_index_policy(self._config()))
        return DeliveryStore(database)

    def spec(self, name: str) -> WebhookSpec:
        spec = self._config().webhooks.get(name)
        if spec is None:
            raise WebhookNotFound(f"no Webhook {name!r} in this Stack", webhook=name)
        return spec

    # -- publishing ------------------------------------------------------------------

    async def publish(
        self, event_type: str, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> list[str]:
        """One delivery per subscribed Webhook; answers the ids of those that will be sent
        (a paused Webhook's delivery is recorded, not sent, and not answered)."""
        targets = [
            (name, spec) for name, spec in sorted(self._config().webhooks.items()) if spec.subscribes_to(event_type)
        ]
        if not targets:
            return []
        body = envelope(event_type, data)
        ids = []
        for name, spec in targets:
            delivery = await self._deliver(name, spec, body, idempotency_key)
            if delivery.status != "paused":
                ids.append(delivery.id)
        return ids

    async def send_to(
        self, webhook_name: str, event_type: str, data: Mapping[str, Any], *, idempotency_key: str | None
    ) -> str:
        """One delivery to that Webhook whatever its `events` (a workflow's webhook step, the
        test route); WebhookNotFound when the config has no such Webhook."""
        spec = self.spec(webhook_name)
        delivery = await self._deliver(webhook_name, spec, envelope(event_type, data), idempotency_key)
        return delivery.id

    async def replay(self, delivery_id: str) -> WebhookDelivery:
        """A new delivery of the same payload to the same Webhook, `replayOf` the first."""
        store = await self.store()
        original = await store.get(delivery_id)
        if original is None:
            raise DeliveryNotFound(f"no webhook delivery {delivery_id}", id=delivery_id)
        spec = self.spec(original.webhook)
        return await self._deliver(original.webhook, spec, original.payload, None, replay_of=original.id)

    async def _deliver(
        self,
        name: str,
        spec: WebhookSpec,
        body: dict[str, Any],
        idempotency_key: str | None,
        *,
        replay_of: str | None = None,
    ) -> WebhookDelivery:
        delivery_id = await self._delivery_id(name, idempotency_key)
        store = await self.store()
        delivery, _ = await store.create(
            delivery_id, name, body["type"], body, "paused" if spec.paused else "pending", replay_of=replay_of
        )
        if delivery.status == "pending":  # again on a retried publish: the job's key is the delivery id
            await self._enqueue(name, spec, delivery_id)
        return delivery

    async def _delivery_id(self, name: str, idempotency_key: str | None) -> str:
        new = new_delivery_id()
        if not idempotency_key:
            return new
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        key = f"{ROOT}{{{self._scope_of()}}}:idem:{name}:{digest}"
        redis: Any = self._redis_of()
        if await redis.set(key, new, nx=True, ex=IDEMPOTENCY_WINDOW):
            return new
        existing = await redis.get(key)
        return existing.decode() if isinstance(existing, bytes) else str(existing or new)

    async def _enqueue(self, name: str, spec: WebhookSpec, delivery_id: str) -> None:
        queue = queues_from_config(self._config().job_queues)[WEBHOOKS_QUEUE]
        request = EnqueueRequest(
            queue=WEBHOOKS_QUEUE,
            function=DELIVER_FUNCTION,
            payload={"delivery": delivery_id, "webhook": name},
            max_attempts=spec.max_attempts,
            timeout=duration_seconds(spec.timeout) + JOB_TIMEOUT_MARGIN,
            idempotency_key=delivery_id,
        )
        await JobClient(self._redis_of()).enqueue(queue, request, builtin=True)
