"""metav1.Condition bookkeeping: what a reconcile decided, merged into what the object has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
