"""Step conditions, evaluated without I/O: the run gathers the variables and the state of
the messages its earlier inApp steps sent, and `conditions_hold` decides.

A variable rule reads a dotted path (`data.post.id`, `recipient.email`, `tenant`,
`digest.total`) and compares it with `value`:

- equal / notEqual: JSON equality (1 and 1.0 are equal; "1" and 1 are not)
- greaterThan / lessThan: numbers with numbers, strings with strings; anything else is false
- contains / notContains: a substring of a string, an element of a list, a key of an object
- exists / notExists: the path is there and not null
- in: the variable is one of the elements of `value` (a list)

A message rule holds when the message of that step is in that state: seen, unseen, read,
unread, archived. When the step sent no message (skipped, failed, opted out), every message
rule on it is false: "skip the email when the in-app message was seen" then sends the email,
and "send only if unread" does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..resources.notify import Condition, Conditions

_MISSING = object()


def lookup(variables: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or _MISSING."""
    value: Any = variables
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compare(operator: str, actual: Any, expected: Any) -> bool:
    """One variable rule; `actual` is _MISSING when the path is not there."""
    if operator == "exists":
        return actual is not _MISSING and actual is not None
    if operator == "notExists":
        return actual is _MISSING or actual is None
    if actual is _MISSING:
        return operator in ("notEqual", "notContains")
    if operator == "equal":
        return bool(_same(actual, expected))
    if operator == "notEqual":
        return not _same(actual, expected)
    if operator in ("greaterThan", "lessThan"):
        if (_number(actual) and _number(expected)) or (isinstance(actual, str) and isinstance(expected, str)):
            return bool(actual > expected if operator == "greaterThan" else actual < expected)
        return False
    if operator in ("contains", "notContains"):
        found = _contains(actual, expected)
        return found if operator == "contains" else not found
    if operator == "in":
        return isinstance(expected, list) and any(_same(actual, item) for item in expected)
    raise ValueError(f"unknown operator {operator!r}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list):
        return any(_same(element, item) for element in container)
    if isinstance(container, Mapping):
        return isinstance(item, str) and item in container
    return False


def message_state_holds(state: str, message: Mapping[str, Any] | None) -> bool:
    """`message`: {seenAt, readAt, archivedAt} (None: no message was sent)."""
    if message is None:
        return False
    seen, read, archived = (message.get(f) is not None for f in ("seenAt", "readAt", "archivedAt"))
    return {"seen": seen, "unseen": not seen, "read": read, "unread": not read, "archived": archived}[state]


def rule_holds(rule: Condition, variables: Mapping[str, Any], messages: Mapping[str, Mapping[str, Any] | None]) -> bool:
    if rule.step is not None and rule.message is not None:
        return message_state_holds(rule.message, messages.get(rule.step))
    assert rule.variable is not None and rule.operator is not None
    return compare(rule.operator, lookup(variables, rule.variable), rule.value)


def describe(rule: Condition) -> str:
    if rule.step is not None:
        return f"message of {rule.step} is {rule.message}"
    value = "" if rule.operator in ("exists", "notExists") else f" {rule.value!r}"
    return f"{rule.variable} {rule.operator}{value}"


def conditions_hold(
    conditions: Conditions | None,
    variables: Mapping[str, Any],
    messages: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> tuple[bool, str | None]:
    """Whether the step runs, and when not, why (for the step's outcome)."""
    if conditions is None:
        return True, None
    messages = messages or {}
    results = [(rule, rule_holds(rule, variables, messages)) for rule in conditions.rules]
    if conditions.mode == "all":
        failed = [rule for rule, held in results if not held]
        if failed:
            return False, "condition not met: " + describe(failed[0])
        return True, None
    if any(held for _, held in results):
        return True, None
    return False, "no condition met: " + "; ".join(describe(rule) for rule, _ in results)


__all__ = ["compare", "conditions_hold", "lookup", "message_state_holds", "rule_holds"]
