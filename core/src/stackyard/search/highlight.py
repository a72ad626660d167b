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
from collections.abc import Callable, Sequence
from typing import Any

from .analysis import Analysis, QueryWord, edit_distance, word_spans
from .layout import values_at

Matcher = Callable[[str], int]
"""folded word -> how many of its characters matched (0: no match)."""


def matcher(words: Sequence[QueryWord], analysis: Analysis) -> Matcher:
    exact = {w.text for w in words} | {s for w in words for syn in w.synonyms for s in syn}
    stems = {w.stem or w.text for w in words}
    prefixes = [w.text for w in words if w.prefix]
    fuzzy = [w for w in words if w.typos]
    cache: dict[str, int] = {}

    def match(token: str) -> int:
        found = cache.get(token)
        if found is not None:
            return found
        length = 0
        if (
            token in exact
            or any(edit_distance(token, w.text, w.typos) <= w.typos for w in fuzzy)
            or (analysis.stem is not None and (analysis.stem_of(token) or token) in stems)
        ):
            length = len(token)
        else:
            for prefix in prefixes:
                if token.startswith(prefix):
                    length = max(length, len(prefix))
        cache[token] = length
        return length

    return match


def positions(text: str, match: Matcher) -> list[tuple[int, int]]:
    found = []
    for start, end, token in word_spans(text):
        length = match(token)
        if length:
            found.append((start, min(length, end - start)))
    return found


def mark(text: str, match: Matcher, pre: str, post: str) -> str:
    parts: list[str] = []
    cursor = 0
    for start, length in positions(text, match):
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
        found.extend({"start": s, "length": n} for s, n in positions(value, match))
    elif isinstance(value, list):
        for item in value:
            _collect(item, match, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, match, found)
