"""Filter and sort expressions of a search request (Meilisearch's syntax): parsing into the
AST of `filter_ast`, the checks against the index's filterable, sortable and facetable
attributes, and `matches`, the reference evaluator of a filter on one document (the engine
compiles the same AST to index queries; its answers must agree with `matches`).

The parser is a small hand-written recursive descent over a one-pass tokenizer rather than a
grammar library: the grammar is a dozen rules, every error must name the 0-based position
and what was expected in words a user can act on ("expected a value after `>` at 14"), and
the array form parses each string at its offset in the joined expression. A generated
parser's error reporting would have to be translated back into exactly that anyway, and
the module stays free of a dependency.

Grammar (keywords case-insensitive; AND binds tighter than OR; NOT tighter than both):

    expr       := and (OR and)*
    and        := unary (AND unary)*
    unary      := NOT unary | "(" expr ")" | condition
    condition  := attribute ( ("=" | "!=") value | (">" | ">=" | "<" | "<=") number
                            | number TO number | [NOT] IN "[" [value ("," value)* [","]] "]"
                            | [NOT] EXISTS | IS [NOT] NULL | IS [NOT] EMPTY )
    attribute  := word | quoted
    value      := word | quoted            (a bare number is a number, true/false a boolean)

A word runs until whitespace or one of ( ) [ ] , ' " = ! < >. A quoted string takes single or
double quotes; a backslash escapes the quote and the backslash (`'it\\'s'`), any other
backslash is kept as it is.

Semantics follow Meilisearch: a dotted attribute reaches into nested objects (and into
objects inside arrays); an array matches when any element matches; string equality ignores
case; `!=`, NOT IN and NOT EXISTS are the complement of `=`, IN and EXISTS (a document
without the attribute matches them); range operators compare numbers only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .contract import FilterInput
from .filter_ast import (
    And,
    Between,
    CompareOp,
    Comparison,
    Exists,
    Filter,
    FilterError,
    In,
    IsEmpty,
    IsNull,
    Not,
    Or,
    Value,
)
from .paths import found_at

__all__ = [
    "MAX_DEPTH",
    "SortKey",
    "check_facets",
    "filter_attributes",
    "format_filter",
    "join_filter",
    "matches",
    "normalize_facet_value",
    "parse_filter",
    "parse_sort",
]

MAX_DEPTH = 64
"""Deepest nesting of parentheses and NOTs a filter may have."""

SORT_ERROR = "invalid_search_sort"
FACETS_ERROR = "invalid_search_facets"

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD_STOP = frozenset("()[],'\"=!<> \t\r\n\f\v")
_BARE_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_NOT_AN_ATTRIBUTE = frozenset({"AND", "OR", "TO", "IN", "EXISTS", "IS"})
_NOT_A_VALUE = frozenset({"AND", "OR", "NOT", "TO", "IN"})
_UNSUPPORTED_OPERATORS = frozenset({"CONTAINS", "STARTS"})
_GEO = ("_geoRadius", "_geoBoundingBox", "_geoPolygon", "_geoDistance", "_geo")
_OPERATORS = (
    "=, !=, >, >=, <, <=, IN [...], NOT IN [...], EXISTS, NOT EXISTS, IS NULL, IS NOT NULL, IS EMPTY, "
    "IS NOT EMPTY or `low TO high`"
)


# -- tokens --------------------------------------------------------------------------------------

TokenKind = Literal["word", "quoted", "op", "(", ")", "[", "]", ",", "end"]
_PUNCTUATION: dict[str, TokenKind] = {"(": "(", ")": ")", "[": "[", "]": "]", ",": ","}


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str
    """word: as written; quoted: the string without quotes and escapes; op: the operator."""
    position: int
    source: str
    """The token as written in the expression (for messages)."""

    def keyword(self) -> str | None:
        return self.text.upper() if self.kind == "word" else None

    def shown(self) -> str:
        return "the end of the filter" if self.kind == "end" else f"`{self.source}`"


def _tokenize(text: str, base: int) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()[],":
            tokens.append(_Token(_PUNCTUATION[c], c, base + i, c))
            i += 1
        elif c in "<>":
            op = c + "=" if text.startswith("=", i + 1) else c
            tokens.append(_Token("op", op, base + i, op))
            i += len(op)
        elif c == "=":
            tokens.append(_Token("op", "=", base + i, "="))
            i += 1
        elif c == "!":
            if not text.startswith("=", i + 1):
                raise FilterError(f"expected `=` after `!` at {base + i} (`!=` means not equal; NOT negates)", base + i)
            tokens.append(_Token("op", "!=", base + i, "!="))
            i += 2
        elif c in "'\"":
            start, i = i, i + 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise FilterError(
                        f"the string starting at {base + start} has no closing {c} "
                        f"(write \\{c} for a {c} inside the string)",
                        base + start,
                    )
                ch = text[i]
                if ch == "\\" and i + 1 < n and text[i + 1] in (c, "\\"):
                    chars.append(text[i + 1])
                    i += 2
                elif ch == c:
                    i += 1
                    break
                else:
                    chars.append(ch)
                    i += 1
            tokens.append(_Token("quoted", "".join(chars), base + start, text[start:i]))
        else:
            start = i
            while i < n and text[i] not in _WORD_STOP:
                i += 1
            tokens.append(_Token("word", text[start:i], base + start, text[start:i]))
    tokens.append(_Token("end", "", base + len(text.rstrip()), ""))
    return tokens


def _number(text: str) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


# -- parser --------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, base: int) -> None:
        self.tokens = _tokenize(text, base)
        self.at = 0
        self.attributes: list[tuple[str, int]] = []

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.at = min(self.at + 1, len(self.tokens) - 1)
        return token

    def parse(self) -> Filter:
        result = self.expression(0)
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected_after_condition(token)
        return result

    def unexpected_after_condition(self, token: _Token) -> FilterError:
        if token.kind == ")":
            return FilterError(f"`)` at {token.position} closes no `(`", token.position)
        hint = ""
        previous = self.tokens[self.at - 1] if self.at > 0 else None
        if token.keyword() == "TO":
            hint = " (a range is written `attribute low TO high`, without an operator)"
        elif token.kind in ("word", "quoted") and previous is not None and previous.kind == "word":
            hint = f" (quote a value that has spaces: '{previous.source} {token.source}')"
        return FilterError(
            f"expected AND, OR or the end of the filter at {token.position}, found {token.shown()}{hint}",
            token.position,
        )

    def expression(self, depth: int) -> Filter:
        items = [self.conjunction(depth)]
        while self.peek().keyword() == "OR":
            self.take()
            items.append(self.conjunction(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self, depth: int) -> Filter:
        items = [self.unary(depth)]
        while self.peek().keyword() == "AND":
            self.take()
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Filter:
        token = self.peek()
        if token.kind == "end":
            what = "a condition" if self.at == 0 else f"a condition after {self.tokens[self.at - 1].shown()}"
            raise FilterError(f"expected {what} at {token.position}", token.position)
        if depth >= MAX_DEPTH:
            raise FilterError(
                f"the filter nests parentheses and NOTs deeper than {MAX_DEPTH} levels at {token.position}",
                token.position,
            )
        if token.keyword() == "NOT":
            self.take()
            return Not(self.unary(depth + 1), token.position)
        if token.kind == "(":
            self.take()
            inner = self.expression(depth + 1)
            closing = self.peek()
            if closing.kind != ")":
                if closing.kind == "end":
                    raise FilterError(
                        f"the `(` at {token.position} is not closed: expected `)` at {closing.position}",
                        closing.position,
                    )
                raise self.unexpected_after_condition(closing)
            self.take()
            return inner
        return self.condition()

    def condition(self) -> Filter:
        token = self.take()
        if token.kind not in ("word", "quoted") or token.keyword() in _NOT_AN_ATTRIBUTE:
            raise FilterError(f"expected an attribute at {token.position}, found {token.shown()}", token.position)
        attribute, position = token.text, token.position
        if token.kind == "word" and ((attribute.startswith(_GEO) and self.peek().kind == "(") or attribute == "_geo"):
            raise FilterError(f"geographic filters (`{attribute}`) are not supported, at {position}", position)
        self.attributes.append((attribute, position))
        after = f"`{token.source}`"
        op = self.peek()
        keyword = op.keyword()
        if op.kind == "op":
            self.take()
            if op.text in ("=", "!="):
                return Comparison(attribute, _compare_op(op.text), self.value(f"`{op.text}`"), position)
            return Comparison(attribute, _compare_op(op.text), self.number(f"`{op.text}`"), position)
        if keyword == "IN":
            self.take()
            return In(attribute, self.values(), False, position)
        if keyword == "EXISTS":
            self.take()
            return Exists(attribute, False, position)
        if keyword == "NOT":
            self.take()
            nxt = self.take()
            if nxt.keyword() == "IN":
                return In(attribute, self.values(), True, position)
            if nxt.keyword() == "EXISTS":
                return Exists(attribute, True, position)
            raise FilterError(
                f"expected IN or EXISTS after `{attribute} NOT` at {nxt.position}, found {nxt.shown()}", nxt.position
            )
        if keyword == "IS":
            self.take()
            nxt = self.take()
            negated = nxt.keyword() == "NOT"
            if negated:
                nxt = self.take()
            if nxt.keyword() == "NULL":
                return IsNull(attribute, negated, position)
            if nxt.keyword() == "EMPTY":
                return IsEmpty(attribute, negated, position)
            expected = "NULL or EMPTY" if negated else "NULL, EMPTY, NOT NULL or NOT EMPTY"
            raise FilterError(f"expected {expected} after IS at {nxt.position}, found {nxt.shown()}", nxt.position)
        if keyword in _UNSUPPORTED_OPERATORS:
            raise FilterError(f"`{op.source}` at {op.position} is not supported: use =, IN or a range", op.position)
        if op.kind in ("word", "quoted") and self.peek(1).keyword() == "TO":
            low = self.number(after)
            self.take()
            return Between(attribute, low, self.number("TO"), position)
        raise FilterError(f"expected an operator after {after} at {op.position}: {_OPERATORS}", op.position)

    def value(self, after: str) -> Value:
        token = self.take()
        if token.kind == "quoted":
            return token.text
        if token.kind != "word" or token.keyword() in _NOT_A_VALUE:
            hint = " (quote it to use it as a value)" if token.kind == "word" else ""
            raise FilterError(
                f"expected a value after {after} at {token.position}, found {token.shown()}{hint}", token.position
            )
        lowered = token.text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        number = _number(token.text)
        return token.text if number is None else number

    def number(self, after: str) -> float:
        token = self.peek()
        value = self.value(after)
        if isinstance(value, str):
            number = _number(value.strip())
            if number is not None:
                return number
        if isinstance(value, float):
            return value
        raise FilterError(
            f"expected a number after {after} at {token.position}, found {token.shown()} (ranges compare numbers only)",
            token.position,
        )

    def values(self) -> tuple[Value, ...]:
        opening = self.take()
        if opening.kind != "[":
            raise FilterError(
                f"expected `[` after IN at {opening.position}, found {opening.shown()} (write IN [a, b])",
                opening.position,
            )
        values: list[Value] = []
        while self.peek().kind != "]":
            if self.peek().kind == "end":
                end = self.peek().position
                raise FilterError(f"the `[` at {opening.position} is not closed: expected `]` at {end}", end)
            values.append(self.value("`[`" if not values else "`,`"))
            separator = self.peek()
            if separator.kind == ",":
                self.take()
            elif separator.kind == "end":
                raise FilterError(
                    f"the `[` at {opening.position} is not closed: expected `]` at {separator.position}",
                    separator.position,
                )
            elif separator.kind != "]":
                raise FilterError(
                    f"expected `,` or `]` at {separator.position}, found {separator.shown()}", separator.position
                )
        self.take()
        return tuple(values)


def _compare_op(text: str) -> CompareOp:
    ops: dict[str, CompareOp] = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
    return ops[text]


# -- public: filters -----------------------------------------------------------------------------


def _pieces(expression: FilterInput) -> tuple[str, list[list[tuple[str, int]]]]:
    """The joined expression of the array form and, per ANDed item, its ORed strings with
    their offsets in it: ["a = 1", ["b = 2", "c = 3"]] -> "(a = 1) AND ((b = 2) OR (c = 3))"."""
    if isinstance(expression, str):
        return expression, ([[(expression, 0)]] if expression.strip() else [])
    if not isinstance(expression, list):
        raise FilterError("a filter is a string or an array of strings and arrays of strings", 0)
    joined = ""
    groups: list[list[tuple[str, int]]] = []
    for item in expression:
        texts = [item] if isinstance(item, str) else item
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise FilterError(
                f"filter item {len(groups)} is not a string or an array of strings (inner arrays do not nest)",
                len(joined),
            )
        texts = [text for text in texts if text.strip()]
        if not texts:
            continue
        if groups:
            joined += " AND "
        group: list[tuple[str, int]] = []
        if isinstance(item, str):
            joined += "("
            group.append((item, len(joined)))
            joined += item + ")"
        else:
            joined += "("
            for i, text in enumerate(texts):
                joined += " OR (" if i else "("
                group.append((text, len(joined)))
                joined += text + ")"
            joined += ")"
        groups.append(group)
    return joined, groups


def join_filter(expression: FilterInput) -> str:
    """The one expression that an array form means, in which FilterError positions count
    (a string is returned as it is)."""
    return _pieces(expression)[0]


def filter_attributes(filter: Filter) -> list[str]:
    """The attributes a filter reads, in order of appearance, each once."""
    seen: dict[str, None] = {}

    def walk(node: Filter) -> None:
        if isinstance(node, And | Or):
            for item in node.items:
                walk(item)
        elif isinstance(node, Not):
            walk(node.item)
        else:
            seen.setdefault(node.attribute)

    walk(filter)
    return list(seen)


def _listing(kind: str, names: Collection[str], setting: str) -> str:
    if not names:
        return f"this index has no {kind} attributes (declare them in the SearchIndex's {setting})"
    return f"{kind} attributes: {', '.join(sorted(names))}"


def parse_filter(expression: FilterInput | None, filterable: Collection[str]) -> Filter | None:
    """The AST of a filter (a string, or the array form: items ANDed, inner arrays ORed), or
    None when there is no filter (None, empty or blank). Raises FilterError with the 0-based
    position of the problem (in `join_filter(expression)` for the array form), including for
    an attribute that is not in `filterable` (pass the index's filterable and facetable
    attributes: `spec.filter_attributes`). Attributes match exactly: a dotted one
    (author.name) must be declared as such."""
    if expression is None:
        return None
    _, groups = _pieces(expression)
    allowed = set(filterable)
    ands: list[Filter] = []
    for group in groups:
        ors: list[Filter] = []
        for text, offset in group:
            parser = _Parser(text, offset)
            ors.append(parser.parse())
            for attribute, position in parser.attributes:
                if attribute not in allowed:
                    raise FilterError(
                        f"`{attribute}` is not filterable; {_listing('filterable', allowed, 'filterableAttributes')}",
                        position,
                    )
        ands.append(ors[0] if len(ors) == 1 else Or(tuple(ors)))
    if not ands:
        return None
    return ands[0] if len(ands) == 1 else And(tuple(ands))


def _format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_attribute(attribute: str) -> str:
    if _BARE_ATTRIBUTE.fullmatch(attribute) and attribute.upper() not in _NOT_AN_ATTRIBUTE | {"NOT"}:
        return attribute
    return _format_value(attribute)


def format_filter(filter: Filter) -> str:
    """The filter written in the syntax `parse_filter` reads (it parses back to the same
    tree): for logs, task details and tests."""

    def nested(node: Filter) -> str:
        text = format_filter(node)
        return f"({text})" if isinstance(node, And | Or) else text

    if isinstance(filter, And | Or):
        word = " AND " if isinstance(filter, And) else " OR "
        return word.join(nested(item) for item in filter.items)
    if isinstance(filter, Not):
        return "NOT " + nested(filter.item)
    attribute = _format_attribute(filter.attribute)
    if isinstance(filter, Comparison):
        return f"{attribute} {filter.op} {_format_value(filter.value)}"
    if isinstance(filter, Between):
        return f"{attribute} {_format_value(filter.low)} TO {_format_value(filter.high)}"
    if isinstance(filter, In):
        values = ", ".join(_format_value(value) for value in filter.values)
        return f"{attribute} {'NOT IN' if filter.negated else 'IN'} [{values}]"
    if isinstance(filter, Exists):
        return f"{attribute} {'NOT EXISTS' if filter.negated else 'EXISTS'}"
    if isinstance(filter, IsNull):
        return f"{attribute} {'IS NOT NULL' if filter.negated else 'IS NULL'}"
    return f"{attribute} {'IS NOT EMPTY' if filter.negated else 'IS EMPTY'}"


# -- public: sort and facets ---------------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    attribute: str
    descending: bool


def parse_sort(items: Sequence[str] | None, sortable: Collection[str]) -> list[SortKey]:
    """`["price:asc", "rating:desc"]` -> SortKeys, in order. Raises FilterError with code
    invalid_search_sort and position = the index of the bad item."""
    keys: list[SortKey] = []
    allowed = set(sortable)
    for index, item in enumerate(items or ()):
        if not isinstance(item, str):
            raise FilterError(f"sort item {index} is not a string (write `attribute:asc`)", index, SORT_ERROR)
        if item.startswith("_geoPoint"):
            raise FilterError(f"sorting by distance (`{item}`) is not supported", index, SORT_ERROR)
        attribute, colon, direction = item.strip().rpartition(":")
        if not colon or not attribute:
            raise FilterError(
                f"sort item {index} `{item}` needs a direction: `{item.strip() or 'price'}:asc` or "
                f"`{item.strip() or 'price'}:desc`",
                index,
                SORT_ERROR,
            )
        if direction.lower() not in ("asc", "desc"):
            raise FilterError(
                f"sort item {index} `{item}`: the direction is `asc` or `desc`, not `{direction}`", index, SORT_ERROR
            )
        if attribute not in allowed:
            raise FilterError(
                f"`{attribute}` is not sortable; {_listing('sortable', allowed, 'sortableAttributes')}",
                index,
                SORT_ERROR,
            )
        keys.append(SortKey(attribute, direction.lower() == "desc"))
    return keys


def check_facets(facets: Sequence[str] | None, facetable: Collection[str]) -> list[str]:
    """The attributes to count values of, each once, in the order asked; `*` means every
    facetable attribute. Raises FilterError with code invalid_search_facets and position =
    the index of an attribute that is not facetable."""
    allowed = list(dict.fromkeys(facetable))
    result: dict[str, None] = {}
    for index, facet in enumerate(facets or ()):
        if facet == "*":
            result.update(dict.fromkeys(allowed))
        elif facet in allowed:
            result.setdefault(facet)
        else:
            raise FilterError(
                f"`{facet}` is not facetable; {_listing('facetable', allowed, 'facetableAttributes')}",
                index,
                FACETS_ERROR,
            )
    return list(result)


# -- public: the reference evaluator -------------------------------------------------------------


def normalize_facet_value(value: str) -> str:
    """How a string is compared by `=` and IN (and counted as a facet value): case ignored."""
    return value.lower()


def _scalars(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.extend(_scalars(value))
        else:
            out.append(value)
    return out


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    return None


def _keyword(value: Any) -> str | None:
    """A stored or filter value as the text `=` and IN compare (case ignored): strings as
    they are, numbers as Meilisearch writes them (10, 9.99), booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return normalize_facet_value(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return None


def _equal(stored: Any, value: Value) -> bool:
    """`=`: the same text (so "10" = 10 and "TRUE" = true), or, for a number, the same number."""
    if isinstance(value, float) and not isinstance(value, bool) and _as_number(stored) == value:
        return True
    text = _keyword(stored)
    return text is not None and text == _keyword(value)


_RANGE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def matches(filter: Filter, document: Mapping[str, Any]) -> bool:
    """Whether a document passes a filter, as Meilisearch decides it."""
    if isinstance(filter, And):
        return all(matches(item, document) for item in filter.items)
    if isinstance(filter, Or):
        return any(matches(item, document) for item in filter.items)
    if isinstance(filter, Not):
        return not matches(filter.item, document)
    found = found_at(document, filter.attribute)
    if isinstance(filter, Exists):
        return bool(found) != filter.negated
    if isinstance(filter, IsNull):
        return any(value is None for value in found) != filter.negated
    if isinstance(filter, IsEmpty):
        return any(value in ("", [], {}) for value in found) != filter.negated
    scalars = _scalars(found)
    if isinstance(filter, In):
        hit = any(_equal(stored, value) for stored in scalars for value in filter.values)
        return hit != filter.negated
    if isinstance(filter, Between):
        numbers = (_as_number(stored) for stored in scalars)
        return any(n is not None and filter.low <= n <= filter.high for n in numbers)
    if filter.op in ("=", "!="):
        hit = any(_equal(stored, filter.value) for stored in scalars)
        return hit == (filter.op == "=")
    compare = _RANGE[filter.op]
    bound = filter.value
    if not isinstance(bound, float):
        return False
    return any((n := _as_number(stored)) is not None and compare(n, bound) for stored in scalars)
