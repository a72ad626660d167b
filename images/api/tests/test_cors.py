"""CORS from the Stack's spec.api.cors, against the real api (served by the harness's AuthStack,
with the search component beside it): off while no origin is allowed, turned on and off by a
config change without restart, preflights answered before auth and rate limits (204, or 403
without CORS headers), simple requests answered with Access-Control-Allow-Origin and Vary, and
instant search from another origin with the search-only API key through the search proxy.

Redis database 26."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from stackyard.config import RuntimeConfig
from stackyard.resources.stack import CorsSettings
from stackyard_harness.auth_stack import ADMIN_API_KEY, AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink

REDIS_DATABASE = 26
SHOP = "https://shop.example.com"
ELSEWHERE = "https://evil.example.net"
SEARCH_KEY = "search-only-key-for-cors-tests-01"
ADMIN = {"Authorization": f"Bearer {ADMIN_API_KEY}"}
INDEXES: dict[str, dict[str, Any]] = {"products": {"source": {"api": {}}, "searchableAttributes": ["title"]}}
SEARCH = "/v1/indexes/products/search"


@pytest.fixture(scope="module")
def running(tmp_path_factory, redis_server, mongo_server) -> Iterator[AuthStack]:  # type: ignore[no-untyped-def]
    with SmtpSink() as sink:
        stack = AuthStack(
            tmp_path_factory.mktemp("cors"),
            flushed_redis_url(redis_server.url, REDIS_DATABASE),
            mongo_server.url,
            sink,
            run_worker=False,
            run_search=True,
        )
        yield from stack.serve()


@pytest.fixture
def stack(running: AuthStack) -> AuthStack:
    running.reset()
    configure(running)
    return running


@pytest.fixture
def http(stack: AuthStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=20) as client:
        yield client


def configure(stack: AuthStack, cors: dict[str, Any] | None = None, **resources: Any) -> None:
    """A new config generation with these resources, and spec.api.cors (camelCase) when given:
    the harness writes the config, then the Stack's cors goes into it as the operator renders it."""
    stack.configure(
        search_indexes=INDEXES,
        extra_credentials={"stack.search.apiKey": SEARCH_KEY},
        fresh_database=False,
        **resources,
    )
    if cors is None:
        return
    path = stack.directory / "config.json"
    config = RuntimeConfig.model_validate_json(path.read_text())
    api = config.spec.api.model_copy(update={"cors": CorsSettings.model_validate(cors)})
    stack.generation += 1
    config = config.model_copy(
        update={"generation": stack.generation, "spec": config.spec.model_copy(update={"api": api})}
    )
    path.write_text(config.canonical_json())
    stack.wait_applied()


def preflight(http: httpx.Client, path: str, origin: str, method: str, headers: str | None = None) -> httpx.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return http.options(path, headers=asked)


