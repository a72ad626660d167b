"""A worker process next to the api, for the api's tests: a Worker (and, when asked, a
Scheduler) on its own event loop in a thread, against the tests' Redis."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from stackyard.clients import redis_client
from stackyard.config import RuntimeConfig
from stackyard.jobs import FunctionRegistry, JobClient, Worker, queues_from_config
from stackyard.jobs.scheduler import Scheduler


class BackgroundWorker:
    """`with BackgroundWorker(redis_url, config, functions):` runs `functions` from the
    config's JobQueues (registered on the first one) until the block ends; `schedules` also
    runs the config's Schedules; `before_stop` is called first on the way out (to release
    jobs that wait on the test)."""

    def __init__(
        self,
        redis_url: str,
        config: RuntimeConfig,
        functions: FunctionRegistry,
        *,
        name: str | None = None,
        schedules: bool = False,
        before_stop: Callable[[], object] | None = None,
    ) -> None:
        self.redis_url, self.config, self.functions = redis_url, config, functions
        self.name, self.schedules, self.before_stop = name, schedules, before_stop
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> BackgroundWorker:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self.redis = redis_client(self.redis_url)
        self.stop = asyncio.Event()
        queues = lambda: queues_from_config(self.config.job_queues)  # noqa: E731
        named = {"name": self.name} if self.name else {}
        worker = Worker(lambda: self.redis, self.functions, queues, **named)
        await JobClient(self.redis).register_functions(next(iter(self.config.job_queues)), self.functions)
        self.tasks = [asyncio.create_task(worker.run(self.stop))]
        if self.schedules:
            scheduler = Scheduler(lambda: JobClient(self.redis), lambda: self.config.schedules, queues)
            self.tasks.append(asyncio.create_task(scheduler.run(self.stop)))

    async def _stop(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
        await self.redis.aclose()

    def __exit__(self, *exc: object) -> None:
        if self.before_stop is not None:
            self.before_stop()
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
