"""arq: `arq arq_bench.WorkerSettings`, the worker's defaults (max_jobs=10, poll_delay=0.5 s,
keep_result=3600 s, INFO log line per job); `await pool.enqueue_job("noop")` per job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from _common import DONE_KEY, main, redis_url
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

SETTINGS = "arq CLI worker, defaults (max_jobs=10, poll_delay=0.5s)"


async def noop(ctx: dict[str, Any]) -> None:
    await ctx["redis"].incr(DONE_KEY)


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(redis_url())


def worker_argv() -> list[str]:
    return [str(Path(sys.executable).parent / "arq"), "arq_bench.WorkerSettings"]


pool: ArqRedis | None = None


async def setup():
    global pool
    pool = await create_pool(WorkerSettings.redis_settings)

    async def enqueue(i: int) -> None:
        await pool.enqueue_job("noop")

    return enqueue


async def teardown() -> None:
    if pool is not None:
        await pool.aclose()


if __name__ == "__main__":
    main("arq_bench")
