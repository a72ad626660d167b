"""Webhook deliveries with a real worker process (`stackyard-worker`), the real Redis and
MongoDB-wire server, and a local HTTP receiver: a subscribed event arrives signed (verified
by the reference `standardwebhooks` library); a failing endpoint is retried with the
`webhooks` queue's backoff, then disabled after disableAfter, and its status says so (also
in the Webhook's status in a real API server); a replay resends the same payload under a
new delivery id; a paused Webhook sends nothing; job.completed reaches a Webhook and the
deliveries' own jobs emit nothing."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stackyard.clients import mongo_client, redis_client
from stackyard.config import RuntimeConfig
from stackyard.jobs import EnqueueRequest, JobClient, queues_from_config
from stackyard.notify.deliveries import DeliveryStore
from stackyard.notify.events import PlatformEvents
from stackyard.notify.webhook_contract import WebhookDelivery
from stackyard.notify.webhooks import EndpointState, signing_secret_key
from stackyard.resources.jobs import JobQueueSpec
from stackyard.resources.notify import WebhookSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.auth_stack import flushed_redis_url
from stackyard_harness.kube import KubeCluster
from stackyard_harness.process import ManagedProcess, free_port
from stackyard_harness.webhook_receiver import WebhookReceiver
from stackyard_worker.webhook_status import webhook_view
from standardwebhooks import Webhook as ReferenceWebhook

from .test_jobs_workers import registered, until

REPO = Path(__file__).resolve().parents[2]
WORKER = str(Path(sys.executable).parent / "stackyard-worker")
REDIS_DATABASE = 23
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
STACK = {"stackRef": {"name": "demo"}}
DELIVER = "stackyard.webhooks.deliver"


class WebhookStack:
    """A config directory with Webhooks and a fast `webhooks` JobQueue, a worker on it, and
    the same config's PlatformEvents in the test (what the api and the worker publish with)."""

    def __init__(self, directory: Path, redis_url: str, mongo_url: str) -> None:
        self.directory = directory
        self.namespace = "ns"
        self.redis_url, self.mongo_url = redis_url, mongo_url
        self.dbname = f"whw_{uuid.uuid4().hex[:10]}"
        self.stack = f"s{uuid.uuid4().hex[:6]}"
        self.generation = 0
        self.config: RuntimeConfig | None = None
        self.process: ManagedProcess | None = None
        self.redis = redis_client(redis_url)
        self.mongo = mongo_client(mongo_url, "test-webhooks")
        self.database = self.mongo[self.dbname]

    def apply(self, webhooks: dict[str, dict[str, Any]]) -> None:
        self.generation += 1
        spec = StackSpec.model_validate(
            {
                "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}, "database": self.dbname},
            }
        )
        fast = JobQueueSpec.model_validate(
            STACK | {"retry": {"maxAttempts": 30, "initialBackoff": "300ms", "maxBackoff": "600ms", "jitter": "none"}}
        )
        self.config = RuntimeConfig(
            stack=self.stack,
            namespace=self.namespace,
            generation=self.generation,
            spec=spec,
            job_queues={"webhooks": fast, "default": JobQueueSpec.model_validate(STACK)},
            webhooks={name: WebhookSpec.model_validate(STACK | hook) for name, hook in webhooks.items()},
        )
        credentials = {"stack.redis.url": self.redis_url, "stack.mongodb.uri": self.mongo_url}
        credentials |= {signing_secret_key(name): SECRET for name in webhooks}
        (self.directory / "credentials.json").write_text(json.dumps(credentials))
        (self.directory / "config.json").write_text(self.config.canonical_json())

    def events(self) -> PlatformEvents:
        def config() -> RuntimeConfig:
            assert self.config is not None
            return self.config

        return PlatformEvents.fixed(self.redis, self.database, config)

    def state(self) -> EndpointState:
        return EndpointState(self.redis, f"{self.namespace}/{self.stack}")

    def start_worker(self, env: dict[str, str] | None = None) -> None:
        port = free_port()
        env = {
            **os.environ,
            "STACKYARD_CONFIG_DIR": str(self.directory),
            "STACKYARD_JOB_MODULES": "tests.integration.jobfns",
            "PYTHONPATH": str(REPO),
            "STACKYARD_PORT": str(port),
            "STACKYARD_HOST": "127.0.0.1",
            "STACKYARD_STACK": "",
            "STACKYARD_SHUTDOWN_GRACE": "1",
        } | (env or {})
        self.process = ManagedProcess("webhooks-worker", [WORKER], self.directory / "worker.log", env=env)
        self.process.start().wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 30, "ready"
        )

    async def delivery(self, delivery_id: str, wanted: str, timeout: float = 45) -> WebhookDelivery:
        store = DeliveryStore(self.database)

        async def reached() -> WebhookDelivery | None:
            found = await store.get(delivery_id)
            return found if found is not None and found.status == wanted else None

        done: WebhookDelivery = await until(reached, timeout, f"delivery {delivery_id} {wanted}")
        return done

    async def close(self) -> None:
        if self.process is not None:
            self.process.stop()
        await self.mongo.drop_database(self.dbname)
        await self.mongo.close()
        await self.redis.aclose()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
