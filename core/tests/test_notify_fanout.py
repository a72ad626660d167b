"""A trigger of many recipients on a real Redis and FerretDB: the fan-out job makes one run
and one run job per distinct recipient in batches, and a fan-out retried from scratch (its
step results lost) makes none twice. Redis database 22 (its queues are this module's)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from stackyard.clients import AnyRedis, redis_client
from stackyard.config import RuntimeConfig
from stackyard.jobs import JobClient, JobContext, queues_from_config
from stackyard.jobs.settings import NOTIFY_QUEUE
from stackyard.notify.contract import TriggerRequest
from stackyard.notify.problems import WorkflowNotFound
from stackyard.notify.runs import job_id_for, run_id_for
from stackyard.notify.service import NotifyService
from stackyard.notify.workflow import FANOUT_BATCH, FANOUT_FUNCTION, RUN_FUNCTION, NotifyEnvironment, fanout
from stackyard.resources.notify import NotificationWorkflowSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.auth_stack import flushed_redis_url

REDIS_DATABASE = 22


@pytest.fixture
async def redis(redis_server) -> AsyncIterator[AnyRedis]:  # type: ignore[no-untyped-def]
    client = redis_client(flushed_redis_url(redis_server.url, REDIS_DATABASE))
    yield client
    await client.aclose()


@pytest.fixture
async def database(mongo_server) -> AsyncIterator[Any]:  # type: ignore[no-untyped-def]
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_server.url)
    name = f"notify_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


def config() -> RuntimeConfig:
    spec = StackSpec.model_validate(
        {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
    )
    workflow = NotificationWorkflowSpec.model_validate(
        {"stackRef": {"name": "demo"}, "key": "digest-ready", "steps": [{"name": "feed", "inApp": {"title": "hi"}}]}
    )
    return RuntimeConfig(stack="demo", namespace="ns", generation=1, spec=spec, notification_workflows={"w": workflow})


async def test_a_retried_fan_out_makes_each_run_and_job_once(redis: AnyRedis, database: Any) -> None:
    cfg = config()
    service = NotifyService(redis, database, cfg, "ns/demo")
    await service.ensure_indexes()
    count = FANOUT_BATCH * 2 + 7
    recipients: list[Any] = [f"u{i}" for i in range(count)] + ["u3", {"id": "x1", "email": "x@example.com"}]
    accepted, replayed = await service.trigger(TriggerRequest(workflow="digest-ready", recipients=recipients))
    count += 1
    assert not replayed and accepted.recipients == count  # duplicates run once

    jobs = JobClient(redis)
    fan_job = await jobs.get(job_id_for(NOTIFY_QUEUE, accepted.id))
    assert fan_job is not None and fan_job.function == FANOUT_FUNCTION

    async with httpx.AsyncClient() as http:

        async def no_email() -> Any:
            raise AssertionError("no email step here")

        env = NotifyEnvironment(redis, database, cfg, {}, no_email, http, lambda: cfg)
        ctx = JobContext(fan_job.id, NOTIFY_QUEUE, 1, 10, "test", jobs)
        assert await fanout(ctx, {"triggerId": accepted.id}, env) == {"triggerId": accepted.id, "runs": count}
        again = JobContext(f"{NOTIFY_QUEUE}.retry", NOTIFY_QUEUE, 2, 10, "test", jobs)  # no stored steps
        assert (await fanout(again, {"triggerId": accepted.id}, env))["runs"] == count

    runs = await database["notification_runs"].count_documents({"triggerId": accepted.id})
    assert runs == count
    queue = queues_from_config(cfg.job_queues)[NOTIFY_QUEUE]
    assert (await jobs.counts(queue)).counts.queued == count + 1  # the runs and the fan-out itself
    run_id = run_id_for(accepted.id, "x1")
    run = await service.get_run(run_id)
    assert run.recipient == "x1" and run.status == "queued" and [s.name for s in run.steps] == ["feed"]
    stored = await database["notification_runs"].find_one({"_id": run_id})
    assert stored["recipientInline"]["email"] == "x@example.com"
    job = await jobs.get(job_id_for(NOTIFY_QUEUE, run_id))
    assert job is not None and job.function == RUN_FUNCTION and job.payload == {"runId": run_id}

    page = await service.list_runs(service_filter(accepted.id), limit=100)
    assert len(page.items) == 100 and page.next_cursor is not None
    rest = await service.list_runs(service_filter(accepted.id), limit=100, cursor=page.next_cursor)
    assert rest.items[0].id < page.items[-1].id


def service_filter(trigger_id: str) -> Any:
    from stackyard.notify.contract import RunFilter

    return RunFilter(trigger=trigger_id)


async def test_an_unknown_workflow_is_refused_with_the_keys_in_force(redis: AnyRedis, database: Any) -> None:
    service = NotifyService(redis, database, config(), "ns/demo")
    with pytest.raises(WorkflowNotFound) as refused:
        await service.trigger(TriggerRequest(workflow="nope", recipients=["u1"]))
    assert refused.value.extensions["known"] == ["digest-ready"]


async def test_the_same_idempotency_key_replays_and_another_body_conflicts(redis: AnyRedis, database: Any) -> None:
    from stackyard.problems import Conflict

    service = NotifyService(redis, database, config(), "ns/demo")
    request = TriggerRequest(workflow="digest-ready", recipients=["u1"], data={"n": 1})
    first, replayed = await service.trigger(request, "k1")
    assert not replayed
    again, replayed = await service.trigger(request, "k1")
    assert replayed and again == first
    with pytest.raises(Conflict):
        await service.trigger(request.model_copy(update={"data": {"n": 2}}), "k1")
    other_stack = NotifyService(redis, database, config(), "ns/other")
    assert not (await other_stack.trigger(request, "k1"))[1]  # keys are per Stack
