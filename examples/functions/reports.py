"""Example job functions, which `make up` runs in its worker (STACKYARD_JOB_MODULES=reports,
with this directory on PYTHONPATH). Your own image does the same with your modules."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from stackyard.jobs import FunctionRegistry, JobContext, NonRetryable

functions = FunctionRegistry()
log = logging.getLogger("reports")


@functions.register("reports.nightly")
async def nightly(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """What the example Schedule runs: pretend to build a report."""
    await asyncio.sleep(0.1)
    log.info("nightly report built (job %s, format %s)", ctx.job_id, payload.get("format"))
    return {"report": f"nightly.{payload.get('format', 'pdf')}"}


@functions.register("reports.send")
async def send(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Two steps: build, then deliver; a retry does not build twice."""
    if "userId" not in payload:
        raise NonRetryable("payload has no userId")
    report = await ctx.step("build", build, payload["userId"])
    return await ctx.step("deliver", deliver, payload["userId"], report)


async def build(user: str) -> str:
    return f"report-for-{user}.pdf"


async def deliver(user: str, report: str) -> dict[str, Any]:
    return {"sentTo": user, "report": report}
