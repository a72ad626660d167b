"""The index files' layout: which tantivy fields a SearchIndexSpec gives, and how a JSON
document becomes a tantivy document. Everything here is fixed when an index is built; a spec
whose layout differs (`layout_key`) needs a rebuild, other settings apply to queries only.

Fields:
- `_id` (raw, stored, indexed): the primary key value as a string; `_src` (stored bytes): the
  document's JSON as given; `_fields`: top-level attribute names (fieldDistribution).
- `e<slot>` (exact words, with positions), `s<slot>` (stemmed words) and `x<slot>` (a whole
  value's words joined by a space, for the exactness rule) per searchable slot. A
  slot is an attribute rank: with an explicit searchableAttributes list, attribute i fills slot
  i (up to MAX_SLOTS; later ones share the last); with `*`, the i-th top-level attribute of the
  document fills slot i. Typo-disabled attributes get slots of their own (`typo` False).
- `f` (JSON, indexed and fast, lowercased keyword strings): filter and facet values by
  attribute number `a<j>` (numbers and booleans written out: 10, 9.99, true); `n<j>` (f64,
  indexed and fast): the numbers of a filterable or sortable attribute (JSON numbers only,
  as the filters' range operators compare); `k<j>` (u64 fast): a string
  sort key (the first 8 bytes of the lowercased string); `_has`, `_null`, `_empty`: the
  filterable attributes present, null, empty (EXISTS, IS NULL, IS EMPTY).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import tantivy

from stackyard.resources.search import SearchIndexSpec

from . import documents_json
from .analysis import EXACT_TOKENIZER, KEYWORD_TOKENIZER, STEM_TOKENIZER, exact_analyzer
from .paths import found_at

LAYOUT_VERSION = 2
MAX_WHOLE_CHARS = 200
"""Longer values are not compared whole with a query (one is at most 10 words)."""
MAX_SLOTS = 10
"""Searchable attribute ranks that order results; later attributes share the last rank."""
MAX_REMEMBERED_WHOLES = 100_000
"""Whole values a layout remembers (Layout.whole) before it forgets them all."""


@dataclass(frozen=True)
class Slot:
    number: int
    rank: int  # 0 = first searchable attribute (ranks highest)
    typo: bool  # typos allowed on its words (typoTolerance.disableOnAttributes)

    @property
    def exact(self) -> str:
        return f"e{self.number}"

    @property
    def stemmed(self) -> str:
        return f"s{self.number}"

    @property
    def whole(self) -> str:
        return f"x{self.number}"


def _flatten(values: list[Any], into: list[Any]) -> list[Any]:
    for value in values:
        if isinstance(value, list):
            _flatten(value, into)
        else:
            into.append(value)
    return into


def values_at(document: Mapping[str, Any], path: str) -> list[Any]:
    """The values at a dotted path, arrays flattened."""
    return _flatten(found_at(document, path), [])


def texts(value: Any) -> Iterator[str]:
    """The searchable text of a value: strings and numbers, nested ones in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield number_text(value)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from texts(item)


