"""The HTTP email senders (Resend, SendGrid, Postmark, SES v2) against the harness's fake
services, which check each request against the service's documented contract."""

from __future__ import annotations

import base64
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
from stackyard.email.message import (
    Attachment,
    OutgoingEmail,
    ProviderMisconfigured,
    RateLimited,
    Rejected,
    Retryable,
    Sent,
)
from stackyard.email.mime import build_mime
from stackyard_harness.fake_email_providers import (
    POSTMARK_SERVER_TOKEN,
    RESEND_API_KEY,
    SENDGRID_API_KEY,
    SES_ACCESS_KEY_ID,
    SES_SECRET_ACCESS_KEY,
    FakeEmailProviders,
)

PROVIDERS = ("resend", "sendgrid", "postmark", "ses")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
PDF = b"%PDF-1.4\n" + b"x" * 200

MESSAGE = OutgoingEmail(
    id="msg_01JD3QZ8F6X9T2V7K4M5N6P7Q8",
    sender="Acme <hello@acme.test>",
    to=("Ada <ada@example.test>", "bob@example.test"),
    cc=("carol@example.test",),
    bcc=("dave@example.test",),
    reply_to=("support@acme.test",),
    subject="Your invoice",
    text="Hello Ada, your invoice is attached.",
    html='<p>Hello Ada</p><img src="cid:logo">',
    headers={"X-Entity-Ref-ID": "inv-42"},
    attachments=(
        Attachment("invoice.pdf", PDF, "application/pdf"),
        Attachment("logo.png", PNG, "image/png", content_id="logo"),
    ),
    tags={"category": "invoice", "tenant": "t1"},
)
PLAIN = OutgoingEmail(id="msg_plain", sender="hello@acme.test", to=("ada@example.test",), subject="Hi", text="Hello")


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


@pytest.fixture
def make(fake: FakeEmailProviders, client: httpx.AsyncClient) -> MakeSender:
    """A sender for a provider, with the fake's good credentials unless told otherwise."""

    def build(provider: str, *, secret: str | None = None, timeout: float = 5.0) -> HttpSender:
        base_url = fake.base_url(provider)
        if provider == "resend":
            return ResendSender(
                "resend-main", secret or RESEND_API_KEY, client=client, base_url=base_url, timeout=timeout
            )
        if provider == "sendgrid":
            return SendGridSender(
                "sendgrid-main", secret or SENDGRID_API_KEY, client=client, base_url=base_url, timeout=timeout
            )
        if provider == "postmark":
            return PostmarkSender(
                "postmark-main",
                secret or POSTMARK_SERVER_TOKEN,
                client=client,
                base_url=base_url,
                timeout=timeout,
                message_stream="outbound",
            )
        return SesSender(
            "ses-main",
            access_key_id=SES_ACCESS_KEY_ID,
            secret_access_key=secret or SES_SECRET_ACCESS_KEY,
            region="eu-west-1",
            configuration_set="transactional",
            client=client,
            base_url=base_url,
            timeout=timeout,
        )

    return build


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- happy paths: what each service receives -----------------------------------------------


async def test_resend_receives_the_documented_request(fake, make):
    sent = await make("resend").send(MESSAGE)

    [got] = fake.received("resend")
    assert sent == Sent("resend-main", got.id)
    assert got.headers["Authorization"] == f"Bearer {RESEND_API_KEY}"
    assert got.headers["Idempotency-Key"] == MESSAGE.id
    assert got.body == {
        "from": "Acme <hello@acme.test>",
        "to": ["Ada <ada@example.test>", "bob@example.test"],
        "cc": ["carol@example.test"],
        "bcc": ["dave@example.test"],
        "reply_to": ["support@acme.test"],
        "subject": "Your invoice",
        "text": MESSAGE.text,
        "html": MESSAGE.html,
        "headers": {"X-Entity-Ref-ID": "inv-42"},
        "attachments": [
            {"filename": "invoice.pdf", "content": b64(PDF), "content_type": "application/pdf"},
            {"filename": "logo.png", "content": b64(PNG), "content_type": "image/png", "content_id": "logo"},
        ],
        "tags": [{"name": "category", "value": "invoice"}, {"name": "tenant", "value": "t1"}],
    }


