"""The parsed form of a filter expression (Meilisearch's syntax), shared by the parser
(`filters`), the engine that compiles it to index queries, and the evaluator that checks one
document. Each node keeps the character offset it came from, for error messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Value = str | float | bool
"""A literal: a string (quoted or a bare word), a number, or true/false. A bare number also
equals the same number written as a string in a document ("10" = 10), as in Meilisearch."""
CompareOp = Literal["=", "!=", ">", ">=", "<", "<="]


@dataclass(frozen=True)
class Comparison:
    attribute: str
    op: CompareOp
    value: Value
    position: int


@dataclass(frozen=True)
class Between:
    """`attribute low TO high`, both ends included."""

    attribute: str
    low: float
    high: float
    position: int


@dataclass(frozen=True)
class In:
    """`attribute IN [a, b]`, or `attribute NOT IN [a, b]` (negated)."""

    attribute: str
    values: tuple[Value, ...]
    negated: bool
    position: int


@dataclass(frozen=True)
class Exists:
    """`attribute EXISTS` / `attribute NOT EXISTS`."""

    attribute: str
    negated: bool
    position: int


@dataclass(frozen=True)
class IsNull:
    """`attribute IS NULL` / `attribute IS NOT NULL`."""

    attribute: str
    negated: bool
    position: int


@dataclass(frozen=True)
class IsEmpty:
    """`attribute IS EMPTY` ("", [] or {}) / `attribute IS NOT EMPTY`."""

    attribute: str
    negated: bool
    position: int


@dataclass(frozen=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    item: Filter
    position: int


Filter = Comparison | Between | In | Exists | IsNull | IsEmpty | And | Or | Not
Leaf = Comparison | Between | In | Exists | IsNull | IsEmpty


class FilterError(ValueError):
    """A filter that cannot be used: bad syntax, or an attribute that is not filterable.
    `position` is the 0-based character offset in the expression (in the joined expression
    for the array form); the API answers 400 with code invalid_search_filter and both."""

    def __init__(self, message: str, position: int, code: str = "invalid_search_filter") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.code = code
