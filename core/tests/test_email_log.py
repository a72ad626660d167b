"""The delivery log against the real MongoDB wire-protocol server of the harness (FerretDB
1.x: no TTL indexes, `$slice` in `$push` ignored), one database per test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from stackyard.email.contract import EmailFilter, EmailRecord, TimelineEvent
from stackyard.email.log import DeliveryLog
from stackyard.email.webhooks import ProviderEvent
from stackyard.jobs.ids import new_job_id
from stackyard.problems import Conflict, UnprocessableContent

DAY = 86400.0
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def emails(db: Any) -> DeliveryLog:
    log = DeliveryLog(db)
    await log.ensure_indexes()
    return log


def email_id(at: datetime) -> str:
    return "em_" + new_job_id("x", int(at.timestamp() * 1000)).partition(".")[2]


def now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def record(created: datetime | None = None, **fields: Any) -> EmailRecord:
    created = created or now_ms()
    values: dict[str, Any] = {
        "id": email_id(created),
        "status": "queued",
        "sender": "Acme <hello@acme.dev>",
        "to": ["ana@example.com"],
        "subject": "Your receipt",
        "text": "Thanks.",
        "created_at": created,
        "updated_at": created,
        **fields,
    }
    return EmailRecord.model_validate(values)


def Event(
    type: str,
    at: datetime,
    *,
    email_id: str | None = None,
    provider_message_id: str | None = None,
    recipient: str | None = "ana@example.com",
    detail: str | None = None,
    permanent: bool = False,
    raw_type: str = "",
) -> ProviderEvent:
    """What email/webhooks.py makes of a provider's webhook."""
    return ProviderEvent(type, recipient, at, provider_message_id, email_id, detail, permanent, raw_type)  # type: ignore[arg-type]


async def test_created_record_reads_back_whole(emails: DeliveryLog) -> None:
    created = now_ms()
    original = record(
        created,
        sender="Acme <Hello@Acme.dev>",
        to=["Ana <Ana@Example.com>"],
        cc=["bo@example.com"],
        bcc=["cy@example.com"],
        reply_to=["support@acme.dev"],
        html="<p>Thanks.</p>",
        template="receipt",
        locale="fr",
        attachments=[{"filename": "r.pdf", "content_type": "application/pdf", "size": 1234}],
        tags={"category": "receipt", "plan": "pro"},
        metadata={"order": 42, "a.b": {"$c": [1, "x"]}},
        idempotency_key="k-1",
        send_at=created + timedelta(hours=1),
        job_id="email.01",
        timeline=[TimelineEvent(at=created, type="queued")],
    )
    await emails.create(original, retention=DAY)
    assert await emails.get(original.id) == original
    assert await emails.get("em_nothing") is None


async def test_same_id_twice_is_a_conflict(emails: DeliveryLog) -> None:
    first = record()
    await emails.create(first, retention=DAY)
    with pytest.raises(Conflict):
        await emails.create(first.model_copy(update={"subject": "other"}), retention=DAY)
    got = await emails.get(first.id)
    assert got is not None and got.subject == "Your receipt"


async def ids(emails: DeliveryLog, **filters: Any) -> set[str]:
    page = await emails.page(EmailFilter.model_validate(filters), limit=100)
    return {item.id for item in page.items}


