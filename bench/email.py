"""Email through stackyard against raw aiosmtplib to the same SMTP sink, and failover time.

- throughput: emails per second to a local SMTP sink (bench/peers/smtp_sink.py, aiosmtpd in
  a process of its own that counts what it accepts), measured from the first send until the
  sink has counted N. Goal: stackyard >= 0.8x raw aiosmtplib.
  - stackyard: real Redis and FerretDB from the harness, a config directory with one SMTP
    EmailProvider pointing at the sink, ONE `stackyard-worker` process (the email queue's
    default concurrency, 20; the SMTP provider's pool of 4 connections), and N messages
    accepted through `EmailService.send` here (the api's code path without HTTP: compose,
    suppression check, delivery-log insert in MongoDB, enqueue in Redis), 100 calls in
    flight at once (`asyncio.gather` per batch). The worker writes the log once per fast
    message (`sent` with the attempt) and keeps the job's ledger in Redis. FerretDB stores
    in PostgreSQL (`--mongo-backend`, default postgresql when Debian's postgresql is
    installed): on its SQLite backend every update reads the whole collection.
  - raw aiosmtplib: as many `aiosmtplib.SMTP` connections as stackyard's SMTP pool opens at
    most (4), each reused for N/4 messages one after the other; each message built with
    stackyard's own `build_mime` (the same bytes but for its Message-ID and Date) and sent
    with `sendmail`.
  Each side runs ROUNDS times, taking turns; the best round of each counts.
- failover: a Resend provider (the harness's fake Resend API, told to hang) with timeout
  300ms first, the SMTP sink second; `deliver()` of core, as the email job calls it, for 20
  messages, the primary's breaker reset before each so every message waits the timeout
  out. The time from the start of the send until the sink accepted the message. Goal: within
  the timeout + 100 ms.

A missed goal prints MISSED and still exits 0; a run that fails exits 1.

    python bench/email.py [--messages N] [--quick] [--mongo-backend sqlite|postgresql]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named email.py and Python puts its directory first on sys.path, where it
# would hide the standard library's `email` package from everything imported below.
# ruff: noqa: E402
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import contextlib
import glob
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiosmtplib
import httpx
from stackyard.clients import mongo_client, redis_client
from stackyard.config import RuntimeConfig, credential_key
from stackyard.email.compose import compose, initial_record, new_message_id
from stackyard.email.contract import SendEmailRequest, TimelineEvent
from stackyard.email.delivery import Breakers, Providers, deliver
from stackyard.email.log import DeliveryLog
from stackyard.email.message import OutgoingEmail
from stackyard.email.mime import MIME_POLICY, build_mime
from stackyard.email.service import EmailService
from stackyard.email.smtp import SmtpSender
from stackyard.email.suppressions import SuppressionList
from stackyard.jobs import queues_from_config
from stackyard.jobs.settings import EMAIL_QUEUE
from stackyard.resources.base import duration_seconds
from stackyard.resources.email import EmailProviderSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.api_process import start_worker
from stackyard_harness.fake_email_providers import RESEND_API_KEY, FakeEmailProviders
from stackyard_harness.harness import Harness, progress
from stackyard_harness.process import ManagedProcess, exit_on_sigterm
from stackyard_harness.smtp_sink_process import SmtpSinkProcess

REPO = Path(__file__).resolve().parent.parent
DATABASE = "bench_email"
# Messages per throughput round: raw a few seconds; stackyard tens of seconds, on FerretDB (bench/README.md).
MESSAGES = {"stackyard": 150, "raw": 1000}
QUICK = {"stackyard": 50, "raw": 300}
ROUNDS = 2
BATCH = 100  # EmailService.send calls in flight at once
POOL = 4  # SmtpSender's max_connections, which build_sender leaves at its default
WARMUP = 50
THROUGHPUT_GOAL = 0.8
FAILOVER_MESSAGES = 20
FAILOVER_TIMEOUT = "300ms"
FAILOVER_SLACK = 0.1  # seconds over the timeout the goal allows
STALL = 30.0
PART_CALLS = 100
REQUEST = {
    "from": "Acme <hello@acme.dev>",
    "to": ["ana@example.com"],
    "subject": "Your receipt",
    "html": "<p>Thanks for your order, <b>Ana</b>.</p><p>Order 1042: 2 items, 31.50 EUR.</p>",
    "text": "Thanks for your order, Ana.\n\nOrder 1042: 2 items, 31.50 EUR.\n",
    "tags": {"category": "receipt"},
}


def request() -> SendEmailRequest:
    return SendEmailRequest.model_validate(REQUEST)


def smtp_spec(sink: SmtpSinkProcess, priority: int) -> dict[str, Any]:
    return {
        "type": "smtp",
        "priority": priority,
        "smtp": {"host": "127.0.0.1", "port": sink.smtp_port, "security": "none"},
    }


def write_config(directory: Path, sink: SmtpSinkProcess, redis_url: str, mongo_url: str) -> RuntimeConfig:
    """What the operator renders for a Stack with one SMTP EmailProvider, as files."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = StackSpec.model_validate(
        {
            "redis": {"urlSecretRef": {"name": "bench", "key": "redis"}},
            "mongodb": {"uriSecretRef": {"name": "bench", "key": "mongodb"}, "database": DATABASE},
        }
    )
    config = RuntimeConfig(
        stack="bench",
        namespace="bench",
        generation=1,
        spec=spec,
        email_providers={
            "sink": EmailProviderSpec.model_validate({"stackRef": {"name": "bench"}} | smtp_spec(sink, 10))
        },
    )
    credentials = {"stack.redis.url": redis_url, "stack.mongodb.uri": mongo_url}
    (directory / "credentials.json").write_text(json.dumps(credentials))
    (directory / "config.json").write_text(config.canonical_json())
    return config