async def test_sendgrid_receives_the_documented_request(fake, make):
    sent = await make("sendgrid").send(MESSAGE)

    [got] = fake.received("sendgrid")
    assert sent == Sent("sendgrid-main", got.id)
    assert got.headers["Authorization"] == f"Bearer {SENDGRID_API_KEY}"
    assert got.body == {
        "personalizations": [
            {
                "to": [{"email": "ada@example.test", "name": "Ada"}, {"email": "bob@example.test"}],
                "cc": [{"email": "carol@example.test"}],
                "bcc": [{"email": "dave@example.test"}],
            }
        ],
        "from": {"email": "hello@acme.test", "name": "Acme"},
        "reply_to_list": [{"email": "support@acme.test"}],
        "subject": "Your invoice",
        "content": [{"type": "text/plain", "value": MESSAGE.text}, {"type": "text/html", "value": MESSAGE.html}],
        "headers": {"X-Entity-Ref-ID": "inv-42"},
        "attachments": [
            {"content": b64(PDF), "type": "application/pdf", "filename": "invoice.pdf", "disposition": "attachment"},
            {
                "content": b64(PNG),
                "type": "image/png",
                "filename": "logo.png",
                "disposition": "inline",
                "content_id": "logo",
            },
        ],
        "custom_args": {"category": "invoice", "tenant": "t1"},
        "categories": ["category:invoice", "tenant:t1"],
    }


async def test_postmark_receives_the_documented_request(fake, make):
    sent = await make("postmark").send(MESSAGE)

    [got] = fake.received("postmark")
    assert sent == Sent("postmark-main", got.id)
    assert got.headers["X-Postmark-Server-Token"] == POSTMARK_SERVER_TOKEN
    assert got.headers["Accept"] == "application/json"
    assert got.body == {
        "From": "Acme <hello@acme.test>",
        "To": "Ada <ada@example.test>, bob@example.test",
        "Cc": "carol@example.test",
        "Bcc": "dave@example.test",
        "ReplyTo": "support@acme.test",
        "Subject": "Your invoice",
        "MessageStream": "outbound",
        "TextBody": MESSAGE.text,
        "HtmlBody": MESSAGE.html,
        "Headers": [{"Name": "X-Entity-Ref-ID", "Value": "inv-42"}],
        "Metadata": {"category": "invoice", "tenant": "t1"},
        "Attachments": [
            {"Name": "invoice.pdf", "Content": b64(PDF), "ContentType": "application/pdf"},
            {"Name": "logo.png", "Content": b64(PNG), "ContentType": "image/png", "ContentID": "cid:logo"},
        ],
    }


async def test_ses_sends_a_message_with_attachments_as_signed_raw_mime(fake, make):
    sent = await make("ses").send(MESSAGE)

    [got] = fake.received("ses")
    assert sent == Sent("ses-main", got.id)
    assert got.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={SES_ACCESS_KEY_ID}/")
    assert "/eu-west-1/ses/aws4_request" in got.headers["Authorization"]
    assert {k: v for k, v in got.body.items() if k != "Content"} == {
        "FromEmailAddress": "Acme <hello@acme.test>",
        "Destination": {
            "ToAddresses": ["Ada <ada@example.test>", "bob@example.test"],
            "CcAddresses": ["carol@example.test"],
            "BccAddresses": ["dave@example.test"],
        },
        "ReplyToAddresses": ["support@acme.test"],
        "EmailTags": [{"Name": "category", "Value": "invoice"}, {"Name": "tenant", "Value": "t1"}],
        "ConfigurationSetName": "transactional",
    }
    mime = got.mime
    assert mime is not None and list(got.body["Content"]) == ["Raw"]
    assert mime["Subject"] == "Your invoice" and mime["Bcc"] is None
    assert mime["X-Entity-Ref-ID"] == "inv-42"
    assert mime.get_body(("plain",)).get_content().strip() == MESSAGE.text
    assert mime.get_body(("html",)).get_content().strip() == MESSAGE.html
    parts = {p.get_filename(): p for p in mime.walk() if p.get_filename()}
    assert parts["invoice.pdf"].get_content() == PDF
    assert parts["invoice.pdf"].get_content_disposition() == "attachment"
    assert parts["logo.png"].get_content() == PNG
    assert parts["logo.png"]["Content-ID"] == "<logo>"


async def test_ses_sends_a_message_without_attachments_as_simple_content(fake, make):
    await make("ses").send(PLAIN)

    [got] = fake.received("ses")
    assert got.body["Content"] == {
        "Simple": {
            "Subject": {"Data": "Hi", "Charset": "UTF-8"},
            "Body": {"Text": {"Data": "Hello", "Charset": "UTF-8"}},
        }
    }
    assert got.body["Destination"] == {"ToAddresses": ["ada@example.test"]}


