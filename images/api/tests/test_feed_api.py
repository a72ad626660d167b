"""The in-app feed over HTTP: messages delivered by FeedStore (as the worker's inApp step does)
into the real MongoDB and published on the real Redis, listed with counts, marked one at a time
and in bulk, private to their recipient; and the live stream (Server-Sent Events) on one api
replica receiving what another process delivers or marks."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from auth_http import bearer, problem, sign_up_and_log_in
from pymongo import AsyncMongoClient
from stackyard.clients import redis_client
from stackyard.jobs.ids import sortable_id
from stackyard.notify.feed import FeedStore
from stackyard.notify.feed_contract import FeedMessage, FeedMessageIn
from stackyard_api.routers import feed as feed_router
from stackyard_harness.api_process import start_api
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack
from stackyard_harness.process import ManagedProcess

REDIS_DATABASE = 16
RUN_WORKER = True  # the workflow test's inApp step runs on a real worker
AUTH_SETTINGS = {"requireEmailVerification": False}
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
WORKFLOWS: dict[str, dict[str, Any]] = {
    "comment-created": {
        "steps": [
            {
                "name": "in-app",
                "inApp": {"title": "{{ actor.name }} commented", "body": "{{ data.text }}", "data": {"kind": "c"}},
            }
        ]
    }
}
SCOPE = "ns/demo"  # the AuthStack's Stack: namespace ns, name demo


# -- delivering as the engine does --------------------------------------------------------------


def deliver(auth: AuthStack, recipient: str, title: str = "Hello", **fields: Any) -> FeedMessage:
    """FeedStore.deliver from this process (its own Redis and MongoDB clients), as the worker does."""
    run_id = "nrun_" + sortable_id()
    message = FeedMessageIn(
        id=fields.pop("id", f"msg_{run_id}.in-app"),
        recipient=recipient,
        workflow="comment-created",
        run_id=run_id,
        step="in-app",
        title=title,
        body=fields.pop("body", "Ana commented"),
        action_url="https://app.acme.dev/c/1",
        data={"commentId": "c1"},
        actor={"id": "u_ana", "name": "Ana"},
        **fields,
    )

    async def run() -> FeedMessage:
        redis = redis_client(auth.redis_url)
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(auth.mongo_url, tz_aware=True)
        try:
            return await FeedStore(mongo[auth.database], redis, SCOPE).deliver(message)
        finally:
            await redis.aclose()
            await mongo.close()

    return asyncio.run(run())


def user(http: httpx.Client, name: str = "ana") -> tuple[str, dict[str, str]]:
    """A new user: (their id, the headers of their access token)."""
    session = sign_up_and_log_in(http, f"{name}-{uuid.uuid4().hex[:8]}@example.com")
    headers = bearer(session)
    me = http.get("/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    return me.json()["id"], headers


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


# -- a second api replica ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_process(
    running: AuthStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ManagedProcess, str]]:
    """Another `stackyard-api` process on the same config directory (same Redis, same MongoDB)."""
    process, url = start_api(running.directory, tmp_path_factory.mktemp("replica"))
    try:
        yield process, url
    finally:
        process.stop()


@pytest.fixture
def replica(auth: AuthStack, second_process: tuple[ManagedProcess, str]) -> str:
    """The second replica's URL, once it serves the test's config."""
    _, url = second_process
    wait_for_config(url, auth)
    return url


def wait_for_config(url: str, auth: AuthStack) -> None:
    deadline = time.monotonic() + 15
    while httpx.get(f"{url}/v1/config", timeout=2).json()["generation"] != auth.generation:
        assert time.monotonic() < deadline, "the second api process did not take the config"
        time.sleep(0.05)


# -- an SSE client ----------------------------------------------------------------------------


class EventStream:
    """GET an event stream in a thread; each event (and heartbeat comment) as it arrives,
    with the monotonic time it arrived. (http.client: `close` shuts the socket down, which
    ends a read blocked in the thread at once.)"""

    def __init__(self, url: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None):
        self.events: queue.Queue[tuple[float, dict[str, str]]] = queue.Queue()
        self.opened = threading.Event()
        self.status = 0
        self.error = ""
        self.content_type = ""
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        self._target = parts.path + ("?" + urlencode(params) if params else "")
        self._headers = {"Accept": "text/event-stream", **(headers or {})}
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not answer"

    def _read(self) -> None:
        try:
            self._connection.request("GET", self._target, headers=self._headers)
            response = self._connection.getresponse()
            self.status, self.content_type = response.status, response.getheader("content-type", "")
            if response.status != 200:
                self.error = response.read().decode()
                return
            self.opened.set()
            event: dict[str, str] = {}
            while raw := response.readline():
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if event:
                        self.events.put((time.monotonic(), event))
                    event = {}
                elif line.startswith(":"):
                    self.events.put((time.monotonic(), {"comment": line[1:].strip()}))
                else:
                    name, _, value = line.partition(":")
                    event[name] = value.removeprefix(" ")
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            pass  # closed by close() (http.client may meet its closed file as None)
        finally:
            self.opened.set()

    def next(self, kind: str, timeout: float = 5.0) -> tuple[float, dict[str, str]]:
        """The next event of `kind` (message, counts, update, expired, or comment), skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} event within {timeout} s") from None
            if event.get("event", "comment" if "comment" in event else "") == kind:
                return at, event

    def counts(self, timeout: float = 5.0) -> dict[str, int]:
        result: dict[str, int] = json.loads(self.next("counts", timeout)[1]["data"])
        return result

    def close(self) -> None:
        if (sock := self._connection.sock) is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._connection.close()
        self._thread.join(5)
        assert not self._thread.is_alive()