async def stack(tmp_path: Path, redis_server: Any, mongo_server: Any) -> AsyncIterator[WebhookStack]:
    built = WebhookStack(tmp_path, flushed_redis_url(redis_server.url, REDIS_DATABASE), mongo_server.url)
    yield built
    await built.close()


def hook(receiver: WebhookReceiver, path: str, **fields: Any) -> dict[str, Any]:
    return {"url": receiver.url + path, "events": ["user.*"]} | fields


async def started(stack: WebhookStack, env: dict[str, str] | None = None) -> None:
    stack.start_worker(env)
    await registered(JobClient(stack.redis), "webhooks", DELIVER)


def verified(request: Any) -> dict[str, Any]:
    payload: dict[str, Any] = ReferenceWebhook(SECRET).verify(request.body, request.headers)
    return payload


async def test_a_subscribed_event_arrives_signed_and_verifies_with_standardwebhooks(
    stack: WebhookStack, receiver: WebhookReceiver
) -> None:
    path = f"/crm-{uuid.uuid4().hex[:6]}"
    stack.apply(
        {"crm": hook(receiver, path, headers={"X-Team": "crm"}), "mail": hook(receiver, path, events=["email.*"])}
    )
    await started(stack)
    [delivery_id] = await stack.events().publish("user.created", {"id": "usr_1", "email": "ana@example.com"})
    [request] = receiver.wait_for(1, path=path)
    payload = verified(request)
    assert payload["type"] == "user.created" and payload["data"] == {"id": "usr_1", "email": "ana@example.com"}
    assert request.headers["webhook-id"] == delivery_id and request.headers["x-team"] == "crm"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 30
    delivery = await stack.delivery(delivery_id, "succeeded")
    assert [a.http_status for a in delivery.attempts] == [204]
    await asyncio.sleep(0.5)
    assert len(receiver.received(path)) == 1  # the mail Webhook is not subscribed to user.*


async def test_a_failing_endpoint_is_retried_with_backoff_then_disabled_and_its_status_says_so(
    stack: WebhookStack, receiver: WebhookReceiver
) -> None:
    path = f"/flaky-{uuid.uuid4().hex[:6]}"
    receiver.answer(path, 500)
    stack.apply({"flaky": hook(receiver, path, disableAfter="2s")})
    await started(stack)
    [delivery_id] = await stack.events().publish("user.updated", {"id": "usr_1"})
    failed = await stack.delivery(delivery_id, "failed")
    attempts = receiver.received(path)
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert len(attempts) >= 3, gaps
    assert {r.headers["webhook-id"] for r in attempts} == {delivery_id}  # one id across retries
    assert all(gap >= 0.25 for gap in gaps), gaps  # the queue's backoff: 300 ms, then 600 ms
    assert all(verified(r)["type"] == "user.updated" for r in attempts)
    assert failed.attempts[-1].http_status == 500 and "disabled" in (failed.last_error or "")
    # disabled by the first failure 2 s after the first (by the worker's clock: when each attempt began)
    assert (failed.attempts[-1].at - failed.attempts[0].at).total_seconds() >= 2.0
    assert (failed.attempts[-2].at - failed.attempts[0].at).total_seconds() < 2.0

    spec = WebhookSpec.model_validate(STACK | hook(receiver, path, disableAfter="2s"))
    view = await webhook_view(stack.state(), "flaky", spec)
    [condition] = view["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Enabled", "False", "Disabled")
    assert "every delivery failed for 2s or more" in condition["message"]
    assert view["failingSince"] is not None and view["lastDelivery"]["succeeded"] is False

    # while disabled, a new delivery fails at once without a request
    sent = len(receiver.received(path))
    [stopped_id] = await stack.events().publish("user.updated", {"id": "usr_2"})
    stopped = await stack.delivery(stopped_id, "failed")
    assert "disabled since" in (stopped.last_error or "") and not stopped.attempts
    assert len(receiver.received(path)) == sent

    # enabled again (what POST /v1/webhooks/flaky/enable does), the endpoint healed: delivered
    receiver.answer(path, 204)
    assert await stack.state().enable("flaky")
    [healed_id] = await stack.events().publish("user.updated", {"id": "usr_3"})
    await stack.delivery(healed_id, "succeeded")
    view = await webhook_view(stack.state(), "flaky", spec)
    assert view["conditions"][0]["status"] == "True" and view["failingSince"] is None