def test_mime_without_text_has_only_the_html_and_related_inline_images():
    message = OutgoingEmail(
        id="m",
        sender="a@acme.test",
        to=("b@example.test",),
        subject="S",
        html='<img src="cid:logo">',
        attachments=(Attachment("logo.png", PNG, "image/png", content_id="logo"),),
    )
    mime = build_mime(message)
    assert mime.get_content_type() == "multipart/related"
    assert mime.get_body(("plain",)) is None
    [image] = [p for p in mime.walk() if p.get_filename() == "logo.png"]
    assert image.get_content() == PNG


# --- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_wrong_credential_is_provider_misconfigured_without_the_credential(fake, make, provider):
    wrong = "wrong-secret-value-123"
    with pytest.raises(ProviderMisconfigured) as caught:
        await make(provider, secret=wrong).send(PLAIN)

    assert caught.value.status in (401, 403)
    assert wrong not in str(caught.value)
    assert fake.received(provider) == []


async def test_a_wrong_ses_secret_fails_the_fakes_signature_check(make):
    with pytest.raises(ProviderMisconfigured, match="SignatureDoesNotMatch") as caught:
        await make("ses", secret="not-the-secret").send(PLAIN)
    assert caught.value.status == 403 and caught.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_injected_401_is_provider_misconfigured(fake, make, provider):
    fake.fail_next(provider, 401)
    with pytest.raises(ProviderMisconfigured):
        await make(provider).send(PLAIN)


@pytest.mark.parametrize(
    ("provider", "status", "body", "headers"),
    [
        ("resend", 422, {"statusCode": 422, "name": "validation_error", "message": "Invalid `to` field."}, None),
        ("sendgrid", 400, {"errors": [{"message": "Does not contain a valid address.", "field": "to"}]}, None),
        ("postmark", 422, {"ErrorCode": 300, "Message": "Invalid 'To' address: 'x'."}, None),
        ("postmark", 422, {"ErrorCode": 406, "Message": "You tried to send to recipient(s) marked inactive."}, None),
        ("ses", 400, {"message": "Email address is not verified."}, {"x-amzn-ErrorType": "MessageRejected"}),
        (
            "ses",
            400,
            {"message": "Mail-From domain not verified."},
            {"x-amzn-ErrorType": "MailFromDomainNotVerifiedException"},
        ),
    ],
)
async def test_a_bad_request_is_rejected_with_the_providers_message(fake, make, provider, status, body, headers):
    fake.fail_next(provider, status, body, headers)
    with pytest.raises(Rejected) as caught:
        await make(provider).send(PLAIN)
    assert caught.value.status == status
    message = body.get("message") or body.get("Message") or body["errors"][0]["message"]
    assert message in str(caught.value)


async def test_the_fakes_own_validation_answers_are_rejected(fake, make):
    no_body = OutgoingEmail(id="m", sender="a@acme.test", to=("b@example.test",), subject="S")
    with pytest.raises(Rejected, match="TextBody or HtmlBody"):
        await make("postmark").send(no_body)
    with pytest.raises(Rejected, match="content"):
        await make("sendgrid").send(no_body)
    empty_subject = OutgoingEmail(id="m", sender="a@acme.test", to=("b@example.test",), subject="", text="x")
    with pytest.raises(Rejected, match="subject"):
        await make("resend").send(empty_subject)
    with pytest.raises(Rejected, match="BadRequestException"):
        await make("ses").send(empty_subject)


async def test_postmark_inactive_recipient_is_rejected(fake, make):
    fake.postmark_inactive_recipients.add("ada@example.test")
    with pytest.raises(Rejected) as caught:
        await make("postmark").send(PLAIN)
    assert caught.value.code == "406"


async def test_postmark_bad_server_token_code_is_misconfigured_even_on_422(fake, make):
    fake.fail_next("postmark", 422, {"ErrorCode": 10, "Message": "Bad or missing Server API token."})
    with pytest.raises(ProviderMisconfigured):
        await make("postmark").send(PLAIN)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_is_rate_limited_with_retry_after_seconds(fake, make, provider):
    fake.fail_next(provider, 429, headers={"Retry-After": "17"})
    with pytest.raises(RateLimited) as caught:
        await make(provider).send(PLAIN)
    assert caught.value.retry_after == 17.0 and caught.value.status == 429


