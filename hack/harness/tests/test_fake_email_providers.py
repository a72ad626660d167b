"""The fake email services answer like the real ones: their error body shapes, auth checks,
SigV4 verification and fault injection, seen with plain HTTP requests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from unittest import mock

import httpx
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from stackyard_harness.fake_email_providers import (
    POSTMARK_SERVER_TOKEN,
    RESEND_API_KEY,
    SES_ACCESS_KEY_ID,
    SES_SECRET_ACCESS_KEY,
    FakeEmailProviders,
)

SES_BODY = {
    "FromEmailAddress": "a@acme.test",
    "Destination": {"ToAddresses": ["b@example.test"]},
    "Content": {"Simple": {"Subject": {"Data": "S"}, "Body": {"Text": {"Data": "x"}}}},
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmailProviders]:
    with FakeEmailProviders() as running:
        yield running


@pytest.fixture(autouse=True)
def clean(fake: FakeEmailProviders) -> None:
    fake.reset()


def ses_post(
    fake: FakeEmailProviders, body: dict, *, secret: str = SES_SECRET_ACCESS_KEY, when: datetime | None = None
):
    url = fake.base_url("ses") + "/v2/email/outbound-emails"
    data = orjson.dumps(body)
    request = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
    signer = SigV4Auth(Credentials(SES_ACCESS_KEY_ID, secret), "ses", "us-east-1")
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
            signer.add_auth(request)
    return httpx.post(url, content=data, headers=dict(request.headers.items()))


def test_resend_without_a_key_answers_401_missing_api_key(fake):
    answer = httpx.post(fake.base_url("resend") + "/emails", json={})
    assert answer.status_code == 401
    assert answer.json()["name"] == "missing_api_key" and answer.json()["statusCode"] == 401


def test_resend_missing_field_answers_422_in_resends_shape(fake):
    answer = httpx.post(
        fake.base_url("resend") + "/emails",
        json={"from": "a@acme.test", "subject": "S"},
        headers={"Authorization": f"Bearer {RESEND_API_KEY}"},
    )
    assert answer.status_code == 422
    assert answer.json() == {"statusCode": 422, "name": "missing_required_field", "message": "Missing `to` field."}


def test_postmark_without_a_token_answers_401_with_error_code_10(fake):
    answer = httpx.post(fake.base_url("postmark") + "/email", json={})
    assert answer.status_code == 401 and answer.json()["ErrorCode"] == 10


def test_postmark_accepts_and_answers_with_its_message_id(fake):
    answer = httpx.post(
        fake.base_url("postmark") + "/email",
        json={"From": "a@acme.test", "To": "b@example.test", "Subject": "S", "TextBody": "x"},
        headers={"X-Postmark-Server-Token": POSTMARK_SERVER_TOKEN},
    )
    assert answer.status_code == 200
    assert answer.json()["ErrorCode"] == 0 and answer.json()["MessageID"] == fake.received("postmark")[0].id


def test_sendgrid_wrong_key_answers_401_with_an_errors_list(fake):
    answer = httpx.post(fake.base_url("sendgrid") + "/v3/mail/send", json={}, headers={"Authorization": "Bearer x"})
    assert answer.status_code == 401 and "errors" in answer.json()


def test_ses_accepts_a_request_botocore_signed(fake):
    answer = ses_post(fake, SES_BODY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["MessageId"] == fake.received("ses")[0].id


def test_ses_without_a_signature_answers_403(fake):
    answer = httpx.post(fake.base_url("ses") + "/v2/email/outbound-emails", json=SES_BODY)
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_ses_with_a_wrong_secret_answers_signature_does_not_match(fake):
    answer = ses_post(fake, SES_BODY, secret="wrong")
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "SignatureDoesNotMatch"
    assert "signature we calculated does not match" in answer.json()["message"]


def test_ses_refuses_an_old_signature(fake):
    answer = ses_post(fake, SES_BODY, secret=SES_SECRET_ACCESS_KEY, when=datetime.now(UTC) - timedelta(minutes=20))
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_ses_missing_content_answers_400_bad_request(fake):
    answer = ses_post(fake, {"FromEmailAddress": "a@acme.test"}, secret=SES_SECRET_ACCESS_KEY)
    assert answer.status_code == 400 and answer.headers["x-amzn-ErrorType"] == "BadRequestException"


def test_injected_faults_last_for_their_count_then_requests_are_handled(fake):
    fake.fail_next("resend", 503, count=2)
    url = fake.base_url("resend") + "/emails"
    assert [httpx.post(url, json={}).status_code for _ in range(3)] == [503, 503, 401]


def test_an_injected_ses_fault_carries_the_error_type_header(fake):
    fake.fail_next("ses", 429)
    answer = httpx.post(fake.base_url("ses") + "/v2/email/outbound-emails", json={})
    assert answer.status_code == 429 and answer.headers["x-amzn-ErrorType"] == "TooManyRequestsException"


def test_an_unknown_provider_is_refused(fake):
    with pytest.raises(ValueError, match="unknown provider"):
        fake.fail_next("mailgun", 500)
