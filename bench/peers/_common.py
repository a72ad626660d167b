"""What every job-queue script of bench/jobs.py shares: one measurement of one library.

    python bench/peers/<library>_bench.py REDIS_URL N MODE

MODE is one of:
- throughput: FLUSHDB, start one worker process of the library (its own CLI, as its docs
  run it), warm it up with one job, then time from the first of N enqueue calls until the
  no-op jobs have counted N completions (each does INCR bench:done; polled every 2 ms).
- latency: FLUSHDB, no worker; N single enqueue calls one after the other (after 100
  not counted), each timed; p50 and p99.
- memory: FLUSHDB, no worker; Redis `used_memory` before and after N enqueued jobs,
  scaled to bytes per 100,000 queued jobs.

Prints one JSON line on stdout; progress and the worker's log go to stderr. Runs in either
venv (.venv-bench for the peers, .venv for stackyard): only redis-py's sync client here.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
URL_ENV = "BENCH_REDIS_URL"
DONE_KEY = "bench:done"
BATCH = 100  # async libraries: enqueue calls in flight at once (asyncio.gather per batch)
WARMUP = 100  # latency mode: enqueue calls made first and not counted
STALL = 30.0  # throughput mode: give up when no job completes for this long


def redis_url() -> str:
    """The Redis URL of this run (set by main() before the library module is imported)."""
    return os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")


def log(message: str) -> None:
    print(f"    {message}", file=sys.stderr, flush=True)


class WorkerProcess:
    """One worker process of the library, started by its own command in bench/peers."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
        env = os.environ | {"PYTHONPATH": str(HERE), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            argv, cwd=HERE, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def check(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(f"worker {' '.join(self.argv)} exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to its whole process group (forked children too), SIGKILL after 15 s."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # stray children (rq's work horses)
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()
        os.unlink(self.log.name)


def wait_done(client: redis.Redis, worker: WorkerProcess, count: int) -> float:
    """Polls the completion counter until it reaches `count`; the time it was seen there."""
    last, last_change = -1, time.perf_counter()
    while True:
        done = int(client.get(DONE_KEY) or 0)
        now = time.perf_counter()
        if done >= count:
            return now
        if done != last:
            last, last_change = done, now
        elif now - last_change > STALL:
            worker.check()
            raise SystemExit(f"stalled at {done} of {count} jobs for {STALL:.0f} s:\n{worker.tail()}")
        time.sleep(0.002)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Enqueuer:
    """Makes `enqueue(i)` for a library, sync or async, and calls it in each mode's pattern."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.is_async = asyncio.iscoroutinefunction(module.setup)
        self.loop = asyncio.new_event_loop() if self.is_async else None
        self.enqueue: Callable[[int], Any] = self._run(module.setup())

    def _run(self, value: Any) -> Any:
        return self.loop.run_until_complete(value) if self.loop else value

    def many(self, start: int, stop: int) -> None:
        """Enqueue jobs start..stop-1: sync one call after the other; async BATCH at a time."""
        if self.loop:

            async def batches() -> None:
                for b in range(start, stop, BATCH):
                    await asyncio.gather(*(self.enqueue(i) for i in range(b, min(stop, b + BATCH))))

            self.loop.run_until_complete(batches())
        else:
            for i in range(start, stop):
                self.enqueue(i)

    def timed_one_by_one(self, start: int, stop: int) -> list[float]:
        """Seconds taken by each single enqueue call, made one after the other."""
        if self.loop:

            async def timed() -> list[float]:
                times = []
                for i in range(start, stop):
                    t0 = time.perf_counter()
                    await self.enqueue(i)
                    times.append(time.perf_counter() - t0)
                return times

            return self.loop.run_until_complete(timed())
        times = []
        for i in range(start, stop):
            t0 = time.perf_counter()
            self.enqueue(i)
            times.append(time.perf_counter() - t0)
        return times

    def close(self) -> None:
        teardown: Callable[[], Awaitable[None] | None] | None = getattr(self.module, "teardown", None)
        if teardown:
            self._run(teardown())
        if self.loop:
            self.loop.close()


def throughput(module: ModuleType, client: redis.Redis, count: int) -> dict[str, Any]:
    worker = WorkerProcess(module.worker_argv())
    enqueuer = Enqueuer(module)
    try:
        t0 = time.perf_counter()
        enqueuer.many(0, 1)
        wait_done(client, worker, 1)
        log(f"worker ready, first job done in {time.perf_counter() - t0:.1f} s")
        client.delete(DONE_KEY)
        t0 = time.perf_counter()
        enqueuer.many(0, count)
        enqueued = time.perf_counter()
        finished = wait_done(client, worker, count)
        worker.check()
    finally:
        enqueuer.close()
        worker.stop()
    seconds = finished - t0
    return {"jobs": count, "seconds": seconds, "jobs_per_s": count / seconds, "enqueue_s": enqueued - t0}


def latency(module: ModuleType, client: redis.Redis, count: int) -> dict[str, Any]:
    enqueuer = Enqueuer(module)
    try:
        enqueuer.timed_one_by_one(0, WARMUP)
        times = enqueuer.timed_one_by_one(WARMUP, WARMUP + count)
    finally:
        enqueuer.close()
    return {"calls": count, "p50_ms": percentile(times, 50) * 1e3, "p99_ms": percentile(times, 99) * 1e3}


def memory(module: ModuleType, client: redis.Redis, count: int) -> dict[str, Any]:
    """Read with none of the library's connections open, before and after: Redis counts
    each client's buffers in used_memory, and the async libraries open up to BATCH."""
    before = int(client.info("memory")["used_memory"])
    enqueuer = Enqueuer(module)
    try:
        enqueuer.many(0, count)
    finally:
        enqueuer.close()
    after = int(client.info("memory")["used_memory"])
    return {"queued": count, "bytes_per_100k": (after - before) * 100_000 / count, "keys": client.dbsize()}


MODES = {"throughput": throughput, "latency": latency, "memory": memory}


def main(module_name: str) -> None:
    """Runs one mode for the library module `module_name` (a file beside this one).

    The module is imported by name after REDIS_URL is in the environment, as its worker
    process imports it, so that the two agree on every name (tasks, queues, settings).
    The module has `SETTINGS` (what the table prints), `worker_argv()` (its worker's
    command line, run in bench/peers) and `setup()`, sync or async, which returns
    `enqueue(i)`: one enqueue call of the no-op job; and optionally `teardown()`.
    """
    url, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode not in MODES:
        raise SystemExit(f"mode {mode!r}: one of {', '.join(MODES)}")
    os.environ[URL_ENV] = url
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(module_name)
    client = redis.Redis.from_url(url)
    client.flushdb()
    result = MODES[mode](module, client, count)
    client.flushdb()
    client.close()
    head = {"library": module_name.removesuffix("_bench"), "mode": mode, "settings": module.SETTINGS}
    print(json.dumps(head | result))
