"""Web push: payloads encrypted per RFC 8291 and decrypted by the harness's push service with
http_ece, VAPID (RFC 8292) checked there with its own ES256 verification, the push service's
answers (410 removes the subscription from MongoDB, 429/5xx fail and keep it), and the
subscriptions the store refuses."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from stackyard.config.runtime import NOTIFY_VAPID_PRIVATE_KEY, NOTIFY_VAPID_PUBLIC_KEY, RuntimeConfig
from stackyard.notify.problems import PushNotConfigured, SubscriptionInvalid
from stackyard.notify.push import (
    MAX_PLAINTEXT,
    PushMessage,
    PushOutcome,
    PushSender,
    VapidKeys,
    VapidSigner,
    encrypt_payload,
    new_vapid_keys,
    payload_bytes,
    push_topic,
    vapid_contact,
)
from stackyard.notify.push_contract import PushSubscriptionIn
from stackyard.notify.push_subscriptions import (
    MAX_PER_USER,
    PushSubscriptions,
    b64url_decode,
    b64url_encode,
    subscription_id,
)
from stackyard_harness.push_service import Browser, PushService, Refused, verify_vapid

# RFC 8291 Appendix A: the example's keys, salt, plaintext and the encrypted body it gives.
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A"
    "_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def _private(b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(b64), "big"), ec.SECP256R1())


@pytest.fixture(scope="module")
def push_service() -> Iterator[PushService]:
    with PushService() as service:
        yield service


@pytest.fixture(scope="module")
def vapid() -> dict[str, str]:
    private, public = new_vapid_keys()
    return {NOTIFY_VAPID_PRIVATE_KEY: private, NOTIFY_VAPID_PUBLIC_KEY: public}


@pytest.fixture
async def http(push_service: PushService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=push_service.ssl_context(), timeout=10) as client:
        yield client


@pytest.fixture
async def subscriptions(db: Any) -> PushSubscriptions:
    store = PushSubscriptions(db)
    await store.ensure_indexes()
    return store


async def subscribed(store: PushSubscriptions, user: str, browser: Browser) -> str:
    stored = await store.subscribe(user, PushSubscriptionIn.model_validate(browser.subscription), user_agent="test")
    return stored.id


MESSAGE = PushMessage(title="New comment", body="Ada: looks good", url="https://app.test/posts/7", data={"postId": 7})


# -- encryption and VAPID, pure ------------------------------------------------------------------


def test_encryption_reproduces_the_rfc_8291_example() -> None:
    body = encrypt_payload(
        RFC_PLAINTEXT,
        b64url_decode(RFC_UA_PUBLIC),
        b64url_decode(RFC_AUTH),
        sender_key=_private(RFC_AS_PRIVATE),
        salt=b64url_decode(RFC_SALT),
    )
    assert b64url_encode(body) == RFC_BODY
    browser = Browser("https://push.test/x", _private(RFC_UA_PRIVATE), b64url_decode(RFC_AUTH))
    assert browser.decrypt(body) == RFC_PLAINTEXT


def test_each_encryption_takes_a_fresh_key_and_salt() -> None:
    browser = Browser("https://push.test/x", ec.generate_private_key(ec.SECP256R1()), b"0123456789abcdef")
    point = b64url_decode(browser.p256dh)
    one, two = (encrypt_payload(b"hello", point, browser.auth) for _ in range(2))
    assert one[:16] != two[:16] and one[21:86] != two[21:86]
    assert browser.decrypt(one) == browser.decrypt(two) == b"hello"


def test_a_payload_over_one_record_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 3993"):
        encrypt_payload(b"x" * (MAX_PLAINTEXT + 1), b64url_decode(RFC_UA_PUBLIC), b64url_decode(RFC_AUTH))


def test_a_long_body_is_shortened_to_fit_one_record() -> None:
    raw = payload_bytes(PushMessage(title="t", body="word " * 2000))
    assert len(raw) <= MAX_PLAINTEXT
    assert raw.decode().endswith('…","data":{}}')
    with pytest.raises(ValueError, match="without its body"):
        payload_bytes(PushMessage(title="t", body="b", data={"blob": "x" * 5000}))


def test_new_vapid_keys_are_a_p256_pair_with_the_public_point_base64url() -> None:
    private_pem, public = new_vapid_keys()
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    point = b64url_decode(public)
    assert len(point) == 65 and point[0] == 4 and "=" not in public
    assert point == key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert new_vapid_keys()[1] != public


def test_vapid_header_carries_a_token_for_the_endpoint_origin(vapid: dict[str, str]) -> None:
    now = time.time()
    signer = VapidSigner(VapidKeys.from_credentials(vapid), "mailto:ops@acme.test", clock=lambda: now)
    header = signer.authorization("https://push.example.net:8443/wpush/v2/abc?x=1")
    claims, key = verify_vapid(header, "https://push.example.net:8443", now)
    assert key == vapid[NOTIFY_VAPID_PUBLIC_KEY]
    assert claims["sub"] == "mailto:ops@acme.test"
    assert now + 11 * 3600 < claims["exp"] <= now + 24 * 3600
    # verified by PyJWT with the public key as well, and only for that audience
    public = serialization.load_pem_private_key(vapid[NOTIFY_VAPID_PRIVATE_KEY].encode(), None).public_key()
    token = header.split("t=")[1].split(",")[0]
    assert jwt.decode(token, public, algorithms=["ES256"], audience="https://push.example.net:8443")["sub"]
    with pytest.raises(Refused, match="aud"):
        verify_vapid(header, "https://other.example.net", now)
    # one token per origin, renewed an hour before it expires
    assert signer.authorization("https://push.example.net:8443/other") == header
    later = VapidSigner(signer.keys, signer.contact, clock=lambda: now + 11.5 * 3600)
    later._tokens = signer._tokens
    assert later.authorization("https://push.example.net:8443/other") != header


def test_a_tampered_vapid_token_is_refused(vapid: dict[str, str]) -> None:
    header = VapidSigner(VapidKeys.from_credentials(vapid), "mailto:ops@acme.test").authorization("https://p.test/a")
    other = new_vapid_keys()[1]
    with pytest.raises(Refused, match="does not verify"):
        verify_vapid(header.rsplit("k=", 1)[0] + f"k={other}", "https://p.test", time.time())


def test_vapid_keys_missing_or_mismatched_mean_push_is_not_configured(vapid: dict[str, str]) -> None:
    with pytest.raises(PushNotConfigured):
        VapidKeys.from_credentials({})
    with pytest.raises(PushNotConfigured, match="does not belong"):
        VapidKeys.from_credentials({**vapid, NOTIFY_VAPID_PUBLIC_KEY: new_vapid_keys()[1]})
    with pytest.raises(PushNotConfigured, match="not a PEM"):
        VapidKeys.from_credentials({**vapid, NOTIFY_VAPID_PRIVATE_KEY: "garbage"})


def test_vapid_contact_comes_from_the_stack_auth_settings() -> None:
    def config(**auth: str) -> RuntimeConfig:
        return RuntimeConfig.model_validate(
            {
                "stack": "s",
                "namespace": "n",
                "generation": 1,
                "spec": {
                    "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                    "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}},
                    "auth": auth,
                },
            }
        )

    assert vapid_contact(config(emailFrom="Acme <auth@acme.test>")) == "mailto:auth@acme.test"
    assert vapid_contact(config(appUrl="https://app.acme.test")) == "https://app.acme.test"
    assert vapid_contact(config()).startswith("mailto:")


def test_topics_are_base64url_of_at_most_32_characters() -> None:
    assert push_topic("run-7") == "run-7"
    long = push_topic("notify:nrun_01hxyz:push-step")
    assert len(long) == 32 and long == push_topic("notify:nrun_01hxyz:push-step")


# -- sending through the push service -------------------------------------------------------------


async def test_a_message_reaches_every_subscription_of_the_user_decrypted(
    push_service: PushService, vapid: dict[str, str], http: httpx.AsyncClient, subscriptions: PushSubscriptions
) -> None:
    key = vapid[NOTIFY_VAPID_PUBLIC_KEY]
    laptop, phone, stranger = (push_service.subscribe(key) for _ in range(3))
    await subscribed(subscriptions, "u_ada", laptop)
    await subscribed(subscriptions, "u_ada", phone)
    await subscribed(subscriptions, "u_bob", stranger)
    sender = PushSender(subscriptions.collection.database, vapid, http, contact="mailto:ops@acme.test")

    outcome = await sender.send_to_user("u_ada", MESSAGE, ttl_seconds=600, urgency="high", topic="post-7")

    assert outcome == PushOutcome(sent=2, removed=0, failed=0)
    for browser in (laptop, phone):
        (message,) = push_service.messages(browser.endpoint)
        assert message.json() == {
            "title": "New comment",
            "body": "Ada: looks good",
            "url": "https://app.test/posts/7",
            "data": {"postId": 7},
        }
        assert (message.ttl, message.urgency, message.topic) == (600, "high", "post-7")
        assert message.vapid_key == key and message.claims["aud"] == push_service.url
        assert message.claims["sub"] == "mailto:ops@acme.test"
        (request,) = push_service.requests(browser.endpoint)
        assert request.headers["content-encoding"] == "aes128gcm"
        assert request.headers["authorization"].startswith("vapid t=")
    assert push_service.messages(stranger.endpoint) == []
    stored = {s.id: s for s in await subscriptions.for_user("u_ada")}
    assert all(s.last_success_at is not None for s in stored.values())


async def test_default_ttl_and_urgency_are_sent(
    push_service: PushService, vapid: dict[str, str], http: httpx.AsyncClient, subscriptions: PushSubscriptions
) -> None:
    browser = push_service.subscribe()
    await subscribed(subscriptions, "u_cy", browser)
    sender = PushSender(subscriptions.collection.database, vapid, http)
    assert (await sender.send_to_user("u_cy", MESSAGE)).sent == 1
    (message,) = push_service.messages(browser.endpoint)
    assert (message.ttl, message.urgency, message.topic) == (86400, "normal", None)


async def test_a_gone_subscription_is_removed_from_mongodb(
    push_service: PushService, vapid: dict[str, str], http: httpx.AsyncClient, subscriptions: PushSubscriptions
) -> None:
    kept, unsubscribed, unknown = (push_service.subscribe() for _ in range(3))
    await subscribed(subscriptions, "u_dee", kept)
    gone_id = await subscribed(subscriptions, "u_dee", unsubscribed)
    unknown_id = await subscribed(subscriptions, "u_dee", unknown)
    push_service.gone(unsubscribed.endpoint)
    push_service.forget(unknown.endpoint)
    sender = PushSender(subscriptions.collection.database, vapid, http)

    outcome = await sender.send_to_user("u_dee", MESSAGE)

    assert outcome == PushOutcome(sent=1, removed=2, failed=0)
    assert [r.status for r in push_service.requests(unsubscribed.endpoint)] == [410]
    assert [r.status for r in push_service.requests(unknown.endpoint)] == [404]
    assert await subscriptions.collection.find_one({"_id": gone_id}) is None
    assert await subscriptions.collection.find_one({"_id": unknown_id}) is None
    assert [s.endpoint for s in await subscriptions.for_user("u_dee")] == [kept.endpoint]
    assert await sender.send_to_user("u_dee", MESSAGE) == PushOutcome(sent=1)


@pytest.mark.parametrize(("status", "retryable"), [(429, 1), (500, 1), (503, 1), (413, 0), (400, 0)])
async def test_refusals_other_than_gone_fail_and_keep_the_subscription(
    push_service: PushService,
    vapid: dict[str, str],
    http: httpx.AsyncClient,
    subscriptions: PushSubscriptions,
    status: int,
    retryable: int,
) -> None:
    browser = push_service.subscribe()
    sub_id = await subscribed(subscriptions, "u_eve", browser)
    push_service.answer(browser.endpoint, status)
    sender = PushSender(subscriptions.collection.database, vapid, http)

    assert await sender.send_to_user("u_eve", MESSAGE) == PushOutcome(failed=1, retryable=retryable)
    assert await subscriptions.collection.find_one({"_id": sub_id}) is not None

    push_service.answer(browser.endpoint, None)
    assert await sender.send_to_user("u_eve", MESSAGE) == PushOutcome(sent=1)


async def test_a_push_signed_with_another_key_is_refused_by_the_push_service(
    push_service: PushService, vapid: dict[str, str], http: httpx.AsyncClient, subscriptions: PushSubscriptions
) -> None:
    browser = push_service.subscribe(application_server_key=new_vapid_keys()[1])
    await subscribed(subscriptions, "u_fay", browser)
    sender = PushSender(subscriptions.collection.database, vapid, http)
    assert await sender.send_to_user("u_fay", MESSAGE) == PushOutcome(failed=1)
    assert [r.status for r in push_service.requests(browser.endpoint)] == [403]


async def test_an_expired_subscription_is_removed_without_a_request(
    push_service: PushService, vapid: dict[str, str], http: httpx.AsyncClient, subscriptions: PushSubscriptions
) -> None:
    browser = push_service.subscribe()
    sub_id = await subscribed(subscriptions, "u_gil", browser)
    await subscriptions.collection.update_one(
        {"_id": sub_id}, {"$set": {"expirationTime": datetime.now(UTC) - timedelta(minutes=1)}}
    )
    sender = PushSender(subscriptions.collection.database, vapid, http)
    assert await sender.send_to_user("u_gil", MESSAGE) == PushOutcome(removed=1)
    assert push_service.requests(browser.endpoint) == []
    assert await subscriptions.for_user("u_gil") == []


async def test_unreachable_push_service_fails_retryably(
    vapid: dict[str, str], subscriptions: PushSubscriptions
) -> None:
    browser = Browser("https://127.0.0.1:1/push/x", ec.generate_private_key(ec.SECP256R1()), b"0123456789abcdef")
    await subscribed(subscriptions, "u_hal", browser)
    async with httpx.AsyncClient(timeout=2) as http:
        sender = PushSender(subscriptions.collection.database, vapid, http)
        assert await sender.send_to_user("u_hal", MESSAGE) == PushOutcome(failed=1, retryable=1)


async def test_no_vapid_keys_means_push_not_configured(subscriptions: PushSubscriptions) -> None:
    async with httpx.AsyncClient() as http:
        sender = PushSender(subscriptions.collection.database, {}, http)
        with pytest.raises(PushNotConfigured):
            await sender.send_to_user("u_ada", MESSAGE)


async def test_a_user_without_subscriptions_gets_nothing(
    vapid: dict[str, str], subscriptions: PushSubscriptions
) -> None:
    async with httpx.AsyncClient() as http:
        sender = PushSender(subscriptions.collection.database, vapid, http)
        assert await sender.send_to_user("u_nobody", MESSAGE) == PushOutcome()


# -- the subscription store --------------------------------------------------------------------------


def _subscription(**changes: Any) -> PushSubscriptionIn:
    browser_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = browser_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    raw: dict[str, Any] = {
        "endpoint": "https://push.example.net/wpush/v2/gAAAAA",
        "expirationTime": None,
        "keys": {"p256dh": b64url_encode(point), "auth": b64url_encode(b"0123456789abcdef")},
    }
    keys = changes.pop("keys", {})
    raw |= changes
    raw["keys"] |= keys
    return PushSubscriptionIn.model_validate(raw)


def _compressed_point() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return b64url_encode(key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"endpoint": "http://push.example.net/wpush/x"}, "https"),
        ({"endpoint": "https:///nohost"}, "https"),
        ({"endpoint": "ftp://push.example.net/x"}, "https"),
        ({"keys": {"p256dh": "BAAA"}}, "uncompressed P-256 point"),
        ({"keys": {"p256dh": b64url_encode(b"\x04" + b"\x01" * 64)}}, "not a point on the P-256 curve"),
        ({"keys": {"p256dh": "compressed"}}, "uncompressed P-256 point"),
        ({"keys": {"p256dh": "not base64url!"}}, "p256dh is not base64url"),
        ({"keys": {"p256dh": base64.b64encode(b"\x04" + b"\xfb" * 64).decode()}}, "p256dh is not base64url"),
        ({"keys": {"auth": b64url_encode(b"short")}}, "auth must be 16 bytes"),
        ({"keys": {"auth": "$$$$"}}, "auth is not base64url"),
        ({"expirationTime": 1000}, "already expired"),
    ],
)
async def test_invalid_subscriptions_are_refused(
    subscriptions: PushSubscriptions, changes: dict[str, Any], why: str
) -> None:
    if changes.get("keys", {}).get("p256dh") == "compressed":
        changes = {"keys": {"p256dh": _compressed_point()}}
    with pytest.raises(SubscriptionInvalid, match=why) as refused:
        await subscriptions.subscribe("u_ada", _subscription(**changes))
    assert refused.value.status == 422
    assert await subscriptions.collection.count_documents({}) == 0


async def test_padded_base64url_keys_are_taken(subscriptions: PushSubscriptions) -> None:
    plain = _subscription()
    padded = _subscription(keys={"p256dh": plain.keys.p256dh + "=", "auth": plain.keys.auth + "=="})
    stored = await subscriptions.subscribe("u_ada", padded)
    assert b64url_encode(stored.auth) == plain.keys.auth


async def test_the_same_browser_subscribing_twice_is_one_record_owned_by_the_last_user(
    subscriptions: PushSubscriptions,
) -> None:
    first = await subscriptions.subscribe("u_ada", _subscription(), user_agent="Firefox")
    again = await subscriptions.subscribe("u_ada", _subscription(expirationTime=int(time.time() * 1000) + 86_400_000))
    assert first.id == again.id == subscription_id(first.endpoint) and first.id.startswith("psub_")
    assert again.created_at == first.created_at and again.p256dh != first.p256dh
    assert again.expiration_time is not None and again.expiration_time > datetime.now(UTC)
    assert await subscriptions.collection.count_documents({}) == 1

    moved = await subscriptions.subscribe("u_bob", _subscription())
    assert moved.id == first.id and moved.user_id == "u_bob"
    assert await subscriptions.for_user("u_ada") == []
    doc = await subscriptions.collection.find_one({"_id": first.id})
    assert doc is not None and set(doc) >= {"userId", "endpoint", "keys", "expirationTime", "userAgent", "createdAt"}


async def test_a_user_keeps_the_newest_subscriptions(subscriptions: PushSubscriptions) -> None:
    endpoints = [f"https://push.example.net/wpush/{i}" for i in range(MAX_PER_USER + 2)]
    for endpoint in endpoints:
        await subscriptions.subscribe("u_ada", _subscription(endpoint=endpoint))
        await asyncio.sleep(0.002)  # distinct updatedAt (milliseconds in BSON)
    kept = {s.endpoint for s in await subscriptions.for_user("u_ada")}
    assert kept == set(endpoints[2:])


async def test_delete_and_get_see_only_the_users_own(subscriptions: PushSubscriptions) -> None:
    mine = await subscriptions.subscribe("u_ada", _subscription())
    with pytest.raises(Exception, match="no push subscription") as other:
        await subscriptions.delete(mine.id, "u_bob")
    assert getattr(other.value, "status", None) == 404
    assert (await subscriptions.get(mine.id, "u_ada")).endpoint == mine.endpoint
    await subscriptions.delete(mine.id, "u_ada")
    assert await subscriptions.for_user("u_ada") == []
