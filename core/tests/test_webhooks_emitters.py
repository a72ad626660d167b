"""Where the platform emits its events: the email delivery log's transitions (email.sent,
.failed, .delivered, .bounced), the user store (user.created, .updated, .deleted), and
`emit`, which never lets a failing sink fail the caller. The sink records what it is given
(the real MongoDB-wire server holds the records)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from stackyard.auth.users import UserStore
from stackyard.email.contract import EmailRecord
from stackyard.email.log import DeliveryLog
from stackyard.email.webhooks import ProviderEvent
from stackyard.jobs.ids import sortable_id
from stackyard.notify.events import emit


class Sink:
    def __init__(self, subscribed: tuple[str, ...] = ("*",), fail: bool = False) -> None:
        self.patterns = subscribed
        self.fail = fail
        self.published: list[tuple[str, dict[str, Any], str | None]] = []

    def subscribed(self, event_type: str) -> bool:
        return any(p == "*" or p == event_type for p in self.patterns)

    async def publish(
        self, event_type: str, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> list[str]:
        if self.fail:
            raise ConnectionError("redis is away")
        self.published.append((event_type, dict(data), idempotency_key))
        return ["whd_x"]


def record() -> EmailRecord:
    now = datetime.now(UTC).replace(microsecond=0)
    return EmailRecord.model_validate(
        {
            "id": "em_" + sortable_id(),
            "status": "queued",
            "sender": "Acme <hello@acme.dev>",
            "to": ["ana@example.com"],
            "subject": "Your receipt",
            "text": "Thanks.",
            "tags": {"kind": "receipt"},
            "created_at": now,
            "updated_at": now,
        }
    )


async def test_the_delivery_log_emits_sent_delivered_and_bounced(db: Any) -> None:
    sink = Sink()
    log = DeliveryLog(db, events=sink)
    message = record()
    await log.create(message, retention=3600)
    await log.transition(message.id, "sent", provider="relay", provider_message_id="p-1")
    at = datetime.now(UTC).replace(microsecond=0)
    event = ProviderEvent("delivered", "ana@example.com", at, "p-1", message.id)  # type: ignore[arg-type]
    await log.apply_provider_event("relay", event)
    await log.apply_provider_event("relay", event)  # the same event twice: recorded (and emitted) once
    bounce = ProviderEvent("bounced", "ana@example.com", at, "p-1", message.id, "550 no such user", True, "hard")  # type: ignore[arg-type]
    await log.apply_provider_event("relay", bounce)
    assert [(t, k is not None) for t, _, k in sink.published] == [
        ("email.sent", True),
        ("email.delivered", True),
        ("email.bounced", True),
    ]
    sent = sink.published[0][1]
    assert sent["id"] == message.id and sent["status"] == "sent" and sent["to"] == ["ana@example.com"]
    assert sent["subject"] == "Your receipt" and sent["provider"] == "relay" and sent["providerMessageId"] == "p-1"
    bounced = sink.published[2][1]
    assert bounced["status"] == "bounced" and bounced["event"]["detail"] == "550 no such user"


async def test_the_delivery_log_emits_failed_and_nothing_unsubscribed_or_without_a_sink(db: Any) -> None:
    sink = Sink(subscribed=("email.failed",))
    log = DeliveryLog(db, events=sink)
    sent, failed = record(), record()
    for message in (sent, failed):
        await log.create(message, retention=3600)
    await log.transition(sent.id, "sent", provider="relay")
    await log.transition(failed.id, "failed", last_error="rejected: 550")
    assert [(t, d["id"], d["lastError"]) for t, d, _ in sink.published] == [
        ("email.failed", failed.id, "rejected: 550")
    ]
    quiet = DeliveryLog(db)
    other = record()
    await quiet.create(other, retention=3600)
    assert await quiet.transition(other.id, "sent", provider="relay")


async def test_the_user_store_emits_created_updated_and_deleted_but_not_sign_ins(db: Any) -> None:
    sink = Sink()
    users = UserStore(db, sink)
    user = await users.create("Ana@Example.com", password_hash="x", profile={"name": "Ana"})
    await users.set_fields(user.id, {"lastLoginAt": datetime.now(UTC)})
    await users.set_fields(user.id, {"passwordHash": "y"})
    await users.set_fields(user.id, {"profile.name": "Ana B"})
    assert await users.delete(user.id)
    assert not await users.delete(user.id)
    assert [t for t, _, _ in sink.published] == ["user.created", "user.updated", "user.deleted"]
    created, updated, deleted = (d for _, d, _ in sink.published)
    assert created["email"] == "Ana@Example.com" and "passwordHash" not in created and created["hasPassword"]
    assert updated["profile"] == {"name": "Ana B"} and deleted == {"id": user.id}


async def test_a_failing_sink_never_fails_the_caller(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    users = UserStore(db, Sink(fail=True))
    user = await users.create("bo@example.com")
    assert user.email == "bo@example.com"
    assert "event user.created not published: ConnectionError: redis is away" in caplog.text

    async def broken() -> dict[str, Any]:
        raise RuntimeError("the record is gone")

    await emit(Sink(), "email.sent", broken)
    await emit(None, "email.sent", {"id": "x"})
    read: list[str] = []

    async def data() -> dict[str, Any]:
        read.append("read")
        return {"id": "x"}

    await emit(Sink(subscribed=("user.created",)), "email.sent", data)
    assert read == []  # not subscribed: the data is never read
