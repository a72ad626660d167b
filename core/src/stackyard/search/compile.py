"""A filter (the AST of `filter_ast`) compiled to a tantivy query over the layout's filter
fields: strings match exactly and case-insensitively (the `f` JSON field holds them
lowercased), numbers by range on the attribute's f64 field (a numeric string in a document
counts as its number), an array matches when any element does, `!=` and NOT IN also match
documents without the attribute (as Meilisearch)."""

from __future__ import annotations

import math

import tantivy

from .filter_ast import And, Between, Comparison, Exists, Filter, FilterError, In, IsEmpty, IsNull, Not, Or, Value
from .layout import Layout, number_text

Occur = tantivy.Occur


class FilterCompiler:
    def __init__(self, layout: Layout, schema: tantivy.Schema) -> None:
        self.layout = layout
        self.schema = schema

    def compile(self, node: Filter) -> tantivy.Query:
        if isinstance(node, And):
            return tantivy.Query.boolean_query([(Occur.Must, self.compile(item)) for item in node.items])
        if isinstance(node, Or):
            return tantivy.Query.boolean_query([(Occur.Should, self.compile(item)) for item in node.items])
        if isinstance(node, Not):
            return self._negate(self.compile(node.item))
        if isinstance(node, Comparison):
            j = self._number(node.attribute, node.position)
            if node.op == "=":
                return self._equals(j, node.value)
            if node.op == "!=":
                return self._negate(self._equals(j, node.value))
            if not isinstance(node.value, float | int) or isinstance(node.value, bool):
                return tantivy.Query.empty_query()  # ranges compare numbers only
            bound = float(node.value)
            low, high = (bound, None) if node.op in (">", ">=") else (None, bound)
            return self._range(j, low, high, include_lower=node.op != ">", include_upper=node.op != "<")
        if isinstance(node, Between):
            j = self._number(node.attribute, node.position)
            return self._range(j, node.low, node.high)
        if isinstance(node, In):
            j = self._number(node.attribute, node.position)
            any_of = tantivy.Query.boolean_query([(Occur.Should, self._equals(j, v)) for v in node.values])
            return self._negate(any_of) if node.negated else any_of
        if isinstance(node, Exists | IsNull | IsEmpty):
            self._number(node.attribute, node.position)
            name = {Exists: "_has", IsNull: "_null", IsEmpty: "_empty"}[type(node)]
            query = tantivy.Query.term_query(self.schema, name, node.attribute)
            return self._negate(query) if node.negated else query
        raise TypeError(f"not a filter node: {node!r}")

    def _number(self, attribute: str, position: int) -> int:
        j = self.layout.number(attribute)
        if j is None:
            filterable = ", ".join(self.layout.spec.filter_attributes) or "none"
            raise FilterError(
                f"Attribute `{attribute}` is not filterable. Available filterable attributes are: {filterable}.",
                position,
            )
        return j

    def _equals(self, j: int, value: Value) -> tantivy.Query:
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float | int):
            text = number_text(value)
            clauses.append((Occur.Should, self._range(j, float(value), float(value))))
        else:
            text = value
        clauses.append((Occur.Should, tantivy.Query.term_query(self.schema, f"f.a{j}", text.lower())))
        return clauses[0][1] if len(clauses) == 1 else tantivy.Query.boolean_query(clauses)

    def _range(
        self,
        j: int,
        low: float | None,
        high: float | None,
        *,
        include_lower: bool = True,
        include_upper: bool = True,
    ) -> tantivy.Query:
        return tantivy.Query.range_query(
            self.schema,
            f"n{j}",
            tantivy.FieldType.Float,
            low if low is not None else -math.inf,
            high if high is not None else math.inf,
            include_lower=include_lower,
            include_upper=include_upper,
        )

    @staticmethod
    def _negate(query: tantivy.Query) -> tantivy.Query:
        return tantivy.Query.boolean_query([(Occur.Must, tantivy.Query.all_query()), (Occur.MustNot, query)])
