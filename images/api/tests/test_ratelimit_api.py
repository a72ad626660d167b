"""Rate limits on the api: the live RateLimitPolicies enforced on matching requests with
IETF headers and 429 problem+json, the check and policies routes, and the same decision
for another app through RateLimitMiddleware and RateLimitClient."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import pytest
from auth_http import without_trace_id
from fastapi import FastAPI
from fastapi.testclient import TestClient
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.ratelimit import RateLimitClient, RateLimitMiddleware, RemotePolicies
from stackyard.resources.ratelimit import RateLimitPolicySpec
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard_api.app import create_app


def stack_spec(trusted_proxies=()):
    return StackSpec.model_validate(
        {
            "api": {"trustedProxies": list(trusted_proxies)},
            "redis": {"urlSecretRef": {"name": "b", "key": "redis"}},
            "mongodb": {"uriSecretRef": {"name": "b", "key": "mongodb"}},
        }
    )


def rlp(**spec):
    return RateLimitPolicySpec.model_validate({"stackRef": {"name": "demo"}, "window": "1m", "timeout": "2s"} | spec)


class Api:
    def __init__(self, client: TestClient, directory, redis_url: str) -> None:
        self.client, self.directory, self.redis_url = client, directory, redis_url
        self.generation = 0
        self.prefix = uuid.uuid4().hex[:6]

    def name(self, short: str) -> str:
        """A policy name unique to this test (the session's Redis keeps counters)."""
        return f"{short}-{self.prefix}"

    def apply(self, policies: dict[str, RateLimitPolicySpec], trusted_proxies=(), redis_url=None) -> None:
        self.generation += 1
        config = RuntimeConfig(
            stack="demo",
            namespace="ns",
            generation=self.generation,
            spec=stack_spec(trusted_proxies),
            rate_limit_policies=policies,
        )
        credentials = {"stack.redis.url": redis_url or self.redis_url, "stack.mongodb.uri": "x"}
        (self.directory / "credentials.json").write_text(json.dumps(credentials))
        (self.directory / "config.json").write_text(config.canonical_json())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            response = self.client.get("/v1/config")
            if response.status_code == 200 and response.json()["hash"] == config.hash:
                return
            time.sleep(0.02)
        raise AssertionError("config never applied")


@pytest.fixture
def api(tmp_path, redis_server):
    live = LiveConfig()
    runtime = Runtime("stackyard-api", FileConfigSource(live, tmp_path, interval=0.02), live)
    with TestClient(create_app(runtime), client=("198.51.100.7", 50000)) as client:
        yield Api(client, tmp_path, redis_server.url)


def test_matching_requests_get_ietf_headers_then_429_problem_with_retry_after(api):
    name = api.name("demo")
    api.apply({name: rlp(match={"paths": ["/v1/demo/**"], "methods": ["GET"]}, algorithm="fixedWindow", limit=2)})
    first = api.client.get("/v1/demo/items")
    assert first.status_code == 404, "the limit runs before routing; the route answers as usual"
    assert first.headers["RateLimit-Policy"] == f'"{name}";q=2;w=60'
    assert re.fullmatch(rf'"{name}";r=1;t=\d+', first.headers["RateLimit"])
    assert api.client.get("/v1/demo").headers["RateLimit"].startswith(f'"{name}";r=0;')

    refused = api.client.get("/v1/demo/items/7")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    retry = int(refused.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert refused.headers["RateLimit-Policy"] == f'"{name}";q=2;w=60'
    assert without_trace_id(refused.json()) == {
        "type": "https://stackyard.dev/problems/too-many-requests",
        "title": "Too many requests",
        "status": 429,
        "detail": f"rate limit {name} exceeded; retry in {retry} s",
        "instance": "/v1/demo/items/7",
        "policy": name,
        "retryAfter": retry,
    }
    # Other methods, paths and the probes are not limited.
    assert "RateLimit" not in api.client.post("/v1/demo/items").headers
    assert "RateLimit" not in api.client.get("/v1/config").headers


def test_probes_are_never_limited(api):
    api.apply({api.name("all"): rlp(algorithm="fixedWindow", limit=1, enforceInApi=True)})
    for _ in range(3):
        assert api.client.get("/healthz").status_code == 200
        assert "RateLimit" not in api.client.get("/healthz").headers


def test_most_restrictive_policy_wins_and_every_policy_is_charged(api):
    tight, loose = api.name("tight"), api.name("loose")
    api.apply(
        {
            tight: rlp(match={"paths": ["/v1/demo/*"]}, algorithm="fixedWindow", limit=1),
            loose: rlp(match={"paths": ["/v1/demo/**"]}, algorithm="gcra", limit=100, burst=10),
        }
    )
    first = api.client.get("/v1/demo/a")
    assert first.headers["RateLimit-Policy"] == f'"{loose}";q=10;w=60, "{tight}";q=1;w=60'
    refused = api.client.get("/v1/demo/b")
    assert refused.status_code == 429 and refused.json()["policy"] == tight
    assert f'"{loose}";r=8;' in refused.headers["RateLimit"], "the looser policy was charged too"
    deeper = api.client.get("/v1/demo/b/c")
    assert deeper.status_code == 404 and deeper.headers["RateLimit-Policy"] == f'"{loose}";q=10;w=60'


def test_dry_run_never_blocks_and_counts_what_it_would_refuse(api):
    name = api.name("dry")
    api.apply({name: rlp(match={"paths": ["/v1/demo/**"]}, algorithm="slidingWindow", limit=2, mode="dryRun")})
    for _ in range(6):
        response = api.client.get("/v1/demo/x")
        assert response.status_code == 404
        assert "RateLimit" not in response.headers, "dryRun is invisible to clients"
    counts = api.client.get("/v1/ratelimit/policies").json()["policies"][name]["counts"]
    assert counts == {"allowed": 2, "limited": 0, "wouldLimit": 4, "failed": 0}


def test_a_changed_policy_takes_effect_without_restart(api):
    name = api.name("live")
    match = {"paths": ["/v1/demo/**"]}
    api.apply({name: rlp(match=match, algorithm="fixedWindow", limit=1)})
    assert api.client.get("/v1/demo/1").status_code == 404
    assert api.client.get("/v1/demo/1").status_code == 429
    api.apply({name: rlp(match=match, algorithm="fixedWindow", limit=3)})
    assert api.client.get("/v1/demo/1").status_code == 404, "the raised limit applies at once"
    api.apply({name: rlp(match=match, algorithm="fixedWindow", limit=3, mode="dryRun")})
    assert all(api.client.get("/v1/demo/1").status_code == 404 for _ in range(5))
    api.apply({})
    assert "RateLimit" not in api.client.get("/v1/demo/1").headers


def test_client_ip_comes_from_forwarded_headers_only_behind_trusted_proxies(api):
    name = api.name("per-ip")
    policy = {name: rlp(match={"paths": ["/v1/demo/**"]}, algorithm="fixedWindow", limit=1)}
    api.apply(policy)  # the peer 198.51.100.7 is not trusted: X-Forwarded-For is ignored
    assert api.client.get("/v1/demo", headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 404
    assert api.client.get("/v1/demo", headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 429

    api.apply({api.name("per-ip2"): policy[name]}, trusted_proxies=["198.51.100.0/24"])
    for client in ("203.0.113.1", "203.0.113.2"):
        assert api.client.get("/v1/demo", headers={"X-Forwarded-For": f"{client}, 198.51.100.9"}).status_code == 404
    assert api.client.get("/v1/demo", headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 429
    forwarded = {"Forwarded": 'for="[2001:db8::1]:4711", for=198.51.100.3'}
    assert api.client.get("/v1/demo", headers=forwarded).status_code == 404
    assert api.client.get("/v1/demo", headers=forwarded).status_code == 429


def test_redis_down_fails_open_or_closed_as_each_policy_declares(api):
    opened, closed = api.name("open"), api.name("closed")
    dead = "redis://127.0.0.1:1/0"
    api.apply(
        {
            opened: rlp(match={"paths": ["/v1/demo/open"]}, limit=1, timeout="50ms", failureMode="open"),
            closed: rlp(match={"paths": ["/v1/demo/closed"]}, limit=1, timeout="50ms", failureMode="closed"),
        },
        redis_url=dead,
    )
    assert api.client.get("/v1/demo/open").status_code == 404
    refused = api.client.get("/v1/demo/closed")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["type"] == "https://stackyard.dev/problems/rate-limit-unavailable"
    assert refused.json()["policy"] == closed


def test_check_decides_for_other_services(api):
    name = api.name("exports")
    api.apply({name: rlp(algorithm="tokenBucket", limit=10, burst=10, key={"type": "user"}, enforceInApi=False)})
    assert "RateLimit" not in api.client.get("/v1/demo").headers, "enforceInApi: false leaves the api alone"
    body = {"policy": name, "key": "user-42", "cost": 6}
    first = api.client.post("/v1/ratelimit/check", json=body)
    assert first.status_code == 200
    result = first.json()
    assert result["allowed"] is True and result["remaining"] == 4 and result["source"] == "redis"
    assert result["key"] == "user-42" and result["limit"] == 10 and result["mode"] == "enforce"
    second = api.client.post("/v1/ratelimit/check", json=body).json()
    assert second["allowed"] is False and 0 < second["retryAfter"] <= 12
    assert api.client.post("/v1/ratelimit/check", json=body | {"key": "user-7"}).json()["allowed"] is True


def test_check_errors_are_problems(api):
    name = api.name("p")
    api.apply({name: rlp(limit=5, key={"type": "user"})})
    unknown = api.client.post("/v1/ratelimit/check", json={"policy": "nope"})
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    too_costly = api.client.post("/v1/ratelimit/check", json={"policy": name, "key": "k", "cost": 6})
    assert too_costly.status_code == 422 and "can never pass" in too_costly.json()["detail"]
    no_key = api.client.post("/v1/ratelimit/check", json={"policy": name})
    assert no_key.status_code == 422 and "counts by user" in no_key.json()["detail"]
    bad = api.client.post("/v1/ratelimit/check", json={"policy": name, "cost": -1})
    assert bad.status_code == 422 and bad.json()["errors"][0]["location"] == "body.cost"


def test_check_without_a_key_counts_the_caller_as_the_policy_says(api):
    name = api.name("signup")
    api.apply({name: rlp(limit=1, key={"type": "ip"}, enforceInApi=False)})
    first = api.client.post("/v1/ratelimit/check", json={"policy": name}).json()
    assert first["key"] == "198.51.100.7" and first["allowed"]
    assert not api.client.post("/v1/ratelimit/check", json={"policy": name}).json()["allowed"]


def test_policies_route_lists_specs_with_the_config_hash_as_etag(api):
    name = api.name("listed")
    api.apply({name: rlp(algorithm="gcra", limit=10, burst=3)}, trusted_proxies=["10.0.0.0/8"])
    response = api.client.get("/v1/ratelimit/policies")
    body = response.json()
    assert response.headers["ETag"] == f'"{body["hash"]}"'
    assert body["trustedProxies"] == ["10.0.0.0/8"]
    assert body["policies"][name]["spec"]["algorithm"] == "gcra"
    assert body["policies"][name]["spec"]["burst"] == 3
    unchanged = api.client.get("/v1/ratelimit/policies", headers={"If-None-Match": response.headers["ETag"]})
    assert unchanged.status_code == 304


def test_openapi_documents_the_routes_examples_and_429_headers(api):
    spec = api.client.get("/openapi.json").json()
    check = spec["paths"]["/v1/ratelimit/check"]["post"]
    assert set(check["responses"]) >= {"200", "404", "422", "429", "503"}
    assert set(check["responses"]["429"]["headers"]) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
    schemas = spec["components"]["schemas"]
    assert schemas["CheckRequest"]["examples"] and schemas["CheckResult"]["examples"]
    assert schemas["PolicyList"]["examples"]
    assert "304" in spec["paths"]["/v1/ratelimit/policies"]["get"]["responses"]


async def test_another_app_mounts_the_middleware_with_a_policy_name(api, redis_server):
    name = api.name("partner")
    api.apply({name: rlp(algorithm="gcra", limit=60, burst=2, key={"type": "header", "header": "X-Tenant"})})
    stackyard = RateLimitClient("http://stackyard", transport=httpx.ASGITransport(app=api.client.app))
    other = FastAPI()

    @other.get("/reports")
    async def reports() -> dict[str, str]:
        return {"ok": "yes"}

    source = RemotePolicies(stackyard, refresh=0.05)
    other.add_middleware(RateLimitMiddleware, policy=name, policies=source, redis_url=redis_server.url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://other") as http:
        tenant = {"X-Tenant": f"acme-{uuid.uuid4().hex[:6]}"}
        codes = [(await http.get("/reports", headers=tenant)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert (await http.get("/reports")).status_code == 200, "no tenant header: the policy does not apply"
        # The other app and the api's check route count the same keys in the same Redis.
        checked = await stackyard.check(name, key=tenant["X-Tenant"], cost=0)
        assert checked.remaining == 0
    await source.aclose()
    await stackyard.aclose()


def test_an_applied_config_preloads_the_scripts_so_the_first_decision_needs_no_eval(api):
    """A fresh api (or a new Redis) would otherwise spend the first decision's 10 ms budget
    on a connect, a NOSCRIPT and an EVAL, and fail open on it."""
    import redis as redis_sync
    from stackyard.ratelimit.scripts import SCRIPTS

    shas = [script.sha for script in SCRIPTS.values()]
    with redis_sync.Redis.from_url(api.redis_url) as server:
        server.script_flush()
        api.apply({api.name("warm"): rlp(limit=5)})
        deadline = time.monotonic() + 5
        while not all(server.script_exists(*shas)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.script_exists(*shas) == [True] * len(shas)
