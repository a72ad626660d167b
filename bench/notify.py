"""Notifications: fan-out of one trigger to N recipients (in-app + email), against doing it by
hand; and the latency of live feed delivery over Server-Sent Events.

- fan-out: one `NotifyService.trigger` (the code of POST /v1/notify without HTTP) of a
  workflow with an inApp step and an email step (an EmailTemplate) to N inline recipients
  (default 10,000, the most one trigger takes), run by ONE `stackyard-worker` process on real
  Redis and FerretDB, the emails to the SMTP sink of bench/email.py (bench/peers/smtp_sink.py,
  its own process, counting what it accepts). Timed from the call until the feed holds N
  messages of the trigger and the sink has counted N emails: recipients per second and the
  end-to-end time (and when the last feed message and the last email landed).
  Each recipient is a durable run (a MongoDB record, a job on the notify queue, each step a
  JobContext step: preferences, the feed message, the email accepted into the delivery log and
  sent by an email job), so a worker killed mid-way resumes without a step twice.
- the peer, the floor of doing it by hand: a plain loop in this process that inserts the same
  N feed documents with pymongo's `insert_many` (one call) and sends the same N emails to the
  same sink with `smtplib` on one connection, one after the other (the template rendered with
  str.format). No runs, no retries, no preferences, no delivery log: nothing survives a crash
  half-way, which is what the stackyard side pays for. The ratio is stated against it.
- SSE latency: a user signed up through the api (`stackyard-api`, its own process) holds
  GET /v1/feed/stream open; K times, one after the other: (a) a trigger of an inApp-only
  workflow to that user until the `message` event arrives (through the notify queue, the
  worker, MongoDB, Redis pub/sub and the api), and (b) `FeedStore.deliver` called here until
  the event arrives (the live path alone: insert, publish, the api's stream). p50 and p99.

Goal for the fan-out: stackyard at least 0.25x the hand loop (it does per recipient what the
loop does, plus the records and jobs that make it durable). A missed goal prints MISSED and
still exits 0; a run that fails exits 1.

    python bench/notify.py [--recipients N] [--sse K] [--quick] [--mongo-backend sqlite|postgresql]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/email.py sits next to this file, and Python puts this directory first on sys.path,
# where it would hide the standard library's `email` package from everything imported below.
# ruff: noqa: E402
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import contextlib
import glob
import http.client
import json
import os
import queue
import smtplib
import socket
import statistics
import threading
import time
import urllib.request
import uuid
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

import httpx
import pymongo
from stackyard.clients import mongo_client, redis_client
from stackyard.config import RuntimeConfig
from stackyard.notify.contract import Recipient, TriggerRequest
from stackyard.notify.feed import FeedStore
from stackyard.notify.feed_contract import FeedMessageIn
from stackyard.notify.service import NotifyService
from stackyard.resources.email import EmailProviderSpec, EmailTemplateSpec
from stackyard.resources.notify import NotificationWorkflowSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.api_process import start_api, start_worker
from stackyard_harness.auth_stack import ADMIN_API_KEY, signing_keys
from stackyard_harness.harness import Harness, progress
from stackyard_harness.process import ManagedProcess, exit_on_sigterm
from stackyard_harness.smtp_sink_process import SmtpSinkProcess

REPO = Path(__file__).resolve().parent.parent
STACK, NAMESPACE = "bench", "bench"
SCOPE = f"{NAMESPACE}/{STACK}"
DATABASE = "bench_notify"
FEED = "feed_messages"
PEER_FEED = "bench_peer_feed_messages"
RECIPIENTS, QUICK_RECIPIENTS = 10_000, 1_000
SSE_ROUNDS, QUICK_SSE_ROUNDS = 200, 50
GOAL = 0.25
STALL = 60.0
SENDER = "Acme <notify@acme.dev>"
SUBJECT = "{actor} commented on {post}"
TEXT = "Hi {name},\n\n{actor} commented on {post}:\n\n{text}\n"
DATA = {"post": "Release notes", "text": "Looks good to me, ship it."}
ACTOR = {"id": "usr_actor", "name": "Bo"}
TEMPLATE = {
    "subject": "{{ actor }} commented on {{ post }}",
    "text": "Hi {{ name }},\n\n{{ actor }} commented on {{ post }}:\n\n{{ text }}\n",
    "variables": {k: {"description": k} for k in ("name", "actor", "post", "text")},
}
FANOUT = {
    "steps": [
        {
            "name": "feed",
            "inApp": {"title": "{{ actor.name }} commented on {{ data.post }}", "body": "{{ data.text }}"},
        },
        {
            "name": "mail",
            "email": {
                "template": "comment",
                "from": SENDER,
                "variables": {
                    "name": "{{ recipient.name }}",
                    "actor": "{{ actor.name }}",
                    "post": "{{ data.post }}",
                    "text": "{{ data.text }}",
                },
            },
        },
    ]
}
PING = {"steps": [{"name": "feed", "inApp": {"title": "ping {{ data.n }}"}}]}


# -- the servers ---------------------------------------------------------------------------------


def write_config(directory: Path, sink: SmtpSinkProcess, redis_url: str, mongo_url: str) -> RuntimeConfig:
    """What the operator renders for a Stack with one SMTP EmailProvider (the sink), one
    EmailTemplate and the two workflows, as files (signing keys made as the operator does)."""
    directory.mkdir(parents=True, exist_ok=True)
    stack_ref = {"stackRef": {"name": STACK}}
    spec = StackSpec.model_validate(
        {
            "redis": {"urlSecretRef": {"name": "bench", "key": "redis"}},
            "mongodb": {"uriSecretRef": {"name": "bench", "key": "mongodb"}, "database": DATABASE},
            "auth": {"emailFrom": SENDER, "requireEmailVerification": False, "appUrl": "https://app.acme.dev"},
        }
    )
    smtp = {"type": "smtp", "priority": 10, "smtp": {"host": "127.0.0.1", "port": sink.smtp_port, "security": "none"}}
    config = RuntimeConfig(
        stack=STACK,
        namespace=NAMESPACE,
        generation=1,
        spec=spec,
        email_providers={"sink": EmailProviderSpec.model_validate(stack_ref | smtp)},
        email_templates={"comment": EmailTemplateSpec.model_validate(stack_ref | TEMPLATE)},
        notification_workflows={
            "comment-created": NotificationWorkflowSpec.model_validate(stack_ref | FANOUT),
            "ping": NotificationWorkflowSpec.model_validate(stack_ref | PING),
        },
    )
    credentials = {
        "stack.redis.url": redis_url,
        "stack.mongodb.uri": mongo_url,
        "stack.auth.signingKeys": signing_keys(),
        "stack.auth.encryptionKey": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "stack.auth.adminApiKey": ADMIN_API_KEY,
    }
    (directory / "credentials.json").write_text(json.dumps(credentials))
    (directory / "config.json").write_text(config.canonical_json())
    return config


# -- fan-out -------------------------------------------------------------------------------------


def recipients(count: int, prefix: str) -> list[str | Recipient]:
    return [
        Recipient(id=f"{prefix}{i:05d}", email=f"{prefix}{i:05d}@example.com", name=f"User {i}") for i in range(count)
    ]


async def fanout(
    config: RuntimeConfig, redis_url: str, mongo_url: str, sink: SmtpSinkProcess, worker: ManagedProcess, n: int
) -> dict[str, float]:
    redis = redis_client(redis_url)
    mongo = mongo_client(mongo_url, "bench-notify")
    try:
        database = mongo[config.stack_database_name]
        service = NotifyService(redis, database, config, SCOPE)
        await service.ensure_indexes()
        feed = database[FEED]

        progress("warming up: one trigger to 20 recipients (the worker builds its providers, indexes exist)")
        await sink.reset()
        warm = TriggerRequest(workflow="comment-created", recipients=recipients(20, "warm"), data=DATA, actor=ACTOR)
        await service.trigger(warm)
        await until(lambda: counts(feed, sink, "warm"), 20, worker, "warm-up")

        await sink.reset()
        request = TriggerRequest(workflow="comment-created", recipients=recipients(n, "u"), data=DATA, actor=ACTOR)
        progress(f"stackyard: one trigger to {n:,} recipients, one worker process")
        t0 = time.monotonic()
        accepted, _ = await service.trigger(request)
        accept_s = time.monotonic() - t0
        progress(f"  accepted as {accepted.id} in {accept_s * 1000:.0f} ms")
        feed_done, mail_done = await until(lambda: counts(feed, sink, "u"), n, worker, "fan-out", t0)
        end = max(feed_done, mail_done)
        return {
            "recipients": n,
            "seconds": end - t0,
            "per_s": n / (end - t0),
            "accept_s": accept_s,
            "feed_s": feed_done - t0,
            "mail_s": mail_done - t0,
        }
    finally:
        await redis.aclose()
        await mongo.close()


async def counts(feed: Any, sink: SmtpSinkProcess, prefix: str) -> tuple[int, int, float]:
    """(feed messages of recipients `prefix`*, emails the sink counted, the sink's last time)."""
    in_feed = await feed.count_documents({"recipient": {"$regex": f"^{prefix}"}})
    seen = await sink.read()
    return in_feed, int(seen["count"]), float(seen["last"])


async def until(read: Any, n: int, worker: ManagedProcess, what: str, t0: float | None = None) -> tuple[float, float]:
    """Poll until N feed messages and N emails: the times the last of each landed (the feed's
    as this poll saw it, the sink's exact)."""
    feed_done = mail_done = 0.0
    last, last_change, last_print = (-1, -1), time.monotonic(), time.monotonic()
    while True:
        in_feed, mails, mail_last = await read()
        now = time.monotonic()
        if in_feed >= n and not feed_done:
            feed_done = now
        if mails >= n and not mail_done:
            mail_done = mail_last
        if feed_done and mail_done:
            return feed_done, mail_done
        if (in_feed, mails) != last:
            last, last_change = (in_feed, mails), now
        elif now - last_change > STALL:
            raise SystemExit(
                f"{what}: stalled at {in_feed} feed messages and {mails} emails of {n}; see {worker.log_path}"
            )
        if not worker.running:
            raise SystemExit(f"the worker exited; see {worker.log_path}")
        if t0 is not None and now - last_print > 5:
            last_print = now
            rate = min(in_feed, mails) / (now - t0)
            progress(f"  {now - t0:5.0f} s: feed {in_feed:,}/{n:,}, emails {mails:,}/{n:,} ({rate:,.0f} recipients/s)")
        await asyncio.sleep(0.2)


def peer(mongo_url: str, sink: SmtpSinkProcess, n: int, sample: dict[str, Any]) -> dict[str, float]:
    """The same feed documents with pymongo insert_many, the same emails with smtplib on one
    connection, one after the other, in a plain loop."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url, tz_aware=True)
    try:
        collection = client[DATABASE][PEER_FEED]
        collection.drop()
        urllib.request.urlopen(f"http://127.0.0.1:{sink.http_port}/reset", timeout=5).read()
        progress(f"peer: insert_many of {n:,} feed documents, then {n:,} emails with smtplib, one connection")
        t0 = time.monotonic()
        docs = []
        for i in range(n):
            doc = dict(sample)
            doc["_id"], doc["recipient"], doc["runId"] = f"msg_peer{i:05d}", f"p{i:05d}", f"run_peer{i:05d}"
            docs.append(doc)
        collection.insert_many(docs)
        feed_done = time.monotonic()
        with smtplib.SMTP("127.0.0.1", sink.smtp_port) as smtp:
            for i in range(n):
                fields = {"name": f"User {i}", "actor": ACTOR["name"], **DATA}
                message = EmailMessage()
                message["From"], message["To"] = SENDER, f"p{i:05d}@example.com"
                message["Subject"] = SUBJECT.format(**fields)
                message.set_content(TEXT.format(**fields))
                smtp.send_message(message)
        end = time.monotonic()
        collection.drop()
        return {"recipients": n, "seconds": end - t0, "per_s": n / (end - t0), "feed_s": feed_done - t0}
    finally:
        client.close()


# -- SSE latency ---------------------------------------------------------------------------------


class EventStream:
    """GET /v1/feed/stream in a thread; each event with the monotonic time it arrived."""

    def __init__(self, base: str, token: str) -> None:
        self.events: queue.Queue[tuple[float, dict[str, str]]] = queue.Queue()
        self.opened = threading.Event()
        self.status, self.error = 0, ""
        host, port = base.removeprefix("http://").split(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=120)
        self._target = "/v1/feed/stream?" + urlencode({"token": token})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self.opened.wait(10) or self.status != 200:
            raise SystemExit(f"the feed stream did not open: {self.status} {self.error}")

    def _read(self) -> None:
        try:
            self._connection.request("GET", self._target, headers={"Accept": "text/event-stream"})
            response = self._connection.getresponse()
            self.status = response.status
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
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    event[name] = value.removeprefix(" ")
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            pass  # closed (AttributeError: http.client reading a chunk of a socket shut down)
        finally:
            self.opened.set()

    def message(self, title: str, timeout: float = 30.0) -> float:
        """When the message event with `title` arrived (skipping other events)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise SystemExit(f"no message {title!r} on the stream within {timeout:.0f} s") from None
            if event.get("event") == "message" and json.loads(event["data"]).get("title") == title:
                return at

    def close(self) -> None:
        if (sock := self._connection.sock) is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._connection.close()
        self._thread.join(5)


def a_user(api: str) -> tuple[str, str]:
    """A user signed up through the api: (id, access token)."""
    email = f"sse-{uuid.uuid4().hex[:8]}@example.com"
    answer = httpx.post(f"{api}/v1/auth/signup", json={"email": email, "password": "correct horse battery 9"})
    if answer.status_code != 201:
        raise SystemExit(f"signup answered {answer.status_code}: {answer.text}")
    token = answer.json()["accessToken"]
    me = httpx.get(f"{api}/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    return me.json()["id"], token


async def sse_latency(
    config: RuntimeConfig, redis_url: str, mongo_url: str, api: str, rounds: int
) -> dict[str, list[float]]:
    user, token = await asyncio.to_thread(a_user, api)
    stream = EventStream(api, token)
    redis = redis_client(redis_url)
    mongo = mongo_client(mongo_url, "bench-notify-sse")
    result: dict[str, list[float]] = {"trigger": [], "deliver": []}
    try:
        database = mongo[config.stack_database_name]
        service = NotifyService(redis, database, config, SCOPE)
        store = FeedStore(database, redis, SCOPE)
        progress(f"SSE: {rounds} triggers of an inApp workflow to one user, each until its event arrives")
        for i in range(-5, rounds):  # 5 uncounted first
            t0 = time.monotonic()
            await service.trigger(TriggerRequest(workflow="ping", recipients=[user], data={"n": i}))
            arrived = await asyncio.to_thread(stream.message, f"ping {i}")
            if i >= 0:
                result["trigger"].append(arrived - t0)
        progress(f"SSE: {rounds} FeedStore.deliver calls here, each until its event arrives")
        for i in range(-5, rounds):
            message = FeedMessageIn(
                id=f"msg_bench_{uuid.uuid4().hex}",
                recipient=user,
                workflow="ping",
                run_id=f"nrun_bench_{i}",
                step="feed",
                tenant=None,
                title=f"direct {i}",
                body="",
                action_url=None,
                data={},
                actor=None,
            )
            t0 = time.monotonic()
            await store.deliver(message)
            arrived = await asyncio.to_thread(stream.message, f"direct {i}")
            if i >= 0:
                result["deliver"].append(arrived - t0)
        return result
    finally:
        stream.close()
        await redis.aclose()
        await mongo.close()


# -- report --------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def report(ours: dict[str, float], theirs: dict[str, float], latency: dict[str, list[float]]) -> None:
    n = int(ours["recipients"])
    ratio = ours["per_s"] / theirs["per_s"]
    print()
    print(f"fan-out of one trigger to {n:,} recipients (in-app + email to the SMTP sink)")
    print(
        f"  stackyard (1 worker):        {ours['per_s']:>7,.0f} recipients/s, end to end {ours['seconds']:.1f} s "
        f"(accepted in {ours['accept_s'] * 1000:.0f} ms; feed complete at {ours['feed_s']:.1f} s, "
        f"emails at {ours['mail_s']:.1f} s)"
    )
    print(
        f"  hand loop (pymongo+smtplib): {theirs['per_s']:>7,.0f} recipients/s, end to end {theirs['seconds']:.1f} s "
        f"(insert_many {theirs['feed_s']:.1f} s)"
    )
    verdict = "met" if ratio >= GOAL else "MISSED"
    print(f"  ratio: {ratio:.2f}x the hand loop (goal {GOAL}x: {verdict})")
    print()
    print("live feed delivery over SSE, one user, one event at a time")
    for name, what in (("trigger", "POST /v1/notify path to the event"), ("deliver", "FeedStore.deliver to the event")):
        values = latency[name]
        print(
            f"  {what:<36} p50 {percentile(values, 50) * 1000:6.1f} ms, p99 {percentile(values, 99) * 1000:6.1f} ms "
            f"({len(values)} events, mean {statistics.mean(values) * 1000:.1f} ms)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--recipients", type=int, help=f"recipients of the trigger (default {RECIPIENTS:,}, at most 10,000)"
    )
    parser.add_argument("--sse", type=int, help=f"SSE events measured per path (default {SSE_ROUNDS})")
    parser.add_argument("--quick", action="store_true", help="fewer recipients and events (a smoke run)")
    have_postgres = bool(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    parser.add_argument(
        "--mongo-backend",
        choices=["sqlite", "postgresql"],
        default="postgresql" if have_postgres else "sqlite",
        help="FerretDB's storage (default: postgresql when Debian's postgresql is installed)",
    )
    args = parser.parse_args()
    n = args.recipients or (QUICK_RECIPIENTS if args.quick else RECIPIENTS)
    rounds = args.sse or (QUICK_SSE_ROUNDS if args.quick else SSE_ROUNDS)

    exit_on_sigterm()
    os.environ["STACKYARD_FERRETDB_BACKEND"] = args.mongo_backend
    progress(f"MongoDB: FerretDB with its {args.mongo_backend} backend")
    with contextlib.ExitStack() as stack:
        harness = stack.enter_context(Harness())
        harness.start(["redis", "mongo"])
        redis_url = harness.started["redis"].url  # type: ignore[attr-defined]
        mongo_url = harness.started["mongo"].url  # type: ignore[attr-defined]
        progress("starting the SMTP sink (its own process)")
        sink = SmtpSinkProcess(harness.run_dir, stall=STALL).start()
        stack.callback(sink.stop)
        directory = harness.run_dir / "notify-bench"
        config = write_config(directory, sink, redis_url, mongo_url)
        progress("starting one stackyard-worker and one stackyard-api")
        worker = start_worker(directory, directory, env={"STACKYARD_LOG_LEVEL": "warning"})
        stack.callback(worker.stop)
        api_process, api = start_api(directory, directory)
        stack.callback(api_process.stop)

        ours = asyncio.run(fanout(config, redis_url, mongo_url, sink, worker, n))
        sample = pymongo.MongoClient(mongo_url)[DATABASE][FEED].find_one({"recipient": "u00000"})
        if sample is None:
            raise SystemExit("no feed message of the fan-out to copy for the peer")
        theirs = peer(mongo_url, sink, n, sample)
        latency = asyncio.run(sse_latency(config, redis_url, mongo_url, api, rounds))
    report(ours, theirs, latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
