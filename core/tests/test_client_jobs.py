"""The Python SDK over HTTP: the jobs, queues and events calls, its retries (429 and 503 with
Retry-After, failed connections), its idempotency keys and its typed errors, against a real
local server that follows the wire contract (jobs_api_fake)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from jobs_api_fake import FakeJobsApi
from pydantic import ValidationError
from stackyard.client import (
    ApiUnreachable,
    AsyncStackyard,
    Conflict,
    Job,
    NotFound,
    RateLimited,
    RetryPolicy,
    Stackyard,
    StackyardError,
    Unavailable,
    Unprocessable,
    WaitTimeout,
)
from stackyard.client.calls import Call
from stackyard.client.retry import retry_after
from stackyard.problems import PROBLEM_BASE

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, total=10)


@pytest.fixture(scope="module")
def running_api() -> Iterator[FakeJobsApi]:
    with FakeJobsApi.running() as api:
        yield api


@pytest.fixture
def api(running_api: FakeJobsApi) -> FakeJobsApi:
    running_api.reset()
    return running_api


@pytest.fixture
def stackyard(api: FakeJobsApi) -> Iterator[Stackyard]:
    with Stackyard(api.url, retry=FAST) as client:
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The calls.


def test_enqueue_returns_the_new_job_with_the_contract_fields(stackyard: Stackyard, api: FakeJobsApi):
    job = stackyard.jobs.enqueue("reports.send", payload={"userId": "u_42"}, delay=timedelta(seconds=30), priority=7)
    assert isinstance(job, Job)
    assert job.id.startswith("default.") and job.function == "reports.send" and job.payload == {"userId": "u_42"}
    assert job.state == "scheduled" and job.priority == 7 and job.run_at is not None
    (sent,) = api.requests("POST", "/v1/jobs")
    body = {"queue": "default", "function": "reports.send", "payload": {"userId": "u_42"}, "priority": 7, "delay": 30.0}
    assert json.loads(sent.body) == body, "camelCase, no nulls, and the key in the header only"
    assert uuid.UUID(sent.headers["idempotency-key"]).version == 4, "a key of its own when the caller gives none"


def test_enqueue_an_http_target(stackyard: Stackyard):
    job = stackyard.jobs.enqueue(http="https://app.example.com/jobs/sync", queue="emails", payload={"a": 1})
    assert job.queue == "emails" and job.function is None
    assert job.http is not None and str(job.http.url) == "https://app.example.com/jobs/sync"
    assert job.http.method == "POST"


def test_the_same_idempotency_key_returns_the_first_job(stackyard: Stackyard, api: FakeJobsApi):
    first = stackyard.jobs.enqueue("reports.send", idempotency_key="nightly-2026-11-25")
    again = stackyard.jobs.enqueue("reports.send", idempotency_key="nightly-2026-11-25")
    assert again.id == first.id and len(api.jobs) == 1
    assert [s.headers["idempotency-key"] for s in api.requests("POST", "/v1/jobs")] == ["nightly-2026-11-25"] * 2


def test_a_request_the_contract_refuses_is_not_sent(stackyard: Stackyard, api: FakeJobsApi):
    with pytest.raises(ValidationError, match="exactly one of function and http"):
        stackyard.jobs.enqueue()
    with pytest.raises(ValidationError, match="delay or runAt"):
        stackyard.jobs.enqueue("reports.send", delay=5, run_at=datetime.now(UTC))
    with pytest.raises(ValidationError):
        stackyard.queues.replay("default", ids=["a"], all=True)
    assert api.seen == []


def test_get_and_cancel(stackyard: Stackyard, api: FakeJobsApi):
    waiting = stackyard.jobs.enqueue("reports.send")
    assert stackyard.jobs.get(waiting.id) == waiting
    cancelled = stackyard.jobs.cancel(waiting.id)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    running = api.add_job(state="active")
    asked = stackyard.jobs.cancel(running.id)
    assert asked.state == "active" and asked.cancel_requested
    with pytest.raises(Conflict) as raised:
        stackyard.jobs.cancel(waiting.id)
    assert raised.value.status == 409 and raised.value.extensions["state"] == "cancelled"


def test_wait_reads_until_the_job_has_finished(stackyard: Stackyard, api: FakeJobsApi):
    job = api.add_job()
    api.script(job.id, "active", "active", "completed")
    states: list[str] = []
    finished = stackyard.jobs.wait(job.id, poll=0.01, on_update=lambda j: states.append(j.state))
    assert finished.state == "completed" and states == ["active", "active", "completed"]


def test_wait_gives_up_after_its_timeout_with_the_last_state(stackyard: Stackyard, api: FakeJobsApi):
    job = api.add_job(state="active")
    with pytest.raises(WaitTimeout) as raised:
        stackyard.jobs.wait(job.id, timeout=0.2, poll=0.05)
    assert raised.value.job.state == "active" and isinstance(raised.value, TimeoutError)


def test_queues(stackyard: Stackyard, api: FakeJobsApi):
    api.add_job(state="dead", errors=["boom"])
    api.add_job()
    queues = {q.name: q for q in stackyard.queues.list()}
    assert set(queues) == {"default", "emails"}
    assert queues["default"].counts.queued == 1 and queues["default"].counts.dead == 1
    assert stackyard.queues.get("emails").counts.queued == 0
    with pytest.raises(NotFound):
        stackyard.queues.get("nope")


def test_dead_letters_page_newest_first_and_iterate_every_page(stackyard: Stackyard, api: FakeJobsApi):
    dead = [api.add_job(state="dead", errors=[f"error {i}"]).id for i in range(5)]
    api.add_job(state="completed")
    page = stackyard.queues.dead("default", limit=2)
    assert [j.id for j in page.items] == dead[::-1][:2] and page.next_cursor
    second = stackyard.queues.dead("default", limit=2, cursor=page.next_cursor)
    assert [j.id for j in second.items] == dead[::-1][2:4]
    assert [j.id for j in stackyard.queues.iter_dead("default", page_size=2)] == dead[::-1]


def test_replay_and_purge_by_ids_function_or_all(stackyard: Stackyard, api: FakeJobsApi):
    a, b = api.add_job(state="dead").id, api.add_job(state="dead").id
    c = api.add_job(function="emails.send", state="dead").id
    replayed = stackyard.queues.replay("default", ids=[a])
    assert replayed.count == 1 and replayed.ids == [a] and api.jobs[a].state == "queued"
    assert stackyard.queues.purge("default", function="emails.send").ids == [c] and c not in api.jobs
    assert stackyard.queues.replay("default", all=True).ids == [b]
    bodies = [json.loads(s.body) for s in api.seen if s.method == "POST"]
    assert bodies == [{"ids": [a], "all": False}, {"function": "emails.send", "all": False}, {"all": True}]


def test_events_send(stackyard: Stackyard, api: FakeJobsApi):
    api.waiting["order.paid"] = 2
    assert stackyard.events.send("order.paid", {"orderId": 7}).delivered == 2
    assert json.loads(api.requests("POST", "/v1/events")[0].body) == {"name": "order.paid", "data": {"orderId": 7}}


# Retries.


def test_a_429_is_retried_after_its_retry_after(stackyard: Stackyard, api: FakeJobsApi):
    api.fail("/v1/queues", 429, retry_after="1")
    assert len(stackyard.queues.list()) == 2
    first, second = api.requests("GET", "/v1/queues")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0, "the retry waited what Retry-After said"


def test_503_is_retried_with_backoff_until_an_answer(stackyard: Stackyard, api: FakeJobsApi):
    api.fail("/v1/queues/default", 503, times=3)
    assert stackyard.queues.get("default").name == "default"
    assert [s.status for s in api.requests("GET", "/v1/queues/default")] == [503, 503, 503, 200]


def test_a_retried_enqueue_keeps_its_key_and_enqueues_once(stackyard: Stackyard, api: FakeJobsApi):
    api.fail("/v1/jobs", 503, after=True)  # the job is enqueued, then the answer is lost
    job = stackyard.jobs.enqueue("reports.send")
    sent = api.requests("POST", "/v1/jobs")
    assert [s.status for s in sent] == [503, 200], "the retry found the first job (Idempotent-Replayed)"
    assert sent[0].headers["idempotency-key"] == sent[1].headers["idempotency-key"]
    assert list(api.jobs) == [job.id]


def test_retries_end_after_the_attempts_with_the_typed_error(api: FakeJobsApi):
    api.fail("/v1/queues", 503, retry_after="0", times=10)
    with (
        Stackyard(api.url, retry=RetryPolicy(attempts=3, backoff=0.01)) as client,
        pytest.raises(Unavailable) as raised,
    ):
        client.queues.list()
    error = raised.value
    assert (error.status, error.title, error.type) == (503, "Service unavailable", PROBLEM_BASE + "unavailable")
    assert error.detail == "the test made /v1/queues answer 503" and error.instance == "/v1/queues"
    assert error.retry_after == 0.0 and len(api.requests("GET", "/v1/queues")) == 3


def test_a_retry_after_beyond_the_time_budget_gives_up_at_once(api: FakeJobsApi):
    api.fail("/v1/events", 429, retry_after="120")
    with Stackyard(api.url, retry=RetryPolicy(total=5)) as client, pytest.raises(RateLimited) as raised:
        client.events.send("order.paid")
    assert raised.value.retry_after == 120 and len(api.requests("POST", "/v1/events")) == 1


def test_retry_after_is_seconds_or_an_http_date():
    def answer(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert retry_after(answer("7")) == 7.0
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8 < (retry_after(answer(in_ten)) or 0) <= 10
    assert retry_after(answer("soon")) is None and retry_after(httpx.Response(429)) is None


def test_a_request_sent_while_the_api_starts_gets_through_once_it_listens():
    port = free_port()
    late = FakeJobsApi()
    starter = threading.Timer(0.5, late.start, kwargs={"port": port})
    starter.start()
    try:
        with Stackyard(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=30, backoff=0.1, max_backoff=0.2)) as c:
            job = c.jobs.enqueue("reports.send")
        assert list(late.jobs) == [job.id]
    finally:
        starter.join()
        late.stop()


# Errors.


def test_problems_become_typed_exceptions_with_their_fields(stackyard: Stackyard):
    with pytest.raises(NotFound) as raised:
        stackyard.jobs.get("default.nope")
    error = raised.value
    assert isinstance(error, StackyardError)
    assert (error.status, error.type, error.title) == (404, PROBLEM_BASE + "not-found", "Not found")
    assert error.detail == "no job default.nope" and error.extensions == {"id": "default.nope"}
    assert str(error) == "Not found: no job default.nope (HTTP 404)"
    raw = Call("POST", "/v1/jobs", Job, json={"function": "reports.send", "http": {"url": "https://x.example"}})
    with pytest.raises(Unprocessable) as invalid:
        stackyard.send(raw)
    assert invalid.value.extensions["errors"][0]["location"] == "body"


def test_an_answer_that_is_not_a_problem_still_maps_by_status(stackyard: Stackyard):
    with pytest.raises(NotFound) as raised:
        stackyard.send(Call("GET", "/v1/not-a-route", Job))
    assert raised.value.title == "Not Found" and raised.value.detail == "Not Found"


def test_connection_refused_is_api_unreachable():
    url = f"http://127.0.0.1:{free_port()}"
    with Stackyard(url, retry=FAST) as client, pytest.raises(ApiUnreachable) as raised:
        client.queues.list()
    assert raised.value.url == url and not raised.value.maybe_applied
    assert str(raised.value).startswith(f"cannot reach the stackyard api at {url}: ")


class Hangup:
    """A server that reads each request and closes the connection without an answer."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.recv(65536)