def wait_task(http: httpx.Client, accepted: httpx.Response) -> dict[str, Any]:
    assert accepted.status_code == 202, accepted.text
    uid = accepted.json()["taskUid"]
    deadline = time.monotonic() + 30
    while (task := http.get(f"/v1/search/tasks/{uid}", headers=ADMIN).json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    return dict(task)


def cors_headers(answer: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.startswith("access-control-")}


def test_no_cors_headers_while_no_origin_is_allowed(http):
    asked = preflight(http, SEARCH, SHOP, "POST", "authorization, content-type")
    assert asked.status_code == 405  # the api has no OPTIONS routes: nothing answers a preflight
    assert cors_headers(asked) == {}
    assert cors_headers(http.get("/v1/config", headers={"Origin": SHOP})) == {}


def test_a_config_change_turns_cors_on_and_off_without_restart(stack, http):
    configure(stack, {"allowedOrigins": [SHOP]})
    asked = preflight(http, "/v1/auth/login", SHOP, "POST", "content-type, x-request-id")
    assert asked.status_code == 204
    assert asked.content == b""
    assert asked.headers["access-control-allow-origin"] == SHOP
    assert asked.headers["access-control-allow-methods"] == "GET, POST, PUT, PATCH, DELETE"
    assert asked.headers["access-control-max-age"] == "600"
    allowed = {h.strip().lower() for h in asked.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= allowed
    assert "Origin" in asked.headers["vary"]
    assert "access-control-allow-credentials" not in asked.headers

    configure(stack, {"allowedOrigins": []})
    assert cors_headers(preflight(http, "/v1/auth/login", SHOP, "POST")) == {}


def test_a_simple_request_gets_the_origin_back_with_vary_and_the_exposed_headers(stack, http):
    configure(stack, {"allowedOrigins": [SHOP, "http://localhost:5173"]})
    answer = http.get("/v1/config", headers={"Origin": SHOP})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert "Origin" in answer.headers["vary"]
    assert answer.headers["access-control-expose-headers"] == "RateLimit-Policy, RateLimit, Retry-After"

    # Another origin's page gets no Access-Control-Allow-Origin: its browser keeps the answer from it.
    other = http.get("/v1/config", headers={"Origin": ELSEWHERE})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers
    assert "Origin" in other.headers["vary"]
    # Problems carry the headers too, so that a page can read why it was refused.
    refused = http.get("/v1/auth/me", headers={"Origin": SHOP})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == SHOP


def test_a_preflight_from_an_origin_or_for_a_method_not_allowed_is_refused_without_cors_headers(stack, http):
    configure(stack, {"allowedOrigins": [SHOP], "allowedMethods": ["GET", "POST"]})
    for asked, refused in [
        (preflight(http, SEARCH, ELSEWHERE, "POST"), ["origin"]),
        (preflight(http, SEARCH, SHOP, "DELETE"), ["method"]),
        (preflight(http, SEARCH, SHOP, "POST", "x-secret"), ["headers"]),
        (preflight(http, SEARCH, "http://shop.example.com", "PUT"), ["origin", "method"]),
    ]:
        assert asked.status_code == 403
        assert cors_headers(asked) == {}
        assert asked.headers["content-type"] == "application/problem+json"
        problem = asked.json()
        assert problem["type"].endswith("/cors-not-allowed")
        assert problem["refused"] == refused


def test_preflights_are_answered_before_auth_and_rate_limits_and_a_429_is_readable(stack, http):
    policy = {"stackRef": {"name": "demo"}, "match": {"paths": ["/v1/indexes/**"]}, "algorithm": "fixedWindow"}
    configure(
        stack,
        {"allowedOrigins": [SHOP]},
        rate_limit_policies={"search": policy | {"limit": 1, "window": "1m", "timeout": "2s"}},
    )
    # No Authorization on a preflight (browsers never send it there), and none is charged.
    for _ in range(3):
        assert preflight(http, SEARCH, SHOP, "POST", "authorization,content-type").status_code == 204
    searcher = {"Origin": SHOP, "Authorization": f"Bearer {SEARCH_KEY}"}
    first = http.post(SEARCH, json={"q": "x"}, headers=searcher)
    assert first.status_code == 200, first.text
    limited = http.post(SEARCH, json={"q": "x"}, headers=searcher)
    assert limited.status_code == 429
    assert limited.headers["access-control-allow-origin"] == SHOP
    assert "Retry-After" in limited.headers["access-control-expose-headers"]
    assert int(limited.headers["retry-after"]) >= 1


def test_instant_search_from_another_origin_with_the_search_only_key(stack, http):
    configure(stack, {"allowedOrigins": ["*"], "allowedHeaders": ["Authorization", "X-Meilisearch-Client"]})
    added = http.post("/v1/indexes/products/documents", json=[{"id": "p1", "title": "Espresso machine"}], headers=ADMIN)
    assert wait_task(http, added)["status"] == "succeeded"

    asked = preflight(http, SEARCH, SHOP, "POST", "authorization, content-type, x-meilisearch-client")
    assert asked.status_code == 204
    assert asked.headers["access-control-allow-origin"] == "*"

    searcher = {"Origin": SHOP, "Authorization": f"Bearer {SEARCH_KEY}", "X-Meilisearch-Client": "test"}
    found = http.post(SEARCH, json={"q": "espresso"}, headers=searcher)
    assert found.status_code == 200
    assert found.headers["access-control-allow-origin"] == "*"
    assert [hit["id"] for hit in found.json()["hits"]] == ["p1"]
    # The same key may not write, from a page or not; the refusal is readable by the page.
    refused = http.post("/v1/indexes/products/documents", json=[], headers=searcher)
    assert refused.status_code == 403
    assert refused.headers["access-control-allow-origin"] == "*"


def test_credentials_are_allowed_for_listed_origins_only(stack, http):
    configure(stack, {"allowedOrigins": [SHOP], "allowCredentials": True, "allowedHeaders": ["X-CSRF-Token"]})
    asked = preflight(http, "/v1/auth/token/refresh", SHOP, "POST", "x-csrf-token")
    assert asked.status_code == 204
    assert asked.headers["access-control-allow-credentials"] == "true"
    assert asked.headers["access-control-allow-origin"] == SHOP
    answer = http.get("/v1/config", headers={"Origin": SHOP, "Cookie": "a=b"})
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert answer.headers["access-control-allow-origin"] == SHOP


@pytest.mark.parametrize(
    ("cors", "message"),
    [
        ({"allowedOrigins": ["*"], "allowCredentials": True}, "allowCredentials cannot be true"),
        ({"allowedOrigins": ["https://shop.example.com/"]}, "allowedOrigins.0"),
        ({"allowedOrigins": ["https://Shop.example.com"]}, "allowedOrigins.0"),
        ({"allowedMethods": ["OPTIONS"]}, "allowedMethods.0"),
        ({"maxAge": "48h"}, "maxAge must be at most 24h"),
    ],
)
def test_bad_cors_settings_are_refused(cors, message):
    with pytest.raises(ValidationError, match=message):
        CorsSettings.model_validate(cors)
