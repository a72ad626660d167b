"""The SDK's search calls (`Stackyard.search`, `AsyncStackyard.search`) against the real api,
which proxies them to a real search component (search_process): documents added as tasks and
followed with wait_for_task, search with typos, filters and facets, multi-search with the
search-only key, the typed errors (InvalidSearch with its position, IndexNotFound, Forbidden
for the search key on a write, SearchKeyMissing before sending, SearchUnavailable).

Redis database 29."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from stackyard.client import (
    NO_RETRY,
    AdminKeyMissing,
    AsyncStackyard,
    Forbidden,
    IndexNotFound,
    InvalidSearch,
    SearchKeyMissing,
    SearchUnavailable,
    Stackyard,
)
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack, flushed_redis_url
from stackyard_harness.process import free_port
from stackyard_harness.smtp import SmtpSink

REDIS_DATABASE = 29
SEARCH_KEY = "search-only-key-for-sdk-tests-0"
INDEXES: dict[str, dict[str, Any]] = {
    "books": {
        "source": {"api": {}},
        "searchableAttributes": ["title", "author"],
        "filterableAttributes": ["year"],
        "facetableAttributes": ["genre"],
        "sortableAttributes": ["year"],
    }
}
BOOKS = [
    {"id": 1, "title": "The Hobbit", "author": "Tolkien", "genre": "fantasy", "year": 1937},
    {"id": 2, "title": "Dune", "author": "Herbert", "genre": "science fiction", "year": 1965},
    {"id": 3, "title": "The Left Hand of Darkness", "author": "Le Guin", "genre": "science fiction", "year": 1969},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, mongo_server: Any) -> Iterator[AuthStack]:
    with SmtpSink() as sink:
        redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
        running = AuthStack(
            tmp_path_factory.mktemp("sdk-search"), redis_url, mongo_server.url, sink, run_worker=False, run_search=True
        )
        for served in running.serve():
            served.configure(search_indexes=INDEXES, extra_credentials={"stack.search.apiKey": SEARCH_KEY})
            assert served.search is not None
            served.search.wait_index("books", ADMIN_API_KEY)
            yield served


@pytest.fixture
def admin(stack: AuthStack) -> Iterator[Stackyard]:
    with Stackyard(stack.url, admin_key=ADMIN_API_KEY) as client:
        client.search.wait_for_task(client.search.delete_all_documents("books"))
        yield client


def test_documents_added_are_searchable_once_their_task_succeeded(admin: Stackyard):
    summary = admin.search.add_documents("books", BOOKS)
    assert summary.index_uid == "books" and summary.type == "documentAdditionOrUpdate"
    seen: list[str] = []
    task = admin.search.wait_for_task(summary, on_update=lambda t: seen.append(t.status))
    assert task.status == "succeeded" and seen[-1] == "succeeded"

    found = admin.search.search("books", "hobit")  # a typo
    assert [hit["id"] for hit in found.hits] == [1]
    faceted = admin.search.search("books", "", filter="year > 1950", facets=["genre"], sort=["year:desc"])
    assert [hit["id"] for hit in faceted.hits] == [3, 2]
    assert faceted.facet_distribution == {"genre": {"science fiction": 2}}

    assert admin.search.document("books", 2, fields=["title"]) == {"title": "Dune"}
    assert admin.search.index("books").number_of_documents == 3
    assert [i.uid for i in admin.search.indexes()] == ["books"]
    assert admin.search.settings("books")["filterableAttributes"] == ["year"]
    assert sorted(d["id"] for d in admin.search.iter_documents("books", page_size=2)) == [1, 2, 3]

    admin.search.wait_for_task(admin.search.update_documents("books", [{"id": 2, "year": 1966}]))
    assert admin.search.document("books", 2)["year"] == 1966 and admin.search.document("books", 2)["title"] == "Dune"
    admin.search.wait_for_task(admin.search.delete_documents("books", filter="year < 1950"))
    assert admin.search.documents("books").total == 2
    page = admin.search.tasks(index_uids="books", statuses="succeeded", limit=2)
    assert len(page.results) == 2 and all(t.status == "succeeded" for t in page.results)


def test_the_search_key_searches_and_may_not_write(stack: AuthStack, admin: Stackyard):
    admin.search.wait_for_task(admin.search.add_documents("books", BOOKS))
    with Stackyard(stack.url, search_key=SEARCH_KEY) as searcher:
        answers = searcher.search.multi_search(
            [{"indexUid": "books", "q": "dune"}, {"index_uid": "books", "q": "darkness", "limit": 1}]
        )
        assert [a.index_uid for a in answers] == ["books", "books"]
        assert [[h["id"] for h in a.hits] for a in answers] == [[2], [3]]
        with pytest.raises(AdminKeyMissing):  # nothing sent: writes need the admin key
            searcher.search.add_documents("books", BOOKS)
    with Stackyard(stack.url, admin_key=SEARCH_KEY) as misused, pytest.raises(Forbidden) as refused:
        misused.search.add_documents("books", BOOKS)
    assert refused.value.code == "invalid_api_key"
    with Stackyard(stack.url) as nobody, pytest.raises(SearchKeyMissing):
        nobody.search.search("books", "dune")


def test_search_errors_are_typed(admin: Stackyard):
    with pytest.raises(InvalidSearch) as bad:
        admin.search.search("books", "x", filter="year >")
    assert bad.value.code == "invalid_search_filter" and bad.value.position is not None
    with pytest.raises(InvalidSearch) as unfilterable:
        admin.search.search("books", "x", filter="title = Dune")
    assert unfilterable.value.position == 0
    with pytest.raises(IndexNotFound):
        admin.search.index("nope")


def test_an_absent_search_component_is_search_unavailable(stack: AuthStack):
    before = os.environ["STACKYARD_SEARCH_URL"]
    os.environ["STACKYARD_SEARCH_URL"] = f"http://127.0.0.1:{free_port()}"
    try:
        with (
            Stackyard(stack.url, admin_key=ADMIN_API_KEY, retry=NO_RETRY) as client,
            pytest.raises(SearchUnavailable) as away,
        ):
            client.search.search("books", "dune")
    finally:
        os.environ["STACKYARD_SEARCH_URL"] = before
    assert away.value.retry_after == 5


async def test_the_async_client_adds_waits_and_searches(stack: AuthStack, admin: Stackyard):
    async with AsyncStackyard(stack.url, admin_key=ADMIN_API_KEY) as client:
        task = await client.search.wait_for_task(await client.search.add_documents("books", BOOKS))
        assert task.status == "succeeded"
        found = await client.search.search("books", "tolkein")  # a transposition
        assert [hit["id"] for hit in found.hits] == [1]
        assert sorted([d["id"] async for d in client.search.iter_documents("books", filter="year > 1960")]) == [2, 3]
