"""Worker: runs the jobs of every queue it is given, at least once each.

One asyncio process, one lane per queue:
- a taker asks Redis for as many jobs as the lane has free slots (one DEQUEUE script
  call, which also promotes due scheduled jobs and reclaims the jobs of dead workers); when
  there are none it blocks on the queue's wake list until an enqueue or the next due time;
- each job runs in its own task under the job's timeout;
- results are acknowledged in batches: whatever finished while the previous batch was on the
  wire goes out in the next COMPLETE call (one round trip for many jobs under load, no added
  latency when idle);
- a heartbeat extends the leases of running jobs every third of the visibility timeout and
  picks up cancel requests.

Stopping (SIGTERM): no new jobs are taken; running ones get `shutdown_grace` seconds to
finish; the rest are cancelled and given back to their queue at once, their attempt not
counted. A worker killed outright (SIGKILL, a lost node) stops heartbeating: its jobs' leases
run out and any worker takes them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from ..clients import AnyRedis
from .backoff import after_failure
from .context import JobContext, Suspend
from .errors import NonRetryable, RetryAfter
from .metrics import JobMetrics, job_metrics
from .registry import FunctionRegistry
from .settings import WEBHOOKS_QUEUE, QueueSettings
from .store import HTTP_KIND, Claimed, JobClient
from .tracing import processed, processing

if TYPE_CHECKING:
    from ..notify.events import EventSink

log = logging.getLogger(__name__)

REGISTER_EVERY = 60.0
SIZES_EVERY = 15.0
CONFIG_POLL = 1.0


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class _Running:
    job: Claimed
    task: asyncio.Task[None]
    cancel_requested: bool = False


@dataclass
class _Lane:
    name: str
    inflight: dict[str, _Running] = field(default_factory=dict)
    done: list[tuple[str, bytes, float]] = field(default_factory=list)
    flush: asyncio.Event = field(default_factory=asyncio.Event)
    slot: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Worker:
    def __init__(
        self,
        redis: Callable[[], AnyRedis],
        functions: FunctionRegistry,
        queues: Callable[[], Mapping[str, QueueSettings]],
        *,
        name: str | None = None,
        secrets: Callable[[str], str | None] = lambda key: None,
        only: set[str] | None = None,
        shutdown_grace: float = 25.0,
        metrics: JobMetrics | None = None,
        events: EventSink | None = None,
    ) -> None:
        self._redis = redis
        self.functions = functions
        self._queues = queues
        self.name = name or default_worker_name()
        self._secrets = secrets
        self._only = only
        self.shutdown_grace = shutdown_grace
        self._lanes: dict[str, _Lane] = {}
        self._registered: set[str] = set()
        self._stopped = asyncio.Event()
        self._done = asyncio.Event()
        self._stopping = False
        self._http: httpx.AsyncClient | None = None
        self.metrics = metrics or job_metrics()
        self.events = events
        """Where job.completed and job.dead go (platform events; not for the webhooks queue's own jobs)."""

    @property
    def client(self) -> JobClient:
        return JobClient(self._redis())

    def settings(self, queue: str) -> QueueSettings | None:
        return self._queues().get(queue)

    def _wanted_queues(self) -> set[str]:
        names = set(self._queues())
        return names & self._only if self._only is not None else names

    # -- the whole worker --------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._http = httpx.AsyncClient(follow_redirects=False)
        background = [
            asyncio.create_task(self._heartbeats(), name="heartbeat"),
            asyncio.create_task(self._registrations(), name="register functions"),
            asyncio.create_task(self._queue_sizes(), name="queue sizes"),
        ]
        log.info("worker %s runs %d functions", self.name, len(self.functions))
        try:
            while not stop.is_set():
                self._sync_lanes()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), CONFIG_POLL)
        finally:
            await self._shutdown()
            self._done.set()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._http.aclose()

    def _sync_lanes(self) -> None:
        wanted = self._wanted_queues()
        for name in wanted - set(self._lanes):
            lane = _Lane(name)
            lane.tasks = [
                asyncio.create_task(self._take_loop(lane), name=f"take {name}"),
                asyncio.create_task(self._ack_loop(lane), name=f"ack {name}"),
            ]
            self._lanes[name] = lane
            log.info("worker %s consumes queue %s", self.name, name)
        for name in set(self._lanes) - wanted:
            lane = self._lanes[name]
            if not lane.inflight and not lane.done:
                for task in lane.tasks:
                    task.cancel()
                del self._lanes[name]
                self.metrics.forget(name)
                log.info("worker %s left queue %s (its JobQueue is gone)", self.name, name)

    async def _shutdown(self) -> None:
        self._stopping = True
        self._stopped.set()
        for lane in self._lanes.values():
            lane.slot.set()
        running = [r.task for lane in self._lanes.values() for r in lane.inflight.values()]
        if running:
            log.info(
                "worker %s stopping: %d jobs running, waiting up to %.0fs", self.name, len(running), self.shutdown_grace
            )
            _, pending = await asyncio.wait(running, timeout=self.shutdown_grace)
            for task in pending:
                task.cancel()  # _execute gives the job back to its queue
            await asyncio.gather(*pending, return_exceptions=True)
        for lane in self._lanes.values():
            lane.flush.set()
            for task in lane.tasks:
                if task.get_name().startswith("take"):
                    task.cancel()
            await asyncio.gather(*lane.tasks, return_exceptions=True)
            self.metrics.forget(lane.name)
        self._lanes.clear()

    # -- one queue ---------------------------------------------------------------------

    def consuming(self) -> tuple[bool, str]:
        """Whether the worker takes jobs from every queue it should (and has said which
        functions it runs there), with a line saying so for /readyz."""
        wanted = self._wanted_queues()
        waiting = sorted(wanted - self._registered)
        if not wanted:
            return False, "no queue in the config yet"
        if waiting:
            return False, f"starting on {', '.join(waiting)}"
        return True, f"ok ({len(wanted)} queues, {len(self.functions)} functions)"

    async def _take_loop(self, lane: _Lane) -> None:
        with contextlib.suppress(Exception):  # else the periodic registration tries again
            await self.client.register_functions(lane.name, self.functions)
            self._registered.add(lane.name)
        failures = 0
        while not self._stopping:
            settings = self.settings(lane.name)
            if settings is None:
                return
            if settings.paused:
                await self._pause(CONFIG_POLL)
                continue
            free = settings.concurrency - len(lane.inflight)
            if free <= 0:
                lane.slot.clear()
                await lane.slot.wait()
                continue
            try:
                taken = await self.client.take(settings, free, self.name)
                if not taken.jobs:
                    await self.client.wait_for_work(lane.name, taken.wait if taken.wait is not None else 1.0)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(5.0, 0.1 * 2**failures)
                log.warning("queue %s: cannot take jobs (%s); trying again in %.1fs", lane.name, _describe(exc), delay)
                await self._pause(delay)
                continue
            self.metrics.taken(lane.name, len(taken.jobs))
            for job in taken.jobs:
                task = asyncio.create_task(self._execute(lane, settings, job), name=job.id)
                lane.inflight[job.id] = _Running(job, task)

    async def _ack_loop(self, lane: _Lane) -> None:
        while True:
            await lane.flush.wait()
            lane.flush.clear()
            if not lane.done:
                if self._stopping:
                    return
                continue
            batch, lane.done = lane.done, []
            settings = self.settings(lane.name) or QueueSettings(name=lane.name)
            for attempt in range(1, 6):
                try:
                    await self.client.complete(settings, self.name, batch)
                    break
                except Exception as exc:
                    # Unacknowledged jobs run again when their lease ends: at least once, never lost.
                    log.warning("queue %s: cannot record %d results (%s)", lane.name, len(batch), _describe(exc))
                    await asyncio.sleep(0.2 * attempt)
            if self._stopping and not lane.done:
                return

    def _finished(self, lane: _Lane, job_id: str) -> None:
        lane.inflight.pop(job_id, None)
        lane.slot.set()

    # -- one job -----------------------------------------------------------------------

    async def _execute(self, lane: _Lane, settings: QueueSettings, job: Claimed) -> None:
        """One attempt, in its CONSUMER span (the child of the span that enqueued the job)."""
        started = time.monotonic()
        with processing(job) as span:
            outcome, failure = await self._attempt(lane, settings, job, started)
            processed(span, outcome, failure)
        error = type(failure).__name__ if failure is not None else None
        self.metrics.finished(job.queue, job.function, outcome, time.monotonic() - started, error)
        if self.events is not None and outcome in ("completed", "dead") and job.queue != WEBHOOKS_QUEUE:
            await self._emit(job, outcome, failure)

    async def _emit(self, job: Claimed, outcome: str, failure: Exception | None) -> None:
        from ..notify.events import emit

        data: dict[str, Any] = {
            "id": job.id,
            "queue": job.queue,
            "function": job.function if job.function != HTTP_KIND else None,
            "attempt": job.attempt,
        }
        if job.http is not None:
            data["url"] = str(job.http.url)
        if failure is not None:
            data["error"] = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
        event = "job.completed" if outcome == "completed" else "job.dead"
        await emit(self.events, event, data, idempotency_key=f"{event}:{job.id}")

    async def _attempt(
        self, lane: _Lane, settings: QueueSettings, job: Claimed, started: float
    ) -> tuple[str, Exception | None]:
        """Run the job and record its outcome in Redis; answers the outcome and, for a
        failed attempt, its exception."""
        running = lane.inflight.get(job.id)
        failure: Exception | None = None
        try:
            try:
                async with asyncio.timeout(job.timeout) as deadline:
                    result = await self._call(job)
                body = orjson.dumps(result)
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise TimeoutError(f"timed out after {job.timeout:g}s") from None
            except TypeError as exc:
                if "serializ" in str(exc):
                    raise NonRetryable(f"the result cannot be stored as JSON: {exc}") from None
                raise
        except Suspend as suspend:
            await self._give_back(settings, job, delay=suspend.delay, step=suspend.step)
            outcome = "suspended"
        except asyncio.CancelledError:
            if running is not None and running.cancel_requested and not self._stopping:
                await self.client.cancelled(settings, self.name, job.id)
                log.info("job %s cancelled while running", job.id)
                outcome = "cancelled"
            else:
                await self._give_back(settings, job, delay=0.0, step="")
                outcome = "returned"
        except Exception as exc:
            outcome, failure = await self._failed(settings, job, exc), exc
        else:
            lane.done.append((job.id, body, time.monotonic() - started))
            lane.flush.set()
            outcome = "completed"
        finally:
            self._finished(lane, job.id)
        return outcome, failure

    async def _call(self, job: Claimed) -> Any:
        if job.function == HTTP_KIND and job.http is not None:
            return await self._call_http(job)
        fn = self.functions.get(job.function)
        if fn is None:
            raise LookupError(f"worker {self.name} has no function {job.function!r}")
        ctx = JobContext(job.id, job.queue, job.attempt, job.max_attempts, self.name, self.client)
        if asyncio.iscoroutinefunction(fn):
            return await fn(ctx, job.payload)
        result = await asyncio.to_thread(fn, ctx, job.payload)
        if asyncio.iscoroutine(result):
            return await result
        return result

    async def _call_http(self, job: Claimed) -> Any:
        from .http_target import call_http_target, url_allowed

        assert self._http is not None and job.http is not None
        settings = self.settings(job.queue)
        if settings is None or not url_allowed(str(job.http.url), settings.http_allowed_urls):
            raise NonRetryable(f"{job.http.url} is no longer under the allowed URLs of queue {job.queue}")
        key = settings.signing_secret_key
        secret = self._secrets(key) if key else None
        if not secret:
            raise NonRetryable(f"queue {job.queue} has no signing secret for HTTP-target jobs")
        return await call_http_target(
            self._http,
            job.http,
            job_id=job.id,
            queue=job.queue,
            attempt=job.attempt,
            payload=job.payload,
            signing_secret=secret,
            timeout=job.timeout,
        )

    async def _failed(self, settings: QueueSettings, job: Claimed, exc: Exception) -> str:
        decision = after_failure(
            job.attempt,
            job.max_attempts,
            settings.retry,
            retryable=not isinstance(exc, NonRetryable),
            retry_after=exc.seconds if isinstance(exc, RetryAfter) else None,
        )
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        outcome = await self._with_retries(
            self.client.fail, settings, self.name, job.id, message, self.name, decision.retry_in
        )
        if outcome == 2:
            log.warning("job %s (%s) dead-lettered after attempt %d: %s", job.id, job.function, job.attempt, message)
            return "dead"
        if outcome == 1:
            log.info(
                "job %s (%s) attempt %d failed, retry in %.1fs: %s",
                job.id,
                job.function,
                job.attempt,
                decision.retry_in or 0,
                message,
            )
            return "retried"
        return "lost"

    async def _give_back(self, settings: QueueSettings, job: Claimed, *, delay: float, step: str) -> None:
        await self._with_retries(self.client.requeue, settings, self.name, job.id, delay=delay, refund=True, step=step)

    @staticmethod
    async def _with_retries(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A state change after a job ran: tried a few times; if Redis stays away the lease
        runs out and the job runs again (at least once)."""
        for attempt in range(1, 4):
            try:
                return await call(*args, **kwargs)
            except Exception as exc:
                if attempt == 3:
                    log.warning("cannot record a job's outcome (%s); it runs again when its lease ends", _describe(exc))
                    return None
                await asyncio.sleep(0.2 * attempt)
        return None

    # -- background --------------------------------------------------------------------

    async def _pause(self, seconds: float, until: asyncio.Event | None = None) -> None:
        """Sleep, but no longer than until the worker stops. (Background loops end by
        themselves: a cancel that lands inside a Redis call can come out of redis-py as
        another error, which the loops' error handling would otherwise take in its stride.)"""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((until or self._stopped).wait(), seconds)

    async def _heartbeats(self) -> None:
        while not self._done.is_set():  # running jobs keep their leases through the grace period
            interval = min([s.visibility_timeout / 3 for s in self._queues().values()] or [10.0])
            await self._pause(max(0.05, interval), self._done)
            for lane in list(self._lanes.values()):
                settings = self.settings(lane.name)
                if settings is None or not lane.inflight:
                    continue
                try:
                    lost, cancel = await self.client.heartbeat(settings, self.name, list(lane.inflight))
                except Exception as exc:
                    log.warning("queue %s: heartbeat failed (%s)", lane.name, _describe(exc))
                    continue
                for job_id in lost:
                    if job_id in lane.inflight:
                        log.warning("job %s: lease lost (it ran past its visibility timeout); it may run twice", job_id)
                for job_id in cancel:
                    running = lane.inflight.get(job_id)
                    if running is not None and not running.cancel_requested:
                        running.cancel_requested = True
                        running.task.cancel()

    async def _queue_sizes(self) -> None:
        while not self._stopping:
            for name in list(self._lanes):
                settings = self.settings(name)
                if settings is not None:
                    with contextlib.suppress(Exception):
                        self.metrics.sizes(name, (await self.client.counts(settings)).counts)
            await self._pause(SIZES_EVERY)

    async def _registrations(self) -> None:
        while not self._stopping:
            try:
                for queue in self._wanted_queues():
                    await self.client.register_functions(queue, self.functions)
                    self._registered.add(queue)
            except Exception as exc:
                log.warning("cannot register functions (%s)", _describe(exc))
            await self._pause(REGISTER_EVERY)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
