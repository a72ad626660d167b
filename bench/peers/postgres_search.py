"""PostgreSQL full-text search, the peer of bench/search.py; runs in .venv-bench (psycopg).

    python postgres_search.py POSTGRES_URL CORPUS_JSONL

Loads the corpus (one JSON document a line, as bench/search.py writes it) into a table with
a stored tsvector column (title weight A, brand and category B, tags C, description D, the
`english` configuration), COPY then a GIN index and ANALYZE, and prints one JSON line:
{"documents", "seconds", "bytes", "server", "psycopg"}. Then answers queries, one JSON line
in, one out, until its input ends:

    in:  {"words": ["wireless", "hea"], "filter": {"price_max": 120.0, "rating_min": 4.0} | null}
    out: {"ms": 3.1, "ids": [...20 ids by ts_rank...], "facets": {"brand": {...}, "category": {...}} | null}

Every word must match (`&`), the last as a prefix (`:*`), as typed in a search box; ms is the
time of the statement and its fetch on one open connection (no pipe, no JSON).
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from typing import Any

import psycopg

LIMIT = 20
MAX_FACET_VALUES = 100  # Meilisearch's maxValuesPerFacet default, as the engine's

SCHEMA = """
DROP TABLE IF EXISTS products;
CREATE TABLE products (
    id integer PRIMARY KEY,
    title text NOT NULL,
    brand text NOT NULL,
    category text NOT NULL,
    tags text NOT NULL,
    description text NOT NULL,
    price double precision NOT NULL,
    rating real NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A')
        || setweight(to_tsvector('english', brand || ' ' || category), 'B')
        || setweight(to_tsvector('english', tags), 'C')
        || setweight(to_tsvector('english', description), 'D')
    ) STORED
)
"""

SEARCH = """
SELECT p.id, p.title
FROM products p, to_tsquery('english', %(q)s) q
WHERE p.tsv @@ q
ORDER BY ts_rank(p.tsv, q) DESC
LIMIT %(limit)s
"""

# One statement, one scan of the matches: the page by rank and both facets' counts.
SEARCH_FILTERED = """
WITH m AS MATERIALIZED (
    SELECT p.id, p.title, p.brand, p.category, ts_rank(p.tsv, q) AS r
    FROM products p, to_tsquery('english', %(q)s) q
    WHERE p.tsv @@ q AND p.price <= %(price_max)s AND p.rating >= %(rating_min)s
)
SELECT
    (SELECT json_agg(json_build_array(id, title))
       FROM (SELECT id, title FROM m ORDER BY r DESC LIMIT %(limit)s) t),
    (SELECT json_object_agg(brand, n)
       FROM (SELECT brand, count(*) AS n FROM m GROUP BY brand ORDER BY n DESC LIMIT %(facets)s) b),
    (SELECT json_object_agg(category, n)
       FROM (SELECT category, count(*) AS n FROM m GROUP BY category ORDER BY n DESC LIMIT %(facets)s) c)
"""


def tsquery(words: list[str]) -> str:
    """Every word (already [a-z0-9]+), the last one as a prefix."""
    return " & ".join([*words[:-1], words[-1] + ":*"])


def load(conn: psycopg.Connection[Any], corpus: str) -> dict[str, Any]:
    with open(corpus, encoding="utf-8") as lines:
        documents = [json.loads(line) for line in lines]
    start = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
        with cur.copy(
            "COPY products (id, title, brand, category, tags, description, price, rating) FROM STDIN"
        ) as copy:
            for d in documents:
                copy.write_row(
                    (d["id"], d["title"], d["brand"], d["category"], " ".join(d["tags"]), d["description"],
                     d["price"], d["rating"])
                )  # fmt: skip
        cur.execute("CREATE INDEX products_tsv ON products USING gin (tsv)")
        cur.execute("ANALYZE products")
        seconds = time.perf_counter() - start
        cur.execute("SELECT pg_total_relation_size('products'), current_setting('server_version')")
        size, server = cur.fetchone() or (0, "?")
    return {
        "documents": len(documents),
        "seconds": seconds,
        "bytes": size,
        "server": server,
        "psycopg": version("psycopg"),
    }


def answer(conn: psycopg.Connection[Any], query: dict[str, Any]) -> dict[str, Any]:
    words: list[str] = query["words"]
    params: dict[str, Any] = {"q": tsquery(words), "limit": LIMIT}
    facets: dict[str, dict[str, int]] | None = None
    with conn.cursor() as cur:
        if query.get("filter"):
            params |= query["filter"] | {"facets": MAX_FACET_VALUES}
            start = time.perf_counter()
            cur.execute(SEARCH_FILTERED, params)
            hits, brands, categories = cur.fetchone() or (None, None, None)
            ms = (time.perf_counter() - start) * 1000
            ids = [hit[0] for hit in hits or []]
            facets = {"brand": brands or {}, "category": categories or {}}
        else:
            start = time.perf_counter()
            cur.execute(SEARCH, params)
            rows = cur.fetchall()
            ms = (time.perf_counter() - start) * 1000
            ids = [row[0] for row in rows]
    return {"ms": ms, "ids": ids, "facets": facets}


def main() -> None:
    url, corpus = sys.argv[1:3]
    with psycopg.connect(url, autocommit=True) as conn:
        print(json.dumps(load(conn, corpus)), flush=True)
        for line in sys.stdin:
            print(json.dumps(answer(conn, json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
