from __future__ import annotations

from stackyard_operator.conditions import ConditionIntent, merge_conditions, transitions

READY = ConditionIntent("Ready", "True", "InForce", "ok")


def test_transition_time_moves_only_when_status_changes():
    first = merge_conditions([], [READY], 1, "T1")
    again = merge_conditions(first, [ConditionIntent("Ready", "True", "InForce", "still ok")], 2, "T2")
    assert again[0]["lastTransitionTime"] == "T1"
    assert again[0]["message"] == "still ok" and again[0]["observedGeneration"] == 2
    flipped = merge_conditions(again, [ConditionIntent("Ready", "False", "SecretNotFound", "x")], 2, "T3")
    assert flipped[0]["lastTransitionTime"] == "T3"


def test_transitions_are_status_or_reason_changes():
    current = merge_conditions([], [READY], 1, "T1")
    assert transitions(current, [READY]) == []
    changed = ConditionIntent("Ready", "True", "Disabled", "off")
    assert transitions(current, [changed]) == [changed]


def test_conditions_written_by_workers_are_kept_and_others_dropped():
    reachable = {"type": "Reachable", "status": "False", "reason": "InvalidCredentials", "lastTransitionTime": "T0"}
    stale = {"type": "CredentialsResolved", "status": "True", "reason": "Resolved", "lastTransitionTime": "T0"}
    merged = merge_conditions([reachable, stale], [READY], 1, "T1")
    assert [c["type"] for c in merged] == ["Ready", "Reachable"]
    assert merged[1] == reachable
