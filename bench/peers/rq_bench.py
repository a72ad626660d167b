"""rq: `rq worker`, its default Worker class (forks a work horse per job; rq has no asyncio
mode, and SimpleWorker is documented for tests and platforms without fork);
`queue.enqueue(noop)` per job, one after the other (enqueue_many exists, but one call per
job is the documented normal way)."""

from __future__ import annotations

import sys
from pathlib import Path

import redis
from _common import DONE_KEY, main, redis_url
from rq import Queue, get_current_job

SETTINGS = "rq worker, default Worker (fork per job)"


def noop() -> None:
    job = get_current_job()
    assert job is not None
    job.connection.incr(DONE_KEY)


def worker_argv() -> list[str]:
    return [str(Path(sys.executable).parent / "rq"), "worker", "--url", redis_url(), "default"]


def setup():
    queue = Queue("default", connection=redis.Redis.from_url(redis_url()))

    def enqueue(i: int) -> None:
        queue.enqueue(noop)

    return enqueue


if __name__ == "__main__":
    main("rq_bench")
