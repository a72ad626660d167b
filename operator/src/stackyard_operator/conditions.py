"""metav1.Condition bookkeeping: what a reconcile decided, merged into what the object has."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

S = TypeVar("S")
P = TypeVar("P")

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

WORKER_CONDITIONS = frozenset({"Reachable", "Connected", "IndexesInSync", "Migrated", "Enabled", "Synced"})
"""Condition types that the Stack's programs write (an EmailProvider's Reachable, a Database's
Connected, IndexesInSync and Migrated, a Webhook's Enabled, the search component's Synced on
a SearchIndex); the operator keeps them."""


@dataclass(frozen=True)
class ConditionIntent:
    """A condition as a reconcile decides it, before times are attached."""

    type: str
    status: str
    reason: str
    message: str = ""


def ready(reason: str, message: str) -> ConditionIntent:
    return ConditionIntent("Ready", TRUE, reason, message)


def not_ready(reason: str, message: str) -> ConditionIntent:
    return ConditionIntent("Ready", FALSE, reason, message)


def merge_conditions(
    existing: list[dict[str, Any]], intents: list[ConditionIntent], generation: int, now: str
) -> list[dict[str, Any]]:
    """The object's new conditions: lastTransitionTime moves only when a status changes;
    conditions no longer decided are dropped, but those workers write are kept (after the
    decided ones); the order follows `intents`."""
    by_type = {c.get("type"): c for c in existing}
    merged = []
    for intent in intents:
        old = by_type.get(intent.type)
        changed = old is None or old.get("status") != intent.status
        merged.append(
            {
                "type": intent.type,
                "status": intent.status,
                "reason": intent.reason,
                "message": intent.message,
                "observedGeneration": generation,
                "lastTransitionTime": now if changed or old is None else old.get("lastTransitionTime", now),
            }
        )
    decided = {intent.type for intent in intents}
    merged += [c for c in existing if c.get("type") in WORKER_CONDITIONS and c.get("type") not in decided]
    return merged


def transitions(existing: list[dict[str, Any]], intents: list[ConditionIntent]) -> list[ConditionIntent]:
    """The intents whose status or reason differs from what the object shows (for Events)."""
    by_type = {c.get("type"): c for c in existing}
    return [
        i
        for i in intents
        if (old := by_type.get(i.type)) is None or (old.get("status"), old.get("reason")) != (i.status, i.reason)
    ]


def keep_last_good(
    candidates: Mapping[str, S], previous: Mapping[str, S], problem_of: Callable[[S], P | None]
) -> tuple[dict[str, S], dict[str, tuple[P, bool]]]:
    """The member specs in force, by name, and the problem of each that is not: a spec with a
    problem is replaced by its version in the config in force (`previous`) when that one has
    none (the bool: kept)."""
    in_force: dict[str, S] = {}
    problems: dict[str, tuple[P, bool]] = {}
    for name, spec in sorted(candidates.items()):
        problem = problem_of(spec)
        if problem is None:
            in_force[name] = spec
            continue
        last_good = previous.get(name)
        kept = last_good is not None and problem_of(last_good) is None
        if kept and last_good is not None:
            in_force[name] = last_good
        problems[name] = (problem, kept)
    return in_force, problems