async def test_replay_resends_the_same_payload_with_a_new_delivery_id(
    stack: WebhookStack, receiver: WebhookReceiver
) -> None:
    path = f"/replay-{uuid.uuid4().hex[:6]}"
    stack.apply({"crm": hook(receiver, path)})
    await started(stack)
    [first_id] = await stack.events().publish("user.deleted", {"id": "usr_9"})
    [first] = receiver.wait_for(1, path=path)
    replay = await stack.events().replay(first_id)
    _, second = receiver.wait_for(2, path=path)
    assert second.body == first.body and verified(second) == verified(first)
    assert second.headers["webhook-id"] == replay.id != first.headers["webhook-id"] == first_id
    done = await stack.delivery(replay.id, "succeeded")
    assert done.replay_of == first_id


async def test_a_paused_webhook_records_its_deliveries_as_paused_and_sends_nothing(
    stack: WebhookStack, receiver: WebhookReceiver
) -> None:
    path = f"/paused-{uuid.uuid4().hex[:6]}"
    stack.apply({"crm": hook(receiver, path, paused=True)})
    await started(stack)
    assert await stack.events().publish("user.created", {"id": "usr_1"}) == []
    [doc] = await stack.database["webhook_deliveries"].find().to_list()
    assert doc["status"] == "paused"
    spec = WebhookSpec.model_validate(STACK | hook(receiver, path, paused=True))
    view = await webhook_view(stack.state(), "crm", spec)
    assert (view["conditions"][0]["status"], view["conditions"][0]["reason"]) == ("False", "Paused")
    await asyncio.sleep(1.0)
    assert receiver.received(path) == []


async def test_a_completed_job_reaches_a_webhook_and_deliveries_emit_no_job_events(
    stack: WebhookStack, receiver: WebhookReceiver
) -> None:
    path = f"/jobs-{uuid.uuid4().hex[:6]}"
    stack.apply({"ops": hook(receiver, path, events=["job.*"])})
    await started(stack)
    assert stack.config is not None
    queue = queues_from_config(stack.config.job_queues)["default"]
    await registered(JobClient(stack.redis), "default", "tests.record")
    key = f"runs:{uuid.uuid4().hex}"
    job, _ = await JobClient(stack.redis).enqueue(queue, EnqueueRequest(function="tests.record", payload={"key": key}))
    [request] = receiver.wait_for(1, path=path)
    payload = verified(request)
    assert payload["type"] == "job.completed"
    assert payload["data"] == {"id": job.id, "queue": "default", "function": "tests.record", "attempt": 1}
    await asyncio.sleep(1.5)  # the delivery's own job completing must not make another event
    assert len(receiver.received(path)) == 1


async def test_the_worker_writes_the_webhooks_enabled_status_failing_since_and_last_delivery(
    stack: WebhookStack, receiver: WebhookReceiver, cluster: KubeCluster, namespace: Any
) -> None:
    """With STACKYARD_STACK set, the Webhook's status says Enabled, then, its endpoint
    failing past disableAfter, Enabled=False Disabled with failingSince and lastDelivery."""
    path = f"/status-{uuid.uuid4().hex[:6]}"
    stack.namespace, stack.stack = namespace.name, "demo"
    spec = hook(receiver, path, disableAfter="1s")
    stack.apply({"flaky": spec})
    namespace.apply(
        [
            {
                "apiVersion": "stackyard.dev/v1alpha1",
                "kind": "Webhook",
                "metadata": {"name": "flaky"},
                "spec": STACK | spec,
            }
        ]
    )
    await started(stack, {"STACKYARD_STACK": "demo", "KUBECONFIG": str(cluster.kubeconfig)})

    def status() -> dict[str, Any]:
        return (namespace.get("webhooks.stackyard.dev", "flaky") or {}).get("status") or {}

    async def enabled(wanted: str) -> Any:
        found = [c for c in status().get("conditions", []) if c["type"] == "Enabled" and c["status"] == wanted]
        return found[0] if found else None

    condition = await until(lambda: enabled("True"), 30, "Enabled=True on Webhook flaky")
    assert condition["reason"] == "Enabled"

    receiver.answer(path, 500)
    [delivery_id] = await stack.events().publish("user.created", {"id": "usr_1"})
    await stack.delivery(delivery_id, "failed")
    condition = await until(lambda: enabled("False"), 30, "Enabled=False on Webhook flaky")
    assert condition["reason"] == "Disabled" and "/v1/webhooks/flaky/enable" in condition["message"]
    assert status()["failingSince"].endswith("Z")
    last = status()["lastDelivery"]
    assert (last["eventType"], last["succeeded"], last["httpStatus"]) == ("user.created", False, 500)
