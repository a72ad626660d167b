"""The NotificationWorkflow and Webhook models refuse what cannot work, with the reason, and
say which events an endpoint takes."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import ValidationError
from stackyard.notify import contract
from stackyard.resources.notify import (
    CHANNELS,
    PLATFORM_EVENTS,
    NotificationWorkflowSpec,
    WebhookSpec,
    event_matches,
    generated_secret_name,
)

STACK = {"stackRef": {"name": "demo"}}


def workflow(*steps, **extra):
    return NotificationWorkflowSpec.model_validate(STACK | {"steps": list(steps)} | extra)


def refused(match, *steps, **extra):
    with pytest.raises(ValidationError, match=match):
        workflow(*steps, **extra)


FEED = {"name": "feed", "inApp": {"title": "{{ actor.name }} commented"}}
MAIL = {"name": "mail", "email": {"template": "comment"}}


def test_steps_know_their_kind_and_channel():
    spec = workflow(
        FEED,
        {"name": "batch", "digest": {"window": "10m"}},
        {"name": "limit", "throttle": {"limit": 3, "window": "1h"}},
        MAIL | {"conditions": {"rules": [{"step": "feed", "message": "unseen"}]}},
        {"name": "phone", "push": {"title": "New comment"}},
        {"name": "crm", "webhook": {"webhook": "crm"}},
        {"name": "later", "delay": {"duration": "5m"}},
    )
    assert [(s.kind, s.channel) for s in spec.steps] == [
        ("in_app", "inApp"),
        ("digest", None),
        ("throttle", None),
        ("email", "email"),
        ("push", "push"),
        ("webhook", "webhook"),
        ("delay", None),
    ]
    assert spec.trigger_key("comment-created") == "comment-created"
    assert workflow(FEED, key="comments.new").trigger_key("comment-created") == "comments.new"


def test_a_step_is_exactly_one_kind():
    refused("exactly one of", {"name": "both", "email": {"template": "t"}, "delay": {"duration": "1m"}})
    refused("exactly one of", {"name": "none"})


def test_step_names_are_unique():
    refused("used twice", FEED, FEED)


def test_a_message_condition_names_an_earlier_in_app_step():
    later = MAIL | {"conditions": {"rules": [{"step": "feed", "message": "seen"}]}}
    refused("not an earlier inApp step", later, FEED)
    refused("not an earlier inApp step", MAIL | {"conditions": {"rules": [{"step": "mail", "message": "seen"}]}})
    workflow(FEED, later)


def test_a_condition_has_one_form():
    both = {"variable": "data.priority", "operator": "equal", "value": "high", "step": "feed", "message": "seen"}
    refused("either variable with operator", FEED, MAIL | {"conditions": {"rules": [both]}})
    refused("either variable with operator", MAIL | {"conditions": {"rules": [{"variable": "data.x"}]}})
    refused("String should match", MAIL | {"conditions": {"rules": [{"variable": "os.environ", "operator": "exists"}]}})


def test_one_digest_per_workflow():
    digest = {"name": "d1", "digest": {"window": "5m"}}
    refused("at most one digest", digest, digest | {"name": "d2"}, MAIL)


def test_channel_defaults_and_required():
    spec = workflow(FEED, preferences={"channels": {"email": False}, "required": False})
    assert spec.preferences.channels.get("email") is False
    assert spec.preferences.channels.get("inApp") is None


def test_the_wire_contract_names_the_same_channels():
    assert get_args(contract.Channel) == CHANNELS


def test_event_patterns():
    assert event_matches("*", "user.created")
    assert event_matches("user.*", "user.created")
    assert not event_matches("user.*", "email.sent")
    assert not event_matches("user.*", "users.created")
    assert event_matches("email.delivered", "email.delivered")
    assert not event_matches("email.delivered", "email.delivered.late")
    webhook = WebhookSpec.model_validate(
        STACK | {"url": "https://crm.example.com/hooks", "events": ["user.*", "job.dead"]}
    )
    assert [e for e in PLATFORM_EVENTS if webhook.subscribes_to(e)] == [
        "user.created",
        "user.updated",
        "user.deleted",
        "job.dead",
    ]


def test_webhook_refusals_and_secret():
    base = STACK | {"url": "https://crm.example.com/hooks", "events": ["*"]}
    for bad, why in (
        ({"events": []}, "at least 1"),
        ({"events": ["User.Created"]}, "String should match"),
        ({"url": "ftp://x"}, "String should match"),
        ({"timeout": "2m"}, "at most 60s"),
        ({"headers": {"Webhook-Id": "x"}}, "webhook-id"),
        ({"headers": {"bad header": "x"}}, "header names"),
    ):
        with pytest.raises(ValidationError, match=why):
            WebhookSpec.model_validate(base | bad)
    made = WebhookSpec.model_validate(base).secret_refs("crm")["signingSecret"]
    assert (made.name, made.key) == (generated_secret_name("crm"), "secret")
    given = WebhookSpec.model_validate(base | {"secretRef": {"name": "mine", "key": "k"}}).secret_refs("crm")
    assert (given["signingSecret"].name, given["signingSecret"].key) == ("mine", "k")