async def test_every_filter_selects_its_records(emails: DeliveryLog) -> None:
    a = record(T0, status="sent", to=["Ana <ANA@example.com>"], template="welcome", provider="resend", tags={"k": "a"})
    b = record(
        T0 + timedelta(minutes=1),
        status="delivered",
        sender="other@acme.dev",
        to=["bo@example.com"],
        cc=["ana@Example.com"],
        provider="ses",
        tags={"k": "b", "plan": "pro"},
    )
    c = record(
        T0 + timedelta(minutes=2),
        status="bounced",
        to=["cy@example.com"],
        bcc=["ana@example.com"],
        template="welcome",
        provider="resend",
        tags={"k": "a", "plan": "pro"},
    )
    d = record(T0 + timedelta(minutes=3), status="failed", to=["dee@example.com"])
    for r in (a, b, c, d):
        await emails.create(r, retention=DAY * 3650)

    assert await ids(emails) == {a.id, b.id, c.id, d.id}
    assert await ids(emails, status=["sent", "bounced"]) == {a.id, c.id}
    assert await ids(emails, status=["complained"]) == set()
    assert await ids(emails, to="Ana@EXAMPLE.com") == {a.id, b.id, c.id}  # to, cc and bcc
    assert await ids(emails, to="Someone <ana@example.com>") == {a.id, b.id, c.id}
    assert await ids(emails, to="dee@example.com") == {d.id}
    assert await ids(emails, to="nobody@example.com") == set()
    assert await ids(emails, sender="HELLO@acme.dev") == {a.id, c.id, d.id}
    assert await ids(emails, sender="other@acme.dev") == {b.id}
    assert await ids(emails, template="welcome") == {a.id, c.id}
    assert await ids(emails, provider="resend") == {a.id, c.id}
    assert await ids(emails, tag={"k": "a"}) == {a.id, c.id}
    assert await ids(emails, tag={"plan": "pro"}) == {b.id, c.id}
    assert await ids(emails, tag={"k": "a", "plan": "pro"}) == {c.id}
    assert await ids(emails, tag={"k": "c"}) == set()
    assert await ids(emails, since=T0 + timedelta(minutes=1)) == {b.id, c.id, d.id}
    assert await ids(emails, until=T0 + timedelta(minutes=2)) == {a.id, b.id}
    assert await ids(emails, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2)) == {b.id}
    assert await ids(
        emails, status=["sent", "bounced"], to="ana@example.com", provider="resend", tag={"plan": "pro"}
    ) == {c.id}


async def test_pages_list_every_record_once_newest_first(emails: DeliveryLog) -> None:
    created = [record(T0 + timedelta(seconds=i), status="sent" if i % 3 else "failed") for i in range(23)]
    for r in created:
        await emails.create(r, retention=DAY * 3650)

    async def all_pages(filter: EmailFilter) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            page = await emails.page(filter, limit=5, cursor=cursor)
            pages.append([item.id for item in page.items])
            if page.next_cursor is None:
                return pages
            cursor = page.next_cursor

    pages = await all_pages(EmailFilter())
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == [r.id for r in reversed(created)]
    sent = await all_pages(EmailFilter(status=["sent"]))
    assert [i for p in sent for i in p] == [r.id for r in reversed(created) if r.status == "sent"]

    exact = await emails.page(EmailFilter(), limit=23)
    assert len(exact.items) == 23 and exact.next_cursor is None


async def test_summaries_carry_no_bodies(emails: DeliveryLog) -> None:
    r = record(html="<p>big</p>", tags={"k": "v"}, provider="ses", last_error="x")
    await emails.create(r, retention=DAY)
    (item,) = (await emails.page(EmailFilter())).items
    assert item.model_dump() == {
        "id": r.id,
        "status": "queued",
        "sender": r.sender,
        "to": r.to,
        "subject": r.subject,
        "template": None,
        "tags": {"k": "v"},
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "provider": "ses",
        "last_error": "x",
    }


async def test_a_limit_out_of_range_or_a_foreign_cursor_is_refused(emails: DeliveryLog) -> None:
    for limit in (0, 101):
        with pytest.raises(UnprocessableContent):
            await emails.page(EmailFilter(), limit=limit)
    with pytest.raises(UnprocessableContent):
        await emails.page(EmailFilter(), cursor="%%%")


async def test_transition_sets_the_status_and_fields_and_pushes_events(emails: DeliveryLog) -> None:
    r = record(timeline=[TimelineEvent(at=T0, type="queued")])
    await emails.create(r, retention=DAY)
    attempt = TimelineEvent(at=T0 + timedelta(seconds=1), type="attempt", provider="ses", outcome="sent", status=200)
    sent = TimelineEvent(at=T0 + timedelta(seconds=2), type="sent", provider="ses")
    assert await emails.transition(
        r.id, "sent", [attempt, sent], provider="ses", provider_message_id="ses-1", attempts=1, job_id="email.9"
    )
    got = await emails.get(r.id)
    assert got is not None
    assert got.status == "sent"
    assert (got.provider, got.provider_message_id, got.attempts, got.job_id) == ("ses", "ses-1", 1, "email.9")
    assert [e.type for e in got.timeline] == ["queued", "attempt", "sent"]
    assert got.timeline[1] == attempt
    assert got.updated_at > r.updated_at

    # the status may be kept while fields change
    assert await emails.transition(r.id, None, [], last_error="late note")
    again = await emails.get(r.id)
    assert again is not None and again.status == "sent" and again.last_error == "late note"

    assert not await emails.transition("em_missing", "sent", [sent])
    with pytest.raises(TypeError):
        await emails.transition(r.id, "sent", [], colour="blue")


