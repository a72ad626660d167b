"""The queue against the real Redis, with a Worker running in the test's event loop:
what a user of the SDK sees (states, results, retries, dead letters, idempotency, cancel,
priorities, delays, limits, steps and events)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from stackyard.clients import redis_client
from stackyard.jobs import (
    EnqueueRequest,
    FunctionRegistry,
    JobClient,
    JobContext,
    NonRetryable,
    QueueSettings,
    RetryAfter,
    RetryPolicy,
    Worker,
)
from stackyard.jobs.contract import DeadLetterFilter
from stackyard.problems import Conflict, PayloadTooLarge, UnprocessableContent

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.2, multiplier=2.0, jitter="none")


@pytest.fixture
async def redis(redis_server):
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def queue() -> QueueSettings:
    return QueueSettings(name=f"q-{uuid.uuid4().hex[:10]}", retry=FAST_RETRY, visibility_timeout=2.0)


class Harness:
    """A queue, its functions and workers in this process."""

    def __init__(self, redis: Any, queue: QueueSettings) -> None:
        self.redis = redis
        self.queue = queue
        self.client = JobClient(redis)
        self.functions = FunctionRegistry()
        self.calls: list[tuple[str, Any]] = []

    def settings(self) -> dict[str, QueueSettings]:
        return {self.queue.name: self.queue}

    @asynccontextmanager
    async def worker(self, name: str = "w1", **kwargs: Any) -> AsyncIterator[Worker]:
        worker = Worker(lambda: self.redis, self.functions, self.settings, name=name, **kwargs)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await self.client.register_functions(self.queue.name, self.functions)
        try:
            yield worker
        finally:
            stop.set()
            await task

    async def enqueue(self, function: str, payload: Any = None, **fields: Any):
        await self.client.register_functions(self.queue.name, self.functions)  # as a worker would have
        job, _ = await self.client.enqueue(
            self.queue, EnqueueRequest(queue=self.queue.name, function=function, payload=payload, **fields)
        )
        return job

    async def wait(self, job_id: str, states=("completed", "dead", "cancelled"), timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = await self.client.get(job_id)
            if job is not None and job.state in states:
                return job
            await asyncio.sleep(0.02)
        raise AssertionError(f"job {job_id} did not reach {states}: {await self.client.get(job_id)}")


@pytest.fixture
async def jobs(redis, queue) -> Harness:
    harness = Harness(redis, queue)
    await harness.client.register_functions(queue.name, ["echo"])
    return harness


def register(jobs: Harness, name: str) -> Callable[[Any], Any]:
    return jobs.functions.register(name)


async def test_a_job_runs_and_its_result_and_timings_are_kept(jobs):
    @register(jobs, "echo")
    async def echo(ctx: JobContext, payload: Any) -> Any:
        return {"got": payload, "attempt": ctx.attempt}

    async with jobs.worker():
        job = await jobs.enqueue("echo", {"n": 1})
        assert job.state == "queued" and job.attempts == 0
        done = await jobs.wait(job.id)
    assert done.state == "completed"
    assert done.result == {"got": {"n": 1}, "attempt": 1}
    assert done.attempts == 1 and done.started_at and done.finished_at >= done.started_at
    counts = (await jobs.client.counts(jobs.queue)).counts
    assert counts.completed == 1 and counts.queued == 0 and counts.active == 0


async def test_plain_functions_run_in_a_thread(jobs):
    @register(jobs, "sync")
    def add(ctx: JobContext, payload: Any) -> int:
        time.sleep(0.05)  # would block the loop if it ran there
        return payload["a"] + payload["b"]

    async with jobs.worker():
        job = await jobs.enqueue("sync", {"a": 2, "b": 3})
        assert (await jobs.wait(job.id)).result == 5


async def test_unknown_function_is_refused_at_enqueue(jobs):
    with pytest.raises(UnprocessableContent, match=r"no worker runs function 'nope'.*known there: echo"):
        await jobs.enqueue("nope")


async def test_payload_over_the_queue_limit_is_refused(jobs):
    jobs.queue = replace(jobs.queue, max_payload_bytes=100)
    with pytest.raises(PayloadTooLarge, match="at most 100"):
        await jobs.enqueue("echo", "x" * 200)


async def test_failures_retry_with_backoff_then_land_in_dead_letters_with_their_history(jobs):
    seen: list[float] = []

    @register(jobs, "flaky")
    async def flaky(ctx: JobContext, payload: Any) -> None:
        seen.append(time.monotonic())
        raise RuntimeError(f"boom {ctx.attempt}")

    async with jobs.worker():
        job = await jobs.enqueue("flaky")
        dead = await jobs.wait(job.id)
    assert dead.state == "dead" and dead.attempts == 3
    assert [e.error for e in dead.errors] == ["RuntimeError: boom 1", "RuntimeError: boom 2", "RuntimeError: boom 3"]
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    # jitter none: 50 ms then 100 ms (the scheduler may add a little, never take away)
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095, gaps
    page = await jobs.client.dead_page(jobs.queue.name)
    assert [j.id for j in page.items] == [job.id]
    counts = (await jobs.client.counts(jobs.queue)).counts
    assert (counts.dead, counts.failed, counts.retried) == (1, 3, 2)


async def test_non_retryable_errors_skip_the_remaining_attempts(jobs):
    @register(jobs, "bad-input")
    async def bad(ctx: JobContext, payload: Any) -> None:
        raise NonRetryable("order 7 does not exist")

    async with jobs.worker():
        dead = await jobs.wait((await jobs.enqueue("bad-input")).id)
    assert dead.state == "dead" and dead.attempts == 1
    assert dead.last_error == "NonRetryable: order 7 does not exist"


async def test_retry_after_sets_the_next_attempt_time(jobs):
    @register(jobs, "throttled")
    async def throttled(ctx: JobContext, payload: Any) -> str:
        if ctx.attempt == 1:
            raise RetryAfter("429 from the API", seconds=0.5)
        return "ok"

    async with jobs.worker():
        job = await jobs.enqueue("throttled")
        retrying = await jobs.wait(job.id, states=("scheduled",))
        assert retrying.run_at is not None
        assert 0.3 < (retrying.run_at.timestamp() - time.time()) <= 0.6
        assert (await jobs.wait(job.id)).result == "ok"


async def test_dead_letters_replay_one_by_function_and_all_then_purge(jobs):
    fail = {"on": True}

    @register(jobs, "a")
    @register(jobs, "b")
    async def sometimes(ctx: JobContext, payload: Any) -> str:
        if fail["on"]:
            raise NonRetryable("not yet")
        return "fine"

    async with jobs.worker():
        a1, a2, b1 = [await jobs.enqueue(f) for f in ("a", "a", "b")]
        for job in (a1, a2, b1):
            await jobs.wait(job.id)
        fail["on"] = False
        replayed = await jobs.client.replay(jobs.queue.name, DeadLetterFilter(ids=[a1.id]))
        assert replayed == [a1.id]
        assert (await jobs.wait(a1.id)).state == "completed"
        assert await jobs.client.replay(jobs.queue.name, DeadLetterFilter(function="b")) == [b1.id]
        done = await jobs.wait(b1.id)
        assert done.state == "completed" and done.errors[0].error == "NonRetryable: not yet"
    assert (await jobs.client.counts(jobs.queue)).counts.dead == 1
    assert await jobs.client.purge(jobs.queue.name, DeadLetterFilter(all=True)) == [a2.id]
    assert await jobs.client.get(a2.id) is None
    assert (await jobs.client.dead_page(jobs.queue.name)).items == []


async def test_dead_letter_pages_are_newest_first_and_complete(jobs):
    @register(jobs, "doomed")
    async def doomed(ctx: JobContext, payload: Any) -> None:
        raise NonRetryable("no")

    async with jobs.worker():
        ids = [(await jobs.enqueue("doomed", i)).id for i in range(7)]
        for job_id in ids:
            await jobs.wait(job_id)
    seen, cursor = [], None
    while True:
        page = await jobs.client.dead_page(jobs.queue.name, limit=3, cursor=cursor)
        seen += [j.id for j in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(ids) and len(seen) == 7


async def test_the_same_idempotency_key_returns_the_first_job_and_enqueues_nothing(jobs):
    first = await jobs.enqueue("echo", 1, idempotency_key="order-7")
    again, created = await jobs.client.enqueue(
        jobs.queue, EnqueueRequest(queue=jobs.queue.name, function="echo", payload=2, idempotency_key="order-7")
    )
    assert not created and again.id == first.id and again.payload == 1
    other = await jobs.enqueue("echo", 3, idempotency_key="order-8")
    assert other.id != first.id
    assert (await jobs.client.counts(jobs.queue)).counts.queued == 2


async def test_priorities_run_higher_first_then_in_order(jobs):
    order: list[int] = []
    all_ran = asyncio.Event()

    @register(jobs, "record")
    async def record(ctx: JobContext, payload: int) -> None:
        order.append(payload)
        if len(order) == 5:
            all_ran.set()

    jobs.queue = replace(jobs.queue, concurrency=1)
    await jobs.client.register_functions(jobs.queue.name, ["record"])
    for n, priority in [(1, 0), (2, 5), (3, 0), (4, 9), (5, 5)]:
        await jobs.enqueue("record", n, priority=priority)
    async with jobs.worker():
        await asyncio.wait_for(all_ran.wait(), 5)
    assert order == [4, 2, 5, 1, 3]


async def test_a_delayed_job_waits_for_its_time(jobs):
    started: list[float] = []

    @register(jobs, "later")
    async def later(ctx: JobContext, payload: Any) -> None:
        started.append(time.time())

    async with jobs.worker():
        t0 = time.time()
        job = await jobs.enqueue("later", delay=0.6)
        assert job.state == "scheduled"
        await jobs.wait(job.id)
    assert started[0] - t0 >= 0.55


async def test_a_job_over_its_timeout_is_stopped_and_retried(jobs):
    @register(jobs, "slow")
    async def slow(ctx: JobContext, payload: Any) -> str:
        if ctx.attempt == 1:
            await asyncio.sleep(5)
        return "second time lucky"

    async with jobs.worker():
        done = await jobs.wait((await jobs.enqueue("slow", timeout=0.2)).id)
    assert done.result == "second time lucky"
    assert done.errors[0].error == "TimeoutError: timed out after 0.2s"


async def test_cancel_a_queued_job_and_a_running_one(jobs):
    running = asyncio.Event()

    @register(jobs, "long")
    async def long(ctx: JobContext, payload: Any) -> None:
        running.set()
        await asyncio.sleep(30)

    queued = await jobs.enqueue("echo", delay=60)
    cancelled = await jobs.client.cancel(queued.id, jobs.queue)
    assert cancelled.state == "cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        await jobs.client.cancel(queued.id, jobs.queue)

    jobs.queue = replace(jobs.queue, visibility_timeout=0.3)  # heartbeat every 0.1 s
    async with jobs.worker():
        job = await jobs.enqueue("long")
        await asyncio.wait_for(running.wait(), 5)
        asking = await jobs.client.cancel(job.id, jobs.queue)
        assert asking.state == "active" and asking.cancel_requested
        assert (await jobs.wait(job.id, timeout=5)).state == "cancelled"


async def test_concurrency_per_worker_and_global_cap(jobs):
    now_running, peak = 0, 0

    @register(jobs, "busy")
    async def busy(ctx: JobContext, payload: Any) -> None:
        nonlocal now_running, peak
        now_running += 1
        peak = max(peak, now_running)
        await asyncio.sleep(0.05)
        now_running -= 1

    jobs.queue = replace(jobs.queue, concurrency=4, global_concurrency=3)
    ids = [(await jobs.enqueue("busy")).id for _ in range(12)]
    async with jobs.worker("w1"), jobs.worker("w2"):
        for job_id in ids:
            await jobs.wait(job_id)
    assert peak == 3


async def test_rate_limit_spreads_starts_over_windows(jobs):
    starts: list[float] = []

    @register(jobs, "tick")
    async def tick(ctx: JobContext, payload: Any) -> None:
        starts.append(time.monotonic())

    jobs.queue = replace(jobs.queue, rate_limit=(3, 0.5))
    ids = [(await jobs.enqueue("tick")).id for _ in range(7)]
    async with jobs.worker():
        for job_id in ids:
            await jobs.wait(job_id)
    # 7 jobs at 3 per half second need at least two window changes
    assert starts[-1] - starts[0] >= 0.5


async def test_a_stopping_worker_gives_unfinished_jobs_back_without_counting_an_attempt(jobs):
    started = asyncio.Event()

    @register(jobs, "stubborn")
    async def stubborn(ctx: JobContext, payload: Any) -> str:
        started.set()
        await asyncio.sleep(30)
        return "never"

    async with jobs.worker(shutdown_grace=0.2):
        job = await jobs.enqueue("stubborn")
        await asyncio.wait_for(started.wait(), 5)
    back = await jobs.client.get(job.id)
    assert back.state == "queued" and back.attempts == 0


async def test_a_step_function_resumes_after_its_last_completed_step(jobs):
    runs: list[str] = []

    @register(jobs, "steps")
    async def steps(ctx: JobContext, payload: Any) -> dict:
        async def charge() -> str:
            runs.append("charge")
            return "ch_1"

        async def ship(charge_id: str) -> str:
            runs.append("ship")
            if ctx.attempt == 1:
                raise RuntimeError("carrier down")
            return f"shipped {charge_id}"

        charge_id = await ctx.step("charge", charge)
        shipped = await ctx.step("ship", ship, charge_id)
        return {"charge": charge_id, "ship": shipped}

    async with jobs.worker():
        done = await jobs.wait((await jobs.enqueue("steps")).id)
    assert done.result == {"charge": "ch_1", "ship": "shipped ch_1"}
    assert runs == ["charge", "ship", "ship"]
    assert done.steps == {"charge": "ch_1", "ship": "shipped ch_1"}


async def test_a_durable_sleep_frees_the_worker_and_counts_no_attempt(jobs):
    @register(jobs, "nap")
    async def nap(ctx: JobContext, payload: Any) -> int:
        await ctx.sleep("rest", 0.5)
        return ctx.attempt

    async with jobs.worker():
        job = await jobs.enqueue("nap")
        sleeping = await jobs.wait(job.id, states=("scheduled",))
        assert sleeping.attempts == 0
        done = await jobs.wait(job.id)
    assert done.result == 1 and (done.finished_at - done.created_at).total_seconds() >= 0.45


async def test_wait_for_event_resumes_on_a_matching_event_or_times_out(jobs):
    @register(jobs, "approval")
    async def approval(ctx: JobContext, payload: Any) -> Any:
        return await ctx.wait_for_event(
            "ok", "order.approved", timeout=payload["timeout"], match={"order": payload["order"]}
        )

    async with jobs.worker():
        waiting = await jobs.enqueue("approval", {"timeout": 30, "order": 7})
        timing_out = await jobs.enqueue("approval", {"timeout": 0.4, "order": 9})
        await jobs.wait(waiting.id, states=("scheduled",))
        assert await jobs.client.send_event("order.approved", {"order": 8}) == 0
        assert await jobs.client.send_event("order.approved", {"order": 7, "by": "ana"}) == 1
        assert (await jobs.wait(waiting.id)).result == {"order": 7, "by": "ana"}
        assert (await jobs.wait(timing_out.id)).result is None


async def test_workers_report_opentelemetry_metrics_per_queue_function_and_outcome(jobs):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from stackyard.jobs.metrics import JobMetrics

    reader = InMemoryMetricReader()
    metrics = JobMetrics(MeterProvider(metric_readers=[reader]).get_meter("test"))

    @register(jobs, "good")
    async def good(ctx: JobContext, payload: Any) -> None:
        return None

    @register(jobs, "bad")
    async def bad(ctx: JobContext, payload: Any) -> None:
        raise NonRetryable("no")

    async with jobs.worker(metrics=metrics):
        for job_id in [(await jobs.enqueue(f)).id for f in ("good", "good", "bad")]:
            await jobs.wait(job_id)
    metrics.sizes(jobs.queue.name, (await jobs.client.counts(jobs.queue)).counts)
    points: dict[str, list[Any]] = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    outcomes = {
        (p.attributes["stackyard.job.function"], p.attributes["stackyard.job.outcome"]): p.value
        for p in points["stackyard.jobs.outcomes"]
    }
    assert outcomes == {("good", "completed"): 2, ("bad", "dead"): 1}
    durations = {p.attributes["stackyard.job.function"]: p.count for p in points["messaging.process.duration"]}
    assert durations == {"good": 2, "bad": 1}
    assert all(
        p.attributes["messaging.destination.name"] == jobs.queue.name for p in points["messaging.process.duration"]
    )
    assert sum(p.value for p in points["messaging.client.consumed.messages"]) == 3
    sizes = {p.attributes["stackyard.job.state"]: p.value for p in points["stackyard.jobs.queue.size"]}
    assert sizes == {"queued": 0, "scheduled": 0, "active": 0, "dead": 1}


async def test_a_queue_runs_on_a_redis_cluster(redis_cluster):
    """Each queue's keys share one hash slot, so its scripts run atomically on one node."""
    cluster = redis_client(redis_cluster.stackyard_url)
    queues = [QueueSettings(name=f"c{n}-{uuid.uuid4().hex[:6]}", retry=FAST_RETRY) for n in range(3)]
    functions = FunctionRegistry()

    @functions.register("double")
    async def double(ctx: JobContext, payload: int) -> int:
        if ctx.attempt == 1 and payload == 0:
            raise RuntimeError("first time fails")
        return payload * 2

    client = JobClient(cluster)
    for queue in queues:
        await client.register_functions(queue.name, functions)
    worker = Worker(lambda: cluster, functions, lambda: {q.name: q for q in queues})
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        jobs = [
            (await client.enqueue(q, EnqueueRequest(queue=q.name, function="double", payload=n)))[0]
            for q in queues
            for n in range(5)
        ]
        deadline = time.monotonic() + 10
        results = {}
        while len(results) < len(jobs):
            assert time.monotonic() < deadline, "jobs did not finish on the cluster"
            for job in jobs:
                found = await client.get(job.id)
                if found is not None and found.state == "completed":
                    results[job.id] = found.result
            await asyncio.sleep(0.05)
        assert sorted(results.values()) == sorted(2 * n for _ in queues for n in range(5))
    finally:
        stop.set()
        await running
        await cluster.aclose()


