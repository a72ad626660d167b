"""PlatformEvents and the deliver job body against the harness's Redis and MongoDB-wire server;
the endpoint is an httpx MockTransport. Publishing without a subscriber writes nothing; a
subscribed event becomes a delivery record and a job; retries, the disable after disableAfter,
paused Webhooks, idempotency keys and replays."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from stackyard.clients import redis_client
from stackyard.config import AppliedConfig, RuntimeConfig
from stackyard.db.schema import WEBHOOK_DELIVERIES
from stackyard.jobs import JobClient, NonRetryable
from stackyard.jobs.context import Suspend
from stackyard.jobs.settings import WEBHOOKS_QUEUE
from stackyard.notify.deliveries import DeliveryStore
from stackyard.notify.events import PlatformEvents
from stackyard.notify.problems import DeliveryNotFound, WebhookNotFound
from stackyard.notify.webhooks import DeliveryFailed, EndpointState, WebhookDeliverer, signing_secret_key
from stackyard.resources.notify import WebhookSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.auth_stack import flushed_redis_url
from standardwebhooks import Webhook as ReferenceWebhook

REDIS_DATABASE = 24
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
STACK_SPEC = StackSpec.model_validate(
    {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
)


def webhook(**fields: Any) -> WebhookSpec:
    return WebhookSpec.model_validate(
        {"stackRef": {"name": "demo"}, "url": "https://hooks.example.com/in", "events": ["user.*"]} | fields
    )


@dataclass
class Ctx:
    """What the deliver function reads of its JobContext."""

    attempt: int = 1
    max_attempts: int = 8
    job_id: str = "webhooks.x"


@dataclass
class Setup:
    redis: Any
    database: Any
    stack: str
    webhooks: dict[str, WebhookSpec] = field(default_factory=dict)
    answers: list[int] = field(default_factory=list)
    seen: list[httpx.Request] = field(default_factory=list)

    def config(self) -> RuntimeConfig:
        return RuntimeConfig(stack=self.stack, namespace="ns", generation=1, spec=STACK_SPEC, webhooks=self.webhooks)

    def applied(self) -> AppliedConfig:
        credentials = {signing_secret_key(name): SECRET for name in self.webhooks}
        return AppliedConfig(config=self.config(), credentials=credentials, hash="h", applied_at=0.0)

    def events(self) -> PlatformEvents:
        return PlatformEvents.fixed(self.redis, self.database, self.config)

    def state(self) -> EndpointState:
        return EndpointState(self.redis, f"ns/{self.stack}")

    def deliverer(self) -> WebhookDeliverer:
        def answer(request: httpx.Request) -> httpx.Response:
            self.seen.append(request)
            return httpx.Response(self.answers.pop(0) if self.answers else 204)

        http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        return WebhookDeliverer(self.applied, lambda: self.redis, lambda: self.database, http)


@pytest.fixture
async def setup(redis_server: Any, db: Any) -> AsyncIterator[Setup]:
    redis = redis_client(flushed_redis_url(redis_server.url, REDIS_DATABASE))
    yield Setup(redis, db, f"s{uuid.uuid4().hex[:8]}")
    await redis.aclose()


async def job_of(setup: Setup, delivery_id: str) -> Any:
    """The delivery's job, found by its idempotency key (the delivery id)."""
    client = JobClient(setup.redis)
    for key in await setup.redis.keys(f"sy:j:{{{WEBHOOKS_QUEUE}}}:job:*"):
        job = await client.get(key.decode().rpartition(":")[2])
        if job is not None and job.payload.get("delivery") == delivery_id:
            return job
    return None


async def test_without_a_subscribed_webhook_publish_writes_nothing(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook(events=["email.*"])}
    assert await setup.events().publish("user.created", {"id": "usr_1"}) == []
    assert not setup.events().subscribed("user.created")
    assert WEBHOOK_DELIVERIES not in await setup.database.list_collection_names()
    assert await setup.redis.keys("sy:*") == []


async def test_a_subscribed_event_becomes_a_pending_delivery_and_a_job_per_webhook(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook(maxAttempts=3), "all": webhook(events=["*"]), "mail": webhook(events=["email.*"])}
    ids = await setup.events().publish("user.created", {"id": "usr_1", "email": "ana@example.com"})
    assert len(ids) == 2 and all(i.startswith("whd_") for i in ids)
    store = DeliveryStore(setup.database)
    deliveries = [await store.get(i) for i in ids]
    assert sorted(d.webhook for d in deliveries if d) == ["all", "crm"]
    for delivery in deliveries:
        assert delivery is not None and delivery.status == "pending" and delivery.event_type == "user.created"
        assert delivery.payload["type"] == "user.created" and delivery.payload["data"]["email"] == "ana@example.com"
        job = await job_of(setup, delivery.id)
        assert job is not None and job.function == "stackyard.webhooks.deliver"
        assert job.idempotency_key == delivery.id
        assert job.max_attempts == (3 if delivery.webhook == "crm" else 8)


