"""The search API through the api's proxy and straight at the search component: a real
`stackyard-search` process (search_process) on the harness's file config, the api in this
process proxying to it, FerretDB for the MongoDB-sourced index.

Auth (admin key: everything; the search-only key: search and multi-search only), the task
lifecycle of document writes (202, then succeeded), JSON array and NDJSON bodies, a bad filter
answered 400 with its position, an unknown index 404, writes to a MongoDB-sourced index 409, a
batch over the limit 413, and the api's 503 when the search component does not answer; the
proxy passes bodies, the key and the request and trace ids on (to the harness's receiver).

Redis database 28."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack, flushed_redis_url
from stackyard_harness.process import free_port
from stackyard_harness.smtp import SmtpSink
from stackyard_harness.webhook_receiver import WebhookReceiver

REDIS_DATABASE = 28
SEARCH_KEY = "search-only-key-for-tests-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
SEARCHER = {"Authorization": f"Bearer {SEARCH_KEY}"}
INDEXES: dict[str, dict[str, Any]] = {
    "products": {
        "source": {"api": {}},
        "searchableAttributes": ["title", "brand"],
        "filterableAttributes": ["price"],
        "facetableAttributes": ["brand"],
        "sortableAttributes": ["price"],
    },
    "catalog": {"source": {"mongodb": {"collection": "catalog"}}},
}
PRODUCTS = [
    {"id": "p1", "title": "Espresso machine", "brand": "Acme", "price": 199},
    {"id": "p2", "title": "Coffee grinder", "brand": "Acme", "price": 59},
    {"id": "p3", "title": "Milk frother", "brand": "Brava", "price": 25},
]


@pytest.fixture(scope="module")
def running(tmp_path_factory, redis_server, mongo_server) -> Iterator[AuthStack]:  # type: ignore[no-untyped-def]
    with SmtpSink() as sink:
        stack = AuthStack(
            tmp_path_factory.mktemp("search-api"),
            flushed_redis_url(redis_server.url, REDIS_DATABASE),
            mongo_server.url,
            sink,
            run_worker=False,
            run_search=True,
        )
        yield from stack.serve()


@pytest.fixture(scope="module")
def stack(running: AuthStack) -> AuthStack:
    running.configure(
        search_indexes=INDEXES, extra_credentials={"stack.search.apiKey": SEARCH_KEY}, fresh_database=False
    )
    assert running.search is not None
    running.search.wait_index("products", ADMIN_API_KEY)
    return running


@pytest.fixture
def api(stack: AuthStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=20) as client:
        client.delete("/v1/indexes/products/documents", headers=ADMIN)  # each test starts empty (tasks run in order)
        yield client


@pytest.fixture
def component(stack: AuthStack) -> Iterator[httpx.Client]:
    assert stack.search is not None
    with httpx.Client(base_url=stack.search.url, timeout=20) as client:
        yield client


def wait_task(client: httpx.Client, accepted: httpx.Response) -> dict[str, Any]:
    assert accepted.status_code == 202, accepted.text
    uid = accepted.json()["taskUid"]
    deadline = time.monotonic() + 30
    while True:
        task = client.get(f"/v1/search/tasks/{uid}", headers=ADMIN).json()
        if task["status"] in ("succeeded", "failed"):
            return dict(task)
        assert time.monotonic() < deadline, task
        time.sleep(0.05)


def add(client: httpx.Client, documents: list[dict[str, Any]]) -> dict[str, Any]:
    return wait_task(client, client.post("/v1/indexes/products/documents", json=documents, headers=ADMIN))


def test_a_document_batch_is_a_task_that_succeeds_and_its_documents_are_found(api: httpx.Client):
    accepted = api.post("/v1/indexes/products/documents", json=PRODUCTS, headers=ADMIN)
    summary = accepted.json()
    assert summary["indexUid"] == "products" and summary["type"] == "documentAdditionOrUpdate"
    assert summary["status"] in ("enqueued", "processing", "succeeded")
    task = wait_task(api, accepted)
    assert task["status"] == "succeeded", task
    assert task["details"]["receivedDocuments"] == 3

    found = api.post("/v1/indexes/products/search", json={"q": "espreso"}, headers=ADMIN).json()
    assert [hit["id"] for hit in found["hits"]] == ["p1"]
    assert api.get("/v1/indexes/products/documents/p2", headers=ADMIN).json()["title"] == "Coffee grinder"
    stats = api.get("/v1/indexes/products", headers=ADMIN).json()
    assert stats["numberOfDocuments"] == 3 and stats["source"] == "api" and stats["primaryKey"] == "id"
    listed = api.get("/v1/indexes", headers=ADMIN).json()
    assert {index["uid"] for index in listed["results"]} == {"products", "catalog"}

    merged = wait_task(api, api.put("/v1/indexes/products/documents", json=[{"id": "p2", "price": 49}], headers=ADMIN))
    assert merged["status"] == "succeeded"
    assert api.get("/v1/indexes/products/documents/p2", headers=ADMIN).json() == {
        "id": "p2",
        "title": "Coffee grinder",
        "brand": "Acme",
        "price": 49,
    }

    assert wait_task(api, api.delete("/v1/indexes/products/documents/p3", headers=ADMIN))["status"] == "succeeded"
    assert api.get("/v1/indexes/products/documents/p3", headers=ADMIN).json()["code"] == "document_not_found"
    batch = api.post("/v1/indexes/products/documents/delete", json={"filter": "price > 100"}, headers=ADMIN)
    assert wait_task(api, batch)["status"] == "succeeded"
    page = api.get("/v1/indexes/products/documents", params={"fields": "id"}, headers=ADMIN).json()
    assert page == {"results": [{"id": "p2"}], "offset": 0, "limit": 20, "total": 1}

    tasks = api.get("/v1/search/tasks", params={"indexUids": "products", "types": "documentDeletion"}, headers=ADMIN)
    assert tasks.status_code == 200
    assert all(t["type"] == "documentDeletion" for t in tasks.json()["results"])


def test_ndjson_documents_are_accepted(api: httpx.Client):
    body = "\n".join(json.dumps(p) for p in PRODUCTS) + "\n"
    accepted = api.post(
        "/v1/indexes/products/documents",
        content=body.encode(),
        headers=ADMIN | {"Content-Type": "application/x-ndjson"},
    )
    assert wait_task(api, accepted)["status"] == "succeeded"
    assert api.get("/v1/indexes/products", headers=ADMIN).json()["numberOfDocuments"] == 3


def test_search_by_query_string_with_facets_filter_and_sort(api: httpx.Client):
    add(api, PRODUCTS)
    params = {"q": "", "facets": "brand", "filter": "price < 100", "sort": "price:asc"}
    found = api.get("/v1/indexes/products/search", params=params, headers=SEARCHER)
    assert found.status_code == 200, found.text
    body = found.json()
    assert [hit["id"] for hit in body["hits"]] == ["p3", "p2"]
    assert body["facetDistribution"] == {"brand": {"Acme": 1, "Brava": 1}}


def test_a_bad_filter_answers_400_with_its_position(api: httpx.Client):
    answer = api.post("/v1/indexes/products/search", json={"q": "x", "filter": "price > "}, headers=SEARCHER)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "invalid_search_filter" and isinstance(problem["position"], int)

    unknown = api.get("/v1/indexes/products/search", params={"filter": "brandx = Acme"}, headers=SEARCHER).json()
    assert unknown["code"] == "invalid_search_filter" and unknown["position"] == 0
    assert "price" in unknown["detail"]  # names the filterable attributes


def test_an_unknown_index_answers_404(api: httpx.Client, component: httpx.Client):
    for client in (api, component):
        answer = client.post("/v1/indexes/nope/search", json={"q": "x"}, headers=ADMIN)
        assert answer.status_code == 404 and answer.json()["code"] == "index_not_found"
        assert client.get("/v1/indexes/nope", headers=ADMIN).json()["code"] == "index_not_found"


def test_documents_without_a_valid_id_are_refused_before_a_task_exists(api: httpx.Client):
    missing = api.post("/v1/indexes/products/documents", json=[{"title": "no id"}], headers=ADMIN)
    assert missing.status_code == 400 and missing.json()["code"] == "missing_document_id"
    invalid = api.post("/v1/indexes/products/documents", json=[{"id": "a b"}], headers=ADMIN)
    assert invalid.status_code == 400 and invalid.json()["code"] == "invalid_document_id"
    malformed = api.post(
        "/v1/indexes/products/documents", content=b"[{", headers=ADMIN | {"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["code"] == "malformed_payload"


def test_a_batch_over_the_limit_answers_413(api: httpx.Client):
    too_many = b"[" + b",".join(b'{"id":%d}' % i for i in range(100_001)) + b"]"
    answer = api.post(
        "/v1/indexes/products/documents", content=too_many, headers=ADMIN | {"Content-Type": "application/json"}
    )
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"


def test_writes_to_an_index_following_mongodb_answer_409(api: httpx.Client):
    answer = api.post("/v1/indexes/catalog/documents", json=[{"id": "c1"}], headers=ADMIN)
    assert answer.status_code == 409 and answer.json()["code"] == "index_follows_source"
    assert api.delete("/v1/indexes/catalog/documents", headers=ADMIN).status_code == 409


@pytest.mark.parametrize("where", ["api", "component"])
def test_the_search_key_may_search_and_nothing_else(where: str, api: httpx.Client, component: httpx.Client):
    client = api if where == "api" else component
    assert client.post("/v1/indexes/products/search", json={"q": "x"}).status_code == 401
    wrong = client.post("/v1/indexes/products/search", json={"q": "x"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_api_key"
    assert client.post("/v1/indexes/products/search", json={"q": "x"}, headers=SEARCHER).status_code == 200
    multi = client.post("/v1/multi-search", json={"queries": [{"indexUid": "products", "q": "x"}]}, headers=SEARCHER)
    assert multi.status_code == 200 and multi.json()["results"][0]["indexUid"] == "products"
    for method, path in [
        ("POST", "/v1/indexes/products/documents"),
        ("GET", "/v1/indexes"),
        ("GET", "/v1/indexes/products/documents"),
        ("GET", "/v1/search/tasks"),
        ("POST", "/v1/indexes/products/rebuild"),
    ]:
        refused = client.request(method, path, json=[], headers=SEARCHER)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"


def test_the_api_answers_503_with_retry_after_when_the_search_component_is_away(api: httpx.Client):
    before = os.environ["STACKYARD_SEARCH_URL"]
    os.environ["STACKYARD_SEARCH_URL"] = f"http://127.0.0.1:{free_port()}"
    try:
        answer = api.post("/v1/indexes/products/search", json={"q": "x"}, headers=ADMIN)
    finally:
        os.environ["STACKYARD_SEARCH_URL"] = before
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["type"].endswith("/search-unavailable")


def test_the_api_documents_the_search_routes(api: httpx.Client):
    paths = api.get("/openapi.json").json()["paths"]
    assert "/v1/indexes/{uid}/search" in paths and "/v1/search/tasks/{taskUid}" in paths
    assert "requestBody" in paths["/v1/indexes/{uid}/search"]["post"]


def test_without_a_search_index_the_api_answers_without_the_search_component(stack: AuthStack, api: httpx.Client):
    stack.configure(search_indexes={}, fresh_database=False)
    try:
        assert api.get("/v1/indexes", headers=ADMIN).json() == {"results": [], "offset": 0, "limit": 20, "total": 0}
        assert api.get("/v1/search/tasks", headers=ADMIN).json()["results"] == []
        answer = api.post("/v1/indexes/products/search", json={"q": "x"}, headers=SEARCHER)
        assert answer.status_code == 404 and answer.json()["code"] == "index_not_found"
    finally:
        stack.configure(search_indexes=INDEXES, fresh_database=False)
        assert stack.search is not None
        stack.search.wait_index("products", ADMIN_API_KEY)


def test_the_proxy_passes_the_body_the_key_and_the_request_and_trace_ids_on(api: httpx.Client):
    body = b"".join(
        json.dumps({"id": f"d{i}", "text": "x" * 100}).encode() + b"\n" for i in range(5_000)
    )  # 0.6 MB: the receiver takes 1 MiB
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    before = os.environ["STACKYARD_SEARCH_URL"]
    with WebhookReceiver() as upstream:
        upstream.answer("/v1/indexes/products/documents", 202)
        os.environ["STACKYARD_SEARCH_URL"] = upstream.url.rstrip("/")
        try:
            answer = api.post(
                "/v1/indexes/products/documents",
                content=body,
                headers=ADMIN
                | {"Content-Type": "application/x-ndjson", "X-Request-Id": "req-42", "traceparent": trace},
            )
        finally:
            os.environ["STACKYARD_SEARCH_URL"] = before
        (seen,) = upstream.received("/v1/indexes/products/documents")
    assert answer.status_code == 202 and answer.text == "answered 202"
    assert seen.body == body
    assert seen.headers["authorization"] == ADMIN["Authorization"]
    assert seen.headers["content-type"] == "application/x-ndjson"
    assert seen.headers["x-request-id"] == "req-42"
    assert seen.headers["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"  # the same trace
