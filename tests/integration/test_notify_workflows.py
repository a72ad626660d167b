"""Notification workflows end to end on real servers: triggers through NotifyService (what
POST /v1/notify calls), a real `stackyard-worker` process running the runs on the notify
queue in Redis, runs, preferences and the in-app feed in FerretDB, email through the
EmailService and the email queue to the aiosmtpd sink. A worker is SIGKILLed mid-workflow on
purpose."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pymongo
import pytest
from pymongo import AsyncMongoClient
from stackyard.clients import redis_client
from stackyard.config import RuntimeConfig
from stackyard.notify.contract import PreferencesUpdate, TriggerAccepted, TriggerRequest
from stackyard.notify.service import NotifyService
from stackyard_harness.auth_stack import AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink
from stackyard_harness.webhook_receiver import WebhookReceiver
from standardwebhooks import Webhook as ReferenceWebhook

REDIS_DATABASE = 21

TEMPLATES = {
    "digest-mail": {
        "subject": "{{ digest.total }} new comments",
        "text": "{% for item in digest['items'] %}[{{ item.comment }}]{% endfor %}",
        "variables": {"digest": {}},
    },
    "comment-mail": {"subject": "{{ title }}", "text": "A new comment: {{ title }}", "variables": {"title": {}}},
}


@pytest.fixture(scope="module")
def running(tmp_path_factory, redis_server, mongo_server) -> Iterator[AuthStack]:  # type: ignore[no-untyped-def]
    with SmtpSink() as sink:
        stack = AuthStack(
            tmp_path_factory.mktemp("notify"),
            flushed_redis_url(redis_server.url, REDIS_DATABASE),
            mongo_server.url,
            sink,
            run_worker=True,
        )
        yield from stack.serve()


@pytest.fixture
def auth(running: AuthStack) -> AuthStack:
    running.reset()
    return running


def configure(auth: AuthStack, **workflows: dict[str, Any]) -> None:
    auth.configure(email_templates=TEMPLATES, notification_workflows=workflows)


def calls(auth: AuthStack, method: str, *calls: tuple[Any, ...]) -> list[Any]:
    """NotifyService calls, one after the other, on the config in force (what the api's
    /v1/notify routes do)."""

    async def go() -> list[Any]:
        config = RuntimeConfig.model_validate_json((auth.directory / "config.json").read_text())
        redis = redis_client(auth.redis_url)
        mongo: AsyncMongoClient[Any] = AsyncMongoClient(auth.mongo_url)
        try:
            service = NotifyService(redis, mongo[auth.database], config, "ns/demo")
            await service.ensure_indexes()
            return [await getattr(service, method)(*args) for args in calls]
        finally:
            await redis.aclose()
            await mongo.close()

    return asyncio.run(go())


def call(auth: AuthStack, method: str, *args: Any) -> Any:
    return calls(auth, method, args)[0]


def trigger(auth: AuthStack, workflow: str, recipients: list[Any], **fields: Any) -> TriggerAccepted:
    request = TriggerRequest.model_validate({"workflow": workflow, "recipients": recipients} | fields)
    accepted, _ = call(auth, "trigger", request)
    return accepted  # type: ignore[no-any-return]


def add_user(auth: AuthStack, name: str) -> tuple[str, str]:
    """A user in the Stack's users collection (as sign-up writes it): (id, email)."""
    user_id = f"usr_{uuid.uuid4().hex[:16]}"
    email = f"{name.lower()}-{user_id[-6:]}@example.com"
    now = datetime.now(UTC)
    with pymongo.MongoClient(auth.mongo_url) as client:
        client[auth.database]["users"].insert_one(
            {
                "_id": user_id,
                "email": email,
                "emailNormalized": email,
                "emailVerified": True,
                "profile": {"name": name},
                "metadata": {},
                "createdAt": now,
                "updatedAt": now,
            }
        )
    return user_id, email


def runs_of(auth: AuthStack, trigger_id: str) -> list[dict[str, Any]]:
    with pymongo.MongoClient(auth.mongo_url) as client:
        return list(client[auth.database]["notification_runs"].find({"triggerId": trigger_id}).sort("_id", 1))