@pytest.fixture
def streams() -> Iterator[list[EventStream]]:
    opened: list[EventStream] = []
    yield opened
    for stream in opened:
        stream.close()


def open_stream(streams: list[EventStream], base: str, headers: dict[str, str], **params: str) -> EventStream:
    stream = EventStream(f"{base}/v1/feed/stream", {"token": token_of(headers), **params})
    streams.append(stream)
    assert stream.status == 200, stream.error
    return stream


def message_of(event: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(event["data"])
    return body


# -- the feed ---------------------------------------------------------------------------------


def test_the_feed_lists_newest_first_in_pages_with_counts(auth: AuthStack, http: httpx.Client):
    user_id, headers = user(http)
    sent = [deliver(auth, user_id, title=f"message {i}") for i in range(5)]
    page = http.get("/v1/feed", params={"limit": 2}, headers=headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert [m["title"] for m in body["items"]] == ["message 4", "message 3"]
    assert body["counts"] == {"total": 5, "unread": 5, "unseen": 5}
    first = body["items"][0]
    assert first["id"] == sent[4].id and first["recipient"] == user_id
    assert first["workflow"] == "comment-created" and first["step"] == "in-app" and first["runId"] == sent[4].run_id
    assert first["actionUrl"] == "https://app.acme.dev/c/1" and first["data"] == {"commentId": "c1"}
    assert first["actor"] == {"id": "u_ana", "name": "Ana"}
    assert first["seenAt"] is None and first["readAt"] is None and first["archivedAt"] is None
    titles = [m["title"] for m in body["items"]]
    while body["nextCursor"]:
        body = http.get("/v1/feed", params={"limit": 2, "cursor": body["nextCursor"]}, headers=headers).json()
        titles += [m["title"] for m in body["items"]]
    assert titles == [f"message {i}" for i in (4, 3, 2, 1, 0)]
    problem(http.get("/v1/feed", params={"cursor": "garbage"}, headers=headers), 400, "cursor-invalid")


def test_a_retried_delivery_returns_the_message_already_there(auth: AuthStack, http: httpx.Client):
    user_id, headers = user(http)
    first = deliver(auth, user_id, id="msg_nrun_retried.in-app", title="once")
    again = deliver(auth, user_id, id="msg_nrun_retried.in-app", title="twice")
    assert again == first and again.title == "once"
    body = http.get("/v1/feed", headers=headers).json()
    assert [m["id"] for m in body["items"]] == ["msg_nrun_retried.in-app"]
    assert body["counts"]["total"] == 1


def test_marks_set_and_clear_seen_read_and_archived(auth: AuthStack, http: httpx.Client):
    user_id, headers = user(http)
    one, two = deliver(auth, user_id, title="one"), deliver(auth, user_id, title="two")

    seen = http.post(f"/v1/feed/{one.id}/seen", headers=headers)
    assert seen.status_code == 200, seen.text
    assert seen.json()["seenAt"] and seen.json()["readAt"] is None
    assert http.get("/v1/feed/counts", headers=headers).json() == {"total": 2, "unread": 2, "unseen": 1}

    read = http.post(f"/v1/feed/{two.id}/read", headers=headers).json()
    assert read["readAt"] and read["seenAt"]  # read implies seen
    assert http.get("/v1/feed/counts", headers=headers).json() == {"total": 2, "unread": 1, "unseen": 0}
    assert http.post(f"/v1/feed/{two.id}/read", headers=headers).json()["readAt"] == read["readAt"]  # first time kept
    assert [m["title"] for m in http.get("/v1/feed?status=read", headers=headers).json()["items"]] == ["two"]
    assert [m["title"] for m in http.get("/v1/feed?status=unread", headers=headers).json()["items"]] == ["one"]

    unread = http.post(f"/v1/feed/{two.id}/unread", headers=headers).json()
    assert unread["readAt"] is None and unread["seenAt"] == read["seenAt"]

    archived = http.post(f"/v1/feed/{one.id}/archive", headers=headers).json()
    assert archived["archivedAt"]
    assert [m["title"] for m in http.get("/v1/feed", headers=headers).json()["items"]] == ["two"]
    assert [m["title"] for m in http.get("/v1/feed?status=archived", headers=headers).json()["items"]] == ["one"]
    assert http.get("/v1/feed/counts", headers=headers).json() == {"total": 1, "unread": 1, "unseen": 0}

    assert http.post(f"/v1/feed/{one.id}/unarchive", headers=headers).json()["archivedAt"] is None
    assert http.get(f"/v1/feed/{one.id}", headers=headers).json()["archivedAt"] is None
    assert http.get("/v1/feed/counts", headers=headers).json() == {"total": 2, "unread": 2, "unseen": 0}
    problem(http.post(f"/v1/feed/{one.id}/delete", headers=headers), 422, "validation")


def test_bulk_marks_named_messages_or_all_of_them(auth: AuthStack, http: httpx.Client):
    user_id, headers = user(http)
    messages = [deliver(auth, user_id, title=f"m{i}") for i in range(4)]
    named = http.post(
        "/v1/feed/bulk", json={"action": "read", "ids": [messages[0].id, messages[1].id]}, headers=headers
    )
    assert named.status_code == 200, named.text
    assert named.json() == {"action": "read", "updated": 2, "counts": {"total": 4, "unread": 2, "unseen": 2}}
    seen_all = http.post("/v1/feed/bulk", json={"action": "seen", "all": True}, headers=headers).json()
    assert seen_all["updated"] == 2 and seen_all["counts"] == {"total": 4, "unread": 2, "unseen": 0}
    archive_all = http.post("/v1/feed/bulk", json={"action": "archive", "all": True}, headers=headers).json()
    assert archive_all["updated"] == 4 and archive_all["counts"] == {"total": 0, "unread": 0, "unseen": 0}
    assert len(http.get("/v1/feed?status=archived", headers=headers).json()["items"]) == 4
    problem(http.post("/v1/feed/bulk", json={"action": "read"}, headers=headers), 422, "validation")
    both = {"action": "read", "ids": [messages[0].id], "all": True}
    problem(http.post("/v1/feed/bulk", json=both, headers=headers), 422, "validation")


def test_status_and_tenant_filter_the_feed_and_its_counts(auth: AuthStack, http: httpx.Client):
    user_id, headers = user(http)
    deliver(auth, user_id, title="acme", tenant="acme")
    deliver(auth, user_id, title="globex", tenant="globex")
    deliver(auth, user_id, title="none")
    acme = http.get("/v1/feed", params={"tenant": "acme"}, headers=headers).json()
    assert [m["title"] for m in acme["items"]] == ["acme"] and acme["counts"]["total"] == 1
    done = http.post("/v1/feed/bulk", json={"action": "read", "all": True, "tenant": "acme"}, headers=headers).json()
    assert done["updated"] == 1 and done["counts"] == {"total": 1, "unread": 0, "unseen": 0}
    assert http.get("/v1/feed/counts", headers=headers).json() == {"total": 3, "unread": 2, "unseen": 2}


def test_another_users_message_is_not_found(auth: AuthStack, http: httpx.Client):
    ana_id, ana = user(http, "ana")
    _, bob = user(http, "bob")
    message = deliver(auth, ana_id)
    problem(http.get(f"/v1/feed/{message.id}", headers=bob), 404, "feed-message-not-found")
    problem(http.post(f"/v1/feed/{message.id}/read", headers=bob), 404, "feed-message-not-found")
    bulk = http.post("/v1/feed/bulk", json={"action": "read", "ids": [message.id]}, headers=bob).json()
    assert bulk["updated"] == 0
    assert http.post("/v1/feed/bulk", json={"action": "archive", "all": True}, headers=bob).json()["updated"] == 0
    assert http.get("/v1/feed", headers=bob).json()["items"] == []
    assert http.get(f"/v1/feed/{message.id}", headers=ana).json()["readAt"] is None


def test_without_a_valid_access_token_the_feed_is_401(auth: AuthStack, http: httpx.Client):
    problem(http.get("/v1/feed"), 401, "invalid-token")
    problem(http.get("/v1/feed/stream"), 401, "invalid-token")
    problem(http.get("/v1/feed/stream", params={"token": "not.a.token"}), 401, "invalid-token")
    problem(http.post("/v1/feed/bulk", json={"action": "read", "all": True}), 401, "invalid-token")
    problem(http.get("/v1/feed", headers={"Authorization": "Bearer not.a.token"}), 401, "invalid-token")


# -- the live stream ----------------------------------------------------------------------------


def test_a_stream_on_one_replica_receives_a_message_delivered_by_another_process_within_a_second(
    auth: AuthStack, http: httpx.Client, replica: str, streams: list[EventStream]
):
    user_id, headers = user(http)
    deliver(auth, user_id, title="before")
    # The stream is on the second api process; the message is delivered (and published) from
    # this test's process, as the worker delivers: only Redis pub/sub connects the two.
    stream = open_stream(streams, replica, headers)
    assert stream.content_type.startswith("text/event-stream")
    assert stream.counts() == {"total": 1, "unread": 1, "unseen": 1}
    latencies = []
    for i in range(5):
        started = time.monotonic()
        sent = deliver(auth, user_id, title=f"live {i}")
        arrived, event = stream.next("message")
        latencies.append(arrived - started)
        assert message_of(event)["id"] == sent.id and message_of(event)["title"] == f"live {i}"
        assert event["id"].endswith("." + sent.id)
        assert stream.counts() == {"total": 2 + i, "unread": 2 + i, "unseen": 2 + i}
    assert max(latencies) < 1.0, latencies


def test_counts_events_follow_marks_made_through_another_replica(
    auth: AuthStack, http: httpx.Client, replica: str, streams: list[EventStream]
):
    user_id, headers = user(http)
    one, two = deliver(auth, user_id, title="one"), deliver(auth, user_id, title="two")
    stream = open_stream(streams, auth.url, headers)  # the replica in this process
    assert stream.counts() == {"total": 2, "unread": 2, "unseen": 2}
    with httpx.Client(base_url=replica, timeout=10) as other:
        assert other.post(f"/v1/feed/{one.id}/read", headers=headers).status_code == 200
        assert message_of(stream.next("update")[1]) == {"action": "read", "ids": [one.id]}
        assert stream.counts() == {"total": 2, "unread": 1, "unseen": 1}
        assert other.post("/v1/feed/bulk", json={"action": "seen", "all": True}, headers=headers).status_code == 200
        assert message_of(stream.next("update")[1]) == {"action": "seen", "all": True, "tenant": None}
        assert stream.counts() == {"total": 2, "unread": 1, "unseen": 0}
        assert other.post(f"/v1/feed/{two.id}/archive", headers=headers).status_code == 200
        assert stream.counts() == {"total": 1, "unread": 0, "unseen": 0}


def test_a_stream_sees_only_its_users_messages_and_its_tenants(
    auth: AuthStack, http: httpx.Client, streams: list[EventStream]
):
    ana_id, ana = user(http, "ana")
    bob_id, _ = user(http, "bob")
    stream = open_stream(streams, auth.url, ana, tenant="acme")
    assert stream.counts() == {"total": 0, "unread": 0, "unseen": 0}
    deliver(auth, bob_id, title="for bob", tenant="acme")
    deliver(auth, ana_id, title="other tenant", tenant="globex")
    mine = deliver(auth, ana_id, title="for ana", tenant="acme")
    _, event = stream.next("message")
    assert message_of(event)["id"] == mine.id  # neither bob's nor the other tenant's came first
    assert stream.counts() == {"total": 1, "unread": 1, "unseen": 1}


def test_a_reconnecting_stream_gets_the_messages_after_its_last_event_id(
    auth: AuthStack, http: httpx.Client, streams: list[EventStream]
):
    user_id, headers = user(http)
    first_stream = open_stream(streams, auth.url, headers)
    first_stream.counts()
    first = deliver(auth, user_id, title="first")
    _, event = first_stream.next("message")
    last_event_id = event["id"]
    first_stream.close()
    missed = [deliver(auth, user_id, title=f"missed {i}") for i in range(2)]
    again = EventStream(
        f"{auth.url}/v1/feed/stream", {"token": token_of(headers)}, headers={"Last-Event-ID": last_event_id}
    )
    streams.append(again)
    replayed = [message_of(again.next("message")[1])["id"] for _ in missed]
    assert replayed == [m.id for m in missed] and first.id not in replayed
    assert again.counts() == {"total": 3, "unread": 3, "unseen": 3}


def test_heartbeats_keep_a_stream_open_and_a_logout_ends_it(
    auth: AuthStack, http: httpx.Client, streams: list[EventStream], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(feed_router, "HEARTBEAT_SECONDS", 0.2)  # the api runs in this process
    _, headers = user(http)
    stream = open_stream(streams, auth.url, headers)
    stream.counts()
    assert stream.next("comment", timeout=2)[1] == {"comment": "heartbeat"}
    assert http.post("/v1/auth/logout", headers=headers).status_code == 204
    _, expired = stream.next("expired", timeout=3)
    assert "session" in message_of(expired)["detail"]
    stream.close()  # the server ended it already: the reader is done


def test_a_message_triggered_through_one_replica_reaches_a_stream_on_the_other_within_a_second(
    auth: AuthStack, http: httpx.Client, replica: str, streams: list[EventStream]
):
    auth.configure(AUTH_SETTINGS, notification_workflows=WORKFLOWS)
    wait_for_config(replica, auth)
    user_id, headers = user(http)
    stream = open_stream(streams, auth.url, headers)
    assert stream.counts() == {"total": 0, "unread": 0, "unseen": 0}
    with httpx.Client(base_url=replica, timeout=10) as other:
        # The first run in a fresh database also makes the worker's indexes there: not timed.
        for i in range(4):
            body = {"workflow": "comment-created", "recipients": [user_id], "data": {"text": f"hi {i}"}}
            body["actor"] = {"id": "u_ana", "name": "Ana"}
            started = time.monotonic()
            accepted = other.post("/v1/notify", json=body, headers=ADMIN)
            assert accepted.status_code == 202, accepted.text
            arrived, event = stream.next("message", timeout=10)
            message = message_of(event)
            assert (message["title"], message["body"], message["data"]) == ("Ana commented", f"hi {i}", {"kind": "c"})
            assert message["recipient"] == user_id and message["workflow"] == "comment-created"
            assert i == 0 or arrived - started < 1.0, f"trigger to stream took {arrived - started:.3f} s"
            assert stream.counts() == {"total": i + 1, "unread": i + 1, "unseen": i + 1}
        deadline = time.monotonic() + 10  # the run records the step's outcome after the delivery
        while (run := other.get(f"/v1/notify/runs/{message['runId']}", headers=ADMIN).json())["status"] != "completed":
            assert time.monotonic() < deadline, run
            time.sleep(0.05)
    assert run["steps"][0]["detail"]["messageId"] == message["id"]
    assert http.get(f"/v1/feed/{message['id']}", headers=headers).json()["body"] == "hi 3"
