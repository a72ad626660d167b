"""Scheduler: turns Schedule resources into jobs, once per tick however many workers run it.

Every worker replica runs a Scheduler. At each tick each of them enqueues the schedule's
job with the idempotency key `schedule:<name>:<tick ms>`: the first enqueue creates the job,
the others get that same job back and do nothing more. Only the replica whose enqueue created
the job records the run (in Redis, and through `on_fired`, in the Schedule's status).

Ticks: cron expressions are evaluated with croniter in the schedule's time zone (so "0 9 * * *"
in Europe/Paris is 09:00 Paris time across daylight-saving changes); intervals count from the
Unix epoch, so every replica computes the same ticks. A tick is run only within the
schedule's starting deadline and never for a time before the schedule was first seen: a
cluster that was down for a day does not run a day of missed ticks when it comes back.

Ticks happen outside any request: each enqueue's PRODUCER span is the root of a new trace,
which the job's attempts (and the jobs they enqueue) continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from croniter import croniter

from ..problems import Problem
from ..resources.base import duration_seconds
from ..resources.jobs import ScheduleSpec
from .contract import FINISHED_STATES, EnqueueRequest, HttpTarget
from .settings import QueueSettings
from .store import ROOT, JobClient

log = logging.getLogger(__name__)

SCHEDULES_KEY = ROOT + "schedules"
"""HASH <schedule> -> JSON {since, tick, job}: when it was first seen, its last tick and job."""
MAX_SLEEP = 1.0


def latest_tick(spec: ScheduleSpec, now: datetime) -> datetime:
    """The schedule's most recent tick at or before `now` (an aware datetime, answered in UTC)."""
    if spec.interval is not None:
        step = duration_seconds(spec.interval)
        return datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, UTC)
    assert spec.cron is not None
    local = now.astimezone(ZoneInfo(spec.time_zone))
    if croniter.match(spec.cron, local.replace(second=0, microsecond=0)) and local.second == 0:
        return local.replace(microsecond=0).astimezone(UTC)
    previous: datetime = croniter(spec.cron, local).get_prev(datetime)
    return previous.astimezone(UTC)


def next_tick(spec: ScheduleSpec, after: datetime) -> datetime:
    """The schedule's first tick strictly after `after`, in UTC."""
    if spec.interval is not None:
        step = duration_seconds(spec.interval)
        return datetime.fromtimestamp((math.floor(after.timestamp() / step) + 1) * step, UTC)
    assert spec.cron is not None
    following: datetime = croniter(spec.cron, after.astimezone(ZoneInfo(spec.time_zone))).get_next(datetime)
    return following.astimezone(UTC)


def job_request(name: str, spec: ScheduleSpec, tick: datetime) -> EnqueueRequest:
    job = spec.job
    http = None
    if job.http is not None:
        http = HttpTarget.model_validate(job.http.model_dump())
    return EnqueueRequest(
        queue=job.queue,
        function=job.function,
        http=http,
        payload=job.payload,
        priority=job.priority,
        timeout=duration_seconds(job.timeout) if job.timeout else None,
        max_attempts=job.max_attempts,
        idempotency_key=f"schedule:{name}:{int(tick.timestamp() * 1000)}",
    )


@dataclass(frozen=True)
class Fired:
    """What one tick of one schedule did, for its status."""

    schedule: str
    tick: datetime
    job_id: str | None
    previous_result: str | None
    next_run: datetime
    outcome: str
    """started, skipped (overlap), or failed: <why>."""

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "lastRunTime": self.tick.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "nextRunTime": self.next_run.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastResult": self.previous_result if self.outcome == "started" else self.outcome,
        }
        if self.job_id:
            status["lastJobId"] = self.job_id
        return status


class Scheduler:
    def __init__(
        self,
        client: Callable[[], JobClient],
        schedules: Callable[[], Mapping[str, ScheduleSpec]],
        queues: Callable[[], Mapping[str, QueueSettings]],
        *,
        on_fired: Callable[[Fired], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._schedules = schedules
        self._queues = queues
        self._on_fired = on_fired
        self._clock = clock
        self._done: dict[str, datetime] = {}
        """The tick each schedule was last handled for, by this replica."""

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_due()
            except Exception as exc:
                log.warning("scheduler: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._sleep())

    def _sleep(self) -> float:
        now = self._clock()
        waits = [MAX_SLEEP]
        for spec in self._schedules().values():
            if not spec.paused:
                waits.append((next_tick(spec, now) - now).total_seconds())
        return max(0.01, min(waits))

    async def run_due(self) -> list[Fired]:
        """One pass: every schedule whose latest tick is due and not handled yet."""
        fired = []
        now = self._clock()
        for name, spec in sorted(self._schedules().items()):
            if spec.paused:
                continue
            tick = latest_tick(spec, now)
            if self._done.get(name) == tick:
                continue
            self._done[name] = tick
            result = await self._fire(name, spec, tick, now)
            if result is not None:
                fired.append(result)
                if self._on_fired is not None:
                    try:
                        await self._on_fired(result)
                    except Exception as exc:
                        log.warning("schedule %s: cannot record the run: %s", name, exc)
        return fired

    async def _fire(self, name: str, spec: ScheduleSpec, tick: datetime, now: datetime) -> Fired | None:
        client = self._client()
        state = await self._state(client, name, now)
        if tick.timestamp() < state["since"] / 1000 or state.get("tick", 0) >= tick.timestamp() * 1000:
            return None  # before the schedule existed, or handled by another replica already
        late = (now - tick).total_seconds()
        if late > duration_seconds(spec.starting_deadline):
            log.info("schedule %s: tick %s missed by %.0fs, past its starting deadline", name, tick, late)
            return None
        following = next_tick(spec, tick)
        previous = await client.get(state["job"]) if state.get("job") else None
        previous_state = previous.state if previous is not None else None
        queue = self._queues().get(spec.job.queue)
        if queue is None:
            return Fired(name, tick, None, previous_state, following, f"failed: no JobQueue {spec.job.queue}")
        if previous is not None and previous.state not in FINISHED_STATES:
            if spec.overlap_policy == "skip":
                return Fired(name, tick, None, previous_state, following, "skipped: the previous run is not finished")
            if spec.overlap_policy == "replace":
                with contextlib.suppress(Problem):
                    await client.cancel(previous.id, queue)
        try:
            job, created = await client.enqueue(queue, job_request(name, spec, tick))
        except Problem as problem:
            log.warning("schedule %s: cannot enqueue its job: %s", name, problem.detail)
            return Fired(name, tick, None, previous_state, following, f"failed: {problem.detail}")
        if not created:
            return None  # another replica's enqueue won this tick
        state.update(tick=int(tick.timestamp() * 1000), job=job.id)
        await client.redis.hset(SCHEDULES_KEY, name, orjson.dumps(state))
        log.info("schedule %s: tick %s started job %s", name, tick.isoformat(), job.id)
        return Fired(name, tick, job.id, previous_state, following, "started")

    @staticmethod
    async def _state(client: JobClient, name: str, now: datetime) -> dict[str, Any]:
        first = orjson.dumps({"since": int(now.timestamp() * 1000)})
        await client.redis.hsetnx(SCHEDULES_KEY, name, first)
        raw = await client.redis.hget(SCHEDULES_KEY, name)
        state: dict[str, Any] = orjson.loads(raw)
        return state
