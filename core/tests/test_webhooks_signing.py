"""One webhook attempt as the endpoint sees it and how its answer is judged (pure: the endpoint
is an httpx MockTransport). Signatures are checked with the reference `standardwebhooks`
library; the retry table is http_target's; event patterns match as the Webhook resource says."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stackyard.notify.events import envelope
from stackyard.notify.webhooks import judge, post_delivery, spec_hash
from stackyard.resources.notify import PLATFORM_EVENTS, WebhookSpec, event_matches
from standardwebhooks import Webhook as ReferenceWebhook
from standardwebhooks.webhooks import WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
DELIVERY = "whd_01jb8x7k2m3n4p5q6r7s8t9v0w"


def webhook(**fields: Any) -> WebhookSpec:
    return WebhookSpec.model_validate(
        {"stackRef": {"name": "demo"}, "url": "https://hooks.example.com/in", "events": ["user.*"]} | fields
    )


def receiver(status: int = 204, headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[Any, list[Any]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers=headers or {}, content=body)

    return httpx.MockTransport(handle), seen


async def test_a_delivery_is_signed_so_the_reference_library_verifies_it() -> None:
    transport, seen = receiver()
    body = orjson.dumps(envelope("user.created", {"id": "usr_1", "email": "ana@example.com"}))
    async with httpx.AsyncClient(transport=transport) as client:
        outcome = await post_delivery(
            client, webhook(headers={"X-Team": "crm"}), delivery_id=DELIVERY, body=body, secret=SECRET
        )
    assert outcome.verdict.ok and outcome.attempt.http_status == 204 and outcome.attempt.error is None
    request = seen[0]
    assert request.method == "POST" and str(request.url) == "https://hooks.example.com/in"
    assert request.headers["webhook-id"] == DELIVERY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-team"] == "crm"
    verified = ReferenceWebhook(SECRET).verify(request.content, dict(request.headers))
    assert verified["type"] == "user.created" and verified["data"] == {"id": "usr_1", "email": "ana@example.com"}
    with pytest.raises(WebhookVerificationError):
        ReferenceWebhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(request.content, dict(request.headers))


async def test_each_attempt_has_its_own_timestamp_and_the_same_webhook_id() -> None:
    transport, seen = receiver()
    clock = iter([time.time() - 100, time.time()])
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            await post_delivery(
                client, webhook(), delivery_id=DELIVERY, body=b'{"a":1}', secret=SECRET, clock=lambda: next(clock)
            )
    first, second = seen
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == DELIVERY
    assert int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 100
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    ReferenceWebhook(SECRET).verify(second.content, dict(second.headers))


@pytest.mark.parametrize(
    ("status", "headers", "ok", "retry", "after"),
    [
        (200, {}, True, False, None),
        (204, {}, True, False, None),
        (301, {"location": "https://elsewhere"}, False, False, None),
        (400, {}, False, False, None),
        (404, {}, False, False, None),
        (410, {}, False, False, None),
        (408, {}, False, True, None),
        (425, {}, False, True, None),
        (429, {"retry-after": "7"}, False, True, 7.0),
        (429, {}, False, True, None),
        (500, {}, False, True, None),
        (503, {"retry-after": "30"}, False, True, 30.0),
    ],
)
async def test_answers_decide_as_for_http_target_jobs(
    status: int, headers: dict[str, str], ok: bool, retry: bool, after: float | None
) -> None:
    transport, _ = receiver(status, headers, b"  nope \n  at all ")
    async with httpx.AsyncClient(transport=transport) as client:
        outcome = await post_delivery(client, webhook(), delivery_id=DELIVERY, body=b"{}", secret=SECRET)
    assert (outcome.verdict.ok, outcome.verdict.retry, outcome.verdict.retry_after) == (ok, retry, after)
    assert outcome.attempt.http_status == status and outcome.attempt.duration_ms >= 0
    assert outcome.attempt.response_excerpt == "nope at all"
    if not ok:
        assert outcome.attempt.error is not None and f"answered {status}" in outcome.attempt.error
    assert judge(status, headers.get("retry-after")).retry == retry


async def test_a_refused_connection_is_retried_and_says_so() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        outcome = await post_delivery(client, webhook(), delivery_id=DELIVERY, body=b"{}", secret=SECRET)
    assert not outcome.verdict.ok and outcome.verdict.retry and outcome.attempt.http_status is None
    assert outcome.attempt.error is not None and "could not connect" in outcome.attempt.error


async def test_a_timeout_is_retried() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
        outcome = await post_delivery(client, webhook(timeout="2s"), delivery_id=DELIVERY, body=b"{}", secret=SECRET)
    assert outcome.verdict.retry and outcome.attempt.error == "POST https://hooks.example.com/in timed out after 2s"


async def test_headers_that_frame_the_message_are_refused_without_a_request() -> None:
    transport, seen = receiver()
    async with httpx.AsyncClient(transport=transport) as client:
        outcome = await post_delivery(
            client, webhook(headers={"Host": "internal"}), delivery_id=DELIVERY, body=b"{}", secret=SECRET
        )
    assert not seen and not outcome.verdict.retry and "Host" in (outcome.attempt.error or "")


def test_the_envelope_is_the_standard_webhooks_shape() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 11, 26, 12, 0, 1, 234567, tzinfo=UTC)
    body = envelope("email.sent", {"id": "em_1", "at": at, "n": 3}, at)
    assert body == {
        "type": "email.sent",
        "timestamp": "2026-11-26T12:00:01.234Z",
        "data": {"id": "em_1", "at": "2026-11-26T12:00:01.234567Z", "n": 3},
    }


@pytest.mark.parametrize(
    ("pattern", "event", "matches"),
    [
        ("*", "user.created", True),
        ("user.*", "user.created", True),
        ("user.*", "users.created", False),
        ("user.*", "email.sent", False),
        ("email.delivered", "email.delivered", True),
        ("email.delivered", "email.bounced", False),
        ("job.*", "job.dead", True),
    ],
)
def test_event_patterns(pattern: str, event: str, matches: bool) -> None:
    assert event_matches(pattern, event) is matches
    assert webhook(events=[pattern]).subscribes_to(event) is matches


@given(st.sampled_from(PLATFORM_EVENTS))
def test_every_platform_event_matches_star_and_its_own_group(event: str) -> None:
    group = event.split(".")[0]
    assert event_matches("*", event) and event_matches(f"{group}.*", event) and event_matches(event, event)


def test_the_spec_hash_changes_with_the_spec_only() -> None:
    assert spec_hash(webhook()) == spec_hash(webhook())
    assert spec_hash(webhook()) != spec_hash(webhook(disableAfter="1h"))
