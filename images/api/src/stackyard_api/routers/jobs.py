"""/v1/jobs, /v1/queues and /v1/events: enqueue and follow jobs, watch and repair queues,
and resume step functions waiting for an event.

POST /v1/jobs                         enqueue (201; 200 with Idempotent-Replayed when the key was used)
GET  /v1/jobs/{id}                    the job: state, attempts, errors, result, steps
POST /v1/jobs/{id}/cancel             cancel (at once if waiting; at the next heartbeat if running)
GET  /v1/queues                       every queue with its counts
GET  /v1/queues/{name}                one queue
GET  /v1/queues/{name}/dead           dead letters, newest first, paginated
POST /v1/queues/{name}/dead/replay    replay dead letters (ids, a function's, or all)
POST /v1/queues/{name}/dead/purge     delete dead letters (same selectors)
POST /v1/events                       deliver an event to the steps waiting for it
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from stackyard.jobs import JobClient, QueueSettings, queues_from_config
from stackyard.jobs.contract import (
    DeadLetterFilter,
    DeadLetterResult,
    EnqueueRequest,
    EventRequest,
    EventResult,
    Job,
    JobPage,
    QueueInfo,
    QueueList,
)
from stackyard.jobs.ids import queue_of
from stackyard.problems import CapabilityOff, NotFound, Problem, UnprocessableContent

from ..deps import RuntimeDep
from ..errors import problem_responses

router = APIRouter(tags=["jobs"])


def _queues(runtime: RuntimeDep) -> dict[str, QueueSettings]:
    config = runtime.config.config
    if not config.spec.capabilities.jobs:
        raise CapabilityOff("the jobs capability is off in this Stack (spec.capabilities.jobs)")
    return queues_from_config(config.job_queues)


def _queue(runtime: RuntimeDep, name: str, missing: type[Problem] = NotFound) -> QueueSettings:
    queues = _queues(runtime)
    if name not in queues:
        raise missing(f"no JobQueue {name!r} in this Stack; queues: {', '.join(sorted(queues))}", queue=name)
    return queues[name]


def _job_queue(runtime: RuntimeDep, job_id: str) -> QueueSettings:
    name = queue_of(job_id)
    if name is None:
        raise NotFound(f"{job_id!r} is not a job id", id=job_id)
    return _queue(runtime, name)


@router.post(
    "/v1/jobs",
    status_code=201,
    response_model=Job,
    response_model_by_alias=True,
    summary="Enqueue a job",
    description=(
        "Puts a job on a queue: a function a worker registered, or an HTTP target the worker calls, signed. "
        "With an idempotency key (in the body or the Idempotency-Key header) that was used on the queue "
        "within its idempotency window, nothing is enqueued: the answer is 200 with the first job and the "
        "header Idempotent-Replayed: true."
    ),
    responses={200: {"description": "The job first enqueued with this idempotency key"}}
    | problem_responses(404, 413, 422, 503),
)
async def enqueue(
    body: EnqueueRequest,
    runtime: RuntimeDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Job:
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise UnprocessableContent("the Idempotency-Key header and idempotencyKey in the body differ")
    if idempotency_key:
        body = body.model_copy(update={"idempotency_key": idempotency_key})
    queue = _queue(runtime, body.queue, missing=UnprocessableContent)
    job, created = await JobClient(runtime.redis).enqueue(queue, body)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return job


@router.get(
    "/v1/jobs/{job_id}",
    response_model=Job,
    response_model_by_alias=True,
    summary="A job",
    description="State, attempts, the latest errors, the result and completed steps of a job.",
    responses=problem_responses(404, 503),
)
async def get_job(job_id: str, runtime: RuntimeDep) -> Job:
    _job_queue(runtime, job_id)
    job = await JobClient(runtime.redis).get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id} (finished jobs are kept for their queue's retention)", id=job_id)
    return job


@router.post(
    "/v1/jobs/{job_id}/cancel",
    response_model=Job,
    response_model_by_alias=True,
    summary="Cancel a job",
    description=(
        "A waiting job is cancelled at once. A running job is asked to stop: its worker cancels it at the "
        "next heartbeat (cancelRequested is true until then). A finished job is a 409."
    ),
    responses=problem_responses(404, 409, 503),
)
async def cancel_job(job_id: str, runtime: RuntimeDep) -> Job:
    return await JobClient(runtime.redis).cancel(job_id, _job_queue(runtime, job_id))


@router.get(
    "/v1/queues",
    response_model=QueueList,
    response_model_by_alias=True,
    summary="Every queue with its counts",
    responses=problem_responses(503),
)
async def list_queues(runtime: RuntimeDep) -> QueueList:
    client = JobClient(runtime.redis)
    return QueueList(items=[await client.counts(q) for q in _queues(runtime).values()])


@router.get(
    "/v1/queues/{name}",
    response_model=QueueInfo,
    response_model_by_alias=True,
    summary="One queue with its counts",
    responses=problem_responses(404, 503),
)
async def get_queue(name: str, runtime: RuntimeDep) -> QueueInfo:
    return await JobClient(runtime.redis).counts(_queue(runtime, name))


@router.get(
    "/v1/queues/{name}/dead",
    response_model=JobPage,
    response_model_by_alias=True,
    summary="Dead letters of a queue",
    description="Newest first; pass nextCursor as cursor for the next page.",
    responses=problem_responses(404, 422, 503),
)
async def dead_letters(
    name: str,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JobPage:
    _queue(runtime, name)
    return await JobClient(runtime.redis).dead_page(name, limit, cursor)


@router.post(
    "/v1/queues/{name}/dead/replay",
    response_model=DeadLetterResult,
    response_model_by_alias=True,
    summary="Replay dead letters",
    description=(
        "Each selected dead letter runs again with fresh attempts; its error history stays, and a step "
        "function keeps its completed steps."
    ),
    responses=problem_responses(404, 422, 503),
)
async def replay(name: str, body: DeadLetterFilter, runtime: RuntimeDep) -> DeadLetterResult:
    _queue(runtime, name)
    return _dead_letter_result(await JobClient(runtime.redis).replay(name, body))


@router.post(
    "/v1/queues/{name}/dead/purge",
    response_model=DeadLetterResult,
    response_model_by_alias=True,
    summary="Delete dead letters",
    responses=problem_responses(404, 422, 503),
)
async def purge(name: str, body: DeadLetterFilter, runtime: RuntimeDep) -> DeadLetterResult:
    _queue(runtime, name)
    return _dead_letter_result(await JobClient(runtime.redis).purge(name, body))


def _dead_letter_result(ids: list[str]) -> DeadLetterResult:
    return DeadLetterResult(count=len(ids), ids=ids)


@router.post(
    "/v1/events",
    response_model=EventResult,
    response_model_by_alias=True,
    summary="Send an event to waiting steps",
    description="Every step function waiting for this event name (and whose match the data fits) resumes with it.",
    responses=problem_responses(422, 503),
)
async def send_event(body: EventRequest, runtime: RuntimeDep) -> EventResult:
    _queues(runtime)
    return EventResult(delivered=await JobClient(runtime.redis).send_event(body.name, body.data))
