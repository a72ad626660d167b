"""The console's Jobs pages (/console/jobs):

- `/console/jobs`: every queue with its counts (paused, queued, scheduled, running, dead,
  completed, failed, mean wait and run), live;
- `/console/jobs/queues/{name}`: the queue's running jobs (attempt, started, lease end), its
  delayed jobs (run at) and its dead letters, each list paginated and live; replay and purge
  one dead letter or all of them;
- `/console/jobs/{id}`: one job (target, payload, attempts with their errors, steps, result,
  times), live while it is not finished; a dead one can be replayed as it is or with another
  payload, or purged;
- `/console/jobs/schedules`: every Schedule with its spec, its last run and job (the
  scheduler's record in Redis) and its next run (computed from the spec).

The pages call JobClient as /v1/jobs and /v1/queues do (and check the queue the same way)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, Query, Request
from stackyard.jobs import JobClient, QueueSettings
from stackyard.jobs.contract import FINISHED_STATES, DeadLetterFilter
from stackyard.jobs.scheduler import SCHEDULES_KEY, next_tick
from stackyard.problems import NotFound
from stackyard.resources.base import duration_seconds
from starlette.responses import Response

from ...deps import RuntimeDep
from ...routers.jobs import _job_queue, _queue, _queues
from ..session import ConsoleDep, CsrfDep, flash, redirect, render

router = APIRouter(prefix="/console/jobs", include_in_schema=False)

PAGE_SIZE = 25
Cursor = Annotated[str | None, Query(max_length=200)]


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


@router.get("")
async def queues(request: Request, session: ConsoleDep, runtime: RuntimeDep, queue: str | None = None) -> Response:
    if queue:  # the Overview links a queue as ?queue=<name>
        return redirect(f"/console/jobs/queues/{_queue(runtime, queue).name}")
    client = JobClient(runtime.redis)
    infos = [await client.counts(q) for q in _queues(runtime).values()]
    return render(request, "console/jobs/queues.html", queues=infos)


@router.get("/schedules")
async def schedules(request: Request, session: ConsoleDep, runtime: RuntimeDep) -> Response:
    _queues(runtime)
    specs = runtime.config.config.schedules
    client = JobClient(runtime.redis)
    records = await client.redis.hgetall(SCHEDULES_KEY) if specs else {}
    now = datetime.now(UTC)
    rows = []
    for name, spec in sorted(specs.items()):
        raw = records.get(name.encode())
        record = orjson.loads(raw) if raw else {}
        last_job = await client.get(record["job"]) if record.get("job") else None
        rows.append(
            {
                "name": name,
                "spec": spec,
                "every": f"every {spec.interval}" if spec.interval else f"{spec.cron} ({spec.time_zone})",
                "target": spec.job.function or (str(spec.job.http.url) if spec.job.http else ""),
                "last_run": datetime.fromtimestamp(record["tick"] / 1000, UTC) if record.get("tick") else None,
                "last_job_id": record.get("job"),
                "last_job": last_job,
                "next_run": None if spec.paused else next_tick(spec, now),
                "deadline": duration_seconds(spec.starting_deadline),
            }
        )
    return render(request, "console/jobs/schedules.html", schedules=rows)


@router.get("/queues/{name}")
async def queue_page(
    request: Request,
    name: str,
    session: ConsoleDep,
    runtime: RuntimeDep,
    running: Cursor = None,
    delayed: Cursor = None,
    dead: Cursor = None,
) -> Response:
    settings = _queue(runtime, name)
    client = JobClient(runtime.redis)
    return render(
        request,
        "console/jobs/queue.html",
        queue=await client.counts(settings),
        running=await client.running_page(name, PAGE_SIZE, running),
        delayed=await client.scheduled_page(name, PAGE_SIZE, delayed),
        dead=await client.dead_page(name, PAGE_SIZE, dead),
    )


@router.post("/queues/{name}/dead/replay")
async def replay(
    request: Request, name: str, session: CsrfDep, runtime: RuntimeDep, id: Annotated[str | None, Form()] = None
) -> Response:
    """Replay the dead letter `id`, or every dead letter of the queue without one."""
    _queue(runtime, name)
    selector = DeadLetterFilter(ids=[id]) if id else DeadLetterFilter(all=True)
    done = await JobClient(runtime.redis).replay(name, selector)
    if id:
        if done:
            flash(request, f"Replayed {id}: it runs again with fresh attempts.")
            return redirect(f"/console/jobs/{id}")
        flash(request, f"{id} is not a dead letter of {name} (any more): nothing replayed.", "error")
    else:
        flash(request, f"Replayed {len(done)} dead letters of {name}.")
    return redirect(f"/console/jobs/queues/{name}")


@router.post("/queues/{name}/dead/purge")
async def purge(
    request: Request, name: str, session: CsrfDep, runtime: RuntimeDep, id: Annotated[str | None, Form()] = None
) -> Response:
    """Delete the dead letter `id`, or every dead letter of the queue without one."""
    _queue(runtime, name)
    selector = DeadLetterFilter(ids=[id]) if id else DeadLetterFilter(all=True)
    done = await JobClient(runtime.redis).purge(name, selector)
    if id:
        if done:
            flash(request, f"Purged {id}.")
        else:
            flash(request, f"{id} is not a dead letter of {name} (any more): nothing purged.", "error")
    else:
        flash(request, f"Purged {len(done)} dead letters of {name}.")
    return redirect(f"/console/jobs/queues/{name}")


@router.get("/{job_id}")
async def job_page(request: Request, job_id: str, session: ConsoleDep, runtime: RuntimeDep) -> Response:
    _job_queue(runtime, job_id)
    job = await JobClient(runtime.redis).get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id} (finished jobs are kept for their queue's retention)")
    return render(
        request,
        "console/jobs/job.html",
        job=job,
        finished=job.state in FINISHED_STATES,
        payload=_pretty(job.payload),
        result=_pretty(job.result) if job.result is not None else None,
        steps={name: _pretty(value) for name, value in sorted(job.steps.items())},
    )


@router.post("/{job_id}/replay-changed")
async def replay_changed(
    request: Request, job_id: str, session: CsrfDep, runtime: RuntimeDep, payload: Annotated[str, Form()]
) -> Response:
    """Replay a dead letter with the payload given (JSON) instead of its own."""
    queue: QueueSettings = _job_queue(runtime, job_id)
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        flash(request, f"The payload is not JSON ({exc}): nothing replayed.", "error")
        return redirect(f"/console/jobs/{job_id}")
    size = len(orjson.dumps(value))
    if size > queue.max_payload_bytes:
        limit = queue.max_payload_bytes
        flash(request, f"The payload has {size} bytes; queue {queue.name} takes at most {limit}.", "error")
    elif await JobClient(runtime.redis).replay_changed(queue.name, job_id, value):
        flash(request, f"Replayed {job_id} with the new payload.")
    else:
        flash(request, f"{job_id} is not a dead letter (any more): nothing replayed.", "error")
    return redirect(f"/console/jobs/{job_id}")