async def email_service(config: RuntimeConfig, redis: Any, mongo: Any) -> EmailService:
    """What the api's `email_service` dependency builds for POST /v1/emails."""
    database = mongo[config.stack_database_name]
    delivery_log, suppressions = DeliveryLog(database), SuppressionList(database)
    await delivery_log.ensure_indexes()
    await suppressions.ensure_indexes()
    return EmailService(
        redis=redis,
        log=delivery_log,
        suppressions=suppressions,
        queue=queues_from_config(config.job_queues)[EMAIL_QUEUE],
        templates={},
        retention=duration_seconds(config.spec.email.log_retention),
        idempotency_window=duration_seconds(config.spec.email.idempotency_window),
    )


async def accept(service: EmailService, count: int) -> None:
    body = request()
    for start in range(0, count, BATCH):
        await asyncio.gather(*(service.send(body) for _ in range(min(BATCH, count - start))))


async def stackyard_round(
    service: EmailService, sink: SmtpSinkProcess, worker: ManagedProcess, count: int
) -> dict[str, float]:
    # Every round starts from an empty delivery log: on FerretDB an update's cost grows with
    # the collection (see `parts`), so rounds are comparable only from the same size.
    await service.log.emails.delete_many({})  # type: ignore[attr-defined]
    await sink.reset()
    t0 = time.monotonic()
    await accept(service, count)
    accepted = time.monotonic()
    finished = await sink.wait_for(count, worker)
    return {"messages": count, "seconds": finished - t0, "per_s": count / (finished - t0), "accept_s": accepted - t0}


def outgoing() -> OutgoingEmail:
    return compose(request(), new_message_id(), {}).message