async def test_the_same_idempotency_key_makes_no_second_delivery(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook()}
    first = await setup.events().publish("user.created", {"id": "usr_1"}, idempotency_key="usr_1")
    again = await setup.events().publish("user.created", {"id": "usr_1"}, idempotency_key="usr_1")
    other = await setup.events().publish("user.created", {"id": "usr_2"}, idempotency_key="usr_2")
    assert first == again and first != other
    assert await setup.database[WEBHOOK_DELIVERIES].count_documents({}) == 2


async def test_a_paused_webhook_records_its_deliveries_as_paused_and_sends_nothing(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook(paused=True)}
    assert await setup.events().publish("user.created", {"id": "usr_1"}) == []
    [doc] = await setup.database[WEBHOOK_DELIVERIES].find().to_list()
    assert doc["status"] == "paused" and await job_of(setup, doc["_id"]) is None


async def test_send_to_reaches_a_webhook_whatever_its_events_and_names_unknown_ones(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook(events=["email.*"])}
    delivery_id = await setup.events().send_to("crm", "notification.welcome", {"x": 1}, idempotency_key="run:step")
    assert await setup.events().send_to("crm", "notification.welcome", {"x": 1}, idempotency_key="run:step") == (
        delivery_id
    )
    assert await job_of(setup, delivery_id) is not None
    with pytest.raises(WebhookNotFound):
        await setup.events().send_to("nope", "notification.welcome", {}, idempotency_key=None)


async def test_a_delivery_is_sent_signed_and_recorded_as_succeeded(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook()}
    [delivery_id] = await setup.events().publish("user.created", {"id": "usr_1"})
    result = await setup.deliverer().deliver(Ctx(), {"delivery": delivery_id, "webhook": "crm"})  # type: ignore[arg-type]
    assert result["status"] == "succeeded"
    [request] = setup.seen
    assert ReferenceWebhook(SECRET).verify(request.content, dict(request.headers))["data"] == {"id": "usr_1"}
    assert request.headers["webhook-id"] == delivery_id
    delivery = await DeliveryStore(setup.database).get(delivery_id)
    assert delivery is not None and delivery.status == "succeeded" and delivery.attempt_count == 1
    assert delivery.attempts[0].http_status == 204
    last = await setup.state().last("crm")
    assert last is not None and last.succeeded and last.event_type == "user.created"
    again = await setup.deliverer().deliver(Ctx(2), {"delivery": delivery_id, "webhook": "crm"})  # type: ignore[arg-type]
    assert again["status"] == "succeeded" and len(setup.seen) == 1


async def test_a_failing_endpoint_is_retried_then_given_up_and_a_4xx_at_once(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook(maxAttempts=2)}
    [delivery_id] = await setup.events().publish("user.created", {"id": "usr_1"})
    deliverer, payload = setup.deliverer(), {"delivery": delivery_id, "webhook": "crm"}
    setup.answers = [500, 503]
    with pytest.raises(DeliveryFailed, match="answered 500"):
        await deliverer.deliver(Ctx(1, 2), payload)  # type: ignore[arg-type]
    delivery = await DeliveryStore(setup.database).get(delivery_id)
    assert delivery is not None and delivery.status == "pending" and delivery.last_error
    assert await setup.state().failing_since("crm") is not None
    with pytest.raises(NonRetryable, match="given up after 2 attempts"):
        await deliverer.deliver(Ctx(2, 2), payload)  # type: ignore[arg-type]
    delivery = await DeliveryStore(setup.database).get(delivery_id)
    assert delivery is not None and delivery.status == "failed"
    assert [a.http_status for a in delivery.attempts] == [500, 503]

    [gone_id] = await setup.events().publish("user.created", {"id": "usr_2"})
    setup.answers = [410]
    with pytest.raises(NonRetryable, match="answered 410"):
        await deliverer.deliver(Ctx(1, 2), {"delivery": gone_id, "webhook": "crm"})  # type: ignore[arg-type]
    setup.answers = [200]
    [ok_id] = await setup.events().publish("user.created", {"id": "usr_3"})
    await deliverer.deliver(Ctx(1, 2), {"delivery": ok_id, "webhook": "crm"})  # type: ignore[arg-type]
    assert await setup.state().failing_since("crm") is None


