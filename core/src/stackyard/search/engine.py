"""One search index on disk: a tantivy index whose layout comes from a SearchIndexSpec, with
Meilisearch's relevance, filters, facets, sort, pagination and highlighting.

Writes (add, delete, clear) go to one tantivy writer and become searchable and durable at
`commit`; searches read the last commit. The caller (the search service) writes from one
thread per index and searches from a pool; a SearchEngine is safe for that use.

How a search runs: the query words (analysis.py) become one tantivy query whose constant
scores order documents like Meilisearch's ranking rules (ranking.py); tantivy collects the
top hits by that score, with the filter (compile.py) as a required clause and the facets
as aggregations over the same query. Custom sort orders documents of equal relevance: with
a `sort`, the top SORT_WINDOW (or offset + limit when larger) hits by relevance are fetched and
reordered in Python by (relevance, sort values); a tie on relevance larger than that window is
narrowed by the first sort value until it fits (`_ranked_sorted`). With no query words,
tantivy sorts the matching documents by the first sort attribute and the window is reordered
by all of them (a tie on the first one fetched alone by the second). docs/search-relevance.md
says what this costs and where it stops being exact.
"""

from __future__ import annotations

import math
import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
import tantivy

from stackyard.resources.search import SearchIndexSpec

from .analysis import MAX_QUERY_WORDS, Analysis, QueryWord, register_tokenizers
from .compile import FilterCompiler
from .contract import PRIMARY_KEY_VALUE, FacetStats, SearchRequest, SearchResponse
from .filter_ast import Filter
from .filters import SortKey, check_facets, matches, parse_filter, parse_sort
from .highlight import Matcher, formatted, matcher, matches_position
from .layout import Layout, values_at
from .ranking import W_WORDS, RankingQueryBuilder, SearchPlan

__all__ = ["SORT_WINDOW", "DocumentError", "SearchEngine"]

SORT_WINDOW = 1000
"""Hits reordered by the sort attributes after relevance (see the module's docstring)."""
NARROWING = 6
"""Searches again on narrower sort ranges when a tie on relevance is larger than the window."""
WRITER_HEAP = 64_000_000
MAX_FACET_LABELS = 100_000
LAYOUT_FILE = "stackyard-layout.json"
_ID = re.compile(PRIMARY_KEY_VALUE)
Occur = tantivy.Occur


