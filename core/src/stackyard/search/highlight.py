"""`_formatted` and `_matchesPosition` of a hit: which words of a document the query matched.

A word matches when it is a query word, has the same stem, is within the word's typo
allowance (a transposition counts as one), starts with the last query word (only that prefix
is highlighted), or is a word of a synonym of a query word.

Escaping: the strings of `_formatted` are HTML-escaped (&, <, >, " and ') before the pre and
post tags are put around the matches, so a page can insert `_formatted` as HTML and the
document's own markup shows as text, never as markup (the tags are the caller's own, as
given). The hit's other fields hold the document's values untouched. Positions
(`_matchesPosition`) count characters of the original string (not bytes).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .analysis import Analysis, QueryWord, edit_distance, word_spans
from .layout import values_at

MAX_REMEMBERED = 4096
"""Texts whose match positions one search remembers (a hit's string is marked and positioned)."""


class Matcher:
    """The words of one search's query, matched against the words of its hits."""

    def __init__(self, words: Sequence[QueryWord], analysis: Analysis) -> None:
        self.analysis = analysis
        self.exact = {w.text for w in words} | {s for w in words for syn in w.synonyms for s in syn}
        self.stems = {w.stem or w.text for w in words}
        self.prefixes = [w.text for w in words if w.prefix]
        self.fuzzy = [w for w in words if w.typos]
        self.tokens: dict[str, int] = {}
        self.texts: dict[str, list[tuple[int, int]]] = {}

    def __call__(self, token: str) -> int:
        """How many characters of a (folded) word match the query: 0 when none."""
        found = self.tokens.get(token)
        if found is not None:
            return found
        length = 0
        if (
            token in self.exact
            or any(edit_distance(token, w.text, w.typos) <= w.typos for w in self.fuzzy)
            or (self.analysis.stem is not None and (self.analysis.stem_of(token) or token) in self.stems)
        ):
            length = len(token)
        else:
            for prefix in self.prefixes:
                if token.startswith(prefix):
                    length = max(length, len(prefix))
        self.tokens[token] = length
        return length

    def positions(self, text: str) -> list[tuple[int, int]]:
        """(start, length) of the matches in a text, in characters."""
        remembered = self.texts.get(text)
        if remembered is not None:
            return remembered
        found = []
        for start, end, token in word_spans(text):
            length = self(token)
            if length:
                found.append((start, min(length, end - start)))
        if len(self.texts) < MAX_REMEMBERED:
            self.texts[text] = found
        return found


def matcher(words: Sequence[QueryWord], analysis: Analysis) -> Matcher:
    return Matcher(words, analysis)


def mark(text: str, match: Matcher, pre: str, post: str) -> str:
    parts: list[str] = []
    cursor = 0
    for start, length in match.positions(text):
        parts.append(html.escape(text[cursor:start]))
        parts.append(pre + html.escape(text[start : start + length]) + post)
        cursor = start + length
    parts.append(html.escape(text[cursor:]))
    return "".join(parts)


def formatted(value: Any, match: Matcher | None, pre: str, post: str) -> Any:
    """A value with its strings escaped and, when match is given, their matches tagged."""
    if isinstance(value, str):
        return mark(value, match, pre, post) if match is not None else html.escape(value)
    if isinstance(value, list):
        return [formatted(v, match, pre, post) for v in value]
    if isinstance(value, dict):
        return {k: formatted(v, match, pre, post) for k, v in value.items()}
    return value


def matches_position(
    document: dict[str, Any], attributes: Sequence[str], match: Matcher
) -> dict[str, list[dict[str, int]]]:
    result: dict[str, list[dict[str, int]]] = {}
    for attribute in attributes:
        found: list[dict[str, int]] = []
        for value in values_at(document, attribute):
            _collect(value, match, found)
        if found:
            result[attribute] = found
    return result


def _collect(value: Any, match: Matcher, found: list[dict[str, int]]) -> None:
    if isinstance(value, str):
        found.extend({"start": s, "length": n} for s, n in match.positions(value))
    elif isinstance(value, list):
        for item in value:
            _collect(item, match, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, match, found)
