"""Dramatiq with its Redis broker: `dramatiq dramatiq_bench --processes 1`, the default
worker otherwise (8 threads; an actor is a plain function, run on those threads);
`noop.send()` per job, one after the other."""

from __future__ import annotations

import sys
from pathlib import Path

import dramatiq
from _common import DONE_KEY, main, redis_url
from dramatiq.brokers.redis import RedisBroker

SETTINGS = "dramatiq --processes 1 (default 8 threads)"

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor
def noop() -> None:
    broker.client.incr(DONE_KEY)


def worker_argv() -> list[str]:
    return [str(Path(sys.executable).parent / "dramatiq"), "dramatiq_bench", "--processes", "1"]


def setup():
    def enqueue(i: int) -> None:
        noop.send()

    return enqueue


if __name__ == "__main__":
    main("dramatiq_bench")