async def test_a_provider_report_before_the_workers_sent_keeps_the_report(emails: DeliveryLog) -> None:
    r = record(status="sending")
    await emails.create(r, retention=DAY)
    assert await emails.apply_provider_event("resend", Event("delivered", T0, email_id=r.id)) == r.id
    assert await emails.transition(r.id, "sent", [TimelineEvent(at=T0, type="sent")], provider_message_id="re-1")
    got = await emails.get(r.id)
    assert got is not None
    assert got.status == "delivered"
    assert got.provider_message_id == "re-1"
    assert [e.type for e in got.timeline] == ["delivered", "sent"]


async def test_provider_events_move_the_status_only_forwards(emails: DeliveryLog) -> None:
    r = record(status="sent", provider="postmark", provider_message_id="pm-1")
    await emails.create(r, retention=DAY)

    async def apply(type: str, seconds: int, **extra: Any) -> str | None:
        event = Event(type, T0 + timedelta(seconds=seconds), email_id=r.id, **extra)
        assert await emails.apply_provider_event("postmark", event) == r.id
        got = await emails.get(r.id)
        assert got is not None
        return got.status

    assert await apply("deferred", 1) == "deferred"
    assert await apply("bounced", 2, permanent=True, detail="550 no such user") == "bounced"
    assert await apply("delivered", 3) == "bounced"  # arrived late: the bounce stands
    assert await apply("deferred", 4) == "bounced"
    assert await apply("opened", 5) == "bounced"
    got = await emails.get(r.id)
    assert got is not None
    assert [e.type for e in got.timeline] == ["deferred", "bounced", "delivered", "deferred", "opened"]
    assert got.timeline[1].detail == "550 no such user" and got.timeline[1].provider == "postmark"


async def test_complaint_after_delivery_and_opens_and_soft_bounces(emails: DeliveryLog) -> None:
    r = record(status="sent")
    await emails.create(r, retention=DAY)
    steps: list[tuple[str, dict[str, Any], str]] = [
        ("bounced", {"permanent": False, "raw_type": "SoftBounce"}, "deferred"),
        ("delivered", {}, "delivered"),
        ("opened", {}, "delivered"),
        ("clicked", {}, "delivered"),
        ("complained", {}, "complained"),
        ("bounced", {"permanent": True}, "complained"),
    ]
    for i, (type, extra, status) in enumerate(steps):
        assert await emails.apply_provider_event("ses", Event(type, T0 + timedelta(seconds=i), email_id=r.id, **extra))
        got = await emails.get(r.id)
        assert got is not None and got.status == status, (type, got and got.status)
    assert got.timeline[0].type == "bounced" and got.timeline[0].outcome == "SoftBounce"


@pytest.mark.parametrize("final", ["failed", "suppressed", "dead", "cancelled"])
async def test_provider_events_never_move_a_final_status(emails: DeliveryLog, final: str) -> None:
    r = record(status=final)
    await emails.create(r, retention=DAY)
    for i, type in enumerate(["delivered", "bounced", "complained"]):
        assert await emails.apply_provider_event("ses", Event(type, T0 + timedelta(seconds=i), email_id=r.id))
    got = await emails.get(r.id)
    assert got is not None and got.status == final and len(got.timeline) == 3


async def test_events_find_their_message_by_email_id_or_provider_message_id(emails: DeliveryLog) -> None:
    now = now_ms()
    mine = record(now, status="sent", provider="sendgrid", provider_message_id="sg-1")
    other = record(now + timedelta(seconds=1), status="sent", provider="resend", provider_message_id="sg-1")
    for r in (mine, other):
        await emails.create(r, retention=DAY)

    found = await emails.apply_provider_event("sendgrid", Event("delivered", T0, provider_message_id="sg-1"))
    assert found == mine.id
    # an email id that is not in the log falls back to the provider's id
    found = await emails.apply_provider_event(
        "resend", Event("delivered", T0, email_id="em_unknown", provider_message_id="sg-1")
    )
    assert found == other.id
    # the email id wins over the provider's id
    found = await emails.apply_provider_event(
        "sendgrid", Event("opened", T0, email_id=other.id, provider_message_id="sg-1")
    )
    assert found == other.id
    statuses = {r.id: (await emails.get(r.id)) for r in (mine, other)}
    mine_now, other_now = statuses[mine.id], statuses[other.id]
    assert mine_now is not None and mine_now.status == "delivered"
    assert other_now is not None and [e.type for e in other_now.timeline] == ["delivered", "opened"]