async def raw_round(sink: SmtpSinkProcess, count: int) -> dict[str, float]:
    base = outgoing()
    sender, recipients = "hello@acme.dev", ["ana@example.com"]
    connections = [aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.smtp_port) for _ in range(POOL)]
    await asyncio.gather(*(c.connect() for c in connections))
    try:

        async def one_connection(conn: aiosmtplib.SMTP, share: int) -> None:
            for _ in range(share):
                data = build_mime(replace(base, id=new_message_id())).as_bytes(policy=MIME_POLICY)
                await conn.sendmail(sender, recipients, data)

        shares = [count // POOL + (i < count % POOL) for i in range(POOL)]
        await one_connection(connections[0], 1)  # warm: the first message on an open connection
        await sink.reset()
        t0 = time.monotonic()
        await asyncio.gather(*(one_connection(c, s) for c, s in zip(connections, shares, strict=True)))
        finished = await sink.wait_for(count)
    finally:
        for conn in connections:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await conn.quit()
    return {"messages": count, "seconds": finished - t0, "per_s": count / (finished - t0)}


def show(name: str, result: dict[str, float]) -> None:
    extra = f", accepted in {result['accept_s']:.1f} s" if "accept_s" in result else ""
    print(
        f"    {name}: {result['per_s']:,.0f} emails/s ({result['seconds']:.1f} s{extra})", file=sys.stderr, flush=True
    )


async def throughput(
    config: RuntimeConfig,
    redis_url: str,
    mongo_url: str,
    sink: SmtpSinkProcess,
    worker: ManagedProcess,
    counts: dict[str, int],
) -> dict[str, dict[str, float]]:
    redis = redis_client(redis_url)
    mongo = mongo_client(mongo_url, "bench-email")
    try:
        service = await email_service(config, redis, mongo)
        progress(f"stackyard: warming up with {WARMUP} messages (worker connects, builds its providers)")
        await sink.reset()
        await accept(service, WARMUP)
        await sink.wait_for(WARMUP, worker)
        best: dict[str, dict[str, float]] = {}
        for n in range(1, ROUNDS + 1):
            progress(f"round {n} of {ROUNDS}: stackyard, {counts['stackyard']} messages, one worker process")
            ours = await stackyard_round(service, sink, worker, counts["stackyard"])
            show("stackyard", ours)
            progress(f"round {n} of {ROUNDS}: raw aiosmtplib, {counts['raw']} messages on {POOL} connections")
            theirs = await raw_round(sink, counts["raw"])
            show("raw aiosmtplib", theirs)
            for name, result in (("stackyard", ours), ("raw", theirs)):
                if name not in best or result["per_s"] > best[name]["per_s"]:
                    best[name] = result
        worker.stop()  # the parts below run alone
        best["parts"] = await parts(service, sink)
        return best
    finally:
        await redis.aclose()
        await mongo.close()


async def timed(what: Callable[[int], Awaitable[object]], count: int = PART_CALLS) -> float:
    """Mean seconds of `count` calls one after the other."""
    t0 = time.monotonic()
    for i in range(count):
        await what(i)
    return (time.monotonic() - t0) / count


async def parts(service: EmailService, sink: SmtpSinkProcess) -> dict[str, float]:
    """Where a message's time goes: each step of the pipeline alone, one call after the
    other, on the same servers, the delivery log as the last round left it."""
    progress(f"where the time goes: each step alone, {PART_CALLS} calls one after the other")
    delivery_log = service.log
    body = request()
    size = await delivery_log.emails.count_documents({})  # type: ignore[attr-defined]
    composed = [compose(body, new_message_id(), {}) for _ in range(PART_CALLS)]
    now = datetime.now(UTC)
    records = [initial_record(body, c, job_id=None, now=now, status="queued", detail=None) for c in composed]
    ids = [r.id for r in records]
    sent = [TimelineEvent(at=now, type="attempt", provider="sink", outcome="sent", duration_ms=1.0)]
    result = {"log_size": float(size)}

    async def compose_one(i: int) -> None:
        compose(body, new_message_id(), {})

    result["compose"] = await timed(compose_one)
    result["suppression check"] = await timed(lambda i: service.suppressions.check(["ana@example.com"]))
    result["log insert"] = await timed(lambda i: delivery_log.create(records[i], retention=3600))
    result["send (all of accept)"] = await timed(lambda i: service.send(body))
    result["log transition: sending"] = await timed(lambda i: delivery_log.transition(ids[i], "sending", []))
    result["log transition: sent"] = await timed(
        lambda i: delivery_log.transition(ids[i], "sent", sent, provider="sink", provider_message_id="x")
    )
    await delivery_log.emails.delete_many({})  # type: ignore[attr-defined]
    for record in records:
        await delivery_log.create(record, retention=3600)
    result["log transition, log of 100"] = await timed(lambda i: delivery_log.transition(ids[i], "sending", []))
    async with SmtpSender(host="127.0.0.1", port=sink.smtp_port, security="none", provider="sink") as sender:
        await sender.send(composed[0].message)
        result["SMTP send (the provider alone)"] = await timed(lambda i: sender.send(composed[i].message))
    return result


async def failover(redis_url: str, sink: SmtpSinkProcess, fake: FakeEmailProviders, count: int) -> list[float]:
    """Seconds from the start of each send until the sink accepted it, the primary hanging."""
    stack = {"stackRef": {"name": "bench"}}
    specs = {
        "primary": EmailProviderSpec.model_validate(
            stack
            | {
                "type": "resend",
                "priority": 10,
                "timeout": FAILOVER_TIMEOUT,
                "circuitBreaker": {"failureThreshold": 1000},
                "resend": {"apiKeySecretRef": {"name": "mail", "key": "resend"}, "baseUrl": fake.base_url("resend")},
            }
        ),
        "secondary": EmailProviderSpec.model_validate(stack | smtp_spec(sink, 20)),
    }
    credentials = {credential_key("EmailProvider", "primary", "apiKey"): RESEND_API_KEY}
    redis = redis_client(redis_url)
    http = httpx.AsyncClient()
    providers = Providers(specs, credentials, http)
    breakers = Breakers(redis)
    times = []
    try:
        for n in range(count + 1):  # the first one opens the connections and is not counted
            await breakers.of(providers["primary"]).reset()
            await sink.reset()
            fake.hang_next("resend", 5.0)
            message = outgoing()
            t0 = time.monotonic()
            report = await deliver(message, providers, breakers)
            accepted = await sink.wait_for(1, interval=0.005)
            outcomes = [(a.provider, a.outcome) for a in report.attempts]
            if outcomes != [("primary", "retryable"), ("secondary", "sent")]:
                raise SystemExit(f"failover: expected the primary to time out and the secondary to send: {outcomes}")
            if n:
                times.append(accepted - t0)
    finally:
        await providers.aclose()
        await http.aclose()
        await redis.aclose()
    return times


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def report(best: dict[str, dict[str, float]], times: list[float]) -> None:
    ours, theirs = best["stackyard"], best["raw"]
    ratio = ours["per_s"] / theirs["per_s"]
    print()
    print("throughput to a local SMTP sink (aiosmtpd in its own process), best of", ROUNDS, "rounds")
    print(f"  {'stackyard (EmailService.send + 1 worker)':<48} {ours['per_s']:>8,.0f} emails/s")
    print(f"  {'  of which accepting alone (send calls)':<48} {ours['messages'] / ours['accept_s']:>8,.0f} emails/s")
    print(f"  {f'raw aiosmtplib, {POOL} reused connections':<48} {theirs['per_s']:>8,.0f} emails/s")
    print(f"  stackyard / raw: {ratio:.2f}x (goal >= {THROUGHPUT_GOAL}x: {verdict(ratio >= THROUGHPUT_GOAL)})")
    found = best["parts"]
    print()
    print(f"where the time goes: each step alone, {PART_CALLS} calls one after the other, mean ms")
    size = found["log_size"]
    print(f"(the delivery log: {size:,.0f} records of the last round, then {size + 2 * PART_CALLS:,.0f} with these)")
    for name, seconds in found.items():
        if name != "log_size":
            print(f"  {name:<48} {seconds * 1000:>8.2f} ms")
    timeout = duration_seconds(FAILOVER_TIMEOUT)
    p50, worst = statistics.median(times), max(times)
    limit = timeout + FAILOVER_SLACK
    print()
    print(f"failover: primary hangs, timeout {timeout * 1000:.0f} ms; {len(times)} messages, send start to sink 250")
    print(f"  p50 {p50 * 1000:.0f} ms ({p50 / timeout:.2f}x the timeout)")
    print(f"  max {worst * 1000:.0f} ms ({worst / timeout:.2f}x the timeout)")
    goal = f"within the timeout + {FAILOVER_SLACK * 1000:.0f} ms = {limit * 1000:.0f} ms"
    print(f"  goal: max {goal}: {verdict(worst <= limit)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, help="messages per throughput round, for both sides")
    parser.add_argument("--quick", action="store_true", help="fewer messages (a smoke run; figures are rougher)")
    have_postgres = bool(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    parser.add_argument(
        "--mongo-backend",
        choices=["sqlite", "postgresql"],
        default="postgresql" if have_postgres else "sqlite",
        help="FerretDB's storage (default: postgresql when Debian's postgresql is installed)",
    )
    args = parser.parse_args()
    counts = dict(QUICK if args.quick else MESSAGES)
    if args.messages:
        counts = dict.fromkeys(counts, args.messages)

    exit_on_sigterm()
    os.environ["STACKYARD_FERRETDB_BACKEND"] = args.mongo_backend
    progress(f"the delivery log on FerretDB with its {args.mongo_backend} backend")
    with contextlib.ExitStack() as stack:
        harness = stack.enter_context(Harness())
        harness.start(["redis", "mongo"])
        redis_url = harness.started["redis"].url  # type: ignore[attr-defined]
        mongo_url = harness.started["mongo"].url  # type: ignore[attr-defined]
        progress("starting the SMTP sink (its own process)")
        sink = SmtpSinkProcess(harness.run_dir, stall=STALL).start()
        stack.callback(sink.stop)
        directory = harness.run_dir / "email-bench"
        config = write_config(directory, sink, redis_url, mongo_url)
        progress("starting one stackyard-worker")
        worker = start_worker(directory, directory)
        stack.callback(worker.stop)
        best = asyncio.run(throughput(config, redis_url, mongo_url, sink, worker, counts))
        progress(f"failover: {FAILOVER_MESSAGES} messages, the primary hanging past its {FAILOVER_TIMEOUT} timeout")
        fake = stack.enter_context(FakeEmailProviders())
        times = asyncio.run(failover(redis_url, sink, fake, FAILOVER_MESSAGES))
    report(best, times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