async def test_an_endpoint_failing_longer_than_disable_after_is_disabled_until_enabled(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook(disableAfter="1s")}
    events, deliverer = setup.events(), setup.deliverer()
    first, queued = await events.publish("user.created", {"id": "a"}), await events.publish("user.created", {"id": "b"})
    setup.answers = [500, 500]
    with pytest.raises(DeliveryFailed):
        await deliverer.deliver(Ctx(), {"delivery": first[0], "webhook": "crm"})  # type: ignore[arg-type]
    await asyncio.sleep(1.1)
    result = await deliverer.deliver(Ctx(2), {"delivery": first[0], "webhook": "crm"})  # type: ignore[arg-type]
    assert result == {"delivery": first[0], "status": "failed", "reason": "disabled"}
    disabled = await setup.state().disabled("crm", setup.webhooks["crm"])
    assert disabled is not None and "every delivery failed for 1s or more" in disabled.reason
    # the deliveries queued for it stop, failed with why, without a request
    sent = len(setup.seen)
    result = await deliverer.deliver(Ctx(), {"delivery": queued[0], "webhook": "crm"})  # type: ignore[arg-type]
    assert result["status"] == "failed" and "disabled since" in result["reason"] and len(setup.seen) == sent
    stopped = await DeliveryStore(setup.database).get(queued[0])
    assert stopped is not None and stopped.status == "failed" and "disabled" in (stopped.last_error or "")
    # enabling clears it; so does a change of the spec
    assert await setup.state().enable("crm")
    assert await setup.state().disabled("crm", setup.webhooks["crm"]) is None
    await setup.state().disable("crm", setup.webhooks["crm"], disabled.since, "again")
    setup.webhooks = {"crm": webhook(disableAfter="2s")}
    assert await setup.state().disabled("crm", setup.webhooks["crm"]) is None
    assert await setup.state().failing_since("crm") is None


async def test_a_webhook_paused_or_removed_after_the_publish_is_not_sent(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook(), "old": webhook()}
    crm_id, old_id = await setup.events().publish("user.created", {"id": "usr_1"})  # in name order
    setup.webhooks = {"crm": webhook(paused=True), "old": webhook()}
    deliverer = setup.deliverer()
    result = await deliverer.deliver(Ctx(), {"delivery": crm_id, "webhook": "crm"})  # type: ignore[arg-type]
    assert result["status"] == "paused"
    paused = await DeliveryStore(setup.database).get(crm_id)
    assert paused is not None and paused.status == "paused"
    setup.webhooks = {"crm": webhook()}
    # just published: the worker's config may lag the publisher's, so the job comes back soon
    with pytest.raises(Suspend):
        await deliverer.deliver(Ctx(), {"delivery": old_id, "webhook": "old"})  # type: ignore[arg-type]
    past = datetime.now(UTC) - timedelta(minutes=1)
    await setup.database[WEBHOOK_DELIVERIES].update_one({"_id": old_id}, {"$set": {"createdAt": past}})
    result = await deliverer.deliver(Ctx(), {"delivery": old_id, "webhook": "old"})  # type: ignore[arg-type]
    assert result["status"] == "failed" and "no Webhook 'old'" in result["reason"] and not setup.seen


async def test_a_replay_is_a_new_delivery_of_the_same_payload(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook()}
    [delivery_id] = await setup.events().publish("user.created", {"id": "usr_1"})
    replay = await setup.events().replay(delivery_id)
    original = await DeliveryStore(setup.database).get(delivery_id)
    assert original is not None and replay.id != delivery_id and replay.replay_of == delivery_id
    assert replay.payload == original.payload and replay.status == "pending"
    assert await job_of(setup, replay.id) is not None
    with pytest.raises(DeliveryNotFound):
        await setup.events().replay("whd_nope")


async def test_the_delivery_log_pages_newest_first(setup: Setup) -> None:
    setup.webhooks = {"crm": webhook()}
    for n in range(5):
        await setup.events().publish("user.created", {"n": n})
    store = DeliveryStore(setup.database)
    first = await store.page("crm", limit=3)
    assert len(first.items) == 3 and first.next_cursor
    rest = await store.page("crm", limit=3, cursor=first.next_cursor)
    ids = [i.id for i in first.items + rest.items]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    assert (await store.page("crm", status="succeeded")).items == []