def test_a_connection_lost_after_sending_is_retried_only_when_that_is_safe():
    hangup = Hangup()
    try:
        with Stackyard(hangup.url, retry=FAST) as client:
            with pytest.raises(ApiUnreachable) as sent_once:
                client.events.send("order.paid")
            assert sent_once.value.maybe_applied and hangup.connections == 1, "an event is never sent twice"
            with pytest.raises(ApiUnreachable) as read:
                client.jobs.get("default.x")
            assert not read.value.maybe_applied and hangup.connections == 1 + FAST.attempts, "a read is retried"
    finally:
        hangup.sock.close()


def test_the_url_and_token_come_from_the_environment(api: FakeJobsApi, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STACKYARD_API_URL", api.url + "/")
    monkeypatch.setenv("STACKYARD_API_TOKEN", "sk-test")
    with Stackyard() as client:
        assert client.base_url == api.url and "sk-test" not in repr(client)
        client.queues.list()
    assert api.seen[-1].headers["authorization"] == "Bearer sk-test"
    with Stackyard(token="other") as client:
        client.queues.list()
    assert api.seen[-1].headers["authorization"] == "Bearer other"
    with pytest.raises(ValueError, match="http"):
        Stackyard("127.0.0.1:8080")


# The async client: the same calls over the same code.


async def test_the_async_client_enqueues_waits_and_retries(api: FakeJobsApi):
    api.fail("/v1/jobs", 503, after=True)
    async with AsyncStackyard(api.url, retry=FAST) as client:
        job = await client.jobs.enqueue("reports.send", payload=[1, 2])
        assert list(api.jobs) == [job.id] and len(api.requests("POST", "/v1/jobs")) == 2
        api.script(job.id, "active", "completed")
        assert (await client.jobs.wait(job.id, poll=0.01)).state == "completed"
        dead = [api.add_job(state="dead").id for _ in range(3)]
        assert [j.id async for j in client.queues.iter_dead("default", page_size=2)] == dead[::-1]
        assert (await client.queues.replay("default", all=True)).count == 3
        assert (await client.events.send("x")).delivered == 0
        with pytest.raises(NotFound):
            await client.jobs.cancel("default.nope")


async def test_the_async_client_reports_an_unreachable_api():
    started = time.monotonic()
    async with AsyncStackyard(f"http://127.0.0.1:{free_port()}", retry=FAST) as client:
        with pytest.raises(ApiUnreachable):
            await client.queues.list()
    assert time.monotonic() - started < FAST.total
