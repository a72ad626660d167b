"""Job functions the integration tests' worker processes run (STACKYARD_JOB_MODULES)."""

from __future__ import annotations

import asyncio
from typing import Any

from stackyard.jobs import FunctionRegistry, JobContext

functions = FunctionRegistry()


@functions.register("tests.record")
async def record(ctx: JobContext, payload: dict[str, Any]) -> int:
    """Counts its runs per job in the hash payload["key"]; sleeps payload["sleep"] seconds."""
    await ctx.client.redis.hincrby(payload["key"], ctx.job_id, 1)
    if payload.get("sleep"):
        await asyncio.sleep(payload["sleep"])
    return ctx.attempt


@functions.register("tests.steps")
async def steps(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Three steps, each counting its runs in payload["key"]; step two takes payload["slow"] s."""
    redis = ctx.client.redis

    async def run(name: str, seconds: float = 0.0) -> str:
        await redis.hincrby(payload["key"], name, 1)
        await asyncio.sleep(seconds)
        return f"{name} done"

    one = await ctx.step("one", run, "one")
    two = await ctx.step("two", run, "two", payload["slow"])
    three = await ctx.step("three", run, "three")
    return {"one": one, "two": two, "three": three}