async def test_retry_after_as_an_http_date(fake, make):
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    fake.fail_next("resend", 429, headers={"Retry-After": later})
    with pytest.raises(RateLimited) as caught:
        await make("resend").send(PLAIN)
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120


async def test_ses_limit_exceeded_is_rate_limited_though_it_is_a_400(fake, make):
    fake.fail_next(
        "ses", 400, {"message": "Maximum sending rate exceeded."}, {"x-amzn-ErrorType": "LimitExceededException"}
    )
    with pytest.raises(RateLimited) as caught:
        await make("ses").send(PLAIN)
    assert caught.value.retry_after is None and caught.value.code == "LimitExceededException"


async def test_ses_403_is_provider_misconfigured(fake, make):
    fake.fail_next("ses", 403, {"message": "User is not authorized to perform ses:SendEmail"})
    with pytest.raises(ProviderMisconfigured, match="not authorized"):
        await make("ses").send(PLAIN)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_500_is_retryable_and_the_next_send_goes_through(fake, make, provider):
    fake.fail_next(provider, 500)
    sender = make(provider)
    with pytest.raises(Retryable) as caught:
        await sender.send(PLAIN)
    assert not isinstance(caught.value, RateLimited)
    assert (await sender.send(PLAIN)).provider_message_id
    assert len(fake.received(provider)) == 1


async def test_a_non_json_5xx_from_a_proxy_is_retryable(fake, make):
    fake.fail_next("sendgrid", 502, b"<html>Bad Gateway</html>")
    with pytest.raises(Retryable, match="Bad Gateway"):
        await make("sendgrid").send(PLAIN)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_hanging_provider_is_retryable_within_the_timeout(fake, make, provider):
    fake.hang_next(provider, 5)
    started = time.monotonic()
    with pytest.raises(Retryable, match="no answer within"):
        await make(provider, timeout=0.5).send(PLAIN)
    assert time.monotonic() - started < 1.0


async def test_a_refused_connection_is_retryable(client):
    sender = ResendSender("r", RESEND_API_KEY, client=client, base_url="http://127.0.0.1:9", timeout=2)
    with pytest.raises(Retryable):
        await sender.send(PLAIN)


async def test_long_error_messages_are_truncated_and_never_carry_the_key(fake, make):
    fake.fail_next(
        "resend", 422, {"statusCode": 422, "name": "validation_error", "message": RESEND_API_KEY + "x" * 900}
    )
    with pytest.raises(Rejected) as caught:
        await make("resend").send(PLAIN)
    assert RESEND_API_KEY not in str(caught.value)
    assert len(str(caught.value)) < 400


# --- Resend idempotency --------------------------------------------------------------------


async def test_resend_sends_one_message_for_two_sends_with_the_same_id(fake, make):
    sender = make("resend")
    first = await sender.send(MESSAGE)
    second = await sender.send(MESSAGE)

    assert first == second
    assert len(fake.received("resend")) == 1


async def test_resend_rejects_a_reused_id_for_a_different_message(fake, make):
    sender = make("resend")
    await sender.send(PLAIN)
    with pytest.raises(Rejected, match="invalid_idempotent_request"):
        await sender.send(OutgoingEmail(id=PLAIN.id, sender=PLAIN.sender, to=PLAIN.to, subject="Other", text="x"))
    assert len(fake.received("resend")) == 1


def test_a_sender_repr_never_shows_its_credential(client):
    sender = PostmarkSender("pm", POSTMARK_SERVER_TOKEN, client=client)
    assert POSTMARK_SERVER_TOKEN not in repr(sender)
    assert sender.url == "https://api.postmarkapp.com/email"
    ses = SesSender("ses", access_key_id="a", secret_access_key="b", region="eu-west-1", client=client)
    assert ses.url == "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"


def test_mime_message_id_is_stable_for_a_message_id():
    assert build_mime(MESSAGE)["Message-ID"] == build_mime(MESSAGE)["Message-ID"] == f"<{MESSAGE.id}@acme.test>"


async def test_ses_raw_refuses_a_custom_header_that_would_replace_from(fake, make):
    forged = OutgoingEmail(
        id="m",
        sender="a@acme.test",
        to=("b@example.test",),
        subject="S",
        text="x",
        headers={"From": "ceo@bank.test"},
        attachments=(Attachment("a.txt", b"a", "text/plain"),),
    )
    with pytest.raises(Rejected, match="From"):
        await make("ses").send(forged)
    assert fake.received("ses") == []
