"""Provider webhooks: each provider's signature or auth is checked as it documents, and its
events become ProviderEvents. Signed by the harness's provider signers; SNS certificates are
fetched over real local HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from stackyard.config.runtime import credential_key
from stackyard.email.webhooks import (
    ProviderEvent,
    WebhookFetchFailed,
    WebhookInvalid,
    WebhookNotConfigured,
    WebhookResult,
    WebhookUnauthorized,
    receive_webhook,
)
from stackyard.resources.email import EmailProviderSpec
from stackyard_harness.provider_webhooks import (
    SendGridSigner,
    SnsSigner,
    new_resend_secret,
    postmark_auth,
    postmark_record,
    resend_event,
    resend_headers,
    sendgrid_event,
    ses_event,
)

SECRET_REF = {"name": "mail", "key": "k"}
TOPIC = "arn:aws:sns:eu-west-1:123456789012:stackyard-ses"
AT = datetime(2026, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
KINDS = [
    ("delivered", "delivered", False),
    ("hard_bounce", "bounced", True),
    ("soft_bounce", "deferred", False),
    ("complaint", "complained", False),
    ("opened", "opened", False),
    ("clicked", "clicked", False),
]
"""Sample kind, the event it becomes, and whether it is permanent."""


def spec(type_: str, **settings: Any) -> EmailProviderSpec:
    bases: dict[str, dict[str, Any]] = {
        "smtp": {"host": "smtp.acme.test"},
        "resend": {"apiKeySecretRef": SECRET_REF},
        "sendgrid": {"apiKeySecretRef": SECRET_REF},
        "postmark": {"apiKeySecretRef": SECRET_REF},
        "ses": {"region": "eu-west-1", "accessKeyIdSecretRef": SECRET_REF, "secretAccessKeySecretRef": SECRET_REF},
    }
    base = bases[type_]
    return EmailProviderSpec.model_validate({"stackRef": {"name": "main"}, "type": type_, type_: base | settings})


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def receive(
    http: httpx.AsyncClient,
    provider: EmailProviderSpec,
    body: bytes,
    headers: dict[str, str],
    credentials: dict[str, str] | None = None,
    now: float | None = None,
) -> WebhookResult:
    return await receive_webhook("mail", provider, credentials or {}, headers, body, http=http, now=now)


def only(result: WebhookResult) -> ProviderEvent:
    assert len(result.events) == 1, result.events
    return result.events[0]


# --- Resend ---------------------------------------------------------------------------------

RESEND_SECRET = new_resend_secret()
RESEND = spec("resend", webhookSecretRef=SECRET_REF)
RESEND_CREDENTIALS = {credential_key("EmailProvider", "mail", "webhookSecret"): RESEND_SECRET}


async def resend(http: httpx.AsyncClient, body: bytes, headers: dict[str, str], **kw: Any) -> WebhookResult:
    return await receive(http, RESEND, body, headers, RESEND_CREDENTIALS, **kw)


@pytest.mark.parametrize(
    ("kind", "expected", "permanent"),
    KINDS,
)
async def test_resend_signed_event_parses(http: httpx.AsyncClient, kind: Any, expected: str, permanent: bool) -> None:
    body = orjson.dumps(resend_event(kind, to="Ada <Ada@Example.test>", email_id="re-42", stackyard_id="em_1", at=AT))
    event = only(await resend(http, body, resend_headers(RESEND_SECRET, body)))
    assert (event.type, event.permanent) == (expected, permanent)
    assert (event.recipient, event.provider_message_id, event.email_id) == ("ada@example.test", "re-42", "em_1")
    assert event.at == AT
    assert event.raw_type.startswith("email.")
    if kind == "hard_bounce":
        assert event.detail and "550 5.1.1" in event.detail


async def test_resend_one_event_per_recipient_and_ignored_kinds(http: httpx.AsyncClient) -> None:
    body = orjson.dumps(resend_event("delivered", to=["a@x.test", "B@x.test"]))
    result = await resend(http, body, resend_headers(RESEND_SECRET, body))
    assert [e.recipient for e in result.events] == ["a@x.test", "b@x.test"]
    assert all(e.email_id is None for e in result.events)
    body = orjson.dumps(resend_event("sent", to="a@x.test"))
    assert (await resend(http, body, resend_headers(RESEND_SECRET, body))).events == []


async def test_resend_accepts_any_of_several_signatures(http: httpx.AsyncClient) -> None:
    body = orjson.dumps(resend_event("delivered", to="a@x.test"))
    headers = resend_headers(RESEND_SECRET, body)
    wrong = resend_headers(
        new_resend_secret(), body, msg_id=headers["svix-id"], timestamp=int(headers["svix-timestamp"])
    )
    headers["svix-signature"] = f"{wrong['svix-signature']} v2,abc {headers['svix-signature']}"
    assert len((await resend(http, body, headers)).events) == 1


@pytest.mark.parametrize("fault", ["wrong_secret", "tampered", "other_id", "missing_signature", "missing_id", "stale"])
async def test_resend_refuses_what_it_cannot_verify(http: httpx.AsyncClient, fault: str) -> None:
    body = orjson.dumps(resend_event("hard_bounce", to="a@x.test"))
    headers = resend_headers(new_resend_secret() if fault == "wrong_secret" else RESEND_SECRET, body)
    if fault == "tampered":
        body = body.replace(b"a@x.test", b"b@x.test")
    elif fault == "other_id":
        headers["svix-id"] = "msg_other"
    elif fault == "missing_signature":
        del headers["svix-signature"]
    elif fault == "missing_id":
        del headers["svix-id"]
    now = time.time() + 301 if fault == "stale" else None
    with pytest.raises(WebhookUnauthorized) as refused:
        await resend(http, body, headers, now=now)
    assert RESEND_SECRET not in str(refused.value)


async def test_resend_replay_window_is_five_minutes_either_way(http: httpx.AsyncClient) -> None:
    body = orjson.dumps(resend_event("delivered", to="a@x.test"))
    headers = resend_headers(RESEND_SECRET, body, timestamp=1_000_000)
    assert (await resend(http, body, headers, now=1_000_299)).events
    assert (await resend(http, body, headers, now=999_701)).events
    with pytest.raises(WebhookUnauthorized, match="svix-timestamp"):
        await resend(http, body, headers, now=999_699)


async def test_resend_headers_are_case_insensitive_and_body_checked(http: httpx.AsyncClient) -> None:
    body = b'{"not": "an event"}'
    headers = {k.upper(): v for k, v in resend_headers(RESEND_SECRET, body).items()}
    with pytest.raises(WebhookInvalid):
        await resend(http, body, headers)


async def test_resend_without_secret_is_not_configured(http: httpx.AsyncClient) -> None:
    body = orjson.dumps(resend_event("delivered", to="a@x.test"))
    with pytest.raises(WebhookNotConfigured, match="webhookSecretRef"):
        await receive(http, spec("resend"), body, resend_headers(RESEND_SECRET, body), RESEND_CREDENTIALS)
    with pytest.raises(WebhookNotConfigured, match="missing"):
        await receive(http, RESEND, body, resend_headers(RESEND_SECRET, body), {})


# --- SendGrid -------------------------------------------------------------------------------

SIGNER = SendGridSigner()
SENDGRID = spec("sendgrid", webhookPublicKey=SIGNER.public_key_b64)


async def test_sendgrid_signed_batch_parses(http: httpx.AsyncClient) -> None:
    kinds = ["delivered", "hard_bounce", "blocked", "soft_bounce", "complaint", "opened", "clicked", "sent", "dropped"]
    body = orjson.dumps(
        [sendgrid_event(k, to="Ada@Example.test", message_id="XMSGID", stackyard_id=f"em_{k}", at=AT) for k in kinds]
    )
    events = (await receive(http, SENDGRID, body, SIGNER.headers(body))).events
    assert [(e.type, e.permanent, e.email_id) for e in events] == [
        ("delivered", False, "em_delivered"),
        ("bounced", True, "em_hard_bounce"),
        ("deferred", False, "em_blocked"),
        ("deferred", False, "em_soft_bounce"),
        ("complained", False, "em_complaint"),
        ("opened", False, "em_opened"),
        ("clicked", False, "em_clicked"),
    ]
    assert {e.provider_message_id for e in events} == {"XMSGID"}
    assert {e.recipient for e in events} == {"ada@example.test"}
    assert {e.at for e in events} == {AT.replace(microsecond=0)}
    assert events[1].raw_type == "bounce" and events[1].detail and "Invalid Address" in events[1].detail


@pytest.mark.parametrize("fault", ["other_key", "tampered", "other_timestamp", "missing_signature", "stale", "garbage"])
async def test_sendgrid_refuses_what_it_cannot_verify(http: httpx.AsyncClient, fault: str) -> None:
    body = orjson.dumps([sendgrid_event("hard_bounce", to="a@x.test")])
    headers = (SendGridSigner() if fault == "other_key" else SIGNER).headers(body)
    if fault == "tampered":
        body = body.replace(b"a@x.test", b"b@x.test")
    elif fault == "other_timestamp":
        headers[SIGNER.timestamp_header] = str(int(headers[SIGNER.timestamp_header]) - 1)
    elif fault == "missing_signature":
        del headers[SIGNER.signature_header]
    elif fault == "garbage":
        headers[SIGNER.signature_header] = base64.b64encode(b"not a DER signature").decode()
    now = time.time() - 400 if fault == "stale" else None
    with pytest.raises(WebhookUnauthorized):
        await receive(http, SENDGRID, body, headers, now=now)


async def test_sendgrid_not_configured_or_bad_key(http: httpx.AsyncClient) -> None:
    body = b"[]"
    with pytest.raises(WebhookNotConfigured, match="webhookPublicKey"):
        await receive(http, spec("sendgrid"), body, SIGNER.headers(body))
    with pytest.raises(WebhookNotConfigured, match="not a base64 DER"):
        await receive(http, spec("sendgrid", webhookPublicKey="bm90IGEga2V5"), body, SIGNER.headers(body))


async def test_sendgrid_body_must_be_an_array(http: httpx.AsyncClient) -> None:
    body = orjson.dumps(sendgrid_event("delivered", to="a@x.test"))
    with pytest.raises(WebhookInvalid, match="array"):
        await receive(http, SENDGRID, body, SIGNER.headers(body))


# --- Postmark -------------------------------------------------------------------------------

POSTMARK = spec("postmark", webhookUsername="postmark", webhookPasswordSecretRef=SECRET_REF)
POSTMARK_CREDENTIALS = {credential_key("EmailProvider", "mail", "webhookPassword"): "s3cret-pw"}


@pytest.mark.parametrize(
    ("kind", "expected", "permanent"),
    KINDS,
)
async def test_postmark_authenticated_record_parses(
    http: httpx.AsyncClient, kind: Any, expected: str, permanent: bool
) -> None:
    body = orjson.dumps(postmark_record(kind, to="Ada@Example.test", message_id="pm-1", stackyard_id="em_2", at=AT))
    event = only(await receive(http, POSTMARK, body, postmark_auth("postmark", "s3cret-pw"), POSTMARK_CREDENTIALS))
    assert (event.type, event.permanent) == (expected, permanent)
    assert (event.recipient, event.provider_message_id, event.email_id) == ("ada@example.test", "pm-1", "em_2")
    assert event.at == AT


async def test_postmark_inactive_recipient_is_a_hard_bounce(http: httpx.AsyncClient) -> None:
    record = postmark_record("soft_bounce", to="a@x.test") | {"Type": "Transient", "Inactive": True}
    body = orjson.dumps(record)
    event = only(await receive(http, POSTMARK, body, postmark_auth("postmark", "s3cret-pw"), POSTMARK_CREDENTIALS))
    assert (event.type, event.permanent, event.raw_type) == ("bounced", True, "Transient")
    body = orjson.dumps(postmark_record("soft_bounce", to="a@x.test") | {"Type": "AutoResponder"})
    result = await receive(http, POSTMARK, body, postmark_auth("postmark", "s3cret-pw"), POSTMARK_CREDENTIALS)
    assert result.events == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        postmark_auth("postmark", "wrong"),
        postmark_auth("other", "s3cret-pw"),
        {"Authorization": "Bearer s3cret-pw"},
        {"Authorization": "Basic %%%"},
        {"Authorization": "Basic " + base64.b64encode(b"postmark").decode()},
    ],
)
async def test_postmark_refuses_wrong_basic_auth(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    body = orjson.dumps(postmark_record("hard_bounce", to="a@x.test"))
    with pytest.raises(WebhookUnauthorized) as refused:
        await receive(http, POSTMARK, body, headers, POSTMARK_CREDENTIALS)
    assert "s3cret-pw" not in str(refused.value)


async def test_postmark_not_configured(http: httpx.AsyncClient) -> None:
    body = orjson.dumps(postmark_record("delivered", to="a@x.test"))
    with pytest.raises(WebhookNotConfigured, match="webhookUsername"):
        await receive(http, spec("postmark"), body, postmark_auth("postmark", "s3cret-pw"), POSTMARK_CREDENTIALS)
    with pytest.raises(WebhookNotConfigured, match="webhookPasswordSecretRef"):
        await receive(http, POSTMARK, body, postmark_auth("postmark", "s3cret-pw"), {})


# --- SES through SNS ------------------------------------------------------------------------


@pytest.fixture
def sns() -> Iterator[SnsSigner]:
    with SnsSigner() as signer:
        yield signer


def ses(signer: SnsSigner, **settings: Any) -> EmailProviderSpec:
    return spec("ses", **({"webhookTopicArns": [TOPIC], "snsCertificateUrlPattern": signer.url_pattern} | settings))


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("style", ["event", "notification"])
@pytest.mark.parametrize(
    ("kind", "expected", "permanent"),
    KINDS[:4],
)
async def test_ses_signed_notification_parses(
    http: httpx.AsyncClient, sns: SnsSigner, version: Any, style: Any, kind: Any, expected: str, permanent: bool
) -> None:
    event = ses_event(
        kind, to=["Ada@Example.test", "bob@x.test"], message_id="ses-1", stackyard_id="em_3", at=AT, style=style
    )
    body = orjson.dumps(sns.notification(TOPIC, event, signature_version=version))
    events = (await receive(http, ses(sns), body, {})).events
    assert [(e.type, e.permanent, e.recipient) for e in events] == [
        (expected, permanent, "ada@example.test"),
        (expected, permanent, "bob@x.test"),
    ]
    assert {(e.provider_message_id, e.at) for e in events} == {("ses-1", AT)}
    assert {e.email_id for e in events} == {"em_3" if style == "event" else None}  # only event publishing has tags


async def test_ses_tags_and_delays_and_opens(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    provider = ses(sns)
    for kind, expected in [("delivery_delay", "deferred"), ("opened", "opened"), ("clicked", "clicked")]:
        body = orjson.dumps(sns.notification(TOPIC, ses_event(kind, to="a@x.test", stackyard_id="em_4")))
        event = only(await receive(http, provider, body, {}))
        assert (event.type, event.recipient, event.email_id) == (expected, "a@x.test", "em_4")
    body = orjson.dumps(sns.notification(TOPIC, ses_event("sent", to="a@x.test"), subject="Amazon SES Email Event"))
    assert (await receive(http, provider, body, {})).events == []


async def test_ses_certificate_is_fetched_once_per_url(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    for version in ("1", "2", "1"):
        body = orjson.dumps(sns.notification(TOPIC, ses_event("delivered", to="a@x.test"), signature_version=version))
        assert len((await receive(http, ses(sns), body, {})).events) == 1
    assert sns.gets(sns.cert_path) == [sns.cert_path]


async def test_ses_tampered_message_is_refused(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    signed = sns.notification(TOPIC, ses_event("hard_bounce", to="a@x.test"), signature_version="2")
    signed["Message"] = signed["Message"].replace("a@x.test", "b@x.test")
    with pytest.raises(WebhookUnauthorized, match="Signature"):
        await receive(http, ses(sns), orjson.dumps(signed), {})
    signed = sns.notification(TOPIC, ses_event("hard_bounce", to="a@x.test"), subject="Hi")
    signed["Subject"] = "Hello"
    with pytest.raises(WebhookUnauthorized, match="Signature"):
        await receive(http, ses(sns), orjson.dumps(signed), {})


async def test_ses_signature_of_another_key_is_refused(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    with SnsSigner(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)) as other:
        signed = other.notification(TOPIC, ses_event("delivered", to="a@x.test"))
    signed["SigningCertURL"] = sns.cert_url
    with pytest.raises(WebhookUnauthorized, match="Signature"):
        await receive(http, ses(sns), orjson.dumps(signed), {})


async def test_ses_certificate_url_must_match_before_it_is_fetched(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    body = orjson.dumps(sns.notification(TOPIC, ses_event("delivered", to="a@x.test")))
    default_pattern = spec("ses", webhookTopicArns=[TOPIC])
    with pytest.raises(WebhookUnauthorized, match="SigningCertURL"):
        await receive(http, default_pattern, body, {})
    with pytest.raises(WebhookUnauthorized, match="SigningCertURL"):
        await receive(http, ses(sns, snsCertificateUrlPattern=r"^http://127\.0\.0\.1:1/"), body, {})
    assert sns.requests == []


async def test_ses_unknown_topic_is_refused(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    body = orjson.dumps(sns.notification(TOPIC + "-other", ses_event("delivered", to="a@x.test")))
    with pytest.raises(WebhookUnauthorized, match="webhookTopicArns"):
        await receive(http, ses(sns), body, {})
    assert sns.requests == []


@pytest.mark.parametrize("version", ["1", "2"])
async def test_ses_subscription_confirmation_visits_subscribe_url(
    http: httpx.AsyncClient, sns: SnsSigner, version: Any
) -> None:
    signed = sns.subscription_confirmation(TOPIC, signature_version=version)
    result = await receive(http, ses(sns), orjson.dumps(signed), {})
    assert result == WebhookResult(events=[], confirmed_subscription=TOPIC)
    visited = sns.gets("/?Action=ConfirmSubscription")
    assert len(visited) == 1 and signed["Token"] in visited[0]


async def test_ses_subscription_confirmation_is_verified_first(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    signed = sns.subscription_confirmation(TOPIC)
    signed["Token"] = "f" * 128
    with pytest.raises(WebhookUnauthorized):
        await receive(http, ses(sns), orjson.dumps(signed), {})
    assert sns.gets("/?Action") == []


async def test_ses_failed_confirmation_is_reported(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    sns.subscribe_status = 403
    with pytest.raises(WebhookFetchFailed, match="403"):
        await receive(http, ses(sns), orjson.dumps(sns.subscription_confirmation(TOPIC)), {})


async def test_ses_unsubscribe_confirmation_confirms_nothing(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    signed = sns.subscription_confirmation(TOPIC, kind="UnsubscribeConfirmation")
    assert await receive(http, ses(sns), orjson.dumps(signed), {}) == WebhookResult()
    assert sns.gets("/?Action") == []


@pytest.mark.parametrize("change", [{"SignatureVersion": "3"}, {"Signature": "%%%"}, {"SigningCertURL": None}])
async def test_ses_malformed_signatures_are_refused(
    http: httpx.AsyncClient, sns: SnsSigner, change: dict[str, Any]
) -> None:
    signed = sns.notification(TOPIC, ses_event("delivered", to="a@x.test")) | change
    with pytest.raises(WebhookUnauthorized):
        await receive(http, ses(sns), orjson.dumps(signed), {})


async def test_ses_malformed_bodies_are_invalid(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    for body in (b"not json", b"[]", orjson.dumps({"Type": "Other", "TopicArn": TOPIC})):
        with pytest.raises(WebhookInvalid):
            await receive(http, ses(sns), body, {})
    signed = sns.notification(TOPIC, "not an SES event")
    with pytest.raises(WebhookInvalid, match="SES event"):
        await receive(http, ses(sns), orjson.dumps(signed), {})


async def test_ses_without_topics_is_not_configured(http: httpx.AsyncClient, sns: SnsSigner) -> None:
    body = orjson.dumps(sns.notification(TOPIC, ses_event("delivered", to="a@x.test")))
    with pytest.raises(WebhookNotConfigured, match="webhookTopicArns"):
        await receive(http, ses(sns, webhookTopicArns=[]), body, {})


async def test_smtp_provider_takes_no_webhooks(http: httpx.AsyncClient) -> None:
    with pytest.raises(WebhookNotConfigured, match="smtp"):
        await receive(http, spec("smtp"), b"{}", {})
