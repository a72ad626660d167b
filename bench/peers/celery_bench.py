"""Celery with its Redis broker: `celery -A celery_bench worker -P gevent -c 100`, the pool
its docs give for I/O-bound tasks (the default prefork pool is meant for CPU-bound work and
runs a child process per slot), one process; other settings default (prefetch multiplier 4,
early ack, no result backend); `noop.delay()` per job, one after the other."""

from __future__ import annotations

import sys
from pathlib import Path

import redis
from _common import DONE_KEY, main, redis_url
from celery import Celery

CONCURRENCY = 100
SETTINGS = f"celery worker -P gevent -c {CONCURRENCY}"

app = Celery("celery_bench", broker=redis_url())
counter = redis.Redis.from_url(redis_url())


@app.task(name="noop")
def noop() -> None:
    counter.incr(DONE_KEY)


def worker_argv() -> list[str]:
    celery = str(Path(sys.executable).parent / "celery")
    return [celery, "-A", "celery_bench", "worker", "-P", "gevent", "-c", str(CONCURRENCY), "--loglevel", "WARNING"]


def setup():
    def enqueue(i: int) -> None:
        noop.delay()

    return enqueue


if __name__ == "__main__":
    main("celery_bench")
