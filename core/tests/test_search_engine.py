"""The search engine's documents, filters, facets, sort, pagination and highlighting, on a real
tantivy index in a temporary directory."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stackyard.resources.search import SearchIndexSpec
from stackyard.search import engine as engine_module
from stackyard.search.contract import SearchRequest
from stackyard.search.engine import DocumentError, SearchEngine
from stackyard.search.filter_ast import FilterError
from stackyard.search.filters import matches, parse_filter

SETTINGS: dict[str, Any] = {
    "searchableAttributes": ["title", "brand", "description"],
    "filterableAttributes": ["price", "tags", "stock", "author.name", "note", "color", "release"],
    "facetableAttributes": ["brand", "rating"],
    "sortableAttributes": ["price", "title", "rating"],
}
PRODUCTS: list[dict[str, Any]] = [
    {
        "id": 1,
        "title": "Trail running shoes",
        "brand": "Nike",
        "price": 120,
        "rating": 4.5,
        "tags": ["Outdoor", "running"],
    },
    {
        "id": 2,
        "title": "Road running shoes",
        "brand": "nike",
        "price": 80.5,
        "rating": 4,
        "tags": ["running"],
        "stock": 0,
    },
    {"id": "3", "title": "Court shoes", "brand": "Adidas", "price": 60, "rating": 3.5, "tags": [], "note": None},
    {"id": "4", "title": "Running socks", "brand": "Adidas", "price": 10, "tags": ["running", "socks"], "note": ""},
    {"id": "a-5", "title": "Leather boots", "brand": "Dr. Martens", "price": "150", "author": {"name": "Ada"}},
    {"id": "b_6", "title": "Sandals", "brand": "Teva", "color": True, "release": "2020"},
]


def spec(**settings: Any) -> SearchIndexSpec:
    return SearchIndexSpec.model_validate(
        {"stackRef": {"name": "shop"}, "source": {"api": {}}, **{**SETTINGS, **settings}}
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[SearchEngine]:
    engine = SearchEngine.create(tmp_path / "v1", "products", spec())
    engine.add_documents(PRODUCTS)
    engine.commit()
    yield engine
    engine.close()


def hit_ids(engine: SearchEngine, **request: Any) -> list[Any]:
    return [hit["id"] for hit in engine.search(SearchRequest(**request)).hits]


# -- documents -----------------------------------------------------------------------------------


def test_documents_keep_their_json_and_are_found_by_id(engine: SearchEngine) -> None:
    assert engine.count() == 6
    assert engine.get_document("1") == PRODUCTS[0]
    assert engine.get_document("a-5", fields=["title", "author.name"]) == {
        "title": "Leather boots",
        "author": {"name": "Ada"},
    }
    assert engine.get_document("missing") is None
    assert engine.ids() == {"1", "2", "3", "4", "a-5", "b_6"}
    page, total = engine.documents(offset=1, limit=2, fields=["id"])
    assert total == 6 and len(page) == 2 and all(set(d) == {"id"} for d in page)
    filtered, total = engine.documents(0, 10, filter=parse_filter("brand = adidas", ["brand"]))
    assert total == 2 and {d["id"] for d in filtered} == {"3", "4"}
    batches = list(engine.iter_documents(batch=4))
    assert [len(b) for b in batches] == [4, 2]
    assert sorted(str(d["id"]) for b in batches for d in b) == sorted(str(p["id"]) for p in PRODUCTS)
    assert engine.field_distribution() == {
        "author": 1, "brand": 6, "color": 1, "id": 6, "note": 2, "price": 5, "rating": 3,
        "release": 1, "stock": 1, "tags": 4, "title": 6,
    }  # fmt: skip


def test_writes_are_seen_only_after_commit(engine: SearchEngine) -> None:
    engine.add_documents([{"id": 7, "title": "Running cap"}])
    engine.delete_documents(["1"])
    assert engine.get_document("7") is None
    assert hit_ids(engine, q="trail") == [1]
    engine.commit()
    assert engine.get_document("7") == {"id": 7, "title": "Running cap"}
    assert hit_ids(engine, q="trail") == []


def test_replace_drops_old_fields_and_merge_keeps_them(engine: SearchEngine) -> None:
    engine.add_documents([{"id": 1, "title": "Trail shoes v2"}])
    engine.add_documents([{"id": 2, "price": 70}], merge=True)
    engine.add_documents([{"id": 2, "rating": 5}], merge=True)  # merges over the uncommitted one
    engine.commit()
    assert engine.get_document("1") == {"id": 1, "title": "Trail shoes v2"}
    assert engine.get_document("2") == {**PRODUCTS[1], "price": 70, "rating": 5}
    assert engine.count() == 6
    assert hit_ids(engine, q="road", filter="price = 70") == [2]
    assert hit_ids(engine, q="road", filter="price = 80.5") == []


def test_a_bad_document_rejects_the_whole_batch(engine: SearchEngine) -> None:
    cases = [
        ({"title": "no id"}, "missing_document_id"),
        ({"id": "a b", "title": "space"}, "invalid_document_id"),
        ({"id": 1.5, "title": "float"}, "invalid_document_id"),
        ({"id": True, "title": "boolean"}, "invalid_document_id"),
        ({"id": "x" * 512}, "invalid_document_id"),
    ]
    for bad, code in cases:
        with pytest.raises(DocumentError) as raised:
            engine.add_documents([{"id": "new-1", "title": "fine"}, bad])
        assert raised.value.code == code
        assert raised.value.message
    with pytest.raises(DocumentError) as raised:
        engine.add_documents([{"id": "new-2"}, ["not", "an", "object"]])  # type: ignore[list-item]
    assert raised.value.code == "invalid_document"
    engine.commit()
    assert engine.get_document("new-1") is None and engine.get_document("new-2") is None
    assert engine.count() == 6


def test_delete_by_id_by_filter_and_everything(engine: SearchEngine) -> None:
    assert engine.delete_documents(["1", "missing"]) == 1
    engine.add_documents([{"id": 8, "title": "cheap", "price": 1}])
    cheap = parse_filter("price < 70", SETTINGS["filterableAttributes"])
    assert cheap is not None
    deleted = engine.delete_by_filter(cheap)
    assert deleted == 3  # 3, 4 and the uncommitted 8
    engine.commit()
    assert engine.ids() == {"2", "a-5", "b_6"}
    engine.add_documents([{"id": 9, "title": "uncommitted"}])
    assert engine.clear() == 4
    engine.add_documents([{"id": 10, "title": "after the clear"}])
    engine.commit()
    assert engine.ids() == {"10"}
    engine.clear()
    engine.commit()
    assert engine.count() == 0
    assert engine.search(SearchRequest(q="shoes")).hits == []


def test_a_reopened_index_keeps_its_documents(tmp_path: Path) -> None:
    engine = SearchEngine.create(tmp_path / "v1", "products", spec())
    engine.add_documents(PRODUCTS)
    engine.commit()
    engine.add_documents([{"id": "uncommitted", "title": "lost"}])
    engine.close()
    reopened = SearchEngine.open(tmp_path / "v1", "products", spec(synonyms={"sneakers": ["shoes"]}))
    assert reopened.count() == 6
    assert reopened.get_document("uncommitted") is None
    assert hit_ids(reopened, q="sneakers", filter="price < 100") == [2, "3"]
    reopened.add_documents([{"id": 9, "title": "Sneakers"}])
    reopened.commit()
    assert reopened.count() == 7
    reopened.close()
    with pytest.raises(ValueError, match="rebuild"):
        SearchEngine.open(tmp_path / "v1", "products", spec(searchableAttributes=["title"]))


def test_layout_key_changes_only_with_what_the_files_hold() -> None:
    base = SearchEngine.layout_key(spec())
    assert SearchEngine.layout_key(spec(synonyms={"a": ["b"]}, stopWords=["the"])) == base
    assert SearchEngine.layout_key(spec(typoTolerance={"disableOnWords": ["x"]}, displayedAttributes=["id"])) == base
    assert SearchEngine.layout_key(spec(pagination={"maxTotalHits": 10}, faceting={"maxValuesPerFacet": 2})) == base
    assert SearchEngine.layout_key(spec(searchableAttributes=["brand", "title"])) != base
    assert SearchEngine.layout_key(spec(filterableAttributes=["price"])) != base
    assert SearchEngine.layout_key(spec(language="french")) != base
    assert SearchEngine.layout_key(spec(typoTolerance={"disableOnAttributes": ["brand"]})) != base


def test_update_settings_applies_without_rebuild(engine: SearchEngine) -> None:
    assert hit_ids(engine, q="sneakers") == []
    engine.update_settings(spec(synonyms={"sneakers": ["shoes"]}, stopWords=["court"]))
    assert sorted(map(str, hit_ids(engine, q="sneakers"))) == ["1", "2", "3"]
    with pytest.raises(ValueError, match="rebuild"):
        engine.update_settings(spec(language="german"))


# -- filters ----------------------------------------------------------------------------------------

FILTERS = [
    "brand = NIKE",
    "brand != nike",
    "tags = running",
    "tags = outdoor",
    "tags IN [socks, outdoor]",
    "tags NOT IN [running]",
    "price > 60",
    "price >= 60 AND price <= 120",
    "price 60 TO 120",
    "price = 80.5",
    "price = '150'",
    "price = 150",
    "release = 2020",
    "stock = 0",
    "stock EXISTS",
    "stock NOT EXISTS",
    "note IS NULL",
    "note IS NOT NULL",
    "note IS EMPTY",
    "tags IS EMPTY",
    "tags IS NOT EMPTY",
    "author.name = ada",
    "color = true",
    "NOT (brand = adidas OR price < 100)",
    "rating > 4 OR brand = teva",
]


@pytest.mark.parametrize("expression", FILTERS)
def test_filters_agree_with_the_reference_evaluator(engine: SearchEngine, expression: str) -> None:
    filterable = spec().filter_attributes
    node = parse_filter(expression, filterable)
    assert node is not None
    expected = sorted(str(d["id"]) for d in PRODUCTS if matches(node, d))
    found = sorted(str(i) for i in hit_ids(engine, filter=expression, limit=100))
    assert found == expected
    found_with_q = sorted(str(i) for i in hit_ids(engine, q="shoes", filter=expression, limit=100))
    assert found_with_q == [i for i in expected if "shoes" in str(engine.get_document(i))]


NESTED: list[dict[str, Any]] = [
    {"id": 1, "title": "pack", "author.name": "Bob", "variants": [{"color": "red"}, {"color": "Blue", "size": 42}]},
    {"id": 2, "title": "pack", "author": {"name": "bob"}, "variants": {"color": "green", "size": [38, 40]}},
    {"id": 3, "title": "pack", "author": [{"name": "Ann"}, {"name": "Bob"}], "variants": []},
    {"id": 4, "title": "pack"},
]


@pytest.mark.parametrize(
    "expression",
    [
        "author.name = bob",
        "author.name != bob",
        "author.name EXISTS",
        "variants.color = blue",
        "variants.color NOT IN [red, green]",
        "variants.size > 39",
        "variants.size 38 TO 40",
        "variants IS EMPTY",
        "variants EXISTS AND NOT variants.size EXISTS",
    ],
)
def test_nested_attributes_filter_as_the_reference_evaluator_reads_them(tmp_path: Path, expression: str) -> None:
    filterable = ["author.name", "variants", "variants.color", "variants.size"]
    engine = SearchEngine.create(
        tmp_path / "v1", "packs", spec(filterableAttributes=filterable, facetableAttributes=[])
    )
    engine.add_documents(NESTED)
    engine.commit()
    node = parse_filter(expression, filterable)
    assert node is not None
    assert sorted(hit_ids(engine, q="pack", filter=expression)) == [d["id"] for d in NESTED if matches(node, d)]
    engine.close()


def test_a_filter_on_an_attribute_that_is_not_filterable_is_refused_with_its_position(engine: SearchEngine) -> None:
    with pytest.raises(FilterError) as raised:
        engine.search(SearchRequest(q="shoes", filter="price > 10 AND title = x"))
    assert raised.value.position == 15
    with pytest.raises(FilterError) as sort_error:
        engine.search(SearchRequest(sort=["brand:asc"]))
    assert sort_error.value.code == "invalid_search_sort"
    with pytest.raises(FilterError) as facet_error:
        engine.search(SearchRequest(facets=["price"]))
    assert facet_error.value.code == "invalid_search_facets"


# -- facets ---------------------------------------------------------------------------------------


def test_facets_count_values_and_give_numeric_stats(tmp_path: Path) -> None:
    engine = SearchEngine.create(tmp_path / "v1", "products", spec(faceting={"maxValuesPerFacet": 2}))
    engine.add_documents(PRODUCTS)
    engine.commit()
    result = engine.search(SearchRequest(facets=["brand", "rating"]))
    assert result.facet_distribution is not None
    assert result.facet_distribution["brand"] == {"Nike": 2, "Adidas": 2}  # the top 2 of 4 values
    assert len(result.facet_distribution["rating"]) == 2
    assert result.facet_stats is not None
    assert (result.facet_stats["rating"].min, result.facet_stats["rating"].max) == (3.5, 4.5)
    assert "brand" not in result.facet_stats
    shoes = engine.search(SearchRequest(q="shoes", filter="price < 100", facets=["brand"]))
    assert shoes.facet_distribution == {"brand": {"Nike": 1, "Adidas": 1}}
    engine.close()


# -- sort and pagination ------------------------------------------------------------------------------


def test_sort_without_a_query_orders_every_match(engine: SearchEngine) -> None:
    assert hit_ids(engine, sort=["price:asc"]) == ["4", "3", 2, 1, "a-5", "b_6"]
    # "150" is a string: numbers first, then strings, then documents without the attribute
    assert hit_ids(engine, sort=["price:desc"]) == [1, 2, "3", "4", "a-5", "b_6"]
    assert hit_ids(engine, sort=["title:asc"], limit=3) == ["3", "a-5", 2]
    assert hit_ids(engine, sort=["rating:desc", "price:asc"]) == [1, 2, "3", "4", "a-5", "b_6"]


def test_sort_finds_the_right_documents_among_more_ties_than_its_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SORT_WINDOW", 10)  # 60 equally relevant documents: 6 windows
    rng = random.Random(5)
    prices = rng.sample(range(1000), 60)
    docs = [{"id": i, "title": "widget", "price": prices[i], "rating": i % 3} for i in range(60)]
    engine = SearchEngine.create(tmp_path / "v1", "products", spec())
    engine.add_documents(docs)
    engine.commit()
    by_price = [d["id"] for d in sorted(docs, key=lambda d: d["price"])]
    assert hit_ids(engine, q="widget", sort=["price:asc"], limit=5) == by_price[:5]
    assert hit_ids(engine, q="widget", sort=["price:asc"], offset=30, limit=5) == by_price[30:35]
    assert hit_ids(engine, q="widget", sort=["price:desc"], limit=5) == by_price[::-1][:5]
    by_rating = [d["id"] for d in sorted(docs, key=lambda d: (-d["rating"], d["price"]))]
    assert hit_ids(engine, sort=["rating:desc", "price:asc"], limit=8) == by_rating[:8]
    assert hit_ids(engine, q="widget", sort=["rating:desc", "price:asc"], limit=8) == by_rating[:8]
    engine.close()


def test_offset_limit_and_estimated_total_hits_capped_by_max_total_hits(tmp_path: Path) -> None:
    engine = SearchEngine.create(tmp_path / "v1", "products", spec(pagination={"maxTotalHits": 25}))
    engine.add_documents([{"id": i, "title": f"widget {i}", "price": i} for i in range(40)])
    engine.commit()
    first = engine.search(SearchRequest(q="widget", limit=10, sort=["price:asc"]))
    assert [h["id"] for h in first.hits] == list(range(10))
    assert (first.offset, first.limit, first.estimated_total_hits) == (0, 10, 25)
    assert first.total_hits is None and first.page is None
    last = engine.search(SearchRequest(q="widget", offset=20, limit=10, sort=["price:asc"]))
    assert [h["id"] for h in last.hits] == list(range(20, 25))  # no hit beyond maxTotalHits
    paged = engine.search(SearchRequest(q="widget", page=2, hits_per_page=10, sort=["price:desc"]))
    assert [h["id"] for h in paged.hits] == list(range(29, 19, -1))
    assert (paged.page, paged.hits_per_page, paged.total_hits, paged.total_pages) == (2, 10, 25, 3)
    assert paged.estimated_total_hits is None
    browse = engine.search(SearchRequest(page=3, hits_per_page=10))
    assert len(browse.hits) == 5 and browse.total_hits == 25
    few = engine.search(SearchRequest(q="widget 7", matching_strategy="all"))
    assert [h["id"] for h in few.hits] == [7] and few.estimated_total_hits == 1
    counted = engine.search(SearchRequest(q="widget", limit=0))
    assert counted.hits == [] and counted.estimated_total_hits == 25
    engine.close()


# -- hits -----------------------------------------------------------------------------------------------


def test_highlight_wraps_matches_and_keeps_document_html_as_text(tmp_path: Path) -> None:
    engine = SearchEngine.create(tmp_path / "v1", "products", spec())
    doc = {
        "id": 1,
        "title": "Trail <b>running</b> shoes",
        "brand": "Nike",
        "description": "Shoes for runners & walkers",
    }
    engine.add_documents([doc])
    engine.commit()
    hit = engine.search(
        SearchRequest(
            q="shoes runn",
            attributes_to_highlight=["title"],
            highlight_pre_tag="<mark>",
            highlight_post_tag="</mark>",
            show_matches_position=True,
            show_ranking_score=True,
        )
    ).hits[0]
    assert hit["title"] == doc["title"]  # the hit itself is untouched
    assert hit["_formatted"]["title"] == "Trail &lt;b&gt;<mark>runn</mark>ing&lt;/b&gt; <mark>shoes</mark>"
    assert hit["_formatted"]["description"] == "Shoes for runners &amp; walkers"  # not asked: escaped only
    assert hit["_formatted"]["id"] == 1
    assert hit["_matchesPosition"]["title"] == [{"start": 9, "length": 4}, {"start": 21, "length": 5}]
    assert hit["_matchesPosition"]["description"] == [{"start": 0, "length": 5}, {"start": 10, "length": 4}]
    assert 0.5 < hit["_rankingScore"] <= 1.0
    only = engine.search(
        SearchRequest(q="walkers", attributes_to_retrieve=["id"], attributes_to_highlight=["description"])
    ).hits[0]
    assert only == {"id": 1, "_formatted": {"id": 1, "description": "Shoes for runners &amp; <em>walkers</em>"}}
    typo = engine.search(SearchRequest(q="trial", attributes_to_highlight=["*"])).hits[0]
    assert typo["_formatted"]["title"].startswith("<em>Trail</em>")
    engine.close()


def test_ranking_score_falls_with_worse_matches(engine: SearchEngine) -> None:
    hits = engine.search(SearchRequest(q="running shoes", show_ranking_score=True)).hits
    scores = [h["_rankingScore"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[-1]
    assert all(0 <= s <= 1 for s in scores)


def test_attributes_to_retrieve_within_displayed_attributes(tmp_path: Path) -> None:
    engine = SearchEngine.create(tmp_path / "v1", "products", spec(displayedAttributes=["id", "title", "price"]))
    engine.add_documents(PRODUCTS)
    engine.commit()
    assert engine.search(SearchRequest(q="trail")).hits == [{"id": 1, "title": "Trail running shoes", "price": 120}]
    retrieved = engine.search(SearchRequest(q="trail", attributes_to_retrieve=["title", "brand"])).hits
    assert retrieved == [{"title": "Trail running shoes"}]
    engine.close()


def test_searches_during_writes_see_the_last_commit(tmp_path: Path) -> None:
    engine = SearchEngine.create(tmp_path / "v1", "products", spec())
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def search() -> None:
        try:
            while not done.is_set():
                result = engine.search(SearchRequest(q="widget", limit=1))
                seen.append(result.estimated_total_hits or 0)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    readers = [threading.Thread(target=search) for _ in range(2)]
    for reader in readers:
        reader.start()
    for batch in range(10):
        engine.add_documents([{"id": batch * 10 + i, "title": f"widget {i}"} for i in range(10)])
        if batch % 2:
            engine.commit()  # each commit makes 20 more searchable at once
    done.set()
    for reader in readers:
        reader.join()
    engine.close()
    assert errors == []
    assert seen and set(seen) <= {0, 20, 40, 60, 80, 100}
