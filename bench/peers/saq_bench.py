"""saq: `saq saq_bench.settings`, the worker's defaults (concurrency=10, one process);
`await queue.enqueue("noop")` per job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from _common import DONE_KEY, main, redis_url
from saq import Queue

SETTINGS = "saq CLI worker, defaults (concurrency=10)"


async def noop(ctx: dict[str, Any]) -> None:
    await ctx["worker"].queue.redis.incr(DONE_KEY)


settings = {"queue": Queue.from_url(redis_url()), "functions": [noop]}


def worker_argv() -> list[str]:
    return [str(Path(sys.executable).parent / "saq"), "saq_bench.settings"]


queue: Any = None


async def setup():
    global queue
    queue = Queue.from_url(redis_url())
    await queue.connect()

    async def enqueue(i: int) -> None:
        await queue.enqueue("noop")

    return enqueue


async def teardown() -> None:
    if queue is not None:
        await queue.disconnect()


if __name__ == "__main__":
    main("saq_bench")