def number_text(value: float) -> str:
    """A number as Meilisearch writes it in a facet or a filter: 10, 9.99."""
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() else repr(value)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def keyword(value: Any) -> str | None:
    """A filter or facet value as a string: strings as they are, numbers and booleans written out."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return number_text(value)
    return None


def sort_key(text: str) -> int:
    return int.from_bytes(text.lower().encode()[:8].ljust(8, b"\0"), "big")


@dataclass(frozen=True)
class Layout:
    spec: SearchIndexSpec
    star: bool
    slots: tuple[Slot, ...]
    attribute_slots: dict[str, Slot]  # explicit searchable attribute -> its slot
    star_slots: tuple[Slot, ...]  # with `*`: slot by document order (typo-enabled)
    star_notypo: Slot | None  # with `*`: the slot of typo-disabled attributes
    filter_attributes: tuple[str, ...]  # filterable + facetable + sortable, numbered a<j>, n<j>
    sortable: frozenset[str]
    stemmed: bool
    analyzer: tantivy.TextAnalyzer
    # derived, for tantivy_document: the schema, each slot's field names, the explicit
    # searchable attributes with their slot numbers, the filter attributes (j, name, sortable)
    tantivy_schema: tantivy.Schema = field(init=False, repr=False, compare=False)
    slot_fields: dict[int, tuple[str, str | None, str]] = field(init=False, repr=False, compare=False)
    attribute_numbers: tuple[tuple[str, int], ...] = field(init=False, repr=False, compare=False)
    filter_plan: tuple[tuple[int, str, bool], ...] = field(init=False, repr=False, compare=False)
    wholes: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        derived = {
            "tantivy_schema": self.schema(),
            "slot_fields": {
                slot.number: (slot.exact, slot.stemmed if self.stemmed else None, slot.whole) for slot in self.slots
            },
            "attribute_numbers": tuple((name, slot.number) for name, slot in self.attribute_slots.items()),
            "filter_plan": tuple(
                (j, attribute, attribute in self.sortable) for j, attribute in enumerate(self.filter_attributes)
            ),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, spec: SearchIndexSpec) -> Layout:
        disabled = set(spec.typo_tolerance.disable_on_attributes)
        star = spec.searchable_attributes == ["*"]
        slots: list[Slot] = []
        attribute_slots: dict[str, Slot] = {}
        star_slots: tuple[Slot, ...] = ()
        star_notypo: Slot | None = None
        if star:
            star_slots = tuple(Slot(i, i, True) for i in range(MAX_SLOTS))
            slots.extend(star_slots)
            if disabled:
                star_notypo = Slot(MAX_SLOTS, MAX_SLOTS - 1, False)
                slots.append(star_notypo)
        else:
            by_key: dict[tuple[int, bool], Slot] = {}
            for i, attribute in enumerate(spec.searchable_attributes):
                key = (min(i, MAX_SLOTS - 1), attribute not in disabled)
                if key not in by_key:
                    by_key[key] = Slot(len(slots), key[0], key[1])
                    slots.append(by_key[key])
                attribute_slots[attribute] = by_key[key]
        filter_attributes = tuple(dict.fromkeys([*spec.filter_attributes, *spec.sortable_attributes]))
        return cls(
            spec=spec,
            star=star,
            slots=tuple(slots),
            attribute_slots=attribute_slots,
            star_slots=star_slots,
            star_notypo=star_notypo,
            filter_attributes=filter_attributes,
            sortable=frozenset(spec.sortable_attributes),
            stemmed=spec.language != "none",
            analyzer=exact_analyzer(),
        )

    @staticmethod
    def key(spec: SearchIndexSpec) -> str:
        """A hash of everything the files depend on."""
        material = {
            "version": LAYOUT_VERSION,
            "primaryKey": spec.primary_key,
            "searchable": spec.searchable_attributes,
            "typoDisabledAttributes": sorted(spec.typo_tolerance.disable_on_attributes),
            "filter": list(dict.fromkeys([*spec.filter_attributes, *spec.sortable_attributes])),
            "sortable": sorted(spec.sortable_attributes),
            "language": spec.language,
        }
        return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def number(self, attribute: str) -> int | None:
        try:
            return self.filter_attributes.index(attribute)
        except ValueError:
            return None

    @property
    def max_rank(self) -> int:
        return max((slot.rank for slot in self.slots), default=0)

    def schema(self) -> tantivy.Schema:
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("_id", stored=True, tokenizer_name="raw", index_option="basic")
        builder.add_bytes_field("_src", stored=True)
        builder.add_text_field("_fields", tokenizer_name="raw", fast=True, index_option="basic")
        for slot in self.slots:
            builder.add_text_field(slot.exact, tokenizer_name=EXACT_TOKENIZER, index_option="position")
            if self.stemmed:
                builder.add_text_field(slot.stemmed, tokenizer_name=STEM_TOKENIZER, index_option="freq")
            builder.add_text_field(slot.whole, tokenizer_name="raw", index_option="basic")
        builder.add_json_field("f", fast=True, tokenizer_name=KEYWORD_TOKENIZER, index_option="basic")
        for name in ("_has", "_null", "_empty"):
            builder.add_text_field(name, tokenizer_name="raw", index_option="basic")
        for j, attribute in enumerate(self.filter_attributes):
            builder.add_float_field(f"n{j}", indexed=True, fast=True)
            if attribute in self.sortable:
                builder.add_unsigned_field(f"k{j}", fast=True)
        return builder.build()

    def searchable_texts(self, document: Mapping[str, Any]) -> Iterator[tuple[Slot, str]]:
        if self.star:
            disabled = set(self.spec.typo_tolerance.disable_on_attributes)
            for i, (name, value) in enumerate(document.items()):
                slot = (
                    self.star_notypo
                    if name in disabled and self.star_notypo
                    else self.star_slots[min(i, MAX_SLOTS - 1)]
                )
                for text in texts(value):
                    yield slot, text
        else:
            for attribute, slot in self.attribute_slots.items():
                for value in values_at(document, attribute):
                    for text in texts(value):
                        yield slot, text

    def searchable_attributes_of(self, document: Mapping[str, Any]) -> list[str]:
        """Attributes searched in this document, in rank order (for highlighting)."""
        if self.star:
            return [name for name, value in document.items() if any(True for _ in texts(value))]
        return list(self.attribute_slots)

    def tantivy_document(self, id_text: str, document: Mapping[str, Any]) -> tantivy.Document:
        """Every field's values gathered in one dict and converted by tantivy in one call; the
        values, and their order within a field, are those of adding each value in turn (a
        tantivy document maps a field to its values)."""
        fields: dict[str, list[Any]] = {"_id": [id_text], "_src": [documents_json.dumps(document)]}
        if document:
            fields["_fields"] = list(document)
        self._add_searchable(document, fields)
        self._add_filterable(document, fields)
        return tantivy.Document.from_dict(fields, self.tantivy_schema)

    def _texts_by_slot(self, document: Mapping[str, Any]) -> dict[int, list[str]]:
        """The strings of each searchable attribute's slot, in attribute order."""
        by_slot: dict[int, list[str]] = {}
        if self.star:
            for slot, text in self.searchable_texts(document):
                by_slot.setdefault(slot.number, []).append(text)
            return by_slot
        for attribute, number in self.attribute_numbers:
            if "." in attribute:
                values = values_at(document, attribute)
            elif attribute in document:
                values = [document[attribute]]
            else:
                continue
            found = by_slot.get(number)
            if found is None:
                found = by_slot[number] = []
            for value in values:
                if type(value) is str:
                    found.append(value)
                else:
                    found.extend(texts(value))
        return by_slot

    def _add_searchable(self, document: Mapping[str, Any], fields: dict[str, list[Any]]) -> None:
        """The exact, stemmed and whole fields of each slot."""
        whole = self.whole
        for number, slot_texts in self._texts_by_slot(document).items():
            if not slot_texts:
                continue
            exact, stemmed, whole_name = self.slot_fields[number]
            fields[exact] = slot_texts
            if stemmed is not None:
                fields[stemmed] = slot_texts
            wholes = [whole(text) for text in slot_texts if len(text) <= MAX_WHOLE_CHARS]
            if wholes:
                fields[whole_name] = wholes

    def _add_filterable(self, document: Mapping[str, Any], fields: dict[str, list[Any]]) -> None:
        """The keyword (f), number (n), sort key (k) and presence (_has, _null, _empty) fields
        of each filterable attribute the document has."""
        filters: dict[str, list[str]] = {}
        has: list[str] = []
        nulls: list[str] = []
        empties: list[str] = []
        for j, attribute, sortable in self.filter_plan:
            if "." in attribute:
                raw = found_at(document, attribute)
                if not raw:
                    continue
            elif attribute in document:
                raw = [document[attribute]]
            else:
                continue
            has.append(attribute)
            value = raw[0]
            kind = type(value)
            if len(raw) == 1 and (kind is float or kind is int):  # the common cases first, as the general one
                filters[f"a{j}"] = [number_text(value)]
                finite = as_number(value)
                if finite is not None:
                    fields[f"n{j}"] = [finite]
            elif len(raw) == 1 and kind is str:
                if value == "":
                    empties.append(attribute)
                filters[f"a{j}"] = [value]
                if sortable:
                    fields[f"k{j}"] = [sort_key(value)]
            else:
                if any(v is None for v in raw):
                    nulls.append(attribute)
                if any(v == "" or v == [] or v == {} for v in raw):
                    empties.append(attribute)
                self._add_values(j, sortable, _flatten(raw, []), fields, filters)
        for name, values in (("_has", has), ("_null", nulls), ("_empty", empties)):
            if values:
                fields[name] = values
        if filters:
            fields["f"] = [filters]

    @staticmethod
    def _add_values(
        j: int, sortable: bool, flat: list[Any], fields: dict[str, list[Any]], filters: dict[str, list[str]]
    ) -> None:
        """Any values of filterable attribute number j (arrays flattened, nulls, objects)."""
        words = [w for w in (keyword(v) for v in flat) if w is not None]
        if words:
            filters[f"a{j}"] = words
        numbers = [n for n in (as_number(v) for v in flat) if n is not None]
        if numbers:
            fields[f"n{j}"] = numbers
        if sortable:
            strings = [v for v in flat if isinstance(v, str)]
            if strings:
                fields[f"k{j}"] = [sort_key(strings[0])]

    def whole(self, text: str) -> str:
        """A value's words joined by a space (the `x` fields), remembered: brands, categories
        and tags come back in document after document."""
        found = self.wholes.get(text)
        if found is None:
            found = " ".join(self.analyzer.analyze(text))
            if len(self.wholes) >= MAX_REMEMBERED_WHOLES:
                self.wholes.clear()
            self.wholes[text] = found
        return found
