"""`stackyard search`, run as a process against the real api (in-thread) and a real search
component: add documents from an NDJSON file and a JSON array in batches (a progress line per
batch), indexes, get, search (with the search-only key), tasks, task, delete, rebuild. The json
and yaml outputs parse; a failure exits non-zero with one line on stderr.

Redis database 30."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_process import STACKYARD, ok, one_line_error, run_cli
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink

REDIS_DATABASE = 30
SEARCH_KEY = "search-only-key-for-cli-tests-0"
INDEXES: dict[str, dict[str, Any]] = {
    "films": {
        "source": {"api": {}},
        "searchableAttributes": ["title"],
        "filterableAttributes": ["year"],
        "facetableAttributes": ["genre"],
    }
}
FILMS = [
    {"id": f"f{i}", "title": title, "genre": genre, "year": year}
    for i, (title, genre, year) in enumerate(
        [
            ("Alien", "horror", 1979),
            ("Aliens", "action", 1986),
            ("Arrival", "drama", 2016),
            ("Heat", "crime", 1995),
            ("Jaws", "horror", 1975),
        ]
    )
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: Any, mongo_server: Any) -> Iterator[AuthStack]:
    if not STACKYARD.exists():
        pytest.fail(f"no {STACKYARD.name} console script next to {sys.executable}: install core (make install)")
    with SmtpSink() as sink:
        redis_url = flushed_redis_url(redis_server.url, REDIS_DATABASE)
        running = AuthStack(
            tmp_path_factory.mktemp("cli-search"), redis_url, mongo_server.url, sink, run_worker=False, run_search=True
        )
        for served in running.serve():
            served.configure(search_indexes=INDEXES, extra_credentials={"stack.search.apiKey": SEARCH_KEY})
            assert served.search is not None
            served.search.wait_index("films", ADMIN_API_KEY)
            yield served


def run(
    stack: AuthStack, *args: str, admin: bool = True, search_key: bool = False
) -> subprocess.CompletedProcess[bytes]:
    environment = {"STACKYARD_ADMIN_KEY": ADMIN_API_KEY} if admin else {}
    if search_key:
        environment["STACKYARD_SEARCH_KEY"] = SEARCH_KEY
    return run_cli(stack.url, *args, environment=environment)


def test_add_search_and_follow_tasks(stack: AuthStack, tmp_path: Path):
    ok(run(stack, "-o", "json", "search", "delete", "films", "--all"))
    ndjson = tmp_path / "films.ndjson"
    ndjson.write_text("".join(json.dumps(f) + "\n" for f in FILMS[:3]))
    added = run(stack, "-o", "json", "search", "add", "films", str(ndjson), "--batch-size", "2")
    body = ok(added)
    assert body["documents"] == 3 and [t["status"] for t in body["tasks"]] == ["succeeded", "succeeded"]
    progress = added.stderr.decode().splitlines()
    assert "sent 2 documents (1 batches) to films" in progress and "indexed 2/2 batches" in progress

    array = tmp_path / "films.json"
    array.write_text(json.dumps(FILMS[3:]))
    assert ok(run(stack, "-o", "json", "search", "add", "films", str(array)))["documents"] == 2

    indexes = ok(run(stack, "-o", "json", "search", "indexes"))
    assert [(i["uid"], i["numberOfDocuments"]) for i in indexes["results"]] == [("films", 5)]
    assert yaml.safe_load(run(stack, "-o", "yaml", "search", "get", "films").stdout)["numberOfDocuments"] == 5

    found = ok(
        run(
            stack,
            "-o",
            "json",
            "search",
            "search",
            "films",
            "alein",
            "--facet",
            "genre",
            admin=False,
            search_key=True,
        )
    )
    assert {hit["id"] for hit in found["hits"]} == {"f0", "f1"}
    assert found["facetDistribution"]["genre"] == {"horror": 1, "action": 1}
    table = run(stack, "search", "search", "films", "", "--filter", "year < 1980", admin=False, search_key=True)
    assert table.returncode == 0 and b"Jaws" in table.stdout and b"Heat" not in table.stdout

    tasks = ok(run(stack, "-o", "json", "search", "tasks", "--index", "films", "--status", "succeeded"))
    assert tasks["results"] and all(t["status"] == "succeeded" for t in tasks["results"])
    one = ok(run(stack, "-o", "json", "search", "task", str(tasks["results"][0]["uid"])))
    assert one["uid"] == tasks["results"][0]["uid"]

    deleted = ok(run(stack, "-o", "json", "search", "delete", "films", "--filter", "year > 2000"))
    assert deleted["status"] == "succeeded" and deleted["type"] == "documentDeletion"
    rebuilt = ok(run(stack, "-o", "json", "search", "rebuild", "films", "--wait"))
    assert rebuilt["status"] == "succeeded" and rebuilt["type"] == "indexRebuild"
    assert ok(run(stack, "-o", "json", "search", "get", "films"))["numberOfDocuments"] == 4


def test_failures_exit_non_zero_with_one_line(stack: AuthStack, tmp_path: Path):
    bad_filter = run(stack, "search", "search", "films", "x", "--filter", "year >")
    assert "Invalid filter" in one_line_error(bad_filter, 1)
    assert "Index not found" in one_line_error(run(stack, "search", "get", "nope"), 1)
    no_key = run(stack, "search", "indexes", admin=False, search_key=True)
    assert "admin API key" in one_line_error(no_key, 2)
    broken = tmp_path / "broken.ndjson"
    broken.write_text('{"id": "a"}\nnot json\n')
    assert "line 2" in run(stack, "search", "add", "films", str(broken)).stderr.decode()
    assert run(stack, "search", "add", "films", str(broken)).returncode == 2
    no_id = tmp_path / "no-id.json"
    no_id.write_text('[{"title": "no id"}]')
    assert "primary key" in one_line_error(run(stack, "search", "add", "films", str(no_id)), 1)
