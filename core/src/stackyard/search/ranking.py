"""Meilisearch's ranking rules as tantivy queries whose scores order the hits.

Every clause has a constant score, so a document's score is an exact integer sum (below 2**24,
exact in tantivy's f32) that sorts like the tuple of the rules, in this order:

1. words: with matchingStrategy `last`, documents matching every query word come first, then
   those matching all but the last, and so on down to the first word alone (a document must
   match the first word); with `all`, every word is required. Each run of words is a *level*,
   searched on its own, best level first (`SearchPlan.levels`); the score adds Ww x words.
   Within a level, Wx x each later query word the document matches too (for `red leather
   boots`, `red boots` ranks above `red` in the level of `red`).
2. typo: per word, Wt x (2 - typos of its best match): an exact, stemmed, synonym or prefix
   match has no typo; a fuzzy match one or two (a transposition is one).
3. proximity: per pair of neighbouring query words, Wp x 2 when they are next to each other in
   an attribute (in the query's order; the last word as a prefix), Wp x 1 when near
   (NEAR_SLOP; their exact forms).
4. attribute: per word, Wa x how early the attribute of its best match ranks
   (searchableAttributes order; a match without typo in a later attribute beats a typo in an
   earlier one, as the typo rule comes first).
5. exactness: Wh when an attribute's whole value is the query (every query word, stop words
   included, in order, nothing else), then per word, We when the document has the word itself
   (not a typo, a stem, a prefix or a synonym).

Custom sort (`sort`) orders documents of equal score (engine.py).

Cost: tantivy scores every document a query matches, so a level is searched in tiers, from
the narrowest: every pair of words next to each other and no typo; (for two words) the pair
near and no typo; no typo (each word's exact, stemmed, prefix and synonym forms only, far
fewer postings than the fuzzy ones); then every document of the level. A tier's documents
outrank the others of the level (no document with a typo can outrank one without any, and the
proximity rule comes next), so when a tier has enough hits, its best ones are the best, and the
wider queries never run. Common words and phrases stay fast; a rare combination runs wider
queries, but over fewer documents.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import tantivy

from .analysis import MAX_QUERY_WORDS, QueryWord
from .layout import MAX_SLOTS, Layout, Slot

Occur = tantivy.Occur

MAX_RANK_BONUS = MAX_SLOTS - 1
PREFIX_SCAN = 2000
PREFIX_EXPANSIONS = 50
"""Words a prefix completes to (per attribute): the most frequent of the first PREFIX_SCAN
words of the dictionary that start with it. Term queries over them are cheaper than tantivy's
prefix automaton, which collects every matching document before the first is scored."""
PHRASE_EXPANSIONS = 5
"""Completions of the last word tried next to the word before it (proximity)."""
W_EXACT = 1
W_WHOLE = (MAX_QUERY_WORDS + 1) * W_EXACT
W_ATTRIBUTE = 2 * W_WHOLE
W_PROXIMITY = (MAX_QUERY_WORDS * MAX_RANK_BONUS + 1) * W_ATTRIBUTE
W_TYPO = (2 * (MAX_QUERY_WORDS - 1) + 1) * W_PROXIMITY
W_EXTRA = (2 * MAX_QUERY_WORDS + 1) * W_TYPO
MAX_SCORE = (
    (MAX_QUERY_WORDS - 2) * W_EXTRA
    + 2 * MAX_QUERY_WORDS * W_TYPO
    + 2 * (MAX_QUERY_WORDS - 1) * W_PROXIMITY
    + MAX_QUERY_WORDS * MAX_RANK_BONUS * W_ATTRIBUTE
    + W_WHOLE
    + MAX_QUERY_WORDS * W_EXACT
)
"""The highest score tantivy computes; below 2**24, so tantivy's f32 sums are exact."""
W_WORDS = float(2**24)
"""Added in Python per required word of a level (levels are searched separately, best first)."""
NEAR_SLOP = 4
"""How far two words may be to count as near: tantivy's phrase slop (in the query's order, up
to 4 words between them; in the other order, up to 2)."""


@dataclass(frozen=True)
class Level:
    """The documents matching the first `words` query words (and not the next one). `tiers`
    are queries of growing subsets of them, the last one every document of the level; each
    tier's documents outrank every document of the level outside it, so when a tier has
    enough hits, its best ones are the level's best."""

    words: int
    tiers: list[tantivy.Query]