@pytest.mark.parametrize("after", [0.0, 0.05, 0.5])
async def test_a_worker_stopped_right_after_it_started_stops_at_once(jobs, after):
    stop = asyncio.Event()
    running = asyncio.create_task(Worker(lambda: jobs.redis, jobs.functions, jobs.settings).run(stop))
    await asyncio.sleep(after)
    stop.set()
    await asyncio.wait_for(running, 3)


async def test_running_and_scheduled_jobs_are_listed_in_time_order_page_by_page(jobs):
    release = asyncio.Event()

    @register(jobs, "hold")
    async def hold(ctx: JobContext, payload: Any) -> None:
        await release.wait()

    later = [(await jobs.enqueue("hold", i, delay=60 + i)).id for i in range(5)]
    async with jobs.worker():
        running = [(await jobs.enqueue("hold", "now")).id for _ in range(2)]
        for job_id in running:
            await jobs.wait(job_id, ("active",))
        page = await jobs.client.running_page(jobs.queue.name)
        assert sorted(job.id for job, _ in page.items) == sorted(running) and page.next_cursor is None
        assert all(job.state == "active" and lease > job.started_at for job, lease in page.items)
        seen, cursor = [], None
        while True:
            scheduled = await jobs.client.scheduled_page(jobs.queue.name, limit=2, cursor=cursor)
            seen += [(job.id, at) for job, at in scheduled.items]
            if scheduled.next_cursor is None:
                break
            cursor = scheduled.next_cursor
        assert [i for i, _ in seen] == later  # the soonest first, each once
        for job_id, at in seen:
            assert (await jobs.client.get(job_id)).run_at == at
        release.set()
    with pytest.raises(UnprocessableContent):
        await jobs.client.scheduled_page(jobs.queue.name, cursor="nope")


async def test_a_dead_letter_replayed_with_another_payload_runs_with_it(jobs):
    @register(jobs, "needs")
    async def needs(ctx: JobContext, payload: Any) -> Any:
        if "userId" not in payload:
            raise NonRetryable("payload has no userId")
        return payload["userId"]

    async with jobs.worker():
        dead = await jobs.wait((await jobs.enqueue("needs", {})).id)
        assert dead.state == "dead"
        assert await jobs.client.replay_changed(jobs.queue.name, dead.id, {"userId": "u1"})
        done = await jobs.wait(dead.id)
        assert done.state == "completed" and done.result == "u1" and done.payload == {"userId": "u1"}
        assert [e.error for e in done.errors] == ["NonRetryable: payload has no userId"]
        assert not await jobs.client.replay_changed(jobs.queue.name, dead.id, {"userId": "u2"})  # not dead now
    assert not await jobs.client.replay_changed("elsewhere", dead.id, {})
    assert (await jobs.client.get(dead.id)).payload == {"userId": "u1"}
