"""The SMTP provider against a real SMTP server (the harness's SmtpSink)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from stackyard.email.message import (
    Attachment,
    OutgoingEmail,
    ProviderMisconfigured,
    Rejected,
    Retryable,
    Sent,
)
from stackyard.email.smtp import SmtpSender
from stackyard_harness.smtp import SmtpSink

PASSWORD = "correct-horse-battery"


@pytest.fixture
def make_sink() -> Iterator[Callable[..., SmtpSink]]:
    sinks: list[SmtpSink] = []

    def start(**options: object) -> SmtpSink:
        sink = SmtpSink(**options).start()  # type: ignore[arg-type]
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()


@pytest.fixture
def sink(make_sink) -> SmtpSink:
    return make_sink()


def sender_for(sink: SmtpSink, **settings) -> SmtpSender:
    security = {"none": "none", "starttls": "starttls", "implicit": "tls"}[sink.tls]
    settings.setdefault("timeout", 5.0)
    if sink.tls != "none":
        settings.setdefault("ca_file", str(sink.ca_file))
    return SmtpSender(host=sink.host, port=sink.port, security=security, provider="relay", **settings)


def email(n: int = 1, **fields) -> OutgoingEmail:
    fields.setdefault("to", ("ada@example.org",))
    fields.setdefault("text", f"Hello {n}")
    return OutgoingEmail(id=f"msg-{n}", sender="App <app@mail.example.com>", subject=f"Message {n}", **fields)


async def test_delivers_text_html_attachments_cc_and_bcc_only_in_the_envelope(sink):
    message = email(
        to=("Ada <ada@example.org>",),
        cc=("grace@example.org",),
        bcc=("audit@example.net",),
        reply_to=("support@example.com",),
        html='<p>Hello <img src="cid:logo"></p>',
        headers={"List-Unsubscribe": "<https://example.com/u/1>"},
        attachments=(
            Attachment("logo.png", b"\x89PNG fake", "image/png", content_id="logo"),
            Attachment("invoice.pdf", b"%PDF-1.7 fake", "application/pdf"),
        ),
        tags={"campaign": "welcome"},
    )
    async with sender_for(sink) as sender:
        sent = await sender.send(message)

    (received,) = sink.wait_for(1)
    assert sent == Sent(provider="relay", provider_message_id="<msg-1@mail.example.com>")
    assert received.sender == "app@mail.example.com"
    assert received.recipients == ("ada@example.org", "grace@example.org", "audit@example.net")
    mime = received.message
    assert "Bcc" not in mime and b"audit@example.net" not in received.raw
    assert mime["Message-ID"] == "<msg-1@mail.example.com>"
    assert mime["To"] == "Ada <ada@example.org>" and mime["Cc"] == "grace@example.org"
    assert mime["Reply-To"] == "support@example.com"
    assert mime["List-Unsubscribe"] == "<https://example.com/u/1>"
    assert not [k for k in mime if k.lower().startswith("x-stackyard-tag")]
    assert mime.get_content_type() == "multipart/mixed"
    assert mime.get_body(("plain",)).get_content().strip() == "Hello 1"
    assert "cid:logo" in mime.get_body(("html",)).get_content()
    related = next(p for p in mime.walk() if p.get_content_type() == "multipart/related")
    logo = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    assert logo["Content-ID"] == "<logo>" and logo.get_content() == b"\x89PNG fake"
    (invoice,) = list(mime.iter_attachments())
    assert invoice.get_filename() == "invoice.pdf" and invoice.get_content() == b"%PDF-1.7 fake"


async def test_tags_become_headers_when_asked(sink):
    async with sender_for(sink, tag_headers=True) as sender:
        await sender.send(email(tags={"campaign": "welcome"}))
    assert sink.wait_for(1)[0].message["X-Stackyard-Tag-campaign"] == "welcome"


async def test_custom_header_cannot_replace_a_structural_one(sink):
    async with sender_for(sink) as sender:
        with pytest.raises(Rejected):
            await sender.send(email(headers={"Bcc": "spy@example.net"}))
        with pytest.raises(Rejected):
            await sender.send(email(headers={"X-Evil": "a\r\nBcc: spy@example.net"}))
    assert sink.messages == []


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_tls_with_the_sink_certificate_and_auth(make_sink, tls):
    sink = make_sink(tls=tls, auth={"app": PASSWORD})
    async with sender_for(sink, username="app", password=PASSWORD) as sender:
        sent = await sender.send(email())
    assert sent.provider == "relay"
    assert sink.wait_for(1)[0].username == "app"


async def test_untrusted_certificate_is_a_misconfiguration(make_sink):
    sink = make_sink(tls="implicit")
    async with sender_for(sink, ca_file=None) as sender:
        with pytest.raises(ProviderMisconfigured, match="certificate"):
            await sender.send(email())


async def test_wrong_password_is_a_misconfiguration_and_never_shown(make_sink):
    sink = make_sink(tls="starttls", auth={"app": PASSWORD})
    async with sender_for(sink, username="app", password="wrong-" + PASSWORD) as sender:
        with pytest.raises(ProviderMisconfigured) as failure:
            await sender.send(email())
    assert failure.value.status == 535
    assert PASSWORD not in str(failure.value) and PASSWORD not in repr(sender)


async def test_missing_auth_is_a_misconfiguration(make_sink):
    sink = make_sink(tls="starttls", auth={"app": PASSWORD})
    async with sender_for(sink) as sender:
        with pytest.raises(ProviderMisconfigured) as failure:
            await sender.send(email())
    assert failure.value.status == 530


async def test_server_without_starttls_or_auth_is_a_misconfiguration(sink):
    async with SmtpSender(host=sink.host, port=sink.port, security="starttls", timeout=5) as sender:
        with pytest.raises(ProviderMisconfigured, match="STARTTLS"):
            await sender.send(email())
    async with sender_for(sink, username="app", password=PASSWORD) as sender:
        with pytest.raises(ProviderMisconfigured, match="AUTH") as failure:
            await sender.send(email())
    assert PASSWORD not in str(failure.value)


async def test_temporary_failure_is_retryable_and_the_connection_stays_usable(sink):
    sink.fail_next(451, "4.3.0 try again later")
    async with sender_for(sink) as sender:
        with pytest.raises(Retryable) as failure:
            await sender.send(email(1))
        assert failure.value.status == 451 and "try again later" in str(failure.value)
        await sender.send(email(2))
    assert [r.message["Subject"] for r in sink.wait_for(1)] == ["Message 2"]
    assert sink.connections == 1


@pytest.mark.parametrize(("code", "at"), [(550, "DATA"), (552, "DATA"), (550, "RCPT"), (553, "MAIL")])
async def test_permanent_failure_is_rejected(sink, code, at):
    sink.fail_next(code, "5.0.0 no", at=at)
    async with sender_for(sink) as sender:
        with pytest.raises(Rejected) as failure:
            await sender.send(email())
        assert failure.value.status == code
        await sender.send(email(2))
    assert len(sink.wait_for(1)) == 1


async def test_hanging_server_is_retryable_within_the_timeout(sink):
    sink.hang_next(5)
    async with sender_for(sink, timeout=0.5) as sender:
        started = time.monotonic()
        with pytest.raises(Retryable, match=r"within 0\.5s"):
            await sender.send(email())
        assert time.monotonic() - started < 0.5 + 0.3


async def test_refused_connection_is_retryable(sink):
    port = sink.port
    sink.stop()
    async with SmtpSender(host="127.0.0.1", port=port, security="none", timeout=2) as sender:
        with pytest.raises(Retryable):
            await sender.send(email())


async def test_connections_are_reused_across_concurrent_sends(sink):
    async with sender_for(sink, max_connections=4) as sender:
        await asyncio.gather(*(sender.send(email(n)) for n in range(100)))
        assert sender.open_connections <= 4
    received = sink.wait_for(100)
    assert len({r.connection for r in received}) <= 4
    assert sink.connections <= 4


@pytest.mark.parametrize("settle", [0.0, 0.2])
async def test_connection_closed_by_the_server_is_replaced(sink, settle):
    async with sender_for(sink) as sender:
        await sender.send(email(1))
        sink.close_connections()
        await asyncio.sleep(settle)  # 0: the client has not seen the close yet when it sends
        await sender.send(email(2))
    assert [r.connection for r in sink.wait_for(2)] == [1, 2]


async def test_idle_timeout_of_the_server_is_transparent(make_sink):
    sink = make_sink(idle_timeout=0.3)
    async with sender_for(sink) as sender:
        await sender.send(email(1))
        await asyncio.sleep(0.6)
        await sender.send(email(2))
    assert len(sink.wait_for(2)) == 2