@dataclass(frozen=True)
class SearchPlan:
    levels: list[Level]  # best first
    match: tantivy.Query  # every document the search returns (count, facets), unscored
    words: int
    best_rank: int  # the attribute bonus of the first attribute

    def ranking_score(self, score: float) -> float:
        """_rankingScore, 0 to 1, in the order of the ranking: each rule's points out of its
        best, as the digits of a number whose first digit is the first rule (Meilisearch
        computes it this way), so a document ranked higher never has a lower score."""
        n = self.words
        level, rest = divmod(int(score), int(W_WORDS))
        extra, rest = divmod(rest, W_EXTRA)
        typo, rest = divmod(rest, W_TYPO)
        proximity, rest = divmod(rest, W_PROXIMITY)
        attribute, rest = divmod(rest, W_ATTRIBUTE)
        whole, exact = divmod(rest, W_WHOLE)
        rules = (
            (min(level + extra, n), n),
            (typo, 2 * n),
            (proximity, 2 * (n - 1)),
            (attribute, n * self.best_rank),
            (whole, 1),
            (exact, n),
        )
        value, best, width = 0.0, 0.0, 1.0
        for points, most in rules:
            if most <= 0:
                continue
            width /= most + 1
            value += width * min(points, most)
            best += width * most
        return round(value / best, 4) if best else 1.0


def _const(query: tantivy.Query, score: float) -> tantivy.Query:
    return tantivy.Query.const_score_query(query, float(score))


def _any(queries: Sequence[tantivy.Query]) -> tantivy.Query:
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(Occur.Should, q) for q in queries])