def wait_runs(
    auth: AuthStack, trigger_ids: list[str], statuses: set[str], timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The runs of these triggers once every one has a status in `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [run for trigger_id in trigger_ids for run in runs_of(auth, trigger_id)]
        if runs and all(run["status"] in statuses for run in runs):
            return runs
        assert time.monotonic() < deadline, [(r["_id"], r["status"], r["steps"]) for r in runs]
        time.sleep(0.1)


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in run["steps"]}


def text_of(message: Any) -> str:
    body = message.get_body(("plain",))
    return str(body.get_content() if body is not None else message.get_payload())


def test_a_digest_window_turns_five_triggers_into_one_email(auth: AuthStack) -> None:
    configure(
        auth,
        comments={
            "key": "new-comment",
            "steps": [
                {"name": "collect", "digest": {"window": "4s"}},
                {"name": "mail", "email": {"template": "digest-mail"}},
            ],
        },
    )
    user, address = add_user(auth, "Ana")
    requests = [
        (
            TriggerRequest.model_validate(
                {"workflow": "new-comment", "recipients": [user], "data": {"comment": f"c{i}"}}
            ),
        )
        for i in range(5)
    ]
    triggers = [accepted.id for accepted, _ in calls(auth, "trigger", *requests)]

    runs = wait_runs(auth, triggers, {"completed", "digested"})
    message = auth.mail_to(address, "5 new comments")
    assert sorted(re.findall(r"\[(c\d)\]", text_of(message))) == ["c0", "c1", "c2", "c3", "c4"]  # in any order
    owners = [run for run in runs if run["status"] == "completed"]
    assert len(owners) == 1
    assert steps_of(owners[0])["collect"]["detail"]["total"] == 5
    assert steps_of(owners[0])["mail"]["status"] == "done"
    assert {run["digestedInto"] for run in runs if run["status"] == "digested"} == {owners[0]["_id"]}
    time.sleep(1.0)  # nothing more comes
    assert len(auth.mails_to(address)) == 1

    # the window is closed: the next trigger opens a new digest of its own
    later = trigger(auth, "new-comment", [user], data={"comment": "c5"}).id
    assert text_of(auth.mail_to(address, "1 new comments", timeout=30)).strip() == "[c5]"
    assert wait_runs(auth, [later], {"completed"})[0]["digestedInto"] is None


def test_an_opt_out_of_email_stops_the_email_only(auth: AuthStack) -> None:
    configure(
        auth,
        comment={
            "steps": [
                {"name": "feed", "inApp": {"title": "{{ data.title }}", "body": "by {{ actor.name }}"}},
                {"name": "mail", "email": {"template": "comment-mail"}},
            ]
        },
    )
    out, out_address = add_user(auth, "Ana")
    kept, kept_address = add_user(auth, "Bo")
    writer, _ = add_user(auth, "Cy")
    update = PreferencesUpdate.model_validate({"workflows": {"comment": {"channels": {"email": False}}}})
    assert call(auth, "set_preferences", out, update).workflows["comment"].channels.email is False

    accepted = trigger(auth, "comment", [out, kept], data={"title": "Release notes"}, actor=writer)
    assert accepted.recipients == 2
    runs = {run["recipient"]: run for run in wait_runs(auth, [accepted.id], {"completed"})}

    assert steps_of(runs[out])["mail"]["status"] == "skipped"
    assert "preferences turn email off" in steps_of(runs[out])["mail"]["reason"]
    assert steps_of(runs[kept])["mail"]["status"] == "done"
    assert auth.mail_to(kept_address, "Release notes")
    with pymongo.MongoClient(auth.mongo_url) as client:
        feed = {m["recipient"]: m for m in client[auth.database]["feed_messages"].find({})}
    assert feed[out]["title"] == "Release notes" and feed[out]["body"] == "by Cy"
    assert feed[out]["_id"] == steps_of(runs[out])["feed"]["detail"]["messageId"] == f"msg_{runs[out]['_id']}.feed"
    assert set(feed) == {out, kept}
    time.sleep(0.5)
    assert auth.mails_to(out_address) == []


def test_a_worker_killed_mid_workflow_resumes_without_sending_a_step_twice(auth: AuthStack) -> None:
    configure(
        auth,
        onboarding={
            "steps": [
                {
                    "name": "first",
                    "email": {"template": "comment-mail", "variables": {"title": "first {{ recipient.name }}"}},
                },
                {"name": "pause", "delay": {"duration": "8s"}},
                {"name": "second", "email": {"template": "comment-mail", "variables": {"title": "second"}}},
            ]
        },
    )
    user, address = add_user(auth, "Ana")
    accepted = trigger(auth, "onboarding", [user])
    wait_runs(auth, [accepted.id], {"waiting"})  # the first email accepted, the delay begun
    assert auth.mail_to(address, "first Ana", timeout=30)
    time.sleep(0.5)  # the email job acknowledged (its own retries are the email tests' matter)
    assert auth.worker is not None
    auth.worker.kill()  # SIGKILL while the run waits in its delay
    auth.start_worker()

    run = wait_runs(auth, [accepted.id], {"completed"}, timeout=60)[0]
    assert auth.mail_to(address, "second", timeout=30)
    time.sleep(1.0)
    subjects = sorted(str(m["Subject"]) for m in auth.mails_to(address))
    assert subjects == ["first Ana", "second"]
    steps = steps_of(run)
    assert [steps[name]["status"] for name in ("first", "pause", "second")] == ["done", "done", "done"]
    assert steps["first"]["detail"]["emailId"] != steps["second"]["detail"]["emailId"]


def test_runs_over_the_throttle_limit_end_throttled(auth: AuthStack) -> None:
    configure(
        auth,
        alert={
            "steps": [
                {"name": "limit", "throttle": {"limit": 2, "window": "1h"}},
                {"name": "mail", "email": {"template": "comment-mail", "variables": {"title": "alert {{ data.n }}"}}},
            ]
        },
    )
    user, address = add_user(auth, "Ana")
    triggers = []
    for n in range(4):
        triggers.append(trigger(auth, "alert", [user], data={"n": n}).id)
        wait_runs(auth, triggers[-1:], {"completed", "throttled"})
    statuses = [run["status"] for run in wait_runs(auth, triggers, {"completed", "throttled"})]
    assert statuses == ["completed", "completed", "throttled", "throttled"]
    assert sorted(str(m["Subject"]) for m in auth.mails_to(address)) == ["alert 0", "alert 1"]


def test_the_email_is_skipped_when_the_in_app_message_was_seen(auth: AuthStack) -> None:
    configure(
        auth,
        mention={
            "steps": [
                {"name": "feed", "inApp": {"title": "You were mentioned"}},
                {"name": "wait", "delay": {"duration": "2s"}},
                {
                    "name": "mail",
                    "email": {"template": "comment-mail", "variables": {"title": "mentioned"}},
                    "conditions": {"rules": [{"step": "feed", "message": "unseen"}]},
                },
            ]
        },
    )
    seen, seen_address = add_user(auth, "Ana")
    unseen, unseen_address = add_user(auth, "Bo")
    accepted = trigger(auth, "mention", [seen, unseen])
    runs = wait_runs(auth, [accepted.id], {"waiting", "completed"})
    assert all(steps_of(run)["feed"]["status"] == "done" for run in runs)
    with pymongo.MongoClient(auth.mongo_url) as client:  # what POST /v1/feed/{id}/seen writes
        marked = client[auth.database]["feed_messages"].update_one(
            {"recipient": seen}, {"$set": {"seenAt": datetime.now(UTC)}}
        )
        assert marked.modified_count == 1

    runs = {run["recipient"]: run for run in wait_runs(auth, [accepted.id], {"completed"})}
    assert steps_of(runs[seen])["mail"]["status"] == "skipped"
    assert steps_of(runs[seen])["mail"]["reason"] == "condition not met: message of feed is unseen"
    assert steps_of(runs[unseen])["mail"]["status"] == "done"
    assert auth.mail_to(unseen_address, "mentioned")
    assert auth.mails_to(seen_address) == []


def test_a_trigger_replays_its_idempotency_key_and_an_unknown_user_fails_its_run(auth: AuthStack) -> None:
    configure(
        auth, hello={"steps": [{"name": "mail", "email": {"template": "comment-mail", "variables": {"title": "hi"}}}]}
    )
    user, address = add_user(auth, "Ana")
    request = TriggerRequest.model_validate(
        {"workflow": "hello", "recipients": [user, "usr_nobody", {"id": "ext-1", "email": "ext@example.com"}]}
    )
    first, replayed = call(auth, "trigger", request, "key-1")
    assert not replayed and first.recipients == 3
    again, replayed = call(auth, "trigger", request, "key-1")
    assert replayed and again == first

    runs = {run["recipient"]: run for run in wait_runs(auth, [first.id], {"completed", "failed"})}
    assert len(runs) == 3
    assert runs["usr_nobody"]["status"] == "failed"
    assert runs["usr_nobody"]["reason"] == "no user 'usr_nobody' in the Stack"
    assert runs[user]["status"] == runs["ext-1"]["status"] == "completed"
    assert auth.mail_to(address, "hi") and auth.mail_to("ext@example.com", "hi")
    time.sleep(0.5)
    assert len(auth.mails_to(address)) == 1


def test_a_webhook_step_posts_signed_and_the_run_publishes_notification_completed(auth: AuthStack) -> None:
    from stackyard.notify.webhooks import signing_secret_key

    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with WebhookReceiver() as receiver:
        auth.configure(
            email_templates=TEMPLATES,
            notification_workflows={"order": {"steps": [{"name": "crm", "webhook": {"webhook": "crm"}}]}},
            webhooks={
                "crm": {"url": receiver.url + "/crm", "events": ["user.created"]},
                "audit": {"url": receiver.url + "/audit", "events": ["notification.*"]},
            },
            extra_credentials={signing_secret_key("crm"): secret, signing_secret_key("audit"): secret},
        )
        user, _ = add_user(auth, "Ana")
        accepted = trigger(auth, "order", [user], data={"orderId": "o1"}, tenant="acme")
        run = wait_runs(auth, [accepted.id], {"completed"})[0]

        step = receiver.wait_for(1, path="/crm", timeout=30)[0]
        body = ReferenceWebhook(secret).verify(step.body, step.headers)
        assert body["type"] == "notification.order"
        assert body["data"]["runId"] == run["_id"] and body["data"]["data"] == {"orderId": "o1"}
        assert body["data"]["recipient"]["email"].startswith("ana-") and body["data"]["tenant"] == "acme"
        assert steps_of(run)["crm"]["detail"]["deliveryIds"] == [step.headers["webhook-id"]]

        event = receiver.wait_for(1, path="/audit", timeout=30)[0]
        completed = ReferenceWebhook(secret).verify(event.body, event.headers)
        assert completed["type"] == "notification.completed"
        assert completed["data"]["runId"] == run["_id"] and completed["data"]["status"] == "completed"
        time.sleep(0.5)
        assert len(receiver.received("/crm")) == len(receiver.received("/audit")) == 1
