"""Jobs with real worker processes (`stackyard-worker`) and the real Redis: nothing is lost
when workers are SIGKILLed or Redis restarts, a step function resumes after its last
completed step, SIGTERM gives running jobs back, schedules fire once per tick with two
replicas, and HTTP-target jobs follow the target's answers."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from stackyard.clients import redis_client
from stackyard.config import RuntimeConfig, credential_key
from stackyard.jobs import EnqueueRequest, JobClient, QueueSettings, queues_from_config
from stackyard.jobs.http_target import verify
from stackyard.resources.jobs import JobQueueSpec, ScheduleSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.process import ManagedProcess, free_port
from stackyard_harness.redis import RedisServer

REPO = Path(__file__).resolve().parents[2]
WORKER = str(Path(sys.executable).parent / "stackyard-worker")
STACK_SPEC = StackSpec.model_validate(
    {"redis": {"urlSecretRef": {"name": "b", "key": "r"}}, "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}}}
)


def job_queue(**spec: Any) -> JobQueueSpec:
    return JobQueueSpec.model_validate({"stackRef": {"name": "demo"}} | spec)


class Workers:
    """A config directory (what the operator would render) and worker processes reading it."""

    def __init__(self, directory: Path, redis_url: str, mongo_url: str) -> None:
        self.directory = directory
        self.redis_url = redis_url
        self.mongo_url = mongo_url  # workers are ready only with MongoDB reachable
        self.generation = 0
        self.processes: list[ManagedProcess] = []
        self.config: RuntimeConfig | None = None

    def apply(
        self,
        queues: dict[str, JobQueueSpec],
        schedules: dict[str, ScheduleSpec] | None = None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.generation += 1
        self.config = RuntimeConfig(
            stack="demo",
            namespace="ns",
            generation=self.generation,
            spec=STACK_SPEC,
            job_queues=queues,
            schedules=schedules or {},
        )
        secrets = {"stack.redis.url": self.redis_url, "stack.mongodb.uri": self.mongo_url} | (credentials or {})
        (self.directory / "credentials.json").write_text(json.dumps(secrets))
        (self.directory / "config.json").write_text(self.config.canonical_json())

    def settings(self, name: str) -> QueueSettings:
        assert self.config is not None
        return queues_from_config(self.config.job_queues)[name]

    def start(self, name: str, grace: float = 25.0) -> ManagedProcess:
        port = free_port()
        env = {
            "STACKYARD_CONFIG_DIR": str(self.directory),
            "STACKYARD_JOB_MODULES": "tests.integration.jobfns",
            "PYTHONPATH": str(REPO),
            "STACKYARD_PORT": str(port),
            "STACKYARD_HOST": "127.0.0.1",
            "STACKYARD_SHUTDOWN_GRACE": str(grace),
            "STACKYARD_STACK": "",
        }
        process = ManagedProcess(name, [WORKER], self.directory / f"{name}.log", env=env)
        self.processes.append(process)
        return self.restart(process)

    @staticmethod
    def restart(process: ManagedProcess) -> ManagedProcess:
        """Start (again), and wait until it is ready: config loaded and Redis answering."""
        port = (process.env or {})["STACKYARD_PORT"]
        process.start().wait_ready(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200, 30, "ready"
        )
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def token(process: ManagedProcess) -> str:
    """The name a worker process holds its leases under."""
    assert process.proc is not None
    return f"{socket.gethostname()}-{process.proc.pid}"


@pytest.fixture
async def redis(redis_server):
    client = redis_client(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def workers(tmp_path, redis_server, mongo_server):
    stack = Workers(tmp_path, redis_server.url, mongo_server.url)
    yield stack
    stack.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def registered(client: JobClient, queue: str, function: str, timeout: float = 15.0) -> None:
    """Until a worker has said it runs `function` on `queue`."""
    deadline = time.monotonic() + timeout
    while function not in await client.functions(queue):
        assert time.monotonic() < deadline, f"no worker registered {function} on {queue}"
        await asyncio.sleep(0.05)


async def until(check, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(interval)


async def in_flight(redis: Any, queue: str, lease: str) -> set[str]:
    """The jobs a worker held (by lease token) at this moment."""
    prefix = f"sy:j:{{{queue}}}:"
    ids = [m.decode() for m in await redis.zrange(prefix + "active", 0, -1)]
    held = set()
    for job_id in ids:
        if await redis.hget(prefix + "job:" + job_id, "lease") == lease.encode():
            held.add(job_id)
    return held


async def test_sigkilled_workers_lose_no_job_and_repeat_only_jobs_in_flight(workers, redis):
    queue = unique("kills")
    workers.apply({queue: job_queue(concurrency=10, visibilityTimeout="1s", retry={"maxAttempts": 20})})
    victim = workers.start("victim")
    workers.start("survivor")
    client = JobClient(redis)
    await registered(client, queue, "tests.record")
    runs = unique("runs")
    settings = workers.settings(queue)
    ids = []
    request = EnqueueRequest(queue=queue, function="tests.record", payload={"key": runs, "sleep": 0.1})
    for _ in range(10):
        jobs = await asyncio.gather(*(client.enqueue(settings, request) for _ in range(200)))
        ids += [job.id for job, _ in jobs]

    exposed: set[str] = set()
    for _ in range(3):
        await asyncio.sleep(1.0)
        lease = token(victim)
        victim.kill()
        exposed |= await in_flight(redis, queue, lease)
        await asyncio.to_thread(workers.restart, victim)

    async def all_done() -> bool:
        return (await client.counts(settings)).counts.completed == 2000

    await until(all_done, 90, "2000 completed jobs")
    counts = (await client.counts(settings)).counts
    assert (counts.queued, counts.scheduled, counts.active, counts.dead) == (0, 0, 0, 0)
    ran = {k.decode(): int(v) for k, v in (await redis.hgetall(runs)).items()}
    assert set(ran) == set(ids), "every job ran"
    repeated = {job_id for job_id, n in ran.items() if n > 1}
    assert exposed, "the kills hit running jobs"
    assert repeated <= exposed, f"jobs ran twice that no killed worker held: {sorted(repeated - exposed)[:5]}"
    assert counts.reclaimed >= len(repeated)


async def test_acknowledged_enqueues_survive_a_redis_crash_with_aof(tools, tmp_path):
    server = RedisServer(tools, tmp_path, appendonly=True, appendfsync="everysec").start()
    client = JobClient(redis_client(server.url))
    try:
        await client.register_functions("default", ["tests.record"])
        settings = QueueSettings()
        jobs = await asyncio.gather(
            *(client.enqueue(settings, EnqueueRequest(function="tests.record", payload=n)) for n in range(500))
        )
        server.kill()  # SIGKILL right after the last acknowledgement
        server.start()
        await client.redis.aclose()
        client = JobClient(redis_client(server.url))
        back = [await client.get(job.id) for job, _ in jobs]
        assert all(j is not None and j.state == "queued" for j in back), "an acknowledged job was lost"
        assert [j.payload for j in back] == list(range(500))
        assert (await client.counts(settings)).counts.queued == 500
    finally:
        await client.redis.aclose()
        server.stop()


async def test_a_killed_step_function_resumes_without_repeating_completed_steps(workers, redis):
    queue = unique("steps")
    workers.apply({queue: job_queue(visibilityTimeout="1s")})
    first = workers.start("first")
    client = JobClient(redis)
    await registered(client, queue, "tests.steps")
    runs = unique("step-runs")
    job, _ = await client.enqueue(
        workers.settings(queue), EnqueueRequest(queue=queue, function="tests.steps", payload={"key": runs, "slow": 3})
    )

    async def in_step_two() -> bool:
        return await redis.hget(runs, "two") == b"1"

    await until(in_step_two, 15, "step two to start")
    first.kill()
    workers.start("second")

    async def finished() -> Any:
        found = await client.get(job.id)
        return found if found and found.state == "completed" else None

    done = await until(finished, 30, "the job to complete on the second worker")
    assert done.result == {"one": "one done", "two": "two done", "three": "three done"}
    ran = {k.decode(): int(v) for k, v in (await redis.hgetall(runs)).items()}
    assert ran == {"one": 1, "two": 2, "three": 1}, "only the step in flight at the kill ran again"
    assert done.errors[0].error.startswith("lease expired")


async def test_sigterm_gives_running_jobs_back_without_spending_an_attempt(workers, redis):
    queue = unique("drain")
    workers.apply({queue: job_queue(visibilityTimeout="5s")})
    leaving = workers.start("leaving", grace=0.5)
    client = JobClient(redis)
    await registered(client, queue, "tests.record")
    runs = unique("runs")
    settings = workers.settings(queue)
    quick, _ = await client.enqueue(
        settings, EnqueueRequest(queue=queue, function="tests.record", payload={"key": runs})
    )
    slow, _ = await client.enqueue(
        settings, EnqueueRequest(queue=queue, function="tests.record", payload={"key": runs, "sleep": 30})
    )

    async def slow_running() -> bool:
        return await redis.hget(runs, slow.id) == b"1"

    await until(slow_running, 15, "the slow job to start")
    started = time.monotonic()
    leaving.stop()
    assert time.monotonic() - started < 5, "the worker waited for its grace period, not for the job"
    back = await client.get(slow.id)
    assert back.state == "queued" and back.attempts == 0
    assert (await client.get(quick.id)).state == "completed"
    workers.start("staying")

    async def running_again() -> bool:
        found = await client.get(slow.id)
        return found is not None and found.state == "active" and found.attempts == 1

    await until(running_again, 15, "the given-back job to run on the other worker")


async def test_a_schedule_on_two_worker_replicas_fires_once_per_tick(workers, redis):
    queue, runs = unique("ticks"), unique("tick-runs")
    schedule = ScheduleSpec.model_validate(
        {
            "stackRef": {"name": "demo"},
            "interval": "1s",
            "job": {"queue": queue, "function": "tests.record", "payload": {"key": runs}},
            "overlapPolicy": "allow",
        }
    )
    workers.apply({queue: job_queue()})
    workers.start("replica-a")
    workers.start("replica-b")
    client = JobClient(redis)
    await registered(client, queue, "tests.record")
    workers.apply({queue: job_queue()}, {unique("every-second"): schedule})
    await asyncio.sleep(8)
    workers.apply({queue: job_queue()})  # the schedule is deleted
    await asyncio.sleep(1.5)
    ran = {k.decode(): int(v) for k, v in (await redis.hgetall(runs)).items()}
    ticks = []
    for job_id in ran:
        job = await client.get(job_id)
        assert job is not None and job.idempotency_key is not None
        ticks.append(int(job.idempotency_key.rsplit(":", 1)[1]))
    ticks.sort()
    assert len(ticks) >= 6, f"only {len(ticks)} ticks in 8 s"
    assert len(set(ticks)) == len(ticks), "a tick ran twice"
    assert all(b - a == 1000 for a, b in itertools.pairwise(ticks)), f"ticks were missed: {ticks}"
    assert set(ran.values()) == {1}


async def test_http_target_jobs_follow_the_answers_of_the_target(workers, redis):
    secret = "whsec_" + "c2VjcmV0LWZvci10ZXN0cw=="
    calls: dict[str, list[float]] = {}
    problems: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            verify(secret, request.headers, body)
        except ValueError as exc:
            problems.append(str(exc))
            return web.Response(status=401)
        name = request.path.strip("/")
        calls.setdefault(name, []).append(time.monotonic())
        if name == "ok":
            return web.json_response({"echo": json.loads(body)})
        if name == "busy" and len(calls[name]) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if name == "busy":
            return web.json_response({"finally": True})
        if name == "missing":
            return web.Response(status=404, text="no such thing")
        if name == "broken":
            return web.Response(status=500, text="it broke")
        await asyncio.sleep(30)  # hang
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        queue = unique("hooks")
        spec = job_queue(
            retry={"maxAttempts": 2, "initialBackoff": "100ms", "maxBackoff": "200ms"},
            httpTarget={
                "allowedUrls": [f"http://127.0.0.1:{port}/"],
                "signingSecretRef": {"name": "hook-secret", "key": "key"},
            },
        )
        workers.apply({queue: spec}, credentials={credential_key("JobQueue", queue, "signingSecret"): secret})
        workers.start("caller")
        client = JobClient(redis)
        settings = workers.settings(queue)
        jobs = {}
        for name in ("ok", "busy", "missing", "broken", "hang"):
            request = EnqueueRequest.model_validate(
                {
                    "queue": queue,
                    "http": {"url": f"http://127.0.0.1:{port}/{name}"},
                    "payload": {"n": name},
                    "timeout": 1,
                }
            )
            jobs[name], _ = await client.enqueue(settings, request)

        async def all_finished() -> dict[str, Any] | None:
            found = {name: await client.get(job.id) for name, job in jobs.items()}
            return found if all(j.state in ("completed", "dead") for j in found.values()) else None

        done = await until(all_finished, 30, "every HTTP-target job to finish")
        assert problems == [], "every request carried a valid signature"
        assert done["ok"].state == "completed" and done["ok"].result == {"status": 200, "body": {"echo": {"n": "ok"}}}
        busy = done["busy"]
        assert busy.state == "completed" and busy.attempts == 2 and "429" in busy.errors[0].error
        assert calls["busy"][1] - calls["busy"][0] >= 0.95, "Retry-After: 1 was honoured"
        assert done["missing"].state == "dead" and done["missing"].attempts == 1, "a 404 is not retried"
        assert "404" in done["missing"].last_error
        assert done["broken"].state == "dead" and done["broken"].attempts == 2, "a 500 is retried"
        hang = done["hang"]
        assert hang.state == "dead" and hang.attempts == 2 and "timed out after 1s" in hang.last_error
        with pytest.raises(Exception, match="not under the allowed URLs"):
            await client.enqueue(
                settings, EnqueueRequest.model_validate({"queue": queue, "http": {"url": "http://127.0.0.2:1/x"}})
            )
    finally:
        await runner.cleanup()


async def test_queue_settings_apply_live_pause_and_resume(workers, redis):
    queue, runs = unique("live"), unique("runs")
    workers.apply({queue: job_queue()})
    workers.start("live")
    client = JobClient(redis)
    await registered(client, queue, "tests.record")
    workers.apply({queue: job_queue(paused=True)})
    await asyncio.sleep(1.5)  # the worker reads the new config within a second
    job, _ = await client.enqueue(
        workers.settings(queue), EnqueueRequest(queue=queue, function="tests.record", payload={"key": runs})
    )
    await asyncio.sleep(1.5)
    assert (await client.get(job.id)).state == "queued", "a paused queue's job waits"
    workers.apply({queue: job_queue(paused=False)})

    async def completed() -> bool:
        found = await client.get(job.id)
        return found is not None and found.state == "completed"

    await until(completed, 10, "the job to run once the queue is resumed")