class RankingQueryBuilder:
    def __init__(self, layout: Layout, schema: tantivy.Schema) -> None:
        self.layout = layout
        self.schema = schema
        self.max_rank = layout.max_rank

    def _rank_bonus(self, slot: Slot) -> int:
        return min(self.max_rank - slot.rank, MAX_RANK_BONUS)

    def _completions(self, searcher: tantivy.Searcher, word: QueryWord) -> dict[str, list[str]]:
        """The words of each searchable field that the prefix word completes to: the most
        frequent PREFIX_EXPANSIONS of the first PREFIX_SCAN in the dictionary's order."""
        if not word.prefix:
            return {}
        completions: dict[str, list[str]] = {}
        for slot in self.layout.slots:
            found = searcher.terms_with_prefix(slot.exact, word.text, limit=PREFIX_SCAN)
            frequent = sorted((t for t in found if t[0] != word.text), key=lambda t: -t[1])[:PREFIX_EXPANSIONS]
            completions[slot.exact] = [term for term, _ in frequent]
        return completions

    def _completed(self, field: str, completions: dict[str, list[str]]) -> tantivy.Query | None:
        terms = completions.get(field)
        if not terms:
            return None
        return _any([tantivy.Query.term_query(self.schema, field, term) for term in terms])

    def _variants(
        self, word: QueryWord, slot: Slot, completions: dict[str, list[str]]
    ) -> list[tuple[tantivy.Query, int, int]]:
        """(query, typo bonus 0-2, exactness bonus) of each way a word matches in a slot."""
        schema, field = self.schema, slot.exact
        variants: list[tuple[tantivy.Query, int, int]] = [(tantivy.Query.term_query(schema, field, word.text), 2, 1)]
        if word.stem is not None and self.layout.stemmed:
            variants.append((tantivy.Query.term_query(schema, slot.stemmed, word.stem), 2, 0))
        typos = word.typos if slot.typo else 0
        if word.prefix:
            completed = self._completed(field, completions)
            if completed is not None:
                variants.append((completed, 2, 0))
            if typos:
                variants.append((tantivy.Query.fuzzy_term_query(schema, field, word.text, 1, True, True), 1, 0))
        for distance in range(1, typos + 1):
            variants.append(
                (tantivy.Query.fuzzy_term_query(schema, field, word.text, distance, True, False), 2 - distance, 0)
            )
        for synonym in word.synonyms:
            if len(synonym) == 1:
                variants.append((tantivy.Query.term_query(schema, field, synonym[0]), 2, 0))
            else:
                variants.append((tantivy.Query.phrase_query(schema, field, [*synonym], 0), 2, 0))
        return variants

    def _match(self, word: QueryWord, completions: dict[str, list[str]]) -> tantivy.Query:
        """Whether a document matches a word at all (the widest variants only, unscored)."""
        queries: list[tantivy.Query] = []
        schema = self.schema
        for slot in self.layout.slots:
            typos = word.typos if slot.typo else 0
            field = slot.exact
            if typos:
                queries.append(tantivy.Query.fuzzy_term_query(schema, field, word.text, typos, True, False))
            else:
                queries.append(tantivy.Query.term_query(schema, field, word.text))
            if word.prefix and typos:
                queries.append(tantivy.Query.fuzzy_term_query(schema, field, word.text, 1, True, True))
            elif word.prefix:
                completed = self._completed(field, completions)
                if completed is not None:
                    queries.append(completed)
            if word.stem is not None and self.layout.stemmed:
                queries.append(tantivy.Query.term_query(schema, slot.stemmed, word.stem))
            for synonym in word.synonyms:
                if len(synonym) == 1:
                    queries.append(tantivy.Query.term_query(schema, field, synonym[0]))
                else:
                    queries.append(tantivy.Query.phrase_query(schema, field, [*synonym], 0))
        return _any(queries)

    def _scored(self, word: QueryWord, typo_free: bool, completions: dict[str, list[str]]) -> tantivy.Query:
        best: list[tantivy.Query] = []
        for slot in self.layout.slots:
            rank = self._rank_bonus(slot)
            for query, typo, exact in self._variants(word, slot, completions):
                if typo_free and typo < 2:
                    continue
                best.append(_const(query, W_TYPO * typo + W_ATTRIBUTE * rank + W_EXACT * exact))
        return tantivy.Query.disjunction_max_query(best)

    def _adjacent(self, left: QueryWord, right: QueryWord, completions: dict[str, list[str]]) -> tantivy.Query:
        """Two query words next to each other in an attribute, in the query's order (the last
        one as typed or completed to one of its PHRASE_EXPANSIONS most frequent words)."""
        phrases: list[tantivy.Query] = []
        for slot in self.layout.slots:
            endings = [right.text, *completions.get(slot.exact, [])[:PHRASE_EXPANSIONS]]
            for ending in endings:
                pair: list[str | tuple[int, str]] = [left.text, ending]
                phrases.append(tantivy.Query.phrase_query(self.schema, slot.exact, pair, 0))
        return _const(_any(phrases), 2 * W_PROXIMITY)

    def _proximity(self, left: QueryWord, right: QueryWord, completions: dict[str, list[str]]) -> tantivy.Query:
        near: list[tantivy.Query] = [self._adjacent(left, right, completions)]
        for slot in self.layout.slots:
            pair: list[str | tuple[int, str]] = [left.text, right.text]
            near.append(_const(tantivy.Query.phrase_query(self.schema, slot.exact, pair, NEAR_SLOP), W_PROXIMITY))
        return tantivy.Query.disjunction_max_query(near)

    def _whole(self, text: str) -> tantivy.Query:
        equal = [tantivy.Query.term_query(self.schema, slot.whole, text) for slot in self.layout.slots]
        return _const(_any(equal), W_WHOLE)

    def plan(
        self,
        words: Sequence[QueryWord],
        strategy: str,
        filter: tantivy.Query | None,
        searcher: tantivy.Searcher,
        whole: str,
    ) -> SearchPlan:
        """`whole`: the query's words (stop words included) joined by a space."""
        completions = self._completions(searcher, words[-1])
        matches = [self._match(word, completions) for word in words]
        typo_free = [self._scored(word, True, completions) for word in words]
        full = [self._scored(word, False, completions) for word in words]
        pairs = list(itertools.pairwise(words))
        proximity = [self._proximity(left, right, completions) for left, right in pairs]
        adjacent = [self._adjacent(left, right, completions) for left, right in pairs]
        required: list[tuple[tantivy.Occur, tantivy.Query]] = []
        if filter is not None:
            required.append((Occur.Must, _const(filter, 0.0)))
        n = len(words)
        sizes = [n] if strategy == "all" else list(range(n, 0, -1))
        levels: list[Level] = []
        for k in sizes:
            common = list(required)
            if k < n:
                common.append((Occur.MustNot, matches[k]))
                common.extend((Occur.Should, _const(m, W_EXTRA)) for m in matches[k + 1 :])
            else:
                common.append((Occur.Should, self._whole(whole)))
            exact_words = [*((Occur.Must, q) for q in typo_free[:k]), *common]
            near = [(Occur.Should, p) for p in proximity[: k - 1]]
            tiers: list[tantivy.Query] = []
            if k < n - 1:
                # later words matched (W_EXTRA) outrank typos: no tier without typos is the best
                tiers.append(tantivy.Query.boolean_query([*((Occur.Must, q) for q in full[:k]), *common, *near]))
                levels.append(Level(words=k, tiers=tiers))
                continue
            if k > 1:
                # every pair next to each other: the most proximity points there are
                tiers.append(tantivy.Query.boolean_query([*exact_words, *((Occur.Must, a) for a in adjacent[: k - 1])]))
            if k == 2:
                # the one pair near (or next to each other): any other document has no point
                tiers.append(tantivy.Query.boolean_query([*exact_words, (Occur.Must, proximity[0])]))
            tiers.append(tantivy.Query.boolean_query([*exact_words, *near]))
            tiers.append(tantivy.Query.boolean_query([*((Occur.Must, q) for q in full[:k]), *common, *near]))
            levels.append(Level(words=k, tiers=tiers))
        match_words = matches if strategy == "all" else matches[:1]
        match = tantivy.Query.boolean_query([*required, *((Occur.Must, m) for m in match_words)])
        return SearchPlan(levels, match, n, min(self.max_rank, MAX_RANK_BONUS))
