"""The Python SDK's notify, feed and webhooks calls against the real api (in-thread), a real
worker process, Redis, FerretDB and the SMTP sink: trigger and wait for the runs, typed
problems and the checks made before sending, idempotent retries, preferences for oneself and
for any user, the feed of the user's token (marks and bulk), and the Webhooks with their
deliveries (test event, the log, replay, enable) to a local endpoint."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from stackyard.client import (
    AdminKeyMissing,
    AdminKeyRefused,
    AsyncStackyard,
    Conflict,
    NotFound,
    Recipient,
    RetryPolicy,
    RunWaitTimeout,
    Stackyard,
    Unauthorized,
)
from stackyard.config.runtime import credential_key
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink
from stackyard_harness.webhook_receiver import WebhookReceiver

REDIS_DATABASE = 20
PASSWORD = "a long and quiet river"
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, total=10)
SIGNING_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()

HELLO = {
    "subject": "Hello {{ name }}",
    "text": "Report {{ report }} is ready.",
    "variables": {"name": {}, "report": {}},
}
WORKFLOWS: dict[str, dict[str, Any]] = {
    "report-ready": {
        "steps": [
            {"name": "in-app", "inApp": {"title": "Report {{ data.report }}", "body": "It is ready."}},
            {
                "name": "mail",
                "email": {
                    "template": "hello",
                    "variables": {"name": "{{ recipient.name }}", "report": "{{ data.report }}"},
                },
            },
        ]
    },
    "later": {"steps": [{"name": "wait", "delay": {"duration": "1h"}}, {"name": "note", "inApp": {"title": "Later"}}]},
}


HOOK = "/hooks"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as found:
        yield found


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, mongo_server: Any) -> Iterator[AuthStack]:
    with SmtpSink() as sink:
        redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
        stack = AuthStack(tmp_path_factory.mktemp("client-notify"), redis_url, mongo_server.url, sink, run_worker=True)
        yield from stack.serve()


@pytest.fixture
def stack(running: AuthStack, receiver: WebhookReceiver) -> AuthStack:
    running.reset()
    receiver.reset()
    running.configure(
        {"requireEmailVerification": False},
        email_templates={"hello": HELLO},
        notification_workflows=WORKFLOWS,
        webhooks={"crm": {"url": receiver.url + HOOK, "events": ["user.created"]}},
        extra_credentials={credential_key("Webhook", "crm", "signingSecret"): SIGNING_SECRET},
    )
    return running


@pytest.fixture
def admin(stack: AuthStack) -> Iterator[Stackyard]:
    with Stackyard(stack.url, admin_key=ADMIN_API_KEY, retry=FAST) as client:
        yield client


def sign_up(stack: AuthStack, email: str) -> tuple[str, str]:
    """A new user: their id and access token."""
    answer = httpx.post(f"{stack.url}/v1/auth/signup", json={"email": email, "password": PASSWORD}, timeout=10)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["accessToken"]
    me = httpx.get(f"{stack.url}/v1/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return me.json()["id"], token


def test_trigger_then_wait_for_each_run_and_its_steps(stack: AuthStack, admin: Stackyard):
    ana_id, _ = sign_up(stack, "ana@example.com")
    accepted = admin.notify.trigger(
        "report-ready",
        [ana_id, Recipient(id="ext-1", email="bo@example.com", name="Bo")],
        data={"report": "Q3"},
    )
    assert accepted.id.startswith("ntr_") and accepted.recipients == 2
    deadline = time.monotonic() + 20  # two recipients: their runs are made by a fan-out job
    while len((page := admin.notify.runs(trigger=accepted.id)).items) < 2:
        assert time.monotonic() < deadline, "the fan-out made no runs"
        time.sleep(0.1)
    assert {r.recipient for r in page.items} == {ana_id, "ext-1"}
    for item in page.items:
        run = admin.notify.wait(item.id, timeout=30, poll=0.1)
        assert run.status == "completed", run
        assert [(s.name, s.kind, s.status) for s in run.steps] == [
            ("in-app", "in_app", "done"),
            ("mail", "email", "done"),
        ]
        assert run.steps[1].detail["emailId"]
    mail = stack.mail_to("bo@example.com", "Hello Bo")
    assert "Report Q3 is ready." in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    everyone = list(admin.notify.iter_runs(workflow="report-ready", status=["completed"], page_size=1))
    assert sorted(r.id for r in everyone) == sorted(r.id for r in page.items)


def test_an_idempotency_key_is_kept_across_calls_and_another_body_conflicts(stack: AuthStack, admin: Stackyard):
    first = admin.notify.trigger("report-ready", {"id": "ext-2", "email": "cy@example.com"}, idempotency_key="k-1")
    again = admin.notify.trigger("report-ready", {"id": "ext-2", "email": "cy@example.com"}, idempotency_key="k-1")
    assert again == first
    with pytest.raises(Conflict):
        admin.notify.trigger("report-ready", ["ext-3"], data={"other": True}, idempotency_key="k-1")


def test_problems_are_typed_and_bad_requests_are_refused_before_sending(stack: AuthStack, admin: Stackyard):
    with pytest.raises(NotFound) as unknown:
        admin.notify.trigger("no-such-workflow", ["u1"])
    assert unknown.value.type.endswith("/workflow-not-found")
    with pytest.raises(NotFound):
        admin.notify.run("nrun_00000000000000000000000000")
    with pytest.raises(ValidationError):
        admin.notify.trigger("report-ready", [])
    with pytest.raises(ValidationError):
        admin.notify.set_preferences({"channels": {"fax": True}}, user_id="u1")
    with Stackyard(stack.url, retry=FAST) as anonymous:
        with pytest.raises(AdminKeyMissing):
            anonymous.notify.trigger("report-ready", ["u1"])
        with pytest.raises(AdminKeyMissing):
            anonymous.webhooks.list()
        with pytest.raises(Unauthorized):
            anonymous.notify.preferences()
    with Stackyard(stack.url, admin_key="wrong", retry=FAST) as wrong, pytest.raises(AdminKeyRefused):
        wrong.notify.runs()


def test_wait_gives_up_on_a_run_in_a_delay_and_cancel_stops_it(stack: AuthStack, admin: Stackyard):
    accepted = admin.notify.trigger("later", {"id": "ext-4"})
    (run,) = admin.notify.runs(trigger=accepted.id).items
    with pytest.raises(RunWaitTimeout) as waited:
        admin.notify.wait(run.id, timeout=1, poll=0.1)
    assert waited.value.run.status in {"queued", "running", "waiting"}
    cancelled = admin.notify.cancel(run.id)
    assert cancelled.status == "cancelled"
    assert admin.notify.wait(run.id, timeout=5).status == "cancelled"


def test_preferences_of_oneself_and_of_any_user(stack: AuthStack, admin: Stackyard):
    ana_id, token = sign_up(stack, "ana@example.com")
    with Stackyard(stack.url, token=token, retry=FAST) as ana:
        assert ana.notify.preferences().channels.email is None
        mine = ana.notify.set_preferences({"channels": {"email": False}})
        assert mine.channels.email is False
        with pytest.raises(AdminKeyMissing):
            ana.notify.preferences(ana_id)
    theirs = admin.notify.set_preferences(
        {"workflows": {"report-ready": {"channels": {"inApp": False}}}}, user_id=ana_id
    )
    assert theirs.channels.email is False and theirs.workflows["report-ready"].channels.in_app is False
    cleared = admin.notify.set_preferences({"channels": {"email": None}}, user_id=ana_id)
    assert cleared.channels.email is None and admin.notify.preferences(ana_id) == cleared


def test_the_feed_of_the_users_token(stack: AuthStack, admin: Stackyard):
    ana_id, token = sign_up(stack, "ana@example.com")
    for report in ("A", "B"):
        accepted = admin.notify.trigger("report-ready", ana_id, data={"report": report})
        for run in admin.notify.runs(trigger=accepted.id).items:
            assert admin.notify.wait(run.id, timeout=30, poll=0.1).status == "completed"
    with Stackyard(stack.url, token=token, retry=FAST) as ana:
        page = ana.feed.list()
        assert [m.title for m in page.items] == ["Report B", "Report A"]
        assert (page.counts.total, page.counts.unread, page.counts.unseen) == (2, 2, 2)
        read = ana.feed.read(page.items[0].id)
        assert read.read_at is not None and read.seen_at is not None
        assert [m.title for m in ana.feed.list(status="unread").items] == ["Report A"]
        assert (ana.feed.counts().unread, ana.feed.counts().unseen) == (1, 1)
        done = ana.feed.bulk("archive", all=True)
        assert done.updated == 2 and done.counts.total == 0 and ana.feed.counts().total == 0
        assert ana.feed.get(read.id).archived_at is not None
        assert len(list(ana.feed.iter(status="archived", page_size=1))) == 2
        with pytest.raises(NotFound):
            ana.feed.read("msg_nrun_nothing.in-app")


def test_webhooks_list_test_deliveries_replay_and_enable(stack: AuthStack, admin: Stackyard, receiver: WebhookReceiver):
    (crm,) = admin.webhooks.list()
    assert (crm.name, crm.url, crm.enabled) == ("crm", receiver.url + HOOK, True)
    sent = admin.webhooks.test("crm")
    assert sent.id.startswith("whd_") and sent.event_type == "webhook.test"
    deadline = time.monotonic() + 20
    while (delivery := admin.webhooks.delivery(sent.id)).status != "succeeded":
        assert time.monotonic() < deadline, delivery
        time.sleep(0.1)
    assert delivery.attempts[-1].http_status == 204
    assert receiver.received(HOOK)[-1].headers["webhook-id"] == sent.id
    assert [d.id for d in admin.webhooks.deliveries("crm").items] == [sent.id]

    again = admin.webhooks.replay(sent.id)
    assert again.id != sent.id and again.replay_of == sent.id
    assert {d.id for d in admin.webhooks.iter_deliveries("crm", page_size=1)} == {sent.id, again.id}
    assert admin.webhooks.enable("crm").enabled is True
    with pytest.raises(NotFound):
        admin.webhooks.test("nope")


def test_the_async_client_does_the_same(stack: AuthStack):
    async def scenario() -> None:
        async with AsyncStackyard(stack.url, admin_key=ADMIN_API_KEY, retry=FAST) as client:
            accepted = await client.notify.trigger(
                "report-ready", {"id": "ext-5", "email": "di@example.com", "name": "Di"}, data={"report": "Z"}
            )
            runs = [run async for run in client.notify.iter_runs(trigger=accepted.id)]
            assert len(runs) == 1
            finished = await client.notify.wait(runs[0].id, timeout=30, poll=0.1)
            assert finished.status == "completed", finished
            prefs = await client.notify.set_preferences(
                {"categories": {"news": {"channels": {"push": False}}}}, user_id="ext-5"
            )
            assert prefs.categories["news"].channels.push is False
            assert [w.name for w in await client.webhooks.list()] == ["crm"]

    asyncio.run(scenario())
