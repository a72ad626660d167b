"""Relevance of the search engine: the orderings a user of Meilisearch expects, on a real
tantivy index in a temporary directory. Each test inserts documents in an order that would
give the wrong answer if the ranking rule under test did nothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from stackyard.resources.search import SearchIndexSpec
from stackyard.search import ranking
from stackyard.search.contract import SearchRequest
from stackyard.search.engine import SearchEngine


def spec(**settings: Any) -> SearchIndexSpec:
    return SearchIndexSpec.model_validate({"stackRef": {"name": "shop"}, "source": {"api": {}}, **settings})


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Any]:
    engines: list[SearchEngine] = []

    def build(docs: Sequence[dict[str, Any]], **settings: Any) -> SearchEngine:
        engine = SearchEngine.create(tmp_path / f"v{len(engines) + 1}", "products", spec(**settings))
        engines.append(engine)
        engine.add_documents(docs)
        engine.commit()
        return engine

    yield build
    for engine in engines:
        engine.close()


def ids(engine: SearchEngine, q: str, **request: Any) -> list[Any]:
    return [hit["id"] for hit in engine.search(SearchRequest(q=q, **request)).hits]


def test_a_misspelled_word_finds_the_right_one(index: Any) -> None:
    engine = index([{"id": 1, "title": "Apple iPhone 15"}, {"id": 2, "title": "Pixel 8"}])
    assert ids(engine, "iphnoe") == [1]  # a transposition
    assert ids(engine, "ipone") == [1]  # a letter missing
    assert ids(engine, "pixle") == [2]


def test_a_transposition_counts_as_one_typo(index: Any) -> None:
    # samsung has 7 letters: one typo allowed; swapping n and u is that one typo
    engine = index([{"id": 1, "title": "Samsung Galaxy S24"}, {"id": 2, "title": "Sony Xperia"}])
    assert ids(engine, "samsnug") == [1]
    assert ids(engine, "smasnug") == []  # two transpositions are two typos


def test_typos_are_allowed_by_word_length(index: Any) -> None:
    docs = [{"id": 1, "title": "red shoe"}, {"id": 2, "title": "wireless keyboard"}]
    engine = index(docs)
    assert ids(engine, "sheo") == []  # 4 letters: no typo by default (oneTypo is 5)
    assert ids(engine, "keybaord") == [2]  # 8 letters: one typo
    assert ids(engine, "wirless keybaord") == [2]
    assert ids(engine, "kyebaord") == []  # two typos need 9 letters
    relaxed = index(docs, typoTolerance={"minWordSizeForTypos": {"oneTypo": 3, "twoTypos": 7}})
    assert ids(relaxed, "sheo") == [1]
    assert ids(relaxed, "kyebaord") == [2]


def test_typo_tolerance_can_be_disabled_for_words_and_attributes(index: Any) -> None:
    docs = [
        {"id": 1, "title": "Garmin watch", "sku": "forerunner"},
        {"id": 2, "title": "Casio watches"},
        {"id": 3, "title": "Cassio pens"},
    ]
    assert ids(index(docs, searchableAttributes=["title", "sku"]), "cassio") == [3, 2]
    engine = index(
        docs,
        searchableAttributes=["title", "sku"],
        typoTolerance={"disableOnWords": ["Cassio"], "disableOnAttributes": ["sku"]},
    )
    assert ids(engine, "cassio") == [3]  # this query word matches only as written
    assert ids(engine, "garmni") == [1]  # other words keep their typos
    assert ids(engine, "forerunner") == [1]
    assert ids(engine, "forerunnre") == []  # no typo on the sku attribute
    disabled = index(docs, typoTolerance={"enabled": False})
    assert ids(disabled, "garmni") == []


def test_the_last_word_matches_as_a_prefix(index: Any) -> None:
    engine = index([{"id": 1, "title": "gaming laptop"}, {"id": 2, "title": "laptop bag"}, {"id": 3, "title": "lamp"}])
    assert sorted(ids(engine, "lapt")) == [1, 2]
    assert ids(engine, "gaming lapt") == [1]
    assert ids(engine, "lapt bag") == []  # only the last word is a prefix
    assert ids(engine, "lapt ") == []  # a space ends the word


def test_an_exact_match_ranks_above_a_typo_even_in_a_later_attribute(index: Any) -> None:
    engine = index(
        [
            {"id": 1, "title": "Galazy phone case", "description": "a case"},
            {"id": 2, "title": "Phone case", "description": "fits the galaxy"},
        ],
        searchableAttributes=["title", "description"],
    )
    assert ids(engine, "galaxy") == [2, 1]


def test_proximity_decides_between_documents_with_every_word(index: Any) -> None:
    engine = index(
        [
            {"id": 1, "title": "shoes for kids, and a running belt"},
            {"id": 2, "title": "trail shoes, great for running"},
            {"id": 3, "title": "best running shoes"},
        ]
    )
    assert ids(engine, "running shoes") == [3, 2, 1]


def test_documents_with_every_word_come_first_then_words_are_dropped_from_the_end(index: Any) -> None:
    engine = index(
        [
            {"id": 1, "title": "red"},
            {"id": 2, "title": "leather boots"},
            {"id": 3, "title": "red boots"},
            {"id": 4, "title": "red leather boots"},
        ]
    )
    assert ids(engine, "red leather boots") == [4, 3, 1]  # 2 lacks the first word; 3 has more words than 1
    assert ids(engine, "red leather boots", matching_strategy="all") == [4]


def test_more_matched_words_outrank_a_typo_within_a_level(index: Any) -> None:
    engine = index([{"id": 1, "title": "wooden table"}, {"id": 2, "title": "woodne cushion"}])
    # neither has "chair": both are in the level of "wooden"; 2 also has "cushion"
    assert ids(engine, "wooden chair cushion", limit=1) == [2]
    assert ids(engine, "wooden chair cushion") == [2, 1]


def test_an_earlier_searchable_attribute_ranks_higher(index: Any) -> None:
    docs = [
        {"id": 1, "title": "Cotton shirt", "description": "a blue shirt"},
        {"id": 2, "title": "Blue shirt", "description": "cotton"},
    ]
    engine = index(docs, searchableAttributes=["title", "description"])
    assert ids(engine, "blue") == [2, 1]
    assert ids(engine, "cotton") == [1, 2]
    reversed_order = index(docs, searchableAttributes=["description", "title"])
    assert ids(reversed_order, "blue") == [1, 2]


def test_with_every_attribute_searchable_the_document_order_ranks(index: Any) -> None:
    engine = index(
        [
            {"id": 1, "title": "lamp", "notes": "desk"},
            {"id": 2, "title": "desk", "notes": "lamp"},
        ]
    )
    assert ids(engine, "desk") == [2, 1]


def test_the_word_itself_ranks_above_its_stem_and_prefix_matches(index: Any) -> None:
    engine = index([{"id": 1, "title": "shoes"}, {"id": 2, "title": "shoehorn"}, {"id": 3, "title": "shoe"}])
    assert ids(engine, "shoe ") == [3, 1]  # exact, then the stem (english: shoes = shoe)
    assert ids(engine, "shoe") == [3, 1, 2]  # a prefix match last


def test_an_attribute_that_is_the_whole_query_ranks_first(index: Any) -> None:
    engine = index(
        [
            {"id": 1, "title": "iPhone 15 leather case"},
            {"id": 2, "title": "iPhone 15"},
            {"id": 3, "title": "Case for the iPhone 15"},
        ],
        stopWords=["the"],
    )
    assert ids(engine, "iphone 15") == [2, 1, 3]
    assert ids(engine, "case for the iphone 15 ")[0] == 3


def test_the_ranking_weights_fit_tantivys_float() -> None:
    assert ranking.MAX_SCORE < 2**24  # scores are f32 sums: above this, ranks would blur


def test_stemming_follows_the_language(index: Any) -> None:
    docs = [{"id": 1, "title": "running in the park"}, {"id": 2, "title": "a quiet park"}]
    assert ids(index(docs), "runs ") == [1]
    assert ids(index(docs, language="none"), "runs ") == []
    french = index([{"id": 1, "title": "les chaussures rouges"}], language="french")
    assert ids(french, "chaussure rouge ") == [1]


def test_stop_words_are_ignored_in_queries(index: Any) -> None:
    engine = index(
        [{"id": 1, "title": "The Matrix"}, {"id": 2, "title": "Lord of the Rings"}, {"id": 3, "title": "Of Mice"}],
        stopWords=["the", "of"],
    )
    assert ids(engine, "the matrix") == [1]
    assert ids(engine, "lord of the rings") == [2]
    assert ids(engine, "of the rings") == [2]
    assert sorted(ids(engine, "the")) == [1, 2]  # a query of stop words only still searches them


def test_synonyms_are_one_way_and_may_be_phrases(index: Any) -> None:
    engine = index(
        [
            {"id": 1, "title": "trail running shoes"},
            {"id": 2, "title": "white sneakers"},
            {"id": 3, "title": "New York skyline poster"},
        ],
        synonyms={"sneakers": ["running shoes"], "nyc": ["new york"]},
    )
    assert sorted(ids(engine, "sneakers ")) == [1, 2]
    assert ids(engine, "sneakers ")[0] == 2  # the word itself first
    assert ids(engine, "running shoes ") == [1]  # one way
    assert ids(engine, "nyc poster") == [3]


def test_filters_and_facets_apply_to_the_matches(index: Any) -> None:
    engine = index(
        [
            {"id": 1, "title": "trail shoes", "brand": "Nike", "price": 120, "tags": ["outdoor", "Running"]},
            {"id": 2, "title": "road shoes", "brand": "nike", "price": 80, "tags": ["running"]},
            {"id": 3, "title": "court shoes", "brand": "Adidas", "price": 60, "tags": ["tennis"]},
            {"id": 4, "title": "running socks", "brand": "Adidas", "price": 10, "tags": ["running"]},
        ],
        filterableAttributes=["price", "tags"],
        facetableAttributes=["brand"],
    )
    result = engine.search(SearchRequest(q="shoes", filter="price < 100 AND tags = RUNNING", facets=["brand"]))
    assert [hit["id"] for hit in result.hits] == [2]
    # values count case-insensitively, shown as the first document that has them writes them
    assert result.facet_distribution == {"brand": {"Nike": 1}}
    everything = engine.search(SearchRequest(q="shoes", facets=["brand"]))
    assert everything.facet_distribution == {"brand": {"Nike": 2, "Adidas": 1}}
    assert everything.estimated_total_hits == 3
    stats = engine.search(
        SearchRequest(q="shoes", facets=["brand"], filter=["brand = adidas", ["price > 100", "price < 70"]])
    )
    assert [hit["id"] for hit in stats.hits] == [3]


def test_custom_sort_orders_equally_relevant_documents(index: Any) -> None:
    engine = index(
        [
            {"id": 1, "title": "desk lamp", "price": 40},
            {"id": 2, "title": "desk lamp", "price": 15},
            {"id": 3, "title": "desk", "price": 5},
            {"id": 4, "title": "desk lamp", "price": 25},
        ],
        sortableAttributes=["price"],
    )
    assert ids(engine, "desk lamp", sort=["price:asc"]) == [2, 4, 1, 3]  # words first, then price
    assert ids(engine, "desk lamp", sort=["price:desc"]) == [1, 4, 2, 3]