async def test_an_event_for_no_known_message_changes_nothing(emails: DeliveryLog, db: Any) -> None:
    r = record(status="sent", provider="ses", provider_message_id="ses-1")
    await emails.create(r, retention=DAY)
    before = await db["emails"].find_one({"_id": r.id})

    assert await emails.apply_provider_event("ses", Event("bounced", T0, provider_message_id="ses-2")) is None
    assert await emails.apply_provider_event("resend", Event("bounced", T0, provider_message_id="ses-1")) is None
    assert await emails.apply_provider_event("ses", Event("bounced", T0, email_id="em_none")) is None
    assert await emails.apply_provider_event("ses", Event("bounced", T0)) is None
    assert await emails.apply_provider_event("ses", Event("unsubscribed", T0, email_id=r.id)) is None
    assert await db["emails"].find_one({"_id": r.id}) == before


async def test_a_repeated_webhook_is_recorded_once(emails: DeliveryLog) -> None:
    r = record(status="sent")
    await emails.create(r, retention=DAY)
    event = Event("delivered", T0 + timedelta(microseconds=123456), email_id=r.id, raw_type="email.delivered")
    for _ in range(3):
        assert await emails.apply_provider_event("resend", event) == r.id
    await emails.apply_provider_event("resend", Event("delivered", T0, email_id=r.id, recipient="bo@example.com"))
    got = await emails.get(r.id)
    assert got is not None and [e.recipient for e in got.timeline] == ["ana@example.com", "bo@example.com"]


async def test_the_timeline_keeps_the_newest_events(db: Any) -> None:
    emails = DeliveryLog(db, timeline_limit=5)
    r = record(status="sent")
    await emails.create(r, retention=DAY)
    for i in range(8):
        await emails.apply_provider_event("ses", Event("opened", T0 + timedelta(seconds=i), email_id=r.id))
    got = await emails.get(r.id)
    assert got is not None
    assert [e.at for e in got.timeline] == [T0 + timedelta(seconds=i) for i in range(3, 8)]


async def test_sweep_deletes_only_expired_records_and_reads_skip_them(emails: DeliveryLog) -> None:
    now = now_ms()
    old = record(now - timedelta(hours=2))
    fresh = record(now - timedelta(hours=1))
    await emails.create(old, retention=3600)  # expired an hour ago
    await emails.create(fresh, retention=DAY)

    assert await emails.get(old.id) is None  # before any sweep or TTL monitor
    assert [i.id for i in (await emails.page(EmailFilter())).items] == [fresh.id]
    assert await emails.apply_provider_event("ses", Event("delivered", now, email_id=old.id)) is None

    assert await emails.sweep(now) == 1
    assert await emails.sweep(now) == 0
    assert await emails.get(fresh.id) is not None
    assert await emails.sweep(now + timedelta(days=2)) == 1


async def test_ensure_indexes_is_idempotent_and_says_whether_the_server_expires_records(db: Any) -> None:
    logs = [DeliveryLog(db), DeliveryLog(db)]
    await asyncio.gather(*(log.ensure_indexes() for log in logs for _ in range(3)))
    await logs[0].ensure_indexes()
    build = await db.client.admin.command("buildInfo")
    ferretdb = "ferretdbVersion" in build
    assert all(log.ttl_supported is (not ferretdb) for log in logs)
    indexes = await db["emails"].index_information()
    keys = {tuple(k for k, _ in spec["key"]) for spec in indexes.values()}
    assert {("recipients", "_id"), ("status", "_id"), ("tagPairs", "_id"), ("expiresAt",)} <= keys
    ttl = [spec.get("expireAfterSeconds") for spec in indexes.values() if spec["key"][0][0] == "expiresAt"]
    assert ttl == ([None] if ferretdb else [0])
