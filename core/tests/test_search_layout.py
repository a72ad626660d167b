"""The tantivy document of a JSON document: the values every field gets, built in one call,
are those of adding each value to its field in turn (the plain reading of the layout)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tantivy
from hypothesis import given, settings
from hypothesis import strategies as st
from stackyard.resources.search import SearchIndexSpec
from stackyard.search import documents_json
from stackyard.search.layout import MAX_WHOLE_CHARS, Layout, _flatten, as_number, keyword, sort_key
from stackyard.search.paths import found_at

SETTINGS: dict[str, Any] = {
    "searchableAttributes": ["title", "brand", "tags", "author.name"],
    "filterableAttributes": ["price", "tags", "author.name", "note"],
    "facetableAttributes": ["brand"],
    "sortableAttributes": ["price", "title"],
    "typoTolerance": {"disableOnAttributes": ["brand"]},
}
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "Nike", "Dr. Martens", "café crème", "x" * (MAX_WHOLE_CHARS + 1)]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["name", "x"]), inner, max_size=2),
    max_leaves=6,
)
DOCUMENTS = st.dictionaries(
    st.sampled_from(["title", "brand", "tags", "author", "author.name", "price", "note", "other"]),
    VALUES,
    max_size=8,
)


def value_by_value(layout: Layout, id_text: str, document: Mapping[str, Any]) -> tantivy.Document:
    doc = tantivy.Document()
    doc.add_text("_id", id_text)
    doc.add_bytes("_src", documents_json.dumps(document))
    for name in document:
        doc.add_text("_fields", name)
    for slot, text in layout.searchable_texts(document):
        doc.add_text(slot.exact, text)
        if layout.stemmed:
            doc.add_text(slot.stemmed, text)
        if len(text) <= MAX_WHOLE_CHARS:
            doc.add_text(slot.whole, " ".join(layout.analyzer.analyze(text)))
    filters: dict[str, list[str]] = {}
    for j, attribute in enumerate(layout.filter_attributes):
        raw = found_at(document, attribute)
        if not raw:
            continue
        doc.add_text("_has", attribute)
        flat = _flatten(raw, [])
        if any(v is None for v in raw):
            doc.add_text("_null", attribute)
        if any(v == "" or v == [] or v == {} for v in raw):
            doc.add_text("_empty", attribute)
        words = [w for w in (keyword(v) for v in flat) if w is not None]
        if words:
            filters[f"a{j}"] = words
        for number in (n for n in (as_number(v) for v in flat) if n is not None):
            doc.add_float(f"n{j}", number)
        strings = [v for v in flat if isinstance(v, str)]
        if attribute in layout.sortable and strings:
            doc.add_unsigned(f"k{j}", sort_key(strings[0]))
    if filters:
        doc.add_json("f", filters)
    return doc


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS, st.sampled_from([{}, {"searchableAttributes": ["*"]}, {"language": "none"}]))
def test_document_fields_are_those_of_adding_each_value(document: dict[str, Any], changes: dict[str, Any]) -> None:
    layout = Layout.of(
        SearchIndexSpec.model_validate({"stackRef": {"name": "shop"}, "source": {"api": {}}, **SETTINGS, **changes})
    )
    for _ in range(2):  # the second time with the whole values remembered
        assert layout.tantivy_document("7", document).to_dict() == value_by_value(layout, "7", document).to_dict()
