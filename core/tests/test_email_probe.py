"""Probes: a provider checked without sending, against the harness's real SMTP server and
fake HTTP services. A probe ends as a send would: fine, or the same `SendFailure` kind."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from stackyard.email.http_providers import (
    HttpSender,
    PostmarkSender,
    ResendSender,
    SendGridSender,
    SesSender,
)
from stackyard.email.message import ProviderMisconfigured, RateLimited, Retryable
from stackyard.email.smtp import SmtpSender
from stackyard_harness.fake_email_providers import (
    POSTMARK_SERVER_TOKEN,
    RESEND_API_KEY,
    SENDGRID_API_KEY,
    SES_ACCESS_KEY_ID,
    SES_SECRET_ACCESS_KEY,
    FakeEmailProviders,
)
from stackyard_harness.smtp import SmtpSink

PROVIDERS = ("resend", "sendgrid", "postmark", "ses")
PASSWORD = "correct-horse-battery"
WRONG = "wrong-secret-9f8e7d6c5b4a"

# --- SMTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starttls_sink() -> Iterator[SmtpSink]:
    with SmtpSink(tls="starttls", auth={"app": PASSWORD}) as sink:
        yield sink


@pytest.fixture(scope="module")
def implicit_sink() -> Iterator[SmtpSink]:
    with SmtpSink(tls="implicit", auth={"app": PASSWORD}) as sink:
        yield sink


def smtp_sender(sink: SmtpSink, *, password: str = PASSWORD, **settings: object) -> SmtpSender:
    security = {"none": "none", "starttls": "starttls", "implicit": "tls"}[sink.tls]
    settings.setdefault("timeout", 5.0)
    if sink.tls != "none":
        settings.setdefault("ca_file", str(sink.ca_file))
    return SmtpSender(
        host=sink.host,
        port=sink.port,
        security=security,  # type: ignore[arg-type]
        username="app",
        password=password,
        provider="relay",
        **settings,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_smtp_probe_authenticates_over_tls_and_sends_nothing(tls, starttls_sink, implicit_sink):
    sink = starttls_sink if tls == "starttls" else implicit_sink
    sink.clear()
    before = sink.connections
    async with smtp_sender(sink) as sender:
        await sender.probe()
        assert sender.open_connections == 0  # QUIT: the probe keeps nothing open
    assert sink.connections == before + 1
    assert sink.messages == []


async def test_smtp_probe_without_tls_or_auth_says_ehlo():
    with SmtpSink() as sink:
        async with SmtpSender(host=sink.host, port=sink.port, security="none", timeout=5.0) as sender:
            await sender.probe()
        assert sink.connections == 1 and sink.messages == []


async def test_smtp_probe_with_a_wrong_password_is_misconfigured_and_never_shows_it(starttls_sink):
    async with smtp_sender(starttls_sink, password=WRONG) as sender:
        with pytest.raises(ProviderMisconfigured) as caught:
            await sender.probe()
    assert caught.value.code == "auth" and caught.value.status == 535
    assert WRONG not in str(caught.value) and PASSWORD not in str(caught.value)


async def test_smtp_probe_of_a_certificate_we_do_not_trust_is_misconfigured(starttls_sink):
    async with smtp_sender(starttls_sink, ca_file=None) as sender:
        with pytest.raises(ProviderMisconfigured) as caught:
            await sender.probe()
    assert caught.value.code == "tls"


async def test_smtp_probe_of_a_stopped_server_is_retryable():
    sink = SmtpSink(tls="starttls", auth={"app": PASSWORD}).start()
    sender = smtp_sender(sink)
    sink.stop()
    async with sender:
        with pytest.raises(Retryable) as caught:
            await sender.probe()
    assert not isinstance(caught.value, RateLimited)
    assert PASSWORD not in str(caught.value)


async def test_smtp_probe_of_a_server_that_never_greets_times_out():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, say nothing, wait for the client to go
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0, family=socket.AF_INET)
    port = server.sockets[0].getsockname()[1]
    try:
        async with SmtpSender(host="127.0.0.1", port=port, security="none", timeout=0.5) as sender:
            start = time.monotonic()
            with pytest.raises(Retryable) as caught:
                await sender.probe()
            assert time.monotonic() - start < 2.0
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.code == "timeout"


# --- HTTP APIs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmailProviders]:
    with FakeEmailProviders() as running:
        yield running


@pytest.fixture(autouse=True)
def clean(fake: FakeEmailProviders) -> None:
    fake.reset()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


MakeSender = Callable[..., HttpSender]
SECRETS = {
    "resend": RESEND_API_KEY,
    "sendgrid": SENDGRID_API_KEY,
    "postmark": POSTMARK_SERVER_TOKEN,
    "ses": SES_SECRET_ACCESS_KEY,
}


@pytest.fixture
def make(fake: FakeEmailProviders, client: httpx.AsyncClient) -> MakeSender:
    def build(
        provider: str,
        *,
        secret: str | None = None,
        key_id: str = SES_ACCESS_KEY_ID,
        timeout: float = 5.0,
        base_url: str | None = None,
    ) -> HttpSender:
        base_url = base_url or fake.base_url(provider)
        secret = secret or SECRETS[provider]
        if provider == "resend":
            return ResendSender("resend-main", secret, client=client, base_url=base_url, timeout=timeout)
        if provider == "sendgrid":
            return SendGridSender("sendgrid-main", secret, client=client, base_url=base_url, timeout=timeout)
        if provider == "postmark":
            return PostmarkSender("postmark-main", secret, client=client, base_url=base_url, timeout=timeout)
        return SesSender(
            "ses-main",
            access_key_id=key_id,
            secret_access_key=secret,
            region="eu-west-1",
            client=client,
            base_url=base_url,
            timeout=timeout,
        )

    return build


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_probe_reads_the_documented_endpoint_and_sends_nothing(provider, fake, make):
    await make(provider).probe()
    assert fake.probed(provider) == 1
    assert fake.received(provider) == []


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_probe_with_wrong_credentials_is_misconfigured_and_never_shows_them(provider, fake, make):
    with pytest.raises(ProviderMisconfigured) as caught:
        await make(provider, secret=WRONG).probe()
    assert caught.value.status in (401, 403)
    assert WRONG not in str(caught.value) and SECRETS[provider] not in str(caught.value)
    assert fake.probed(provider) == 0


async def test_ses_probe_with_an_unknown_access_key_is_misconfigured(make):
    with pytest.raises(ProviderMisconfigured) as caught:
        await make("ses", key_id="AKIAUNKNOWNKEY000000").probe()
    assert caught.value.code == "UnrecognizedClientException"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_probe_of_a_failing_service_is_retryable(provider, fake, make):
    fake.fail_next(provider, 503)
    with pytest.raises(Retryable) as caught:
        await make(provider).probe()
    assert not isinstance(caught.value, RateLimited) and caught.value.status == 503


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_probe_that_gets_no_answer_times_out(provider, fake, make):
    fake.hang_next(provider, 2.0)
    start = time.monotonic()
    with pytest.raises(Retryable) as caught:
        await make(provider, timeout=0.3).probe()
    assert time.monotonic() - start < 1.5
    assert caught.value.code == "timeout"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_probe_told_to_slow_down_is_rate_limited(provider, fake, make):
    fake.fail_next(provider, 429, headers={"Retry-After": "17"})
    with pytest.raises(RateLimited) as caught:
        await make(provider).probe()
    assert caught.value.retry_after == 17


async def test_probe_of_a_closed_port_is_retryable(make):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Retryable):
        await make("resend", base_url=f"http://127.0.0.1:{port}").probe()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_probe_answered_404_is_misconfigured_not_rejected(provider, fake, make):
    fake.fail_next(provider, 404)
    with pytest.raises(ProviderMisconfigured) as caught:
        await make(provider).probe()
    assert caught.value.status == 404


async def test_resend_key_with_sending_access_only_passes_the_probe(fake, make):
    fake.resend_sending_only_keys.add("re_sending_only_1234567890")
    await make("resend", secret="re_sending_only_1234567890").probe()


async def test_ses_key_allowed_to_send_but_not_to_read_the_account_passes_the_probe(fake, make):
    fake.ses_send_only_keys.add(SES_ACCESS_KEY_ID)
    await make("ses").probe()
    assert fake.probed("ses") == 0  # answered 403 AccessDeniedException, which still proves the signature
