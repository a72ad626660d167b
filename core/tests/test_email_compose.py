"""From a send request to a message: what is refused and why, what a template renders, and
the job payload's round trip."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from stackyard.email.compose import (
    ID_TAG,
    TemplateNotFound,
    TemplateVariablesRefused,
    compose,
    from_payload,
    initial_record,
    to_payload,
)
from stackyard.email.contract import MAX_ATTACHMENT_BYTES, SendEmailRequest
from stackyard.email.templates import TemplateSource, VariableSpec, compile_template
from stackyard.problems import PayloadTooLarge, UnprocessableContent

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TEMPLATES = {
    "welcome": compile_template(
        TemplateSource(subject="Hi {{ name }}", html="<p>Hello {{ name }}</p>", variables={"name": VariableSpec()})
    )
}


def request(**fields: object) -> SendEmailRequest:
    body = {"from": "Acme <Hello@ACME.dev>", "to": ["ana@example.com"], "subject": "S", "html": "<p>x</p>"}
    return SendEmailRequest.model_validate(body | fields)


def test_addresses_are_normalised_recipients_counted_once_and_the_id_travels_as_a_tag():
    composed = compose(request(cc=["ANA@example.com", "Bo <bo@example.com>"]), "em_1", TEMPLATES, now=NOW)
    assert composed.message.sender == "Acme <Hello@acme.dev>"
    assert [m.address for m in composed.recipients] == ["ana@example.com", "bo@example.com"]
    assert composed.message.cc == ("Bo <bo@example.com>",)
    assert composed.message.tags == {ID_TAG: "em_1"}
    assert composed.message.text is not None and composed.message.text.strip() == "x"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"to": ["nobody"]}, "to[0]"),
        ({"from": "Acme <acme@>"}, "from"),
        ({"headers": {"Subject": "sneaky"}}, "Subject"),
        ({"headers": {"X-Note": "a\r\nBcc: evil@example.com"}}, "line break"),
        ({"sendAt": (NOW + timedelta(days=31)).isoformat()}, "30 days"),
        ({"attachments": [{"filename": "a.txt", "content": "not base64!"}]}, "base64"),
    ],
)
def test_bad_input_is_refused_saying_what_to_change(fields, says):
    with pytest.raises(UnprocessableContent) as refused:
        compose(request(**fields), "em_1", TEMPLATES, now=NOW)
    assert says in refused.value.detail


def test_attachments_over_the_limit_together_are_too_large():
    half = base64.b64encode(b"x" * (MAX_ATTACHMENT_BYTES // 2 + 1)).decode()
    files = [{"filename": "a.bin", "content": half}, {"filename": "b.bin", "content": half}]
    with pytest.raises(PayloadTooLarge):
        compose(request(attachments=files), "em_1", TEMPLATES, now=NOW)


def test_a_template_renders_and_refuses_missing_or_unknown_variables():
    ok = compose(
        request(subject=None, html=None, template={"name": "welcome", "variables": {"name": "Ana"}}), "e", TEMPLATES
    )
    assert ok.message.subject == "Hi Ana" and ok.template == "welcome" and ok.locale == "en"
    with pytest.raises(TemplateVariablesRefused) as refused:
        compose(request(subject=None, html=None, template={"name": "welcome", "variables": {"x": 1}}), "e", TEMPLATES)
    assert refused.value.extensions == {"missing": ["name"], "unknown": ["x"]}
    with pytest.raises(TemplateNotFound):
        compose(request(subject=None, html=None, template={"name": "gone"}), "e", TEMPLATES)


def test_a_request_gives_a_template_or_bodies_not_both():
    with pytest.raises(ValueError, match="not both"):
        request(template={"name": "welcome"})
    with pytest.raises(ValueError, match="html or text"):
        request(html=None)


def test_the_job_payload_round_trips_the_message_with_its_attachments():
    files = [{"filename": "r.pdf", "content": base64.b64encode(b"%PDF-1.7").decode()}]
    composed = compose(request(attachments=files, replyTo=["help@acme.dev"]), "em_2", TEMPLATES, now=NOW)
    assert from_payload(to_payload(composed.message)) == composed.message
    assert composed.message.attachments[0].content_type == "application/pdf"


def test_the_log_record_keeps_attachment_sizes_not_their_bytes():
    files = [{"filename": "r.pdf", "content": base64.b64encode(b"%PDF-1.7").decode()}]
    req = request(attachments=files, metadata={"order": 7})
    composed = compose(req, "em_3", TEMPLATES, now=NOW)
    record = initial_record(req, composed, job_id="email.x", now=NOW, status="queued", detail=None)
    assert record.attachments[0].size == 8 and "content" not in record.attachments[0].model_dump()
    assert record.metadata == {"order": 7} and record.timeline[0].type == "queued"
