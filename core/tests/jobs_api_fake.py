"""A stand-in for the stackyard api's jobs routes (/v1/jobs, /v1/queues, /v1/events): an
in-memory Starlette app on a real uvicorn server on 127.0.0.1, speaking the wire contract of
`stackyard.jobs.contract` and the api's problem+json errors, which a test can tell to fail.

The SDK and CLI tests use it while the real routes are being written. They need only its
`url`, so the tests of the contract's behaviour can take the real api's URL instead (a
fixture yielding `ServiceProcess.url`); the tests that script faults (`fail`) keep this one.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from pydantic import ValidationError
from stackyard.jobs.contract import (
    FINISHED_STATES,
    AttemptError,
    DeadLetterFilter,
    DeadLetterResult,
    EnqueueRequest,
    EventRequest,
    EventResult,
    Job,
    JobPage,
    JobState,
    QueueCounts,
    QueueInfo,
    QueueList,
)
from stackyard.problems import PROBLEM_BASE, Conflict, NotFound, Problem
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PROBLEM_JSON = "application/problem+json"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass
class Fault:
    """Answer the next `times` requests to `path` with `status` (a problem+json body) instead
    of their real answer; with `after`, the request is handled first and only its answer is
    replaced (the work is done, the client does not learn it)."""

    path: str
    status: int
    retry_after: str | None = None
    times: int = 1
    after: bool = False


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeQueue:
    name: str
    paused: bool = False
    concurrency: int = 10
    priority: int = 0
    timeout: float = 60.0
    max_attempts: int = 3
    mean_wait_ms: float | None = None
    mean_run_ms: float | None = None


class FakeJobsApi:
    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.port = 0
        self.reset()
        self.app = Starlette(
            routes=[
                Route("/v1/jobs", self.enqueue, methods=["POST"]),
                Route("/v1/jobs/{job_id}", self.get_job, methods=["GET"]),
                Route("/v1/jobs/{job_id}/cancel", self.cancel, methods=["POST"]),
                Route("/v1/queues", self.list_queues, methods=["GET"]),
                Route("/v1/queues/{name}", self.get_queue, methods=["GET"]),
                Route("/v1/queues/{name}/dead", self.dead_letters, methods=["GET"]),
                Route("/v1/queues/{name}/dead/replay", self.replay, methods=["POST"]),
                Route("/v1/queues/{name}/dead/purge", self.purge, methods=["POST"]),
                Route("/v1/events", self.event, methods=["POST"]),
            ],
            middleware=[Middleware(BaseHTTPMiddleware, dispatch=self.around_every_route)],
            exception_handlers={Problem: _problem, ValidationError: _invalid},
        )

    # The server.

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> FakeJobsApi:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake jobs api did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)
        self.server = self.thread = None

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[FakeJobsApi]:
        api = cls().start()
        try:
            yield api
        finally:
            api.stop()

    # What a test sets up and looks at.

    def reset(self) -> None:
        """Forget every job, fault and request; the queues `default` and `emails` exist."""
        self.jobs: dict[str, Job] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.queues = {name: FakeQueue(name) for name in ("default", "emails")}
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.waiting: dict[str, int] = {}
        self.scripts: dict[str, list[JobState]] = {}
        self._ids = itertools.count(1)

    def fail(self, path: str, status: int, retry_after: str | None = None, times: int = 1, after: bool = False) -> None:
        self.faults.append(Fault(path, status, retry_after, times, after))

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    def add_job(self, queue: str = "default", function: str = "reports.send", **fields: Any) -> Job:
        """A job as the worker would have left it: `state`, `errors` (strings), anything of Job."""
        errors = [
            AttemptError(attempt=i, at=_now(), error=text, worker=f"worker-{i}")
            for i, text in enumerate(fields.pop("errors", []), start=1)
        ]
        defaults = self.queues[queue]
        job = Job(
            id=self._new_id(queue),
            queue=queue,
            function=function,
            state=fields.pop("state", "queued"),
            priority=defaults.priority,
            attempts=len(errors),
            max_attempts=defaults.max_attempts,
            timeout=defaults.timeout,
            created_at=_now(),
            errors=errors,
            last_error=errors[-1].error if errors else None,
        ).model_copy(update=fields)
        if job.state in FINISHED_STATES and job.finished_at is None:
            job.finished_at = _now()
        self.jobs[job.id] = job
        return job

    def script(self, job_id: str, *states: JobState) -> None:
        """Each read of the job moves it to the next of `states`."""
        self.scripts[job_id] = list(states)

    # The routes, as the contract says.

    async def enqueue(self, request: Request) -> Response:
        body = EnqueueRequest.model_validate(await request.json())
        queue = self._queue(body.queue)
        key = request.headers.get("Idempotency-Key") or body.idempotency_key
        if key and (body.queue, key) in self.keys:
            existing = self.jobs[self.keys[(body.queue, key)]]
            return _json(existing, 200, {"Idempotent-Replayed": "true"})
        now = _now()
        run_at = body.run_at or (now + timedelta(seconds=body.delay) if body.delay else None)
        job = Job(
            id=self._new_id(body.queue),
            queue=body.queue,
            function=body.function,
            http=body.http,
            payload=body.payload,
            state="scheduled" if run_at else "queued",
            priority=queue.priority if body.priority is None else body.priority,
            attempts=0,
            max_attempts=body.max_attempts or queue.max_attempts,
            timeout=body.timeout or queue.timeout,
            created_at=now,
            run_at=run_at,
            idempotency_key=key,
        )
        self.jobs[job.id] = job
        if key:
            self.keys[(body.queue, key)] = job.id
        return _json(job, 201, {"Location": f"/v1/jobs/{job.id}"})

    async def get_job(self, request: Request) -> Response:
        job = self._job(request.path_params["job_id"])
        if self.scripts.get(job.id):
            state = self.scripts[job.id].pop(0)
            job.state = state
            if state == "active":
                job.attempts += 1
                job.started_at = _now()
            if state in FINISHED_STATES:
                job.finished_at = _now()
        return _json(job)

    async def cancel(self, request: Request) -> Response:
        job = self._job(request.path_params["job_id"])
        if job.state in FINISHED_STATES:
            raise Conflict(f"job {job.id} has already finished ({job.state})", state=job.state)
        if job.state == "active":
            job.cancel_requested = True
        else:
            job.state, job.finished_at = "cancelled", _now()
        return _json(job)

    async def list_queues(self, request: Request) -> Response:
        return _json(QueueList(items=[self._info(q) for q in self.queues.values()]))

    async def get_queue(self, request: Request) -> Response:
        return _json(self._info(self._queue(request.path_params["name"])))

    async def dead_letters(self, request: Request) -> Response:
        queue = self._queue(request.path_params["name"])
        limit = int(request.query_params.get("limit", "50"))
        cursor = request.query_params.get("cursor")
        dead = sorted((j for j in self._dead(queue.name) if not cursor or j.id < cursor), key=lambda j: j.id)[::-1]
        page = dead[:limit]
        return _json(JobPage(items=page, next_cursor=page[-1].id if len(dead) > limit else None))

    async def replay(self, request: Request) -> Response:
        chosen = await self._chosen(request)
        for job in chosen:
            job.state, job.attempts, job.finished_at, job.run_at = "queued", 0, None, None
        return _json(DeadLetterResult(count=len(chosen), ids=[j.id for j in chosen]))

    async def purge(self, request: Request) -> Response:
        chosen = await self._chosen(request)
        for job in chosen:
            del self.jobs[job.id]
        return _json(DeadLetterResult(count=len(chosen), ids=[j.id for j in chosen]))

    async def event(self, request: Request) -> Response:
        body = EventRequest.model_validate(await request.json())
        return _json(EventResult(delivered=self.waiting.pop(body.name, 0)))

    # Faults and the record of requests, around every route.

    async def around_every_route(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        seen = Seen(request.method, request.url.path, dict(request.headers), await request.body())
        self.seen.append(seen)
        fault = next((f for f in self.faults if f.path in (request.url.path, "*") and f.times > 0), None)
        if fault is not None:
            fault.times -= 1
        if fault is not None and not fault.after:
            response = _fault(fault, request.url.path)
        else:
            response = await call_next(request)
            if fault is not None:
                response = _fault(fault, request.url.path)
        seen.status = response.status_code
        return response

    def _job(self, job_id: str) -> Job:
        if job_id not in self.jobs:
            raise NotFound(f"no job {job_id}", id=job_id)
        return self.jobs[job_id]

    def _queue(self, name: str) -> FakeQueue:
        if name not in self.queues:
            raise NotFound(f"no JobQueue named {name}", queue=name)
        return self.queues[name]

    def _dead(self, queue: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.queue == queue and j.state == "dead"]

    async def _chosen(self, request: Request) -> list[Job]:
        queue = self._queue(request.path_params["name"])
        selector = DeadLetterFilter.model_validate(await request.json())
        dead = self._dead(queue.name)
        if selector.ids is not None:
            return [j for j in dead if j.id in selector.ids]
        if selector.function is not None:
            return [j for j in dead if j.function == selector.function]
        return dead

    def _info(self, queue: FakeQueue) -> QueueInfo:
        jobs = [j for j in self.jobs.values() if j.queue == queue.name]

        def count(state: str) -> int:
            return sum(j.state == state for j in jobs)

        counts = QueueCounts(
            queued=count("queued"),
            scheduled=count("scheduled"),
            active=count("active"),
            dead=count("dead"),
            enqueued=len(jobs),
            completed=count("completed"),
            failed=sum(len(j.errors) for j in jobs),
            retried=sum(max(0, len(j.errors) - (j.state == "dead")) for j in jobs),
            reclaimed=0,
            cancelled=count("cancelled"),
            mean_wait_ms=queue.mean_wait_ms,
            mean_run_ms=queue.mean_run_ms,
        )
        return QueueInfo(
            name=queue.name, paused=queue.paused, concurrency=queue.concurrency, global_concurrency=None, counts=counts
        )

    def _new_id(self, queue: str) -> str:
        """`<queue>.<26 Crockford base32 characters>`, sortable by creation like a ULID."""
        n = (int(time.time() * 1000) << 80) | next(self._ids)
        return queue + "." + "".join(CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def _now() -> datetime:
    return datetime.now(UTC)


def _json(model: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status, headers=headers)


TITLES = {429: "Too many requests", 500: "Internal error", 502: "Bad gateway", 503: "Service unavailable"}


def _fault(fault: Fault, path: str) -> Response:
    slug = {429: "too-many-requests", 503: "unavailable"}.get(fault.status, f"http-{fault.status}")
    body = {
        "type": PROBLEM_BASE + slug,
        "title": TITLES.get(fault.status, "HTTP error"),
        "status": fault.status,
        "detail": f"the test made {path} answer {fault.status}",
        "instance": path,
    }
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    return JSONResponse(body, fault.status, headers=headers, media_type=PROBLEM_JSON)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return JSONResponse(exc.body(request.url.path), exc.status, media_type=PROBLEM_JSON)


async def _invalid(request: Request, exc: Exception) -> Response:
    """422 as the api's validation handler renders it."""
    assert isinstance(exc, ValidationError)
    errors = [
        {"location": ".".join(str(p) for p in ("body", *e["loc"])), "message": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    body = {
        "type": PROBLEM_BASE + "validation",
        "title": "Invalid request",
        "status": 422,
        "detail": f"{errors[0]['location']}: {errors[0]['message']}",
        "instance": request.url.path,
        "errors": errors,
    }
    return JSONResponse(body, 422, media_type=PROBLEM_JSON)
