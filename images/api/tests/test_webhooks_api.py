"""/v1/webhooks through the real api with a real worker: a real signup's user.created reaches
the receiver signed (verified by the reference `standardwebhooks` library), every route takes
the admin key, the delivery log and its attempts, replay, the test event, enable, and
problem+json for unknown names and ids. An admin update and delete emit user.updated and
user.deleted."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from auth_http import problem, sign_up_and_log_in
from stackyard.notify.webhooks import signing_secret_key
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack
from stackyard_harness.webhook_receiver import WebhookReceiver
from standardwebhooks import Webhook as ReferenceWebhook

REDIS_DATABASE = 18
RUN_WORKER = True
AUTH_SETTINGS = {"requireEmailVerification": False}
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def path(auth: AuthStack, receiver: WebhookReceiver) -> str:
    """The receiver's path behind the Webhook `crm` (user.*), the receiver emptied. The same in
    every test: the worker takes a new config a moment after the api, and a delivery goes
    wherever the config in force in the worker says."""
    receiver.reset()
    auth.configure(
        AUTH_SETTINGS,
        webhooks={
            "crm": {"url": receiver.url + "/crm", "events": ["user.*"], "headers": {"X-Source": "stackyard"}},
            "quiet": {"url": receiver.url + "/quiet", "events": ["email.bounced"]},
        },
        extra_credentials={signing_secret_key("crm"): SECRET, signing_secret_key("quiet"): SECRET},
    )
    return "/crm"


def verified(request: Any) -> dict[str, Any]:
    payload: dict[str, Any] = ReferenceWebhook(SECRET).verify(request.body, request.headers)
    return payload


def delivery(http: httpx.Client, delivery_id: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(f"/v1/webhooks/deliveries/{delivery_id}", headers=ADMIN)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["status"] == status:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_a_real_signup_emits_user_created_signed_to_the_subscribed_webhook(
    http: httpx.Client, receiver: WebhookReceiver, path: str
) -> None:
    session = sign_up_and_log_in(http, "ana@example.com")
    [request] = receiver.wait_for(1, path=path)
    payload = verified(request)
    assert payload["type"] == "user.created"
    me = http.get("/v1/auth/me", headers={"Authorization": f"Bearer {session['accessToken']}"}).json()
    assert payload["data"]["email"] == "ana@example.com" and payload["data"]["id"] == me["id"]
    assert "passwordHash" not in payload["data"] and request.headers["x-source"] == "stackyard"
    found = delivery(http, request.headers["webhook-id"], "succeeded")
    assert found["webhook"] == "crm" and found["eventType"] == "user.created" and found["payload"] == payload
    [attempt] = found["attempts"]
    assert attempt["httpStatus"] == 204 and attempt["durationMs"] >= 0 and attempt["error"] is None

    page = http.get("/v1/webhooks/crm/deliveries", headers=ADMIN).json()
    assert [item["id"] for item in page["items"]] == [found["id"]] and page["nextCursor"] is None
    assert http.get("/v1/webhooks/quiet/deliveries", headers=ADMIN).json()["items"] == []

    [crm, quiet] = http.get("/v1/webhooks", headers=ADMIN).json()["items"]
    assert (crm["name"], crm["enabled"], crm["paused"], crm["failingSince"]) == ("crm", True, False, None)
    assert crm["lastDelivery"]["succeeded"] is True and crm["lastDelivery"]["eventType"] == "user.created"
    assert quiet["name"] == "quiet" and quiet["lastDelivery"] is None


def test_admin_updates_and_deletes_emit_user_updated_and_user_deleted(
    http: httpx.Client, receiver: WebhookReceiver, path: str
) -> None:
    created = http.post("/v1/auth/admin/users", json={"email": "bo@example.com"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    updated = http.patch(f"/v1/auth/admin/users/{user_id}", json={"profile": {"name": "Bo"}}, headers=ADMIN)
    assert updated.status_code == 200, updated.text
    assert http.delete(f"/v1/auth/admin/users/{user_id}", headers=ADMIN).status_code in (200, 204)
    # created; updated by the PATCH, and by the delete, which disables the account first; deleted
    # (each its own delivery job: they may arrive in any order)
    events = [verified(r) for r in receiver.wait_for(4, path=path)]
    assert sorted(e["type"] for e in events) == ["user.created", "user.deleted", "user.updated", "user.updated"]
    updates = [e["data"] for e in events if e["type"] == "user.updated"]
    assert {"name": "Bo"} in [u["profile"] for u in updates] and any(u["disabled"] for u in updates)
    assert [e["data"] for e in events if e["type"] == "user.deleted"] == [{"id": user_id}]


def test_replay_and_test_events_make_new_deliveries(http: httpx.Client, receiver: WebhookReceiver, path: str) -> None:
    sign_up_and_log_in(http, "cy@example.com")
    [first] = receiver.wait_for(1, path=path)
    replayed = http.post(f"/v1/webhooks/deliveries/{first.headers['webhook-id']}/replay", headers=ADMIN)
    assert replayed.status_code == 202, replayed.text
    replay = replayed.json()
    assert replay["replayOf"] == first.headers["webhook-id"] and replay["id"] != replay["replayOf"]
    _, second = receiver.wait_for(2, path=path)
    assert second.body == first.body and second.headers["webhook-id"] == replay["id"]
    delivery(http, replay["id"], "succeeded")

    tested = http.post("/v1/webhooks/quiet/test", headers=ADMIN)
    assert tested.status_code == 202, tested.text
    [ping] = receiver.wait_for(1, path="/quiet")
    assert verified(ping)["type"] == "webhook.test" and ping.headers["webhook-id"] == tested.json()["id"]


def test_enable_answers_the_webhook_enabled(http: httpx.Client, path: str) -> None:
    answer = http.post("/v1/webhooks/crm/enable", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["enabled"] is True and answer.json()["disabledReason"] is None


def test_every_route_takes_the_admin_key(http: httpx.Client, path: str) -> None:
    routes = [
        ("GET", "/v1/webhooks"),
        ("GET", "/v1/webhooks/crm/deliveries"),
        ("GET", "/v1/webhooks/deliveries/whd_x"),
        ("POST", "/v1/webhooks/deliveries/whd_x/replay"),
        ("POST", "/v1/webhooks/crm/enable"),
        ("POST", "/v1/webhooks/crm/test"),
    ]
    for method, url in routes:
        for headers in ({}, {"Authorization": "Bearer not-the-key"}):
            problem(http.request(method, url, headers=headers), 401, "admin-key")


def test_unknown_webhooks_and_deliveries_are_problems(http: httpx.Client, path: str) -> None:
    for method, url in [
        ("GET", "/v1/webhooks/nope/deliveries"),
        ("POST", "/v1/webhooks/nope/enable"),
        ("POST", "/v1/webhooks/nope/test"),
    ]:
        body = problem(http.request(method, url, headers=ADMIN), 404, "webhook-not-found")
        assert "nope" in body["detail"]
    for method, url in [
        ("GET", "/v1/webhooks/deliveries/whd_nope"),
        ("POST", "/v1/webhooks/deliveries/whd_nope/replay"),
    ]:
        problem(http.request(method, url, headers=ADMIN), 404, "delivery-not-found")
    problem(http.get("/v1/webhooks/crm/deliveries", params={"cursor": "!!"}, headers=ADMIN), 422, "unprocessable")
