"""JobContext: what a running job knows about itself, and its durable steps.

A step function is a job whose work is split into named steps, as in Inngest and Temporal:

    @functions.register("orders.fulfil")
    async def fulfil(ctx: JobContext, order: dict) -> dict:
        charge = await ctx.step("charge", charge_card, order)        # runs once
        await ctx.sleep("cool-off", 3600)                             # durable: no worker waits
        answer = await ctx.wait_for_event("approval", "order.approved", timeout=86400,
                                          match={"orderId": order["id"]})
        return await ctx.step("ship", ship, order, answer)

The result of each completed step is stored with the job; when an attempt fails (or its
worker dies) the next attempt replays the function and every completed step returns its
stored result at once instead of running again. A step that was running when its attempt
died runs again: steps are at-least-once, so make them idempotent (pass the job id on to the
services they call). Sleeps and waits do not hold a worker: the job leaves the worker, and
comes back when the time is up or the event arrives. Step names must be unique in a function.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson

from .store import JobClient

T = TypeVar("T")


class Suspend(BaseException):
    """The job leaves its worker until `delay` seconds from now (a sleep or a wait). A
    BaseException so that a function's own `except Exception` does not swallow it."""

    def __init__(self, delay: float, step: str) -> None:
        super().__init__(f"suspended in step {step!r} for {delay:.3f}s")
        self.delay = delay
        self.step = step


@dataclass
class JobContext:
    job_id: str
    queue: str
    attempt: int
    max_attempts: int
    worker: str
    client: JobClient

    async def step(self, name: str, fn: Callable[..., Awaitable[T] | T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` once for this job, or return what it returned before."""
        done, result, _ = await self.client.step_state(self.job_id, name)
        if done:
            return result  # type: ignore[no-any-return]
        value = fn(*args, **kwargs)
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        orjson.dumps(value)  # a result that cannot be stored fails the step, not a later replay
        await self.client.save_step(self.job_id, name, value)
        return value

    async def sleep(self, name: str, seconds: float) -> None:
        """Durable sleep: the job comes back after `seconds`, on any worker."""
        await self.sleep_until(name, time.time() + seconds)

    async def sleep_until(self, name: str, when: datetime | float) -> None:
        done, _, waiting = await self.client.step_state(self.job_id, name)
        if done:
            return
        if waiting is None:
            target = when.timestamp() if isinstance(when, datetime) else float(when)
            await self.client.save_wait(self.job_id, name, {"until": target}, None)
        else:
            target = float(orjson.loads(waiting)["until"])
        remaining = target - time.time()
        if remaining <= 0:
            await self.client.save_step(self.job_id, name, None)
            return
        raise Suspend(remaining, name)

    async def wait_for_event(
        self, name: str, event: str, *, timeout: float, match: dict[str, Any] | None = None
    ) -> Any:
        """Wait for `POST /v1/events` with this event name (and, with `match`, data whose
        fields equal those given); returns the event's data, or None after `timeout` seconds."""
        done, result, waiting = await self.client.step_state(self.job_id, name)
        if done:
            return result
        if waiting is None:
            deadline = time.time() + timeout
            await self.client.save_wait(self.job_id, name, {"until": deadline, "event": event, "match": match}, event)
        else:
            deadline = float(orjson.loads(waiting)["until"])
        remaining = deadline - time.time()
        if remaining <= 0:
            await self.client.stop_waiting(self.job_id, name, event)
            await self.client.save_step(self.job_id, name, None)
            return None
        raise Suspend(remaining, name)
