"""Trace context carried inside jobs, read back from the real OpenTelemetry Collector: an
enqueue is a PRODUCER span, each attempt a CONSUMER span under it in the same trace, and the
queue's metrics arrive with the queue's name."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from opentelemetry import trace
from stackyard.clients import redis_client
from stackyard.jobs import EnqueueRequest, FunctionRegistry, JobClient, JobContext, QueueSettings, RetryPolicy, Worker
from stackyard.telemetry import Telemetry
from stackyard_harness.otlp import STATUS_ERROR, MetricPoint, Span, until_exported


@pytest.fixture(scope="module")
def telemetry(exporting_telemetry: Telemetry) -> Telemetry:
    return exporting_telemetry


@pytest.fixture
async def redis(redis_server: Any) -> AsyncIterator[Any]:
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


class Jobs:
    """A queue of its own, its functions, and a worker in this event loop."""

    def __init__(self, redis: Any) -> None:
        retry = RetryPolicy(max_attempts=2, initial_backoff=0.05, max_backoff=0.1, multiplier=2.0, jitter="none")
        self.queue = QueueSettings(name=f"t-{uuid.uuid4().hex[:10]}", retry=retry, visibility_timeout=2.0)
        self.redis = redis
        self.client = JobClient(redis)
        self.functions = FunctionRegistry()

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[Worker]:
        worker = Worker(lambda: self.redis, self.functions, lambda: {self.queue.name: self.queue}, name="w-trace")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await self.client.register_functions(self.queue.name, self.functions)
        try:
            yield worker
        finally:
            stop.set()
            await task

    async def enqueue(self, function: str, payload: Any = None, **fields: Any) -> str:
        await self.client.register_functions(self.queue.name, self.functions)
        request = EnqueueRequest(queue=self.queue.name, function=function, payload=payload, **fields)
        job, _ = await self.client.enqueue(self.queue, request)
        return job.id

    async def wait(self, job_id: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = await self.client.get(job_id)
            if job is not None and job.state in ("completed", "dead"):
                return job.state
            await asyncio.sleep(0.02)
        raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture
def jobs(redis: Any) -> Jobs:
    return Jobs(redis)


# -- reading the collector ------------------------------------------------------------------


async def until(telemetry: Telemetry, found: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    return await until_exported(telemetry.flush, found, what, timeout)


def trace_spans(collector: Any, trace_id: str) -> list[Span]:
    return [s for s in collector.spans() if s.trace_id == trace_id]


def named(items: list[Span], name: str) -> list[Span]:
    return [s for s in items if s.name == name]


# -- tests --------------------------------------------------------------------------------------


async def test_a_job_runs_in_a_consumer_span_under_the_producer_span_of_its_enqueue(
    jobs: Jobs, telemetry: Telemetry, otel_collector: Any
) -> None:
    @jobs.functions.register("echo")
    async def echo(ctx: JobContext, payload: Any) -> Any:
        return payload

    q = jobs.queue.name
    async with jobs.worker():
        with trace.get_tracer("test").start_as_current_span("request") as parent:
            job_id = await jobs.enqueue("echo", {"n": 1})
        assert await jobs.wait(job_id) == "completed"
    trace_id = trace.format_trace_id(parent.get_span_context().trace_id)
    parent_id = trace.format_span_id(parent.get_span_context().span_id)

    found = await until(
        telemetry, lambda: named(trace_spans(otel_collector, trace_id), f"process {q}"), "the consumer span"
    )
    [consumer] = found
    [producer] = named(trace_spans(otel_collector, trace_id), f"send {q}")
    assert producer.kind == "PRODUCER" and producer.parent_id == parent_id
    assert consumer.kind == "CONSUMER" and consumer.parent_id == producer.span_id
    assert producer.attributes == {
        "messaging.system": "stackyard",
        "messaging.destination.name": q,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.message.id": job_id,
    }
    assert consumer.attributes == {
        "messaging.system": "stackyard",
        "messaging.destination.name": q,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.message.id": job_id,
        "stackyard.job.function": "echo",
        "stackyard.job.attempt": 1,
        "stackyard.job.outcome": "completed",
    }
    assert consumer.status_code != STATUS_ERROR


async def test_a_failed_attempt_is_an_error_span_with_its_exception_and_the_retry_continues_the_trace(
    jobs: Jobs, telemetry: Telemetry, otel_collector: Any
) -> None:
    @jobs.functions.register("flaky")
    async def flaky(ctx: JobContext, payload: Any) -> Any:
        if ctx.attempt == 1:
            raise ValueError("the first attempt fails")
        return "ok"

    q = jobs.queue.name
    async with jobs.worker():
        with trace.get_tracer("test").start_as_current_span("request") as parent:
            job_id = await jobs.enqueue("flaky")
        assert await jobs.wait(job_id) == "completed"
    trace_id = trace.format_trace_id(parent.get_span_context().trace_id)

    def both_attempts() -> list[Span] | None:
        found = named(trace_spans(otel_collector, trace_id), f"process {q}")
        return found if len(found) == 2 else None

    attempts = await until(telemetry, both_attempts, "two consumer spans")
    [producer] = named(trace_spans(otel_collector, trace_id), f"send {q}")
    failed, retried = sorted(attempts, key=lambda s: s.attributes["stackyard.job.attempt"])
    assert {failed.parent_id, retried.parent_id} == {producer.span_id}
    assert failed.attributes["stackyard.job.outcome"] == "retried"
    assert failed.attributes["error.type"] == "ValueError"
    assert failed.status_code == STATUS_ERROR
    [event] = failed.events_named("exception")
    assert event.attributes["exception.type"].endswith("ValueError")
    assert event.attributes["exception.message"] == "the first attempt fails"
    assert retried.attributes["stackyard.job.outcome"] == "completed"
    assert retried.status_code != STATUS_ERROR
    assert not retried.events_named("exception")


async def test_a_job_enqueued_outside_any_span_starts_its_own_trace_and_its_jobs_continue_it(
    jobs: Jobs, telemetry: Telemetry, otel_collector: Any
) -> None:
    inner: list[str] = []

    @jobs.functions.register("outer")
    async def outer(ctx: JobContext, payload: Any) -> Any:
        child, _ = await ctx.client.enqueue(jobs.queue, EnqueueRequest(queue=jobs.queue.name, function="inner"))
        inner.append(child.id)
        return child.id

    @jobs.functions.register("inner")
    async def inner_job(ctx: JobContext, payload: Any) -> Any:
        return None

    q = jobs.queue.name
    assert not trace.get_current_span().get_span_context().is_valid
    async with jobs.worker():
        job_id = await jobs.enqueue("outer")
        assert await jobs.wait(job_id) == "completed"
        assert await jobs.wait(inner[0]) == "completed"

    def by_job(message_id: str, name: str) -> list[Span]:
        return [
            s for s in named(otel_collector.spans(), name) if s.attributes.get("messaging.message.id") == message_id
        ]

    [inner_consumer] = await until(telemetry, lambda: by_job(inner[0], f"process {q}"), "the inner job's span")
    [outer_producer] = by_job(job_id, f"send {q}")
    [outer_consumer] = by_job(job_id, f"process {q}")
    [inner_producer] = by_job(inner[0], f"send {q}")
    assert not outer_producer.parent_id, "the first enqueue is the root of a new trace"
    assert outer_consumer.parent_id == outer_producer.span_id
    assert inner_producer.parent_id == outer_consumer.span_id
    assert inner_consumer.parent_id == inner_producer.span_id
    assert len({s.trace_id for s in (outer_producer, outer_consumer, inner_producer, inner_consumer)}) == 1


async def test_the_queue_metrics_arrive_with_the_queue_name(
    jobs: Jobs, telemetry: Telemetry, otel_collector: Any
) -> None:
    @jobs.functions.register("echo")
    async def echo(ctx: JobContext, payload: Any) -> Any:
        return payload

    q = jobs.queue.name
    async with jobs.worker():
        for n in range(3):
            assert await jobs.wait(await jobs.enqueue("echo", n)) == "completed"

        def of_queue(name: str) -> list[MetricPoint]:
            points = [p for p in otel_collector.metric_points() if p.name == name]
            return [p for p in points if p.attributes["messaging.destination.name"] == q]

        sizes = await until(telemetry, lambda: of_queue("stackyard.jobs.queue.size"), "the queue size gauge")
        assert {p.attributes["stackyard.job.state"] for p in sizes} == {"queued", "scheduled", "active", "dead"}

        def outcomes() -> list[MetricPoint]:
            points = [p for p in of_queue("stackyard.jobs.outcomes") if p.value == 3]
            return [p for p in points if p.attributes["stackyard.job.outcome"] == "completed"]

        await until(telemetry, outcomes, "three completed outcomes")
        await until(
            telemetry,
            lambda: [p for p in of_queue("messaging.client.consumed.messages") if p.value == 3],
            "three consumed messages",
        )
        await until(
            telemetry,
            lambda: [p for p in of_queue("messaging.process.duration") if p.value == 3],
            "three process durations",
        )
