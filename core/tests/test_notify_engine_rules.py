"""The notification engine's pure rules: step conditions, preference resolution, rendering of
step strings and the operator's template check, run ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stackyard.jobs.ids import queue_of, sortable_id
from stackyard.notify.conditions import compare, conditions_hold, lookup, message_state_holds
from stackyard.notify.contract import Preferences, PreferencesUpdate
from stackyard.notify.preferences import channel_allowed, from_document, merge, to_document
from stackyard.notify.render import RenderError, render_text, template_problems
from stackyard.notify.runs import job_id_for, run_id_for
from stackyard.resources.notify import Conditions, NotificationWorkflowSpec

STACK = {"stackRef": {"name": "demo"}}


def workflow(**fields: object) -> NotificationWorkflowSpec:
    base = {"steps": [{"name": "mail", "email": {"template": "t"}}]}
    return NotificationWorkflowSpec.model_validate(STACK | base | fields)


def rules(*rules: dict[str, object], mode: str = "all") -> Conditions:
    return Conditions.model_validate({"mode": mode, "rules": list(rules)})


VARIABLES = {
    "data": {"count": 3, "tags": ["a", "b"], "title": "Release notes", "post": {"id": "p1"}, "none": None},
    "recipient": {"id": "u1", "email": "ana@example.com"},
    "tenant": "acme",
}

# -- conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "operator", "value", "holds"),
    [
        ("data.count", "equal", 3, True),
        ("data.count", "equal", 3.0, True),
        ("data.count", "equal", "3", False),
        ("data.count", "notEqual", 4, True),
        ("data.count", "greaterThan", 2, True),
        ("data.count", "lessThan", 2, False),
        ("data.count", "greaterThan", "2", False),
        ("data.title", "contains", "notes", True),
        ("data.tags", "contains", "b", True),
        ("data.tags", "notContains", "c", True),
        ("data.post", "contains", "id", True),
        ("data.post.id", "in", ["p1", "p2"], True),
        ("data.post.id", "in", "p1", False),
        ("data.none", "exists", None, False),
        ("data.none", "notExists", None, True),
        ("data.missing", "exists", None, False),
        ("data.missing", "notExists", None, True),
        ("data.missing", "equal", None, False),
        ("data.missing", "notEqual", 1, True),
        ("recipient.email", "equal", "ana@example.com", True),
        ("tenant", "in", ["acme"], True),
        ("data.tags.1", "equal", "b", True),
    ],
)
def test_a_variable_rule_compares_the_value_at_its_path(
    variable: str, operator: str, value: object, holds: bool
) -> None:
    condition = rules({"variable": variable, "operator": operator, "value": value})
    assert conditions_hold(condition, VARIABLES)[0] is holds


def test_booleans_are_not_numbers_in_comparisons() -> None:
    assert compare("equal", True, 1) is False
    assert compare("greaterThan", True, 0) is False
    assert compare("equal", False, False) is True


def test_all_needs_every_rule_and_says_which_failed() -> None:
    condition = rules(
        {"variable": "data.count", "operator": "equal", "value": 3},
        {"variable": "tenant", "operator": "equal", "value": "other"},
    )
    assert conditions_hold(condition, VARIABLES) == (False, "condition not met: tenant equal 'other'")


def test_any_needs_one_rule() -> None:
    condition = rules(
        {"variable": "tenant", "operator": "equal", "value": "other"},
        {"variable": "data.count", "operator": "exists"},
        mode="any",
    )
    assert conditions_hold(condition, VARIABLES) == (True, None)
    none = rules({"variable": "tenant", "operator": "equal", "value": "x"}, mode="any")
    assert conditions_hold(none, VARIABLES) == (False, "no condition met: tenant equal 'x'")


def test_message_rules_read_the_state_of_the_earlier_message() -> None:
    unseen = rules({"step": "feed", "message": "unseen"})
    assert conditions_hold(unseen, VARIABLES, {"feed": {"seenAt": None, "readAt": None, "archivedAt": None}})[0]
    assert not conditions_hold(unseen, VARIABLES, {"feed": {"seenAt": "2026-11-26T10:00:00Z"}})[0]
    seen = {"seenAt": "x", "readAt": "y", "archivedAt": None}
    assert message_state_holds("read", seen) and not message_state_holds("unread", seen)
    assert message_state_holds("archived", {"archivedAt": "z"})


def test_a_message_that_was_never_sent_satisfies_no_message_rule() -> None:
    for state in ("seen", "unseen", "read", "unread", "archived"):
        assert message_state_holds(state, None) is False
    assert conditions_hold(rules({"step": "feed", "message": "unseen"}), VARIABLES, {"feed": None})[0] is False


def test_no_conditions_always_hold() -> None:
    assert conditions_hold(None, {}) == (True, None)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: st.dictionaries(st.text("abc", min_size=1, max_size=3), c, max_size=3),
        max_leaves=10,
    )
)
def test_lookup_never_raises_and_exists_agrees_with_lookup(data: object) -> None:
    variables = {"data": data}
    for path in ("data", "data.a", "data.a.b", "data.0"):
        found = lookup(variables, path)
        assert compare("exists", found, None) is not compare("notExists", found, None)


# -- preferences -----------------------------------------------------------------------------


def prefs(value: dict[str, object]) -> Preferences:
    return Preferences.model_validate(value)


def test_the_most_specific_choice_of_the_user_wins() -> None:
    spec = workflow(category="comments", preferences={"channels": {"email": False}})
    user = prefs(
        {
            "channels": {"email": False, "push": True},
            "categories": {"comments": {"channels": {"email": True, "push": False}}},
            "workflows": {"new-comment": {"channels": {"push": True}}},
        }
    )
    assert channel_allowed(spec, "new-comment", "comments", user, "push") is True  # workflow level
    assert channel_allowed(spec, "new-comment", "comments", user, "email") is True  # category over channel
    assert channel_allowed(spec, "other", None, user, "email") is False  # channel level
    assert channel_allowed(spec, "other", None, prefs({}), "email") is False  # the workflow's default
    assert channel_allowed(spec, "other", None, None, "inApp") is True  # nobody said: on


def test_a_required_workflow_ignores_preferences() -> None:
    spec = workflow(preferences={"required": True, "channels": {"email": False}})
    off = prefs({"channels": {"email": False}, "workflows": {"w": {"channels": {"email": False}}}})
    assert channel_allowed(spec, "w", None, off, "email") is True


def test_a_users_choice_overrides_the_workflow_default_either_way() -> None:
    spec = workflow(preferences={"channels": {"email": False}})
    assert channel_allowed(spec, "w", None, prefs({"channels": {"email": True}}), "email") is True
    on = workflow()
    assert channel_allowed(on, "w", None, prefs({"workflows": {"w": {"channels": {"email": False}}}}), "email") is False


def test_an_update_merges_and_null_clears() -> None:
    current = merge(
        Preferences(),
        PreferencesUpdate.model_validate(
            {"channels": {"push": False}, "workflows": {"a.b": {"channels": {"email": False, "inApp": True}}}}
        ),
    )
    changed = merge(
        current,
        PreferencesUpdate.model_validate({"workflows": {"a.b": {"channels": {"email": None}}}, "categories": {}}),
    )
    assert changed.channels.push is False
    assert changed.workflows["a.b"].channels.email is None and changed.workflows["a.b"].channels.in_app is True
    cleared = merge(changed, PreferencesUpdate.model_validate({"workflows": {"a.b": {"channels": {"inApp": None}}}}))
    assert cleared.workflows == {}


def test_preferences_round_trip_through_their_document_with_dotted_keys() -> None:
    value = prefs({"channels": {"inApp": False}, "workflows": {"billing.invoice": {"channels": {"email": True}}}})
    from datetime import UTC, datetime

    doc = to_document("u1", value, datetime.now(UTC))
    assert all("." not in key for key in doc)  # dotted keys are values, not field names
    assert from_document(doc) == value
    assert from_document(None) == Preferences()


def test_preferences_refuse_unknown_channels() -> None:
    with pytest.raises(ValueError, match="sms"):
        Preferences.model_validate({"channels": {"sms": True}})


# -- rendering -------------------------------------------------------------------------------


def test_step_strings_render_with_the_run_variables() -> None:
    variables = {"data": {"n": 2}, "recipient": {"name": "Ana"}, "digest": {"total": 5, "items": [{"x": 1}]}}
    assert render_text("Hi {{ recipient.name }}: {{ data.n + 1 }}", variables) == "Hi Ana: 3"
    assert render_text("{{ digest.total }} new, first {{ digest['items'][0].x }}", variables) == "5 new, first 1"
    assert render_text("plain {text", {}) == "plain {text"


def test_a_missing_variable_fails_instead_of_rendering_empty() -> None:
    with pytest.raises(RenderError, match="missing"):
        render_text("{{ data.missing }}", {"data": {}})


def test_the_sandbox_refuses_python_internals() -> None:
    with pytest.raises(RenderError, match=r"SecurityError|unsafe"):
        render_text("{{ data.__class__.__mro__ }}", {"data": {}})
    with pytest.raises(RenderError):
        render_text("{{ data.update({'x': 1}) }}", {"data": {}})


def test_template_problems_name_the_step_and_the_field() -> None:
    spec = workflow(
        steps=[
            {"name": "feed", "inApp": {"title": "{{ digest.total }} new", "body": "{% if %}"}},
            {"name": "collect", "digest": {"window": "1m", "key": "{{ data.post }}"}},
            {"name": "push", "push": {"title": "{{ digest.total }}", "body": "{{ secrets }}"}},
            {"name": "mail", "email": {"template": "t", "variables": {"n": "{{ digest.total }}"}}},
        ]
    )
    problems = template_problems(spec)
    assert len(problems) == 3
    assert problems[0].startswith("step 'feed': inApp.title uses digest, which no run has")
    assert "digest exists only after a digest step" in problems[0]
    assert problems[1].startswith("step 'feed': inApp.body does not compile")
    assert problems[2].startswith("step 'push': push.body uses secrets")
    assert template_problems(workflow()) == []


# -- ids -------------------------------------------------------------------------------------


def test_run_ids_derive_from_the_trigger_and_the_recipient() -> None:
    trigger = "ntr_" + sortable_id()
    run = run_id_for(trigger, "usr_1")
    assert run == run_id_for(trigger, "usr_1") != run_id_for(trigger, "usr_2")
    assert run[5:15] == trigger[4:14]  # sorts by the trigger's time
    assert queue_of(job_id_for("notify", run)) == "notify"
