"""The harness's SMTP sink is a real SMTP server: the standard library's smtplib talks to it."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage

import pytest
from stackyard_harness.process import HarnessError
from stackyard_harness.smtp import SmtpSink


def _message(subject: str = "hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "App <app@example.com>"
    msg["To"] = "ada@example.org"
    msg["Subject"] = subject
    msg.set_content("Hi Ada")
    return msg


def test_plain_delivery_records_envelope_message_and_connection():
    with SmtpSink() as sink, smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        client.send_message(_message("one"), to_addrs=["ada@example.org", "hidden@example.net"])
        client.send_message(_message("two"))
        first, second = sink.wait_for(2, timeout=5)
        assert first.sender == "app@example.com"
        assert first.recipients == ("ada@example.org", "hidden@example.net")
        assert first.message["Subject"] == "one"
        assert first.message.get_content().strip() == "Hi Ada"
        assert first.connection == second.connection == 1
        assert sink.connections == 1


def test_starttls_is_required_and_verifies_with_the_sink_certificate():
    with SmtpSink(tls="starttls") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.ehlo()
            code, _ = client.mail("app@example.com")
            assert code == 530  # must issue STARTTLS first
        with smtplib.SMTP("localhost", sink.port, timeout=5) as client:
            client.starttls(context=sink.client_context())
            client.send_message(_message())
        assert sink.wait_for(1)[0].message["Subject"] == "hello"


def test_implicit_tls_verifies_with_the_sink_certificate():
    with SmtpSink(tls="implicit") as sink:
        with smtplib.SMTP_SSL(sink.host, sink.port, context=sink.client_context(), timeout=5) as client:
            client.send_message(_message())
        assert sink.wait_for(1)[0].message["To"] == "ada@example.org"
        with pytest.raises(ssl.SSLCertVerificationError):
            smtplib.SMTP_SSL(sink.host, sink.port, context=ssl.create_default_context(), timeout=5)


@pytest.mark.parametrize("tls", ["none", "starttls", "implicit"])
def test_auth_accepts_the_right_password_and_refuses_a_wrong_one(tls):
    with SmtpSink(tls=tls, auth={"app": "s3cret"}) as sink:

        def connect() -> smtplib.SMTP:
            if tls == "implicit":
                return smtplib.SMTP_SSL(sink.host, sink.port, context=sink.client_context(), timeout=5)
            client = smtplib.SMTP(sink.host, sink.port, timeout=5)
            if tls == "starttls":
                client.starttls(context=sink.client_context())
            return client

        with connect() as client:
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.login("app", "wrong")
            assert refused.value.smtp_code == 535
        with connect() as client:
            client.ehlo()
            assert client.mail("app@example.com")[0] == 530  # no AUTH, no mail
        with connect() as client:
            client.login("app", "s3cret")
            client.send_message(_message())
        assert sink.wait_for(1)[0].username == "app"


@pytest.mark.parametrize(("code", "error"), [(451, "temporary"), (550, "no such user"), (552, "too big")])
def test_injected_failure_answers_the_next_data_then_recovers(code, error):
    with SmtpSink() as sink, smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        sink.fail_next(code, error)
        with pytest.raises(smtplib.SMTPDataError) as failed:
            client.send_message(_message("refused"))
        assert failed.value.smtp_code == code
        assert error in failed.value.smtp_error.decode()
        client.rset()
        client.send_message(_message("accepted"))
        assert [r.message["Subject"] for r in sink.wait_for(1)] == ["accepted"]


def test_injected_failure_at_rcpt_and_count():
    with SmtpSink() as sink, smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        sink.fail_next(550, "5.1.1 unknown user", count=2, at="RCPT")
        for _ in range(2):
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.send_message(_message())
        client.send_message(_message())
        sink.wait_for(1)


def test_hang_delays_the_answer_to_data():
    with SmtpSink() as sink, smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        sink.hang_next(0.5)
        started = time.monotonic()
        client.send_message(_message())
        assert time.monotonic() - started >= 0.5
        sink.wait_for(1)


def test_close_connections_drops_clients_and_counts_new_ones():
    with SmtpSink() as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.send_message(_message())
            sink.close_connections()
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.send_message(_message())
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.send_message(_message())
        assert [r.connection for r in sink.wait_for(2)] == [1, 2]
        assert sink.connections == 2


def test_wait_for_times_out_with_a_count():
    with SmtpSink() as sink, pytest.raises(HarnessError, match="got 0 messages, not 1"):
        sink.wait_for(1, timeout=0.1)
