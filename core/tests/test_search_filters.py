"""Filter and sort expressions of a search request: Meilisearch's syntax parsed into the
filter AST, errors with the position a user can act on, and the reference evaluator."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stackyard.search.filter_ast import (
    And,
    Between,
    Comparison,
    Exists,
    Filter,
    FilterError,
    In,
    IsEmpty,
    IsNull,
    Not,
    Or,
)
from stackyard.search.filters import (
    MAX_DEPTH,
    SortKey,
    check_facets,
    filter_attributes,
    format_filter,
    join_filter,
    matches,
    parse_filter,
    parse_sort,
)

FILTERABLE = ["brand", "price", "rating", "tags", "author.name", "release_date", "title", "genre", "stock"]


def parse(expression: Any) -> Filter:
    result = parse_filter(expression, FILTERABLE)
    assert result is not None
    return result


def error(expression: Any, filterable: list[str] = FILTERABLE) -> FilterError:
    with pytest.raises(FilterError) as caught:
        parse_filter(expression, filterable)
    return caught.value


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("brand = apple", Comparison("brand", "=", "apple", 0)),
        ("brand != 'Apple Inc'", Comparison("brand", "!=", "Apple Inc", 0)),
        ("price > 10", Comparison("price", ">", 10.0, 0)),
        ("price >= -2.5", Comparison("price", ">=", -2.5, 0)),
        ("price<3", Comparison("price", "<", 3.0, 0)),
        ("price <= 1e3", Comparison("price", "<=", 1000.0, 0)),
        ("price > '10'", Comparison("price", ">", 10.0, 0)),
        ("stock = true", Comparison("stock", "=", True, 0)),
        ("stock = FALSE", Comparison("stock", "=", False, 0)),
        ('title = "true"', Comparison("title", "=", "true", 0)),
        ("price 10 TO 20", Between("price", 10.0, 20.0, 0)),
        ("price 10 to 20.5", Between("price", 10.0, 20.5, 0)),
        ("genre IN [horror, 'sci fi', 3]", In("genre", ("horror", "sci fi", 3.0), False, 0)),
        ("genre IN [horror,]", In("genre", ("horror",), False, 0)),
        ("genre IN []", In("genre", (), False, 0)),
        ("genre not in [horror]", In("genre", ("horror",), True, 0)),
        ("tags EXISTS", Exists("tags", False, 0)),
        ("tags NOT EXISTS", Exists("tags", True, 0)),
        ("tags IS NULL", IsNull("tags", False, 0)),
        ("tags is not null", IsNull("tags", True, 0)),
        ("tags IS EMPTY", IsEmpty("tags", False, 0)),
        ("tags IS NOT EMPTY", IsEmpty("tags", True, 0)),
        ("author.name = 'Ursula K. Le Guin'", Comparison("author.name", "=", "Ursula K. Le Guin", 0)),
        ('"author.name" = x', Comparison("author.name", "=", "x", 0)),
        ("NOT genre = horror", Not(Comparison("genre", "=", "horror", 4), 0)),
        ("  release_date > 1700000000", Comparison("release_date", ">", 1.7e9, 2)),
    ],
)
def test_each_construct_parses(expression: str, expected: Filter) -> None:
    assert parse(expression) == expected


def test_quotes_take_backslash_escapes_of_the_quote_and_the_backslash() -> None:
    assert parse(r"title = 'it\'s'") == Comparison("title", "=", "it's", 0)
    assert parse(r'title = "say \"hi\""') == Comparison("title", "=", 'say "hi"', 0)
    assert parse(r"title = 'a\\b'") == Comparison("title", "=", "a\\b", 0)
    assert parse(r"title = 'C:\path'") == Comparison("title", "=", "C:\\path", 0)
    assert parse("title = 'AND'") == Comparison("title", "=", "AND", 0)


def test_and_binds_tighter_than_or_and_not_tighter_than_both() -> None:
    def leaf(name: str, text: str) -> Comparison:
        return Comparison(name, "=", 1.0, text.index(name))

    text = "brand = 1 AND price = 1 OR rating = 1"
    assert parse(text) == Or((And((leaf("brand", text), leaf("price", text))), leaf("rating", text)))
    text = "brand = 1 OR price = 1 AND rating = 1"
    assert parse(text) == Or((leaf("brand", text), And((leaf("price", text), leaf("rating", text)))))
    text = "NOT brand = 1 and price = 1"
    assert parse(text) == And((Not(leaf("brand", text), 0), leaf("price", text)))


def test_parentheses_group_and_keep_their_structure() -> None:
    result = parse("(brand = 1 OR price = 1) AND NOT (rating = 1 OR rating = 2)")
    assert isinstance(result, And)
    first, second = result.items
    assert isinstance(first, Or)
    assert isinstance(second, Not) and isinstance(second.item, Or)
    assert parse("((brand = 1))") == Comparison("brand", "=", 1.0, 2)


def test_keywords_are_case_insensitive() -> None:
    assert format_filter(parse("genre In [a] and tags Is Not Empty oR price 1 tO 2")) == format_filter(
        parse("genre IN [a] AND tags IS NOT EMPTY OR price 1 TO 2")
    )


def test_empty_filters_are_no_filter() -> None:
    assert parse_filter(None, FILTERABLE) is None
    assert parse_filter("", FILTERABLE) is None
    assert parse_filter("   ", FILTERABLE) is None
    assert parse_filter([], FILTERABLE) is None
    assert parse_filter(["", []], FILTERABLE) is None


def test_array_form_ands_items_and_ors_inner_arrays() -> None:
    expression: list[str | list[str]] = ["genre = horror", ["price < 10", "rating >= 4"]]
    joined = join_filter(expression)
    assert joined == "(genre = horror) AND ((price < 10) OR (rating >= 4))"
    assert parse(expression) == And(
        (
            Comparison("genre", "=", "horror", joined.index("genre")),
            Or(
                (
                    Comparison("price", "<", 10.0, joined.index("price")),
                    Comparison("rating", ">=", 4.0, joined.index("rating")),
                )
            ),
        )
    )
    # the joined expression means the same
    assert format_filter(parse(expression)) == format_filter(parse(joined))
    assert parse(["genre = horror"]) == Comparison("genre", "=", "horror", 1)


def test_array_form_errors_count_positions_in_the_joined_expression() -> None:
    expression: list[str | list[str]] = ["genre = horror", ["price < 10", "rating >="]]
    caught = error(expression)
    joined = join_filter(expression)
    assert caught.position == len(joined) - 2  # where the value of `>=` is missing, before the `)`s
    assert "expected a value after `>=`" in caught.message
    assert error(["genre = horror", ["colour = red"]]).position == join_filter(
        ["genre = horror", ["colour = red"]]
    ).index("colour")


def test_array_form_of_wrong_shape_is_an_error() -> None:
    assert "inner arrays do not nest" in error(["a = 1", [["b = 2"]]]).message  # type: ignore[list-item]
    assert error(42).position == 0  # type: ignore[arg-type]


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "position", "words"),
    [
        ("price > ", 7, "expected a value after `>` at 7"),
        ("brand = apple AND price >", 25, "expected a value after `>` at 25"),
        ("brand = hello world", 14, "quote a value that has spaces: 'hello world'"),
        ("price 10 20", 6, "expected an operator after `price` at 6"),
        ("price", 5, "expected an operator after `price`"),
        ("price 10 TO", 11, "expected a value after TO"),
        ("price 10 TO x", 12, "expected a number after TO at 12"),
        ("price > abc", 8, "ranges compare numbers only"),
        ("price = 1 TO 5", 10, "without an operator"),
        ("(brand = a", 10, "the `(` at 0 is not closed"),
        ("brand = a)", 9, "`)` at 9 closes no `(`"),
        ("brand = 'apple", 8, "the string starting at 8 has no closing '"),
        ("brand ! apple", 6, "expected `=` after `!` at 6"),
        ("brand = AND price = 1", 8, "quote it to use it as a value"),
        ("AND brand = 1", 0, "expected an attribute at 0, found `AND`"),
        ("brand = 1 AND", 13, "expected a condition after `AND` at 13"),
        ("brand = 1 OR OR brand = 2", 13, "expected an attribute at 13, found `OR`"),
        ("NOT", 3, "expected a condition after `NOT`"),
        ("genre IN horror", 9, "expected `[` after IN at 9"),
        ("genre IN [a b]", 12, "expected `,` or `]` at 12"),
        ("genre IN [a, b", 14, "the `[` at 9 is not closed"),
        ("genre NOT = a", 10, "expected IN or EXISTS after `genre NOT` at 10"),
        ("tags IS full", 8, "expected NULL, EMPTY, NOT NULL or NOT EMPTY after IS at 8"),
        ("tags IS NOT full", 12, "expected NULL or EMPTY after IS at 12"),
        ("title CONTAINS x", 6, "`CONTAINS` at 6 is not supported"),
        ("_geoRadius(45.4, 9.1, 2000)", 0, "geographic filters"),
        ("brand = 1 brand = 2", 10, "expected AND, OR or the end of the filter at 10"),
    ],
)
def test_syntax_errors_name_the_position_and_what_was_expected(expression: str, position: int, words: str) -> None:
    caught = error(expression)
    assert caught.position == position, caught.message
    assert words in caught.message
    assert caught.code == "invalid_search_filter"


def test_an_attribute_that_is_not_filterable_is_named_with_the_filterable_ones() -> None:
    caught = error("brand = a AND colour = red", ["price", "brand"])
    assert caught.position == 14
    assert caught.message == "`colour` is not filterable; filterable attributes: brand, price"
    assert caught.code == "invalid_search_filter"
    assert "no filterable attributes" in error("brand = a", []).message


def test_a_nested_attribute_must_be_declared_as_such() -> None:
    assert error("author.age > 3", ["author.name"]).message.startswith("`author.age` is not filterable")
    assert error("author.name = x", ["author"]).position == 0


def test_nesting_deeper_than_the_limit_is_an_error_not_a_crash() -> None:
    parse("(" * (MAX_DEPTH - 1) + "brand = 1" + ")" * (MAX_DEPTH - 1))
    caught = error("(" * 5000 + "brand = 1" + ")" * 5000)
    assert caught.position == MAX_DEPTH
    assert "deeper than" in caught.message
    assert "deeper than" in error("NOT " * 1000 + "brand = 1").message


def test_filter_attributes_lists_each_once() -> None:
    assert filter_attributes(parse("brand = a OR (price > 1 AND NOT brand = b) OR tags EXISTS")) == [
        "brand",
        "price",
        "tags",
    ]


# -- matches -------------------------------------------------------------------------------------

BOOK: dict[str, Any] = {
    "id": "1",
    "title": "The Left Hand of Darkness",
    "genre": ["Science Fiction", "classic"],
    "price": 12.5,
    "rating": 4,
    "stock": True,
    "tags": [],
    "author": {"name": "Ursula K. Le Guin", "born": 1929},
    "editions": [{"year": 1969, "publisher": "Ace"}, {"year": 2019, "publisher": "Gollancz"}],
    "isbn": "0441478123",
    "release_date": None,
    "code": "10",
}
ALL = [*BOOK, "author.name", "author.born", "editions.year", "editions.publisher", "missing", "missing.deep"]


def check(expression: Any, document: dict[str, Any] = BOOK) -> bool:
    result = parse_filter(expression, ALL)
    assert result is not None
    return matches(result, document)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("title = 'the left hand of darkness'", True),  # string equality ignores case
        ("title = 'Left Hand'", False),
        ("genre = classic", True),  # an array matches when any element does
        ("genre = 'science fiction'", True),
        ("genre != classic", False),
        ("genre != western", True),
        ("missing != 1", True),  # != is the complement of =
        ("price = 12.5", True),
        ("price = '12.5'", True),
        ("price > 12", True),
        ("price > 12.5", False),
        ("price >= 12.5", True),
        ("price < 13", True),
        ("price <= 12", False),
        ("price 12.5 TO 20", True),
        ("price 1 TO 12", False),
        ("rating = 4", True),
        ("code = 10", True),  # a bare number equals the same number written as a string
        ("code = 10.0", True),
        ("price = '12.50'", False),  # a quoted value compares as text: 12.5 is written "12.5"
        ("code > 5", False),  # ranges compare numbers only
        ("title > 5", False),
        ("stock = true", True),
        ("stock = 'TRUE'", True),
        ("stock = false", False),
        ("stock = 1", False),
        ("author.name = 'ursula k. le guin'", True),
        ("author.born 1900 TO 1930", True),
        ("editions.year = 2019", True),  # into the objects of an array
        ("editions.year > 2020", False),
        ("editions.publisher IN [ace, penguin]", True),
        ("editions.publisher NOT IN [ace, penguin]", False),
        ("genre IN []", False),
        ("genre NOT IN []", True),
        ("author EXISTS", True),
        ("author.name EXISTS", True),
        ("missing EXISTS", False),
        ("missing NOT EXISTS", True),
        ("missing.deep EXISTS", False),
        ("release_date EXISTS", True),  # null is a value that exists
        ("release_date IS NULL", True),
        ("release_date IS NOT NULL", False),
        ("missing IS NULL", False),
        ("title IS NOT NULL", True),
        ("tags IS EMPTY", True),
        ("genre IS EMPTY", False),
        ("missing IS EMPTY", False),
        ("missing IS NOT EMPTY", True),
        ("rating = 4 AND (genre = western OR price < 20)", True),
        ("rating = 4 AND genre = western OR price > 20", False),
        ("NOT (rating = 4 AND NOT stock = false)", False),
        (["rating = 4", ["genre = western", "price < 20"]], True),
        (["rating = 4", ["genre = western", "price > 20"]], False),
    ],
)
def test_matches_decides_as_meilisearch(expression: Any, expected: bool) -> None:
    assert check(expression) is expected


def test_dotted_keys_and_nested_objects_are_the_same_path() -> None:
    assert check("author.name = x", {"author.name": "X"})
    assert check("author.name = x", {"author": {"name": "x"}})
    assert check("author.name = x", {"author": [{"name": "y"}, {"name": ["z", "x"]}]})
    assert not check("author.name = x", {"author": "x"})
    assert check("author.name IS EMPTY", {"author": {"name": {}}})
    assert check("tags IS EMPTY", {"tags": ""})


# -- property tests ------------------------------------------------------------------------------

ATTRIBUTES = st.sampled_from(["brand", "price", "author.name", "tags"])
VALUES = st.one_of(
    st.text(max_size=12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
)
NUMBERS = st.floats(allow_nan=False, allow_infinity=False, width=64)
LEAVES = st.one_of(
    st.builds(Comparison, ATTRIBUTES, st.sampled_from(["=", "!="]), VALUES, st.just(0)),
    st.builds(Comparison, ATTRIBUTES, st.sampled_from([">", ">=", "<", "<="]), NUMBERS, st.just(0)),
    st.builds(Between, ATTRIBUTES, NUMBERS, NUMBERS, st.just(0)),
    st.builds(In, ATTRIBUTES, st.lists(VALUES, max_size=4).map(tuple), st.booleans(), st.just(0)),
    st.builds(Exists, ATTRIBUTES, st.booleans(), st.just(0)),
    st.builds(IsNull, ATTRIBUTES, st.booleans(), st.just(0)),
    st.builds(IsEmpty, ATTRIBUTES, st.booleans(), st.just(0)),
)
FILTERS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(Not, inner, st.just(0)),
    ),
    max_leaves=8,
)


def _without_positions(node: Filter) -> Filter:
    if isinstance(node, And):
        return And(tuple(_without_positions(item) for item in node.items))
    if isinstance(node, Or):
        return Or(tuple(_without_positions(item) for item in node.items))
    if isinstance(node, Not):
        return Not(_without_positions(node.item), 0)
    return type(node)(**{**node.__dict__, "position": 0})


@given(FILTERS)
def test_a_printed_filter_parses_back_to_the_same_tree(tree: Filter) -> None:
    printed = format_filter(tree)
    parsed = parse_filter(printed, ["brand", "price", "author.name", "tags"])
    assert parsed is not None
    assert _without_positions(parsed) == tree


DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "brand": st.one_of(st.none(), st.text(max_size=3), st.lists(st.text(max_size=3), max_size=2)),
        "price": st.one_of(st.integers(-3, 3), st.floats(-3, 3), st.lists(st.integers(-3, 3), max_size=2)),
        "tags": st.one_of(st.just([]), st.just(""), st.booleans()),
        "author": st.fixed_dictionaries({}, optional={"name": st.one_of(st.none(), st.text(max_size=2))}),
    },
)


@given(FILTERS, DOCUMENTS)
def test_not_is_the_complement_and_the_array_form_means_the_joined_expression(
    tree: Filter, document: dict[str, Any]
) -> None:
    assert matches(Not(tree, 0), document) is not matches(tree, document)
    printed = format_filter(tree)
    filterable = ["brand", "price", "author.name", "tags"]
    as_array = parse_filter([printed, [printed, "price > 0"]], filterable)
    joined = parse_filter(join_filter([printed, [printed, "price > 0"]]), filterable)
    assert as_array is not None and joined is not None
    assert matches(as_array, document) is matches(joined, document) is matches(tree, document)


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_filter_error_within_the_text(text: str) -> None:
    position = None
    try:
        parse_filter(text, ["brand", "price"])
    except FilterError as caught:
        position = caught.position
    assert position is None or 0 <= position <= len(text)


# -- sort and facets -----------------------------------------------------------------------------


def test_sort_items_parse_in_order() -> None:
    assert parse_sort(["price:asc", "rating:DESC", "author.name:desc"], ["price", "rating", "author.name"]) == [
        SortKey("price", False),
        SortKey("rating", True),
        SortKey("author.name", True),
    ]
    assert parse_sort(None, ["price"]) == []


@pytest.mark.parametrize(
    ("items", "position", "words"),
    [
        (["price"], 0, "needs a direction: `price:asc` or `price:desc`"),
        (["price:asc", "rating:up"], 1, "the direction is `asc` or `desc`, not `up`"),
        (["price:asc", "colour:asc"], 1, "`colour` is not sortable; sortable attributes: price, rating"),
        ([":asc"], 0, "needs a direction"),
        (["_geoPoint(1, 2):asc"], 0, "not supported"),
    ],
)
def test_sort_errors_name_the_item(items: list[str], position: int, words: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_sort(items, ["rating", "price"])
    assert caught.value.position == position
    assert caught.value.code == "invalid_search_sort"
    assert words in caught.value.message


def test_facets_are_checked_deduplicated_and_star_means_all() -> None:
    assert check_facets(["genre", "brand", "genre"], ["brand", "genre"]) == ["genre", "brand"]
    assert check_facets(["*"], ["brand", "genre"]) == ["brand", "genre"]
    assert check_facets(None, ["brand"]) == []
    with pytest.raises(FilterError) as caught:
        check_facets(["brand", "colour"], ["genre", "brand"])
    assert caught.value.position == 1
    assert caught.value.code == "invalid_search_facets"
    assert caught.value.message == "`colour` is not facetable; facetable attributes: brand, genre"
