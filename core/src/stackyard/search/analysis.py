"""Text analysis of the search engine: the tokenizers registered on every index (the same
ones at indexing and at query time), the query's words, how many typos a word may have, and
the edit distance used to tell a typo match from another word when highlighting."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import tantivy

from stackyard.resources.search import SearchIndexSpec

EXACT_TOKENIZER = "sy_exact"
"""Words split on what is not a letter or digit, lowercased, ASCII-folded (café = cafe)."""
STEM_TOKENIZER = "sy_stem"
"""The same words, stemmed by the index's language (running = run in english)."""
KEYWORD_TOKENIZER = "sy_kw"
"""A filter value: the whole string, lowercased (filters are case-insensitive)."""
MAX_QUERY_WORDS = 10
"""Words of a query that take part in the search (Meilisearch's limit too); the rest are ignored."""
MAX_WORD_CHARS = 100
"""Longer tokens are not indexed (they are not words anyone types)."""

_WORD = re.compile(r"[^\W_]+")


def exact_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_WORD_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def stem_analyzer(language: str) -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_WORD_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer(language))
        .build()
    )


def keyword_analyzer() -> tantivy.TextAnalyzer:
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.raw()).filter(tantivy.Filter.lowercase()).build()


def register_tokenizers(index: tantivy.Index, language: str) -> None:
    """Tokenizers are not stored in the index files: every open registers them again."""
    index.register_tokenizer(EXACT_TOKENIZER, exact_analyzer())
    index.register_tokenizer(KEYWORD_TOKENIZER, keyword_analyzer())
    index.register_fast_field_tokenizer(KEYWORD_TOKENIZER, keyword_analyzer())
    if language != "none":
        index.register_tokenizer(STEM_TOKENIZER, stem_analyzer(language))


def fold(text: str) -> str:
    """Lowercase without accents: the Python side of the exact tokenizer, for highlighting."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def word_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, folded word) of every word of a text, in character offsets."""
    return [(m.start(), m.end(), fold(m.group())) for m in _WORD.finditer(text)]


def typos_allowed(word: str, spec: SearchIndexSpec, disabled_words: frozenset[str]) -> int:
    """0, 1 or 2: the edit distance a query word may match with, by its length (typoTolerance)."""
    tolerance = spec.typo_tolerance
    if not tolerance.enabled or word in disabled_words or word.isdigit():
        return 0
    size = len(word)
    if size >= tolerance.min_word_size_for_typos.two_typos:
        return 2
    if size >= tolerance.min_word_size_for_typos.one_typo:
        return 1
    return 0


def edit_distance(a: str, b: str, bound: int) -> int:
    """Damerau-Levenshtein distance (optimal string alignment: a transposition costs one), or
    bound + 1 when it is larger than bound."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > bound:
            return bound + 1
        previous2, previous = previous, current
    return previous[len(b)] if previous[len(b)] <= bound else bound + 1


@dataclass(frozen=True)
class QueryWord:
    text: str  # folded, as indexed in the exact fields
    stem: str | None  # the stemmed form (stem fields), None without stemming
    typos: int  # edit distance allowed
    prefix: bool  # the last word while the user is still typing it
    synonyms: tuple[tuple[str, ...], ...] = ()  # alternatives (a phrase each) this word may match as


@dataclass
class Analysis:
    """The analysers of one index's settings (language, stop words, synonyms, typo tolerance)."""

    spec: SearchIndexSpec
    exact: tantivy.TextAnalyzer = field(init=False)
    stem: tantivy.TextAnalyzer | None = field(init=False)
    stop_words: frozenset[str] = field(init=False)
    disabled_words: frozenset[str] = field(init=False)
    synonyms: dict[tuple[str, ...], list[tuple[str, ...]]] = field(init=False)

    def __post_init__(self) -> None:
        self.exact = exact_analyzer()
        self.stem = stem_analyzer(self.spec.language) if self.spec.language != "none" else None
        self.stop_words = frozenset(w for s in self.spec.stop_words for w in self.words(s))
        self.disabled_words = frozenset(w for s in self.spec.typo_tolerance.disable_on_words for w in self.words(s))
        synonyms: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for key, values in self.spec.synonyms.items():
            key_words = tuple(self.words(key))
            if not key_words:
                continue
            for value in values:
                value_words = tuple(self.words(value))
                if value_words and value_words != key_words and value_words not in synonyms.get(key_words, []):
                    synonyms.setdefault(key_words, []).append(value_words)
        self.synonyms = synonyms

    def words(self, text: str) -> list[str]:
        return list(self.exact.analyze(text))

    def stem_of(self, word: str) -> str | None:
        if self.stem is None:
            return None
        stems = self.stem.analyze(word)
        return stems[0] if stems else None

    def query_words(self, q: str) -> list[QueryWord]:
        """The words of a query: stop words dropped (unless nothing else is left), at most
        MAX_QUERY_WORDS, the last one a prefix unless the query ends with a space; each with the
        synonyms of the word, or of a phrase of query words it starts or is part of."""
        words = self.words(q)
        kept = [w for w in words if w not in self.stop_words] or words
        kept = kept[:MAX_QUERY_WORDS]
        if not kept:
            return []
        ends_open = bool(q) and not q[-1].isspace() and words[-1] == kept[-1] and len(kept) <= MAX_QUERY_WORDS
        alternatives: list[list[tuple[str, ...]]] = [[] for _ in kept]
        for key, values in self.synonyms.items():
            size = len(key)
            for start in range(len(kept) - size + 1):
                if tuple(kept[start : start + size]) == key:
                    for position in range(start, start + size):
                        alternatives[position].extend(v for v in values if v not in alternatives[position])
        result = []
        for position, word in enumerate(kept):
            result.append(
                QueryWord(
                    text=word,
                    stem=self.stem_of(word),
                    typos=typos_allowed(word, self.spec, self.disabled_words),
                    prefix=ends_open and position == len(kept) - 1,
                    synonyms=tuple(alternatives[position]),
                )
            )
        return result