class DocumentError(ValueError):
    """A document that cannot be indexed; `code` is Meilisearch's: missing_document_id,
    invalid_document_id or invalid_document."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class SearchEngine:
    def __init__(self, path: Path, name: str, spec: SearchIndexSpec, index: tantivy.Index) -> None:
        self.path = path
        self.name = name
        self._index = index
        self._schema = index.schema
        self._writer: tantivy.IndexWriter | None = None
        self._write_lock = threading.Lock()
        self._pending: dict[str, dict[str, Any] | None] = {}
        self._cleared = False
        self._facet_labels: dict[tuple[str, str], str] = {}
        self._configure(spec)

    def _configure(self, spec: SearchIndexSpec) -> None:
        self._spec = spec
        self._layout = Layout.of(spec)
        self._analysis = Analysis(spec)
        self._ranking = RankingQueryBuilder(self._layout, self._schema)
        self._compiler = FilterCompiler(self._layout, self._schema)

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, name: str, spec: SearchIndexSpec) -> SearchEngine:
        """An empty index in `path` (created; it must not hold an index already)."""
        path.mkdir(parents=True, exist_ok=True)
        if tantivy.Index.exists(str(path)):
            raise FileExistsError(f"{path} already holds an index")
        layout = Layout.of(spec)
        index = tantivy.Index(layout.schema(), path=str(path), reuse=False)
        register_tokenizers(index, spec.language)
        (path / LAYOUT_FILE).write_bytes(orjson.dumps({"name": name, "layout": Layout.key(spec)}))
        return cls(path, name, spec, index)

    @classmethod
    def open(cls, path: Path, name: str, spec: SearchIndexSpec) -> SearchEngine:
        """The index in `path`, built for a spec with the same layout_key."""
        try:
            stored = orjson.loads((path / LAYOUT_FILE).read_bytes())
        except FileNotFoundError:
            raise FileNotFoundError(f"no search index in {path}") from None
        if stored.get("layout") != Layout.key(spec):
            raise ValueError(f"the index in {path} was built for other settings: rebuild it")
        index = tantivy.Index.open(str(path))
        register_tokenizers(index, spec.language)
        index.reload()
        return cls(path, name, spec, index)

    @staticmethod
    def layout_key(spec: SearchIndexSpec) -> str:
        return Layout.key(spec)

    @staticmethod
    def stored_documents(path: Path, batch: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Every document of the index in `path` as it was given (its `_src`), in batches,
        whatever the layout it was built with: the index is opened with the schema in its own
        files, and nothing but the stored source is read. How the documents of an index built
        by an older engine (another LAYOUT_VERSION) are carried into the current layout.
        Raises when `path` holds no readable index or its documents have no stored source."""
        if not tantivy.Index.exists(str(path)):
            raise FileNotFoundError(f"no search index in {path}")
        index = tantivy.Index.open(str(path))
        searcher = index.searcher()
        addresses = SearchEngine._addresses(searcher, tantivy.Query.all_query())
        for start in range(0, len(addresses), batch):
            yield [SearchEngine._source(searcher, a) for a in addresses[start : start + batch]]

    def update_settings(self, spec: SearchIndexSpec) -> None:
        """Settings that do not change the files (the same layout_key): synonyms, stop words,
        typo tolerance but disableOnAttributes, displayed attributes, pagination, faceting."""
        if Layout.key(spec) != Layout.key(self._spec):
            raise ValueError("these settings change the index files: rebuild the index")
        self._configure(spec)

    def close(self) -> None:
        """Uncommitted writes are dropped."""
        with self._write_lock:
            if self._writer is not None:
                self._writer.rollback()
                self._writer.wait_merging_threads()
                self._writer = None
            self._pending.clear()

    def remove(self) -> None:
        """Close and delete the files."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    # -- writes ----------------------------------------------------------------------------------

    def _writer_(self) -> tantivy.IndexWriter:
        if self._writer is None:
            self._writer = self._index.writer(heap_size=WRITER_HEAP, num_threads=1)
        return self._writer

    def _document_id(self, position: int, document: Any) -> str:
        key = self._spec.primary_key
        if not isinstance(document, Mapping):
            raise DocumentError(f"document {position} is not a JSON object", "invalid_document")
        if key not in document:
            raise DocumentError(f"document {position} has no primary key `{key}`", "missing_document_id")
        value = document[key]
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        elif isinstance(value, str):
            text = value
        else:
            raise DocumentError(
                f"document {position}: the primary key `{key}` must be a string or an integer", "invalid_document_id"
            )
        if not _ID.fullmatch(text):
            raise DocumentError(
                f"document {position}: `{text[:100]}` is not a valid id (letters, digits, - and _, at most 511)",
                "invalid_document_id",
            )
        return text

    def _current(self, id_text: str) -> dict[str, Any] | None:
        if id_text in self._pending:
            return self._pending[id_text]
        if self._cleared:
            return None
        return self.get_document(id_text)

    def add_documents(self, docs: Sequence[Mapping[str, Any]], *, merge: bool = False) -> int:
        """Add or replace documents by primary key (merge: the fields given update those of
        an existing document, the others are kept). A bad document raises DocumentError and
        nothing of the batch is written."""
        with self._write_lock:
            prepared: dict[str, dict[str, Any]] = {}
            for position, document in enumerate(docs):
                id_text = self._document_id(position, document)
                new = dict(document)
                if merge:
                    base = prepared.get(id_text)
                    if base is None:
                        base = self._current(id_text)
                    if base is not None:
                        new = {**base, **new}
                prepared[id_text] = new
            built: list[tuple[str, dict[str, Any], tantivy.Document]] = []
            for id_text, document in prepared.items():
                try:
                    built.append((id_text, document, self._layout.tantivy_document(id_text, document)))
                except (TypeError, ValueError, OverflowError) as error:
                    raise DocumentError(f"document {id_text} cannot be indexed: {error}", "invalid_document") from None
            writer = self._writer_()
            for id_text, document, doc in built:
                writer.delete_documents_by_term("_id", id_text)
                writer.add_document(doc)
                self._pending[id_text] = document
            return len(docs)

    def delete_documents(self, ids: Sequence[str]) -> int:
        with self._write_lock:
            writer = self._writer_()
            deleted = 0
            for id_text in dict.fromkeys(str(i) for i in ids):
                if self._current(id_text) is not None:
                    deleted += 1
                writer.delete_documents_by_term("_id", id_text)
                self._pending[id_text] = None
            return deleted

    def delete_by_filter(self, filter: Filter) -> int:
        query = self._compiler.compile(filter)
        with self._write_lock:
            searcher = self._index.searcher()
            doomed = (
                set() if self._cleared else {self._id_of(searcher, addr) for addr in self._addresses(searcher, query)}
            )
            for id_text, document in self._pending.items():
                if document is not None and matches(filter, document):
                    doomed.add(id_text)
                else:
                    doomed.discard(id_text)
            self._writer_().delete_documents_by_query(query)
            for id_text in doomed:
                self._pending[id_text] = None
            return len(doomed)

    def clear(self) -> int:
        with self._write_lock:
            count = self._count_now()
            # a delete by query applies to every document added before it, committed or not
            # (tantivy's delete_all_documents leaves the uncommitted ones)
            self._writer_().delete_documents_by_query(tantivy.Query.all_query())
            self._pending.clear()
            self._cleared = True
            return count

    def _count_now(self) -> int:
        """Documents there would be after a commit now."""
        if self._cleared:
            return sum(1 for d in self._pending.values() if d is not None)
        searcher = self._index.searcher()
        count = searcher.num_docs
        for id_text, document in self._pending.items():
            exists = _count(searcher.search(tantivy.Query.term_query(self._schema, "_id", id_text), 1)) > 0
            count += (document is not None) - exists
        return count

    def commit(self) -> None:
        with self._write_lock:
            if self._writer is None:
                return
            self._writer.commit()
            self._index.reload()
            self._pending.clear()
            self._cleared = False

    # -- reads -----------------------------------------------------------------------------------

    @staticmethod
    def _addresses(searcher: tantivy.Searcher, query: tantivy.Query) -> list[tantivy.DocAddress]:
        total = searcher.num_docs
        if total == 0:
            return []
        return [address for _, address in searcher.search(query, total, count=False).hits]

    @staticmethod
    def _id_of(searcher: tantivy.Searcher, address: tantivy.DocAddress) -> str:
        return str(searcher.doc(address).get_first("_id"))

    @staticmethod
    def _source(searcher: tantivy.Searcher, address: tantivy.DocAddress) -> dict[str, Any]:
        source: dict[str, Any] = orjson.loads(cast(bytes, searcher.doc(address).get_first("_src")))
        return source

    def get_document(self, id: str, fields: Sequence[str] | None = None) -> dict[str, Any] | None:
        searcher = self._index.searcher()
        hits = searcher.search(tantivy.Query.term_query(self._schema, "_id", str(id)), 1, count=False).hits
        if not hits:
            return None
        return _project(self._source(searcher, hits[0][1]), fields)

    def documents(
        self, offset: int, limit: int, fields: Sequence[str] | None = None, filter: Filter | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        searcher = self._index.searcher()
        query = self._compiler.compile(filter) if filter is not None else tantivy.Query.all_query()
        result = searcher.search(query, max(limit, 1), count=True, offset=offset)
        hits = result.hits[:limit]
        return [_project(self._source(searcher, address), fields) for _, address in hits], _count(result)

    def iter_documents(self, batch: int = 1000) -> Iterator[list[dict[str, Any]]]:
        searcher = self._index.searcher()
        addresses = self._addresses(searcher, tantivy.Query.all_query())
        for start in range(0, len(addresses), batch):
            yield [self._source(searcher, a) for a in addresses[start : start + batch]]

    def ids(self) -> set[str]:
        searcher = self._index.searcher()
        return {self._id_of(searcher, a) for a in self._addresses(searcher, tantivy.Query.all_query())}

    def count(self) -> int:
        return int(self._index.searcher().num_docs)

    def field_distribution(self) -> dict[str, int]:
        searcher = self._index.searcher()
        if searcher.num_docs == 0:
            return {}
        result = searcher.aggregate(tantivy.Query.all_query(), {"f": {"terms": {"field": "_fields", "size": 10_000}}})
        return {
            bucket["key"]: int(bucket["doc_count"]) for bucket in sorted(result["f"]["buckets"], key=lambda b: b["key"])
        }

    # -- search ----------------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        spec = self._spec
        filter_node = parse_filter(request.filter, spec.filter_attributes)
        sort_keys = parse_sort(request.sort, spec.sortable_attributes)
        facets = check_facets(request.facets, spec.facetable_attributes)
        words = self._analysis.query_words(request.q or "")
        searcher = self._index.searcher()

        filter_query = self._compiler.compile(filter_node) if filter_node is not None else None
        offset, limit = request.window
        max_total = spec.pagination.max_total_hits
        end = min(offset + limit, max_total)
        plan: SearchPlan | None = None
        if words:
            whole = " ".join(self._analysis.words(request.q or "")[:MAX_QUERY_WORDS])
            plan = self._ranking.plan(words, request.matching_strategy, filter_query, searcher, whole)
            match = plan.match
            if sort_keys:
                narrow = (words, filter_query, whole)
                hits, total = self._ranked_sorted(searcher, plan, request, narrow, sort_keys, end)
            else:
                hits, total = self._ranked(searcher, plan, end, max_total)
            hits = hits[offset:end]
        else:
            match = filter_query if filter_query is not None else tantivy.Query.all_query()
            hits, total = self._browse(searcher, match, sort_keys, offset, end)

        marker = matcher(words, self._analysis) if words else None
        response_hits = [
            self._hit(searcher, address, plan.ranking_score(score) if plan else 1.0, request, marker)
            for score, address in hits
        ]
        distribution, stats = self._facets(searcher, match, facets) if facets else (None, None)
        capped = min(total, max_total)
        processing = int((time.perf_counter() - started) * 1000)
        common: dict[str, Any] = {
            "hits": response_hits,
            "query": request.q or "",
            "processing_time_ms": processing,
            "facet_distribution": distribution,
            "facet_stats": stats,
        }
        if request.paged:
            per_page = request.hits_per_page if request.hits_per_page is not None else 20
            return SearchResponse(
                **common,
                page=request.page or 1,
                hits_per_page=per_page,
                total_hits=capped,
                total_pages=math.ceil(capped / per_page) if per_page else 0,
            )
        return SearchResponse(**common, offset=request.offset, limit=request.limit, estimated_total_hits=capped)

    def _ranked(
        self, searcher: tantivy.Searcher, plan: SearchPlan, need: int, max_total: int
    ) -> tuple[list[tuple[float, tantivy.DocAddress]], int]:
        """The best `need` hits, level by level (ranking.py), and the number of matches (exact
        up to max_total: beyond it, only that it is more)."""
        collected: list[tuple[float, tantivy.DocAddress]] = []
        seen = 0
        for level in plan.levels:
            remaining = need - len(collected)
            if remaining <= 0:
                break
            words_score = W_WORDS * level.words
            for tier in level.tiers:
                result = searcher.search(tier, remaining, count=True)
                found = _count(result)
                if found >= remaining:
                    break
            seen += found
            collected.extend((float(score) + words_score, address) for score, address in result.hits)
        if seen >= max_total:
            return collected, seen
        return collected, _count(searcher.search(plan.match, 1, count=True))

    def _ranked_sorted(
        self,
        searcher: tantivy.Searcher,
        plan: SearchPlan,
        request: SearchRequest,
        narrow: tuple[list[QueryWord], tantivy.Query | None, str],
        sort_keys: list[SortKey],
        end: int,
    ) -> tuple[list[tuple[float, tantivy.DocAddress]], int]:
        """The best `end` hits by (relevance, sort values). The best SORT_WINDOW by relevance
        are fetched and sorted. When the window cuts documents tied on its lowest relevance
        and that tie reaches the page, the search runs again on the documents whose first sort
        value does not come after the page's last one (every document scoring above the tie
        is in hand already), up to NARROWING times: a one-word query sorted by price finds the
        cheapest of thousands of equally relevant documents, not of the first thousand."""
        words, filter_query, whole = narrow
        max_total = self._spec.pagination.max_total_hits
        need = max(end, SORT_WINDOW)
        found, total = self._ranked(searcher, plan, need, max_total)
        kept: dict[tuple[int, int], tuple[float, tantivy.DocAddress]] = {}
        for attempt in range(NARROWING + 1):
            merged = {**kept, **{(a.segment_ord, a.doc): (score, a) for score, a in found}}
            ordered = self._sorted(searcher, list(merged.values()), sort_keys, True)
            if len(found) < need or end == 0 or len(ordered) < end:
                return ordered, total  # every match of this search is in hand
            lowest = min(score for score, _ in found)
            if ordered[end - 1][0] > lowest or attempt == NARROWING:
                return ordered, total  # the page ends above the tie the window cut
            narrower = self._not_beyond(searcher, sort_keys[0], ordered[end - 1][1])
            if narrower is None:
                return ordered, total
            kept = {key: hit for key, hit in merged.items() if hit[0] > lowest}
            narrowed = (
                narrower
                if filter_query is None
                else tantivy.Query.boolean_query([(Occur.Must, filter_query), (Occur.Must, narrower)])
            )
            plan = self._ranking.plan(words, request.matching_strategy, narrowed, searcher, whole)
            # each pass keeps about end / need of the tie: a wider window converges faster
            need = max(need, 4 * end)
            found, _ = self._ranked(searcher, plan, need, need)
        return ordered, total

    def _not_beyond(
        self, searcher: tantivy.Searcher, key: SortKey, address: tantivy.DocAddress
    ) -> tantivy.Query | None:
        """Documents whose value of a sort attribute does not come after this document's."""
        j = self._number(key.attribute)
        number = searcher.fast_field_values(f"n{j}", [address])[0]
        if number is not None:
            low, high = (float(number), math.inf) if key.descending else (-math.inf, float(number))
            return tantivy.Query.range_query(self._schema, f"n{j}", tantivy.FieldType.Float, low, high)
        string = searcher.fast_field_values(f"k{j}", [address])[0]
        if string is None:
            return None  # documents without the attribute come last: nothing to narrow by
        bounds = (int(string), 2**64 - 1) if key.descending else (0, int(string))
        strings = tantivy.Query.range_query(self._schema, f"k{j}", tantivy.FieldType.Unsigned, *bounds)
        numbers = tantivy.Query.exists_query(f"n{j}")  # numbers come before strings either way
        return tantivy.Query.boolean_query([(Occur.Should, strings), (Occur.Should, numbers)])

    def _browse(
        self,
        searcher: tantivy.Searcher,
        query: tantivy.Query,
        sort_keys: list[SortKey],
        offset: int,
        end: int,
    ) -> tuple[list[tuple[float, tantivy.DocAddress]], int]:
        """Hits without query words: in index order, or by the sort attributes."""
        if end <= offset:
            return [], _count(searcher.search(query, 1, count=True))
        if not sort_keys:
            result = searcher.search(query, end - offset, count=True, offset=offset)
            return list(result.hits), _count(result)
        first = sort_keys[0]
        field = self._first_sort_field(searcher, first.attribute)
        order = tantivy.Order.Desc if first.descending else tantivy.Order.Asc
        window = max(end, SORT_WINDOW)
        result = searcher.search(query, window, count=True, order_by_field=field, order=order)
        hits = [(1.0, address) for _, address in result.hits]
        ordered = self._sorted(searcher, hits, sort_keys, False)
        if len(sort_keys) > 1 and len(hits) == window:
            # documents tied on the first attribute are cut by the window: when the tie reaches
            # the page, fetch the tie alone, ordered by the second attribute
            values = searcher.fast_field_values(field, [ordered[end - 1][1], result.hits[-1][1]])
            if values[0] is not None and values[0] == values[1]:
                ordered = self._browse_tie(searcher, query, sort_keys, field, values[0], ordered, window)
        return ordered[offset:end], _count(result)

    def _browse_tie(
        self,
        searcher: tantivy.Searcher,
        query: tantivy.Query,
        sort_keys: list[SortKey],
        field: str,
        value: float,
        ordered: list[tuple[float, tantivy.DocAddress]],
        window: int,
    ) -> list[tuple[float, tantivy.DocAddress]]:
        kind = tantivy.FieldType.Float if field.startswith("n") else tantivy.FieldType.Unsigned
        bound = float(value) if kind == tantivy.FieldType.Float else int(value)
        tie = tantivy.Query.range_query(self._schema, field, kind, bound, bound)
        firsts = searcher.fast_field_values(field, [address for _, address in ordered])
        before = [hit for hit, first in zip(ordered, firsts, strict=True) if first is not None and first != value]
        second = sort_keys[1]
        order = tantivy.Order.Desc if second.descending else tantivy.Order.Asc
        result = searcher.search(
            tantivy.Query.boolean_query([(Occur.Must, query), (Occur.Must, tie)]),
            window,
            count=False,
            order_by_field=self._first_sort_field(searcher, second.attribute),
            order=order,
        )
        tied = [(1.0, address) for _, address in result.hits]
        return self._sorted(searcher, [*before, *tied], sort_keys, False)

    def _number(self, attribute: str) -> int:
        j = self._layout.number(attribute)
        if j is None:
            raise KeyError(attribute)  # parse_filter, parse_sort and check_facets let only declared ones through
        return j

    def _first_sort_field(self, searcher: tantivy.Searcher, attribute: str) -> str:
        j = self._number(attribute)
        numbers = _count(searcher.search(tantivy.Query.exists_query(f"n{j}"), 1, count=True))
        return f"n{j}" if numbers or attribute not in self._layout.sortable else f"k{j}"

    def _sorted(
        self,
        searcher: tantivy.Searcher,
        hits: list[tuple[float, tantivy.DocAddress]],
        sort_keys: list[SortKey],
        relevance: bool,
    ) -> list[tuple[float, tantivy.DocAddress]]:
        if not hits:
            return hits
        addresses = [address for _, address in hits]
        columns: list[list[tuple[int, float]]] = []
        for key in sort_keys:
            j = self._number(key.attribute)
            numbers = searcher.fast_field_values(f"n{j}", addresses)
            strings = searcher.fast_field_values(f"k{j}", addresses)
            sign = -1.0 if key.descending else 1.0
            column: list[tuple[int, float]] = []
            for number, string in zip(numbers, strings, strict=True):
                if number is not None:
                    column.append((0, sign * float(number)))
                elif string is not None:
                    column.append((1, sign * float(string)))
                else:
                    column.append((2, 0.0))
            columns.append(column)
        order = sorted(
            range(len(hits)),
            key=lambda i: (
                -hits[i][0] if relevance else 0.0,
                *(column[i] for column in columns),
                hits[i][1].segment_ord,
                hits[i][1].doc,
            ),
        )
        return [hits[i] for i in order]

    def _hit(
        self,
        searcher: tantivy.Searcher,
        address: tantivy.DocAddress,
        score: float,
        request: SearchRequest,
        match: Matcher | None,
    ) -> dict[str, Any]:
        source = self._source(searcher, address)
        displayed = self._spec.displayed_attributes
        retrieve = request.attributes_to_retrieve
        visible = source if displayed == ["*"] else _project(source, displayed)
        hit = visible if retrieve == ["*"] else _project(visible, retrieve)
        result = dict(hit)
        if request.attributes_to_highlight:
            asked = request.attributes_to_highlight
            highlight_all = "*" in asked
            shown = hit if highlight_all or retrieve == ["*"] else _project(visible, [*retrieve, *asked])
            tops = {name.split(".", 1)[0] for name in asked}
            result["_formatted"] = {
                name: formatted(
                    value,
                    match if highlight_all or name in tops else None,
                    request.highlight_pre_tag,
                    request.highlight_post_tag,
                )
                for name, value in shown.items()
            }
        if request.show_matches_position:
            searched = self._layout.searchable_attributes_of(visible)
            result["_matchesPosition"] = matches_position(visible, searched, match) if match is not None else {}
        if request.show_ranking_score:
            result["_rankingScore"] = round(min(max(score, 0.0), 1.0), 6)
        return result

    def _facets(
        self, searcher: tantivy.Searcher, query: tantivy.Query, facets: list[str]
    ) -> tuple[dict[str, dict[str, int]], dict[str, FacetStats]]:
        size = self._spec.faceting.max_values_per_facet
        aggregations: dict[str, Any] = {}
        for facet in facets:
            j = self._number(facet)
            aggregations[f"d{j}"] = {"terms": {"field": f"f.a{j}", "size": size}}
            aggregations[f"s{j}"] = {"stats": {"field": f"n{j}"}}
        result = searcher.aggregate(query, aggregations)
        distribution: dict[str, dict[str, int]] = {}
        stats: dict[str, FacetStats] = {}
        for facet in facets:
            j = self._number(facet)
            buckets = result.get(f"d{j}", {}).get("buckets", [])
            distribution[facet] = {
                self._facet_label(searcher, facet, j, b["key"]): int(b["doc_count"]) for b in buckets
            }
            stat = result.get(f"s{j}", {})
            if stat.get("count"):
                stats[facet] = FacetStats(min=stat["min"], max=stat["max"])
        return distribution, stats

    def _facet_label(self, searcher: tantivy.Searcher, facet: str, j: int, key: str) -> str:
        """A facet value as written in a document (values are counted case-insensitively):
        looked up once, then remembered across commits (a spelling seen once stays right)."""
        label = self._facet_labels.get((facet, key))
        if label is not None:
            return label
        label = key
        hits = searcher.search(tantivy.Query.term_query(self._schema, f"f.a{j}", key), 1, count=False).hits
        if hits:
            for value in values_at(self._source(searcher, hits[0][1]), facet):
                if isinstance(value, str) and value.lower() == key:
                    label = value
                    break
        if len(self._facet_labels) >= MAX_FACET_LABELS:
            self._facet_labels.clear()
        self._facet_labels[(facet, key)] = label
        return label


def _count(result: tantivy.SearchResult) -> int:
    """Matching documents (the stub does not declare SearchResult.count)."""
    return int(cast(Any, result).count)


def _project(document: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    """The document with only the given attributes (top-level names, or dotted paths whose
    top-level attribute is kept with only that branch)."""
    if fields is None or "*" in fields:
        return document
    result: dict[str, Any] = {}
    for name in fields:
        if name in document:
            result[name] = document[name]
        elif "." in name:
            head, rest = name.split(".", 1)
            value = document.get(head)
            if isinstance(value, dict):
                inner = _project(value, [rest])
                if inner:
                    existing = result.get(head)
                    result[head] = {**existing, **inner} if isinstance(existing, dict) else inner
    return result
