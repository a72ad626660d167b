"""/v1/push through the real api: the VAPID public key, and a user's browser subscriptions —
subscribe, list, unsubscribe, another user's never seen, invalid keys refused."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import jwt
import pytest
from auth_http import bearer, problem, sign_up_and_log_in
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stackyard.clients import mongo_client
from stackyard.config.runtime import NOTIFY_VAPID_PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY
from stackyard.notify.push import PushMessage, PushOutcome, PushSender, new_vapid_keys
from stackyard_harness.auth_stack import AuthStack
from stackyard_harness.push_service import PushService

REDIS_DATABASE = 17
AUTH_SETTINGS = {"requireEmailVerification": False}
PRIVATE_KEY, PUBLIC_KEY = new_vapid_keys()
VAPID = {NOTIFY_VAPID_PRIVATE_KEY: PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY: PUBLIC_KEY}


@pytest.fixture
def auth(running: AuthStack) -> AuthStack:
    running.reset()
    running.configure(AUTH_SETTINGS, extra_credentials=VAPID)
    return running


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def browser_subscription(
    endpoint: str = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABn",
) -> dict[str, Any]:
    """A PushSubscription.toJSON() of a fresh browser key pair and auth secret."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": b64url(point), "auth": b64url(b"k" * 16)}}


def user(http: httpx.Client, email: str) -> dict[str, str]:
    return bearer(sign_up_and_log_in(http, email))


def test_the_vapid_public_key_is_served_without_auth(http: httpx.Client) -> None:
    answer = http.get("/v1/push/vapid-public-key")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"publicKey": PUBLIC_KEY}


def test_without_vapid_keys_push_is_not_configured(auth: AuthStack, http: httpx.Client) -> None:
    auth.configure(AUTH_SETTINGS, extra_credentials=dict.fromkeys(VAPID, ""))
    problem(http.get("/v1/push/vapid-public-key"), 503, "push-not-configured")


def test_subscribe_list_and_unsubscribe(http: httpx.Client) -> None:
    ana = user(http, "ana@example.com")
    laptop, phone = browser_subscription(), browser_subscription("https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM")
    first = http.post("/v1/push/subscriptions", json=laptop, headers=ana | {"User-Agent": "Firefox/140"})
    assert first.status_code == 201, first.text
    view = first.json()
    assert view["id"].startswith("psub_") and view["endpoint"] == laptop["endpoint"]
    assert view["userAgent"] == "Firefox/140" and view["expirationTime"] is None and view["createdAt"]
    assert "keys" not in view
    assert http.post("/v1/push/subscriptions", json=phone, headers=ana).status_code == 201

    listed = http.get("/v1/push/subscriptions", headers=ana)
    assert listed.status_code == 200
    assert [s["endpoint"] for s in listed.json()["items"]] == [laptop["endpoint"], phone["endpoint"]]

    assert http.delete(f"/v1/push/subscriptions/{view['id']}", headers=ana).status_code == 204
    assert [s["endpoint"] for s in http.get("/v1/push/subscriptions", headers=ana).json()["items"]] == [
        phone["endpoint"]
    ]
    problem(http.delete(f"/v1/push/subscriptions/{view['id']}", headers=ana), 404, "not-found")


def test_the_same_browser_subscribing_again_is_one_subscription(http: httpx.Client, db: Any) -> None:
    ana = user(http, "ana@example.com")
    first = http.post("/v1/push/subscriptions", json=browser_subscription(), headers=ana).json()
    again = http.post("/v1/push/subscriptions", json=browser_subscription(), headers=ana).json()
    assert again["id"] == first["id"] and again["createdAt"] == first["createdAt"]
    assert len(http.get("/v1/push/subscriptions", headers=ana).json()["items"]) == 1
    (doc,) = db.push_subscriptions.find({})
    assert doc["_id"] == first["id"] and doc["keys"]["auth"] == b64url(b"k" * 16)


def test_another_users_subscription_is_not_visible(http: httpx.Client) -> None:
    ana, bob = user(http, "ana@example.com"), user(http, "bob@example.com")
    mine = http.post("/v1/push/subscriptions", json=browser_subscription(), headers=ana).json()
    assert http.get("/v1/push/subscriptions", headers=bob).json() == {"items": []}
    problem(http.delete(f"/v1/push/subscriptions/{mine['id']}", headers=bob), 404, "not-found")
    assert [s["id"] for s in http.get("/v1/push/subscriptions", headers=ana).json()["items"]] == [mine["id"]]


def test_subscriptions_need_an_access_token(http: httpx.Client) -> None:
    problem(http.get("/v1/push/subscriptions"), 401, "invalid-token")
    problem(http.post("/v1/push/subscriptions", json=browser_subscription()), 401, "invalid-token")


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"endpoint": "http://push.example.net/wpush/x"}, "https"),
        ({"keys": {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": b64url(b"k" * 16)}}, "P-256 curve"),
        ({"keys": {"p256dh": b64url(b"\x04" * 33), "auth": b64url(b"k" * 16)}}, "uncompressed P-256 point"),
        ({"keys": {"p256dh": "@@@", "auth": b64url(b"k" * 16)}}, "base64url"),
        ({"auth": b64url(b"k" * 8)}, "16 bytes"),
    ],
)
def test_bad_keys_are_refused(http: httpx.Client, change: dict[str, Any], detail: str) -> None:
    ana = user(http, "ana@example.com")
    body = browser_subscription()
    if "auth" in change:
        body["keys"]["auth"] = change["auth"]
    else:
        body |= change
    refused = problem(http.post("/v1/push/subscriptions", json=body, headers=ana), 422, "subscription-invalid")
    assert detail in refused["detail"]
    assert http.get("/v1/push/subscriptions", headers=ana).json() == {"items": []}


def test_a_body_that_is_not_a_subscription_is_a_validation_problem(http: httpx.Client) -> None:
    ana = user(http, "ana@example.com")
    problem(http.post("/v1/push/subscriptions", json={"endpoint": "https://x.test"}, headers=ana), 422, "validation")


async def push_to(user_id: str, auth: AuthStack, push_service: PushService, message: PushMessage) -> PushOutcome:
    """What the worker's push step does: PushSender on the Stack's database."""
    client = mongo_client(auth.mongo_url, "test-push-api")
    try:
        async with httpx.AsyncClient(verify=push_service.ssl_context(), timeout=10) as push_http:
            return await PushSender(client[auth.database], VAPID, push_http).send_to_user(user_id, message)
    finally:
        await client.close()


def test_a_browser_subscribed_through_the_api_gets_the_push_decrypted(auth: AuthStack, http: httpx.Client) -> None:
    session = sign_up_and_log_in(http, "ana@example.com")
    user_id = jwt.decode(session["accessToken"], options={"verify_signature": False})["sub"]
    with PushService() as push_service:
        browser = push_service.subscribe(http.get("/v1/push/vapid-public-key").json()["publicKey"])
        answer = http.post("/v1/push/subscriptions", json=browser.subscription, headers=bearer(session))
        assert answer.status_code == 201, answer.text

        outcome = asyncio.run(push_to(user_id, auth, push_service, PushMessage(title="Hello", body="from the api")))

        assert outcome == PushOutcome(sent=1)
        (message,) = push_service.messages(browser.endpoint)
        assert message.json() == {"title": "Hello", "body": "from the api", "data": {}}
        assert message.vapid_key == PUBLIC_KEY
        listed = http.get("/v1/push/subscriptions", headers=bearer(session)).json()["items"]
        assert listed[0]["lastSuccessAt"] is not None
