"""JobClient: every read and change of the queues in Redis, for the api, the SDK and workers.

A job is a hash (`FIELDS` below) plus its membership in one of the queue's sets (see
scripts.py). Payloads and results are JSON.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ..clients import AnyRedis
from ..luascript import ScriptBatch
from ..problems import Conflict, NotFound, PayloadTooLarge, UnprocessableContent
from ..telemetry import inject_trace
from . import scripts
from .contract import (
    FINISHED_STATES,
    AttemptError,
    DeadLetterFilter,
    EnqueueRequest,
    HttpTarget,
    Job,
    JobPage,
    QueueCounts,
    QueueInfo,
)
from .ids import new_job_id, queue_of
from .settings import QueueSettings
from .tracing import sending

ROOT = "sy:j:"
FUNCTIONS_KEY = ROOT + "functions"
"""HASH "<queue>/<function>" -> when a worker last said it runs that function on that queue (ms)."""
FUNCTION_MEMORY = 30 * 86400.0
"""A function registered within this many seconds is accepted at enqueue."""
HTTP_KIND = "http"
FUNCTION_CACHE = 10.0
"""Seconds a process remembers that a function is registered (saves a round trip per enqueue)."""
_known_functions: dict[str, float] = {}
_ENQUEUES = ScriptBatch()
"""Enqueues made in the same event-loop turn go to Redis in one write and one read."""

FIELDS = [
    "fn",
    "http",
    "payload",
    "state",
    "pri",
    "att",
    "max",
    "timeout",
    "created",
    "run_at",
    "started",
    "finished",
    "error",
    "errors",
    "result",
    "idem",
    "cancel",
]


def prefix(queue: str) -> str:
    return f"{ROOT}{{{queue}}}:"


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _time(ms: bytes | None) -> datetime | None:
    return datetime.fromtimestamp(int(ms) / 1000, UTC) if ms else None


def _text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def _json(value: bytes | None) -> Any:
    return orjson.loads(value) if value else None


@dataclass(frozen=True)
class Claimed:
    """A job a worker has taken: what it needs to run it."""

    id: str
    queue: str
    attempt: int
    function: str
    http: HttpTarget | None
    payload: Any
    max_attempts: int
    timeout: float
    trace: str | None


@dataclass(frozen=True)
class Taken:
    jobs: list[Claimed]
    wait: float | None
    """Seconds until a scheduled job or a lease falls due (or the rate limit frees up)."""


@dataclass(frozen=True)
class TimedPage:
    """A page of running or scheduled jobs, each with its time (lease end, or run-at)."""

    items: list[tuple[Job, datetime]]
    next_cursor: str | None


def _claimed(queue: str, row: bytes) -> Claimed:
    id_, attempt, fn, http, payload, max_attempts, timeout, trace = row.split(b"\0")
    return Claimed(
        id=id_.decode(),
        queue=queue,
        attempt=int(attempt),
        function=fn.decode(),
        http=HttpTarget.model_validate_json(http) if http else None,
        payload=_json(payload),
        max_attempts=int(max_attempts),
        timeout=float(timeout),
        trace=trace.decode() or None,
    )


def matches(match: dict[str, Any] | None, data: Any) -> bool:
    """Whether an event's data has every field of a wait's `match` with the same value."""
    if not match:
        return True
    return isinstance(data, dict) and all(data.get(k) == v for k, v in match.items())


class JobClient:
    """Enqueue, inspect, cancel and repair jobs; and the calls a worker makes."""

    def __init__(self, redis: AnyRedis) -> None:
        # Typed Any: redis-py's annotations cannot say that this client answers bytes.
        self.redis: Any = redis

    # -- enqueue ---------------------------------------------------------------------

    async def enqueue(
        self,
        queue: QueueSettings,
        request: EnqueueRequest,
        *,
        trace: str | None = None,
        job_id: str | None = None,
        builtin: bool = False,
    ) -> tuple[Job, bool]:
        """Put a job on a queue. Answers the job and whether it was created (False: the
        idempotency key was used within the queue's window, and this is the first job).
        `job_id` gives the new job its id (made with `new_job_id(queue)`) when the caller
        must record it first; `builtin` skips the check that a worker registered the
        function (stackyard's own functions, which every worker runs).

        The enqueue is a PRODUCER span, and the job carries its context (or `trace`, when the
        caller gives one) so that the attempts that run it continue the trace."""
        with sending(queue.name) as span:
            job, created = await self._enqueue(queue, request, trace, job_id, builtin)
            if span.is_recording():
                span.set_attribute("messaging.message.id", job.id)
            return job, created

    async def _enqueue(
        self, queue: QueueSettings, request: EnqueueRequest, trace: str | None, job_id: str | None, builtin: bool
    ) -> tuple[Job, bool]:
        fields, delay, run_at = await self._validated(queue, request, check_function=not builtin)
        job_id = job_id or new_job_id(queue.name)
        trace = trace or inject_trace()
        if trace:
            fields["trace"] = trace
        args: list[str | int | bytes] = [
            prefix(queue.name),
            job_id,
            _ms(delay),
            _ms(run_at) if run_at is not None else 0,
            request.idempotency_key or "",
            _ms(queue.idempotency_window),
        ]
        for name, value in fields.items():
            args += [name, value]
        reply = await _ENQUEUES.run(self.redis, scripts.ENQUEUE_SCRIPT, [prefix(queue.name) + "ready"], args, 10.0)
        if reply[0] == 1:
            created_ms, run_at_ms = int(reply[2]), int(reply[3])
            return self._new_job(job_id, queue.name, request, fields, created_ms, run_at_ms), True
        job = await self.get(reply[1].decode())
        if job is None:  # finished and expired between the two calls
            raise Conflict("the job was removed while it was enqueued; try again")
        return job, False

    @staticmethod
    def _new_job(
        job_id: str, queue: str, request: EnqueueRequest, fields: dict[str, Any], created_ms: int, run_at_ms: int
    ) -> Job:
        """The job as it was just written (what `get` would read back, without the round trip)."""
        return Job(
            id=job_id,
            queue=queue,
            function=request.function,
            http=request.http,
            payload=request.payload,
            state="scheduled" if run_at_ms > created_ms else "queued",
            priority=int(fields["pri"]),
            attempts=0,
            max_attempts=int(fields["max"]),
            timeout=float(fields["timeout"]),
            created_at=datetime.fromtimestamp(created_ms / 1000, UTC),
            run_at=datetime.fromtimestamp(max(run_at_ms, created_ms) / 1000, UTC),
            idempotency_key=request.idempotency_key,
        )

    async def _validated(
        self, queue: QueueSettings, request: EnqueueRequest, *, check_function: bool = True
    ) -> tuple[dict[str, str | int | bytes], float, float | None]:
        payload = orjson.dumps(request.payload)
        if len(payload) > queue.max_payload_bytes:
            raise PayloadTooLarge(
                f"the payload has {len(payload)} bytes; queue {queue.name} takes at most {queue.max_payload_bytes}",
                limit=queue.max_payload_bytes,
            )
        fields: dict[str, str | int | bytes] = {"payload": payload}
        if request.http is not None:
            from .http_target import forbidden_headers, url_allowed

            url = str(request.http.url)
            if not queue.http_allowed_urls:
                raise UnprocessableContent(
                    f"queue {queue.name} takes no HTTP-target jobs: its JobQueue has no spec.httpTarget.allowedUrls"
                )
            if not url_allowed(url, queue.http_allowed_urls):
                raise UnprocessableContent(
                    f"{url} is not under the allowed URLs of queue {queue.name}",
                    allowedUrls=list(queue.http_allowed_urls),
                )
            if refused := forbidden_headers(request.http.headers):
                raise UnprocessableContent(
                    f"an HTTP-target job may not set these headers: {', '.join(refused)}", headers=refused
                )
            if queue.signing_secret_key is None:
                raise UnprocessableContent(
                    f"queue {queue.name} has no spec.httpTarget.signingSecretRef to sign HTTP-target requests with"
                )
            fields["fn"] = HTTP_KIND
            fields["http"] = request.http.model_dump_json(by_alias=True)
        else:
            assert request.function is not None
            if check_function:
                await self._check_function(queue.name, request.function)
            fields["fn"] = request.function
        fields["pri"] = request.priority if request.priority is not None else queue.priority
        fields["max"] = request.max_attempts or queue.retry.max_attempts
        fields["timeout"] = repr(float(request.timeout or queue.timeout))
        if request.idempotency_key:
            fields["idem"] = request.idempotency_key
        run_at = request.run_at.timestamp() if request.run_at is not None else None
        return fields, request.delay or 0.0, run_at

    async def _check_function(self, queue: str, function: str) -> None:
        key = f"{queue}/{function}"
        if _known_functions.get(key, 0.0) > time.monotonic():
            return
        seen = await self.redis.hget(FUNCTIONS_KEY, key)
        if seen is not None and time.time() - int(seen) / 1000 < FUNCTION_MEMORY:
            _known_functions[key] = time.monotonic() + FUNCTION_CACHE
            return
        known = sorted(await self.functions(queue))
        raise UnprocessableContent(
            f"no worker runs function {function!r} on queue {queue}"
            + (f"; known there: {', '.join(known)}" if known else "; no worker has registered any function there"),
            function=function,
            known=known,
        )

    async def register_functions(self, queue: str, names: Iterable[str]) -> None:
        now = str(int(time.time() * 1000))
        mapping = {f"{queue}/{name}": now for name in names}
        if mapping:
            await self.redis.hset(FUNCTIONS_KEY, mapping=mapping)

    async def functions(self, queue: str) -> list[str]:
        entries = await self.redis.hgetall(FUNCTIONS_KEY)
        horizon = (time.time() - FUNCTION_MEMORY) * 1000
        out = []
        for key, seen in entries.items():
            q, _, name = key.decode().partition("/")
            if q == queue and int(seen) >= horizon:
                out.append(name)
        return out

    # -- read ------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        queue = queue_of(job_id)
        if queue is None:
            return None
        return (await self._get_many(queue, [job_id]))[0]

    async def _get_many(self, queue: str, ids: Sequence[str]) -> list[Job | None]:
        """Jobs of one queue in one round trip (None for those that are gone)."""
        p = prefix(queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(p + "job:" + job_id, FIELDS)
                pipe.hgetall(p + "steps:" + job_id)
            replies = await pipe.execute()
        return [self._job(i, queue, replies[2 * n], replies[2 * n + 1]) for n, i in enumerate(ids)]

    @staticmethod
    def _job(job_id: str, queue: str, values: list[bytes | None], steps: dict[bytes, bytes]) -> Job | None:
        f = dict(zip(FIELDS, values, strict=True))
        if f["state"] is None:
            return None
        fn = _text(f["fn"])
        errors = [
            AttemptError(
                attempt=e["attempt"],
                at=datetime.fromtimestamp(e["at"] / 1000, UTC),
                error=e["error"],
                worker=e.get("worker"),
            )
            for e in (_json(f["errors"]) or [])
        ]
        state = _text(f["state"])
        return Job(
            id=job_id,
            queue=queue,
            function=None if fn == HTTP_KIND else fn,
            http=HttpTarget.model_validate_json(f["http"]) if f["http"] else None,
            payload=_json(f["payload"]),
            state=state,
            priority=int(f["pri"] or 0),
            attempts=int(f["att"] or 0),
            max_attempts=int(f["max"] or 1),
            timeout=float(f["timeout"] or 0),
            created_at=_time(f["created"]),
            run_at=_time(f["run_at"]) if state in ("scheduled", "queued") else None,
            started_at=_time(f["started"]),
            finished_at=_time(f["finished"]),
            last_error=_text(f["error"]),
            errors=errors,
            result=_json(f["result"]),
            idempotency_key=_text(f["idem"]),
            cancel_requested=f["cancel"] == b"1",
            steps={k.decode()[2:]: _json(v) for k, v in steps.items() if k.startswith(b"r:")},
        )

    async def counts(self, queue: QueueSettings) -> QueueInfo:
        p = prefix(queue.name)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in ("ready", "sched", "active", "dead"):
                pipe.zcard(p + name)
            pipe.hgetall(p + "stats")
            ready, sched, active, dead, raw = await pipe.execute()
        stats = {k.decode(): int(v) for k, v in raw.items()}
        started, completed = stats.get("started", 0), stats.get("completed", 0)
        return QueueInfo(
            name=queue.name,
            paused=queue.paused,
            concurrency=queue.concurrency,
            global_concurrency=queue.global_concurrency,
            counts=QueueCounts(
                queued=ready,
                scheduled=sched,
                active=active,
                dead=dead,
                enqueued=stats.get("enqueued", 0),
                completed=completed,
                failed=stats.get("failed", 0),
                retried=stats.get("retried", 0),
                reclaimed=stats.get("reclaimed", 0),
                cancelled=stats.get("cancelled", 0),
                mean_wait_ms=stats.get("wait_ms", 0) / started if started else None,
                mean_run_ms=stats.get("run_ms", 0) / completed if completed else None,
            ),
        )

    # -- change ----------------------------------------------------------------------

    async def cancel(self, job_id: str, queue: QueueSettings) -> Job:
        before = await scripts.CANCEL_SCRIPT(
            self.redis, [prefix(queue.name) + "ready"], [prefix(queue.name), job_id, _ms(queue.keep_completed)]
        )
        state = before.decode() if before else ""
        if not state:
            raise NotFound(f"no job {job_id}", id=job_id)
        if state in FINISHED_STATES:
            raise Conflict(f"job {job_id} is already {state}", id=job_id, state=state)
        job = await self.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}", id=job_id)
        return job

    async def dead_page(self, queue: str, limit: int = 50, cursor: str | None = None) -> JobPage:
        """Dead letters, newest first. The cursor is "<ms>:<id>" of the last one shown."""
        picked, next_cursor = await self._sorted_page(queue, "dead", limit, cursor, newest_first=True)
        jobs = [job for job in await self._get_many(queue, [i for i, _ in picked]) if job is not None]
        return JobPage(items=jobs, next_cursor=next_cursor)

    async def running_page(self, queue: str, limit: int = 50, cursor: str | None = None) -> TimedPage:
        """Jobs a worker holds, the lease that ends first first; each with when its lease ends."""
        return await self._timed_page(queue, "active", limit, cursor)

    async def scheduled_page(self, queue: str, limit: int = 50, cursor: str | None = None) -> TimedPage:
        """Jobs waiting for a time (a delay, a retry's backoff, a step's sleep or wait), the
        soonest first; each with when it may run."""
        return await self._timed_page(queue, "sched", limit, cursor)

    async def _timed_page(self, queue: str, name: str, limit: int, cursor: str | None) -> TimedPage:
        """One page of a queue's sorted set whose scores are times in ms, soonest first."""
        picked, next_cursor = await self._sorted_page(queue, name, limit, cursor, newest_first=False)
        jobs = await self._get_many(queue, [i for i, _ in picked])
        items = [
            (job, datetime.fromtimestamp(score / 1000, UTC))
            for job, (_, score) in zip(jobs, picked, strict=True)
            if job is not None
        ]
        return TimedPage(items=items, next_cursor=next_cursor)

    async def _sorted_page(
        self, queue: str, name: str, limit: int, cursor: str | None, *, newest_first: bool
    ) -> tuple[list[tuple[str, float]], str | None]:
        """One page of (job id, score) of a queue's sorted set `name`, by score, and the cursor
        of the next page: "<score>:<id>" of the last one shown (ids break ties, so a page
        boundary between equal scores neither repeats nor skips a job)."""
        start: str = "+inf" if newest_first else "-inf"
        after: tuple[float, str] | None = None
        if cursor:
            score, _, last_id = cursor.partition(":")
            try:
                after = (float(score), last_id)
            except ValueError:
                raise UnprocessableContent(f"not a cursor of this list: {cursor!r}") from None
            start = score
        key, wanted = prefix(queue) + name, limit + 100
        if newest_first:
            rows = await self.redis.zrevrangebyscore(key, start, "-inf", start=0, num=wanted, withscores=True)
        else:
            rows = await self.redis.zrangebyscore(key, start, "+inf", start=0, num=wanted, withscores=True)
        picked: list[tuple[str, float]] = []
        for member, score in rows:
            job_id = member.decode()
            if after and score == after[0] and (job_id >= after[1] if newest_first else job_id <= after[1]):
                continue
            picked.append((job_id, score))
            if len(picked) > limit:
                break
        more = len(picked) > limit
        picked = picked[:limit]
        return picked, (f"{int(picked[-1][1])}:{picked[-1][0]}" if more and picked else None)

    async def replay_changed(self, queue: str, job_id: str, payload: Any) -> bool:
        """Replay one dead letter with another payload (what its first attempts lacked).
        False if it is not a dead letter of the queue (any more)."""
        if queue_of(job_id) != queue:
            return False
        p = prefix(queue)
        reply = await scripts.REPLAY_CHANGED_SCRIPT(self.redis, [p + "ready"], [p, job_id, orjson.dumps(payload)])
        return bool(reply)

    async def _dead_ids(self, queue: str, selector: DeadLetterFilter) -> list[str]:
        if selector.ids is not None:
            return [i for i in selector.ids if queue_of(i) == queue]
        members = [m.decode() for m in await self.redis.zrange(prefix(queue) + "dead", 0, -1)]
        if selector.all:
            return members
        out = []
        for start in range(0, len(members), 500):
            chunk = members[start : start + 500]
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in chunk:
                    pipe.hget(prefix(queue) + "job:" + job_id, "fn")
                functions = await pipe.execute()
            out += [i for i, fn in zip(chunk, functions, strict=True) if fn and fn.decode() == selector.function]
        return out

    async def replay(self, queue: str, selector: DeadLetterFilter) -> list[str]:
        return await self._dead_batch(scripts.REPLAY_SCRIPT, queue, selector)

    async def purge(self, queue: str, selector: DeadLetterFilter) -> list[str]:
        return await self._dead_batch(scripts.PURGE_SCRIPT, queue, selector)

    async def _dead_batch(self, script: Any, queue: str, selector: DeadLetterFilter) -> list[str]:
        ids = await self._dead_ids(queue, selector)
        done: list[str] = []
        p = prefix(queue)
        for start in range(0, len(ids), 500):
            reply = await script(self.redis, [p + "ready"], [p, *ids[start : start + 500]])
            done += [i.decode() for i in reply]
        return done

    # -- events ----------------------------------------------------------------------

    async def send_event(self, name: str, data: Any) -> int:
        """Resume every step waiting for this event; answers how many."""
        key = ROOT + "events:" + name
        waiters = await self.redis.smembers(key)
        delivered = 0
        body = orjson.dumps(data)
        for waiter in waiters:
            job_id, _, step = waiter.decode().partition("|")
            queue = queue_of(job_id)
            if queue is None:
                continue
            record = await self.redis.hget(prefix(queue) + "steps:" + job_id, "w:" + step)
            if record is not None and not matches(orjson.loads(record).get("match"), data):
                continue
            ok = await scripts.DELIVER_SCRIPT(
                self.redis, [prefix(queue) + "ready"], [prefix(queue), job_id, step, body]
            )
            await self.redis.srem(key, waiter)
            delivered += int(ok)
        return delivered

    # -- a worker's calls --------------------------------------------------------------

    async def take(self, queue: QueueSettings, want: int, token: str) -> Taken:
        rate, interval = queue.rate_limit or (0, 1.0)
        reply = await scripts.DEQUEUE_SCRIPT(
            self.redis,
            [prefix(queue.name) + "ready"],
            [
                prefix(queue.name),
                want,
                _ms(queue.visibility_timeout),
                token,
                queue.global_concurrency or 0,
                rate,
                max(1, _ms(interval)),
                _ms(queue.keep_dead),
            ],
        )
        wait_ms = int(reply[0])
        jobs = [_claimed(queue.name, row) for row in reply[1:]]
        return Taken(jobs, wait_ms / 1000 if wait_ms >= 0 else None)

    async def complete(self, queue: QueueSettings, token: str, done: Sequence[tuple[str, bytes, float]]) -> list[bool]:
        """Record finished jobs (id, result JSON, run seconds) in one round trip."""
        args: list[str | int | bytes] = [prefix(queue.name), _ms(queue.keep_completed)]
        for job_id, result, ran in done:
            args += [job_id, token, result, _ms(ran)]
        reply = await scripts.COMPLETE_SCRIPT(self.redis, [prefix(queue.name) + "ready"], args)
        return [bool(r) for r in reply]

    async def fail(
        self, queue: QueueSettings, token: str, job_id: str, error: str, worker: str, retry_in: float | None
    ) -> int:
        """1: retried later, 2: dead-lettered, 0: the job was not held any more."""
        return int(
            await scripts.FAIL_SCRIPT(
                self.redis,
                [prefix(queue.name) + "ready"],
                [
                    prefix(queue.name),
                    job_id,
                    token,
                    error[:2000],
                    worker,
                    -1 if retry_in is None else _ms(retry_in),
                    _ms(queue.keep_dead),
                ],
            )
        )

    async def requeue(
        self, queue: QueueSettings, token: str, job_id: str, *, delay: float = 0.0, refund: bool, step: str = ""
    ) -> bool:
        reply = await scripts.REQUEUE_SCRIPT(
            self.redis,
            [prefix(queue.name) + "ready"],
            [prefix(queue.name), job_id, token, _ms(delay), "1" if refund else "0", step],
        )
        return bool(reply)

    async def cancelled(self, queue: QueueSettings, token: str, job_id: str) -> bool:
        reply = await scripts.CANCELLED_SCRIPT(
            self.redis, [prefix(queue.name) + "ready"], [prefix(queue.name), job_id, token, _ms(queue.keep_completed)]
        )
        return bool(reply)

    async def heartbeat(self, queue: QueueSettings, token: str, ids: Sequence[str]) -> tuple[set[str], set[str]]:
        """Extend the leases; answers (ids no longer held, ids asked to cancel)."""
        lost, cancel = await scripts.HEARTBEAT_SCRIPT(
            self.redis,
            [prefix(queue.name) + "ready"],
            [prefix(queue.name), token, _ms(queue.visibility_timeout), *ids],
        )
        return {i.decode() for i in lost}, {i.decode() for i in cancel}

    async def wait_for_work(self, queue: str, timeout: float) -> None:
        """Block until an enqueue pushes a wake token or the timeout passes."""
        await self.redis.blpop([prefix(queue) + "wake"], timeout=max(0.01, min(timeout, 1.0)))

    # -- steps -------------------------------------------------------------------------

    async def step_state(self, job_id: str, name: str) -> tuple[bool, Any, bytes | None]:
        """(done, result, wait record) of one step."""
        queue = queue_of(job_id) or ""
        result, waiting = await self.redis.hmget(prefix(queue) + "steps:" + job_id, ["r:" + name, "w:" + name])
        if result is not None:
            return True, orjson.loads(result), waiting
        return False, None, waiting

    async def step_results(self, job_id: str, prefix_: str = "") -> dict[str, Any]:
        """The results of the job's completed steps whose names start with `prefix_`."""
        queue = queue_of(job_id) or ""
        entries = await self.redis.hgetall(prefix(queue) + "steps:" + job_id)
        marker = ("r:" + prefix_).encode()
        return {k[2:].decode(): orjson.loads(v) for k, v in entries.items() if k.startswith(marker)}

    async def save_step(self, job_id: str, name: str, result: Any) -> None:
        queue = queue_of(job_id) or ""
        await self.redis.hset(prefix(queue) + "steps:" + job_id, "r:" + name, orjson.dumps(result))

    async def save_wait(self, job_id: str, name: str, record: dict[str, Any], event: str | None) -> None:
        queue = queue_of(job_id) or ""
        await self.redis.hset(prefix(queue) + "steps:" + job_id, "w:" + name, orjson.dumps(record))
        if event is not None:
            await self.redis.sadd(ROOT + "events:" + event, f"{job_id}|{name}")

    async def stop_waiting(self, job_id: str, name: str, event: str) -> None:
        await self.redis.srem(ROOT + "events:" + event, f"{job_id}|{name}")
