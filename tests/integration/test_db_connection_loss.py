"""MongoDB stopped and started again under a running api and worker (real processes reading a
file config, as the operator renders it): both answer not-ready while it is away, sign-up
answers 503 database-unavailable and leaves nothing behind, a scheduled email whose send
meets the outage is retried, and everything recovers without a restart. The FerretDB here
is this module's own (stopping the session's would break the other tests); stop() then
start() keeps its port and its data."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from stackyard_harness.auth_stack import AuthStack, flushed_redis_url
from stackyard_harness.mongo import MongoServer
from stackyard_harness.process import ManagedProcess
from stackyard_harness.smtp import SmtpSink
from stackyard_harness.tools import Tools

from .conftest import wait_for

REDIS_DATABASE = 2
EMAIL = "lee@example.com"
PASSWORD = "a long and quiet river"
API = str(Path(sys.executable).parent / "stackyard-api")


class Outage:
    """The api and worker processes of one Stack on a MongoDB of their own."""

    def __init__(self, directory: Path, mongo: MongoServer, auth: AuthStack) -> None:
        self.directory, self.mongo, self.auth = directory, mongo, auth
        self.api: ManagedProcess | None = None

    def start_api(self) -> None:
        env = {
            **os.environ,
            "STACKYARD_CONFIG_DIR": str(self.directory),
            "STACKYARD_PORT": str(self.auth.port),
            "STACKYARD_HOST": "127.0.0.1",
            "STACKYARD_STACK": "",
        }
        self.api = ManagedProcess("api", [API], self.directory / "api.log", env=env).start()
        self.api.wait_ready(lambda: httpx.get(f"{self.auth.url}/healthz", timeout=1).status_code == 200, 30, "up")

    @property
    def worker_url(self) -> str:
        assert self.auth.worker is not None and self.auth.worker.env is not None
        return f"http://127.0.0.1:{self.auth.worker.env['STACKYARD_PORT']}"

    def database(self) -> Any:
        return MongoClient(self.mongo.url, serverSelectionTimeoutMS=3000)[self.auth.database]


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[Outage]:
    directory = tmp_path_factory.mktemp("db-connection-loss")
    mongo = MongoServer(Tools.locate(), directory).start()
    with SmtpSink() as sink:
        auth = AuthStack(directory, flushed_redis_url(redis_server.url, REDIS_DATABASE), mongo.url, sink)
        running = Outage(directory, mongo, auth)
        try:
            running.start_api()
            auth.configure()
            auth.start_worker()
            yield running
        finally:
            if auth.worker is not None:
                auth.worker.stop()
            if running.api is not None:
                running.api.stop()
            mongo.stop()


def readiness(url: str) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"{url}/readyz", timeout=5)
    return answer.status_code, answer.json()


def sign_up(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}, timeout=30)


def email_queue(url: str) -> dict[str, Any]:
    counts: dict[str, Any] = httpx.get(f"{url}/v1/queues/email", timeout=10).json()["counts"]
    return counts


def test_mongodb_away_and_back(outage: Outage) -> None:
    api, auth, mongo = outage.auth.url, outage.auth, outage.mongo
    worker = outage.worker_url
    for url in (api, worker):
        status, body = readiness(url)
        assert status == 200 and body["checks"]["mongodb"] == "ok", body

    # An email due in a few seconds: its send will meet the outage.
    send_at = datetime.now(UTC) + timedelta(seconds=4)
    accepted = httpx.post(
        f"{api}/v1/emails",
        json={
            "from": "Acme <hello@acme.dev>",
            "to": ["kim@example.com"],
            "subject": "Sent after the outage",
            "text": "hello",
            "sendAt": send_at.isoformat(),
        },
        timeout=10,
    )
    assert accepted.status_code == 202, accepted.text
    email_id = accepted.json()["id"]
    job_id = httpx.get(f"{api}/v1/emails/{email_id}", timeout=10).json()["jobId"]

    mongo.stop()
    try:
        for url in (api, worker):
            status, body = wait_for(lambda u=url: (s := readiness(u))[0] == 503 and s, 15, what=f"{url} not ready")
            assert body["checks"]["mongodb"].startswith("unreachable"), body
            assert body["checks"]["redis"] == "ok", body

        refused = sign_up(api)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["type"].endswith("/database-unavailable") and problem["status"] == 503, problem
        assert int(refused.headers["retry-after"]) > 0 and problem["retryAfter"] == int(refused.headers["retry-after"])
        assert "mongodb://" not in refused.text and str(mongo.port) not in refused.text

        # The email's first attempt fails on MongoDB and is kept for a retry.
        job = wait_for(
            lambda: (j := httpx.get(f"{api}/v1/jobs/{job_id}", timeout=10).json()).get("errors") and j,
            30,
            what="the email job's first attempt to fail",
        )
        assert job["state"] in ("scheduled", "queued", "active"), job
        assert job["attempts"] >= 1 and job["attempts"] < job["maxAttempts"], job
    finally:
        mongo.start()

    for url in (api, worker):
        wait_for(lambda u=url: readiness(u)[0] == 200, 30, what=f"{url} ready again")

    # Nothing of the refused sign-up was kept: no account, no audit event, no mail.
    database = outage.database()
    assert database["users"].count_documents({}) == 0
    assert database["auth_events"].count_documents({}) == 0
    assert auth.mails_to(EMAIL) == []
    assert email_queue(api)["enqueued"] == 1  # the scheduled email's job only

    # The client retries after Retry-After: one account, one event, one verification mail.
    answer = sign_up(api)
    while answer.status_code == 503:
        time.sleep(int(answer.headers["retry-after"]))
        answer = sign_up(api)
    assert answer.status_code == 202, answer.text
    auth.mail_to(EMAIL, "Confirm your email")
    assert database["users"].count_documents({"email": EMAIL}) == 1
    wait_for(lambda: database["auth_events"].count_documents({"type": "user.created"}) == 1, 10, what="the audit")
    assert len(auth.mails_to(EMAIL)) == 1
    assert email_queue(api)["enqueued"] == 2

    # The email waited out the outage and went, on a later attempt of the same job.
    sent = wait_for(
        lambda: (e := httpx.get(f"{api}/v1/emails/{email_id}", timeout=10).json())["status"] == "sent" and e,
        60,
        what="the scheduled email to be sent",
    )
    assert auth.mails_to("kim@example.com"), sent
    job = httpx.get(f"{api}/v1/jobs/{job_id}", timeout=10).json()
    assert job["state"] == "completed" and job["attempts"] >= 2, job

    api_log = (outage.directory / "api.log").read_text()
    assert "database unavailable on POST /v1/auth/signup: " in api_log
    assert "Traceback" not in api_log
