"""stackyard: one process running `Worker.run` (as stackyard-worker does, plain asyncio),
the `default` queue with its default QueueSettings (concurrency=10, as arq's max_jobs and
saq's concurrency); `await client.enqueue(settings, EnqueueRequest(function="noop"))` per
job. Runs in the main venv (.venv), not .venv-bench:

    .venv/bin/python bench/peers/stackyard_bench.py REDIS_URL N MODE
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from _common import DONE_KEY, main, redis_url
from stackyard.clients import redis_client
from stackyard.jobs import EnqueueRequest, FunctionRegistry, JobClient, JobContext, QueueSettings, Worker

SETTINGS = "Worker, default QueueSettings (concurrency=10)"
QUEUE = QueueSettings(name="default")

functions = FunctionRegistry()


@functions.register("noop")
async def noop(ctx: JobContext, payload: Any) -> None:
    await ctx.client.redis.incr(DONE_KEY)


async def run_worker() -> None:
    redis = redis_client(redis_url())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(lambda: redis, functions, lambda: {QUEUE.name: QUEUE}, name="bench")
    await worker.run(stop)
    await redis.aclose()


def worker_argv() -> list[str]:
    return [sys.executable, "-m", "stackyard_bench", "worker"]


client: JobClient | None = None


async def setup():
    global client
    client = JobClient(redis_client(redis_url()))
    # An enqueue checks that some worker runs the function; without one (latency, memory)
    # the registration a worker would write is written here.
    await client.register_functions(QUEUE.name, functions)

    async def enqueue(i: int) -> None:
        await client.enqueue(QUEUE, EnqueueRequest(function="noop"))

    return enqueue


async def teardown() -> None:
    if client is not None:
        await client.redis.aclose()


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        asyncio.run(run_worker())
    else:
        main("stackyard_bench")
