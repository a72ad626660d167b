"""The harness's push service refuses what a real one refuses, so that the push tests that
pass through it mean something: no TTL, another content coding, a body that does not decrypt
for the browser, no or a wrong VAPID token, a body over 4096 bytes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from stackyard.notify.push import VapidKeys, VapidSigner, encrypt_payload, new_vapid_keys
from stackyard.notify.push_subscriptions import b64url_decode
from stackyard_harness.push_service import Browser, PushService

PRIVATE, PUBLIC = new_vapid_keys()
KEYS = VapidKeys.from_credentials({"stack.notify.vapidPrivateKey": PRIVATE, "stack.notify.vapidPublicKey": PUBLIC})


Spoil = Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]


@pytest.fixture(scope="module")
def push_service() -> Iterator[PushService]:
    with PushService() as service:
        yield service


@pytest.fixture
async def http(push_service: PushService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=push_service.ssl_context(), timeout=10) as client:
        yield client


def good_request(browser: Browser, plaintext: bytes = b'{"title":"hi"}') -> tuple[bytes, dict[str, str]]:
    body = encrypt_payload(plaintext, b64url_decode(browser.p256dh), browser.auth)
    headers = {
        "TTL": "60",
        "Urgency": "normal",
        "Content-Encoding": "aes128gcm",
        "Authorization": VapidSigner(KEYS, "mailto:ops@acme.test").authorization(browser.endpoint),
    }
    return body, headers


def token(claims: dict[str, object]) -> str:
    key = serialization.load_pem_private_key(PRIVATE.encode(), None)
    return f"vapid t={jwt.encode(claims, key, algorithm='ES256')}, k={PUBLIC}"


async def test_a_good_push_is_taken_and_decrypted(push_service: PushService, http: httpx.AsyncClient) -> None:
    browser = push_service.subscribe(PUBLIC)
    body, headers = good_request(browser)
    answer = await http.post(browser.endpoint, content=body, headers=headers)
    assert answer.status_code == 201 and answer.headers["location"]
    assert push_service.wait_for_messages(1, browser.endpoint)[0].json() == {"title": "hi"}


@pytest.mark.parametrize(
    ("spoil", "status", "reason"),
    [
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "TTL"}), 400, "TTL"),
        (lambda b, h: (b, h | {"Urgency": "urgent"}), 400, "Urgency"),
        (lambda b, h: (b, h | {"Topic": "a.b"}), 400, "Topic"),
        (lambda b, h: (b, h | {"Content-Encoding": "aesgcm"}), 400, "aes128gcm"),
        (lambda b, h: (b[:-1] + bytes([b[-1] ^ 1]), h), 400, "does not decrypt"),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "Authorization"}), 401, "vapid"),
        (lambda b, h: (b, h | {"Authorization": h["Authorization"].replace("t=ey", "t=ez")}), 401, "malformed"),
        (lambda b, h: (b + b"x" * 4096, h), 413, "over 4096"),
    ],
)
async def test_a_bad_push_is_refused(
    push_service: PushService, http: httpx.AsyncClient, spoil: Spoil, status: int, reason: str
) -> None:
    browser = push_service.subscribe(PUBLIC)
    body, headers = spoil(*good_request(browser))
    answer = await http.post(browser.endpoint, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    (request,) = push_service.requests(browser.endpoint)
    assert reason in request.reason
    assert push_service.messages(browser.endpoint) == []


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://elsewhere.test", "sub": "mailto:a@b.test"}, "aud"),
        ({"sub": "mailto:a@b.test", "exp": int(time.time()) - 10}, "exp"),
        ({"sub": "mailto:a@b.test", "exp": int(time.time()) + 25 * 3600}, "exp"),
        ({"sub": "ops@acme.test"}, "sub"),
    ],
)
async def test_a_vapid_token_out_of_rfc_8292_is_refused(
    push_service: PushService, http: httpx.AsyncClient, claims: dict[str, object], reason: str
) -> None:
    browser = push_service.subscribe(PUBLIC)
    body, headers = good_request(browser)
    headers["Authorization"] = token({"aud": push_service.url, "exp": int(time.time()) + 3600} | claims)
    answer = await http.post(browser.endpoint, content=body, headers=headers)
    assert answer.status_code == 401
    assert reason in push_service.requests(browser.endpoint)[0].reason


async def test_the_push_service_speaks_only_tls(push_service: PushService) -> None:
    async with httpx.AsyncClient(timeout=5) as plain:  # the system's CAs: the harness CA is not among them
        with pytest.raises(httpx.ConnectError):
            await plain.post(push_service.subscribe().endpoint, content=b"x")
