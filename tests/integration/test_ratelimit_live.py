"""RateLimitPolicies applied with kubectl change what the running api enforces, without a
restart, and report Ready with their observedGeneration."""

from __future__ import annotations

import httpx
import pytest

from .conftest import stack_manifest, wait_for

pytestmark = pytest.mark.usefixtures("operator")


def policy(name: str = "demo-items", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "RateLimitPolicy",
        "metadata": {"name": name},
        "spec": {
            "stackRef": {"name": "demo"},
            "match": {"paths": ["/v1/demo/**"]},
            "key": {"type": "ip"},
            "algorithm": "fixedWindow",
            "window": "1h",
            "timeout": "1s",
        }
        | spec,
    }


def stack_ready(namespace):
    wait_for(lambda: (namespace.condition("stack", "demo") or {}).get("status") == "True", what="Stack Ready")


def ready(namespace, name):
    obj = namespace.get("ratelimitpolicy", name) or {}
    condition = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None)
    if condition and condition["status"] == "True":
        return obj
    return None


def test_a_policy_applied_with_kubectl_changes_enforcement_on_the_running_api(namespace, backends, services):
    namespace.apply([stack_manifest(), policy(limit=2)])
    stack_ready(namespace)
    api = services("api", namespace)
    pid = api.process.proc.pid
    http = httpx.Client(base_url=api.url, timeout=5)
    wait_for(lambda: "RateLimit" in http.get("/v1/demo/x").headers, what="the api to enforce the policy")

    obj = wait_for(lambda: ready(namespace, "demo-items"), what="the policy Ready")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    second = http.get("/v1/demo/x")  # the request that saw the headers first was the first counted
    assert second.status_code == 404 and second.headers["RateLimit"].startswith('"demo-items";r=0;')
    refused = http.get("/v1/demo/x")
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["RateLimit-Policy"] == '"demo-items";q=2;w=3600'
    assert int(refused.headers["Retry-After"]) >= 1

    # A higher limit lets the same client through again, without a restart.
    namespace.apply(policy(limit=100))
    wait_for(lambda: http.get("/v1/demo/x").status_code == 404, what="the raised limit")
    assert http.get("/v1/demo/x").headers["RateLimit-Policy"] == '"demo-items";q=100;w=3600'
    obj = wait_for(
        lambda: (o := ready(namespace, "demo-items")) and o["status"]["observedGeneration"] == 2 and o,
        what="observedGeneration 2",
    )
    assert obj["metadata"]["generation"] == 2

    # dryRun: never blocks, invisible to clients, counted in /v1/ratelimit/policies.
    namespace.apply(policy(limit=1, mode="dryRun"))
    wait_for(lambda: "RateLimit" not in http.get("/v1/demo/x").headers, what="dryRun in force")
    assert all(http.get("/v1/demo/x").status_code == 404 for _ in range(5))
    counts = http.get("/v1/ratelimit/policies").json()["policies"]["demo-items"]["counts"]
    assert counts["wouldLimit"] >= 5

    # Deleted: nothing is enforced any more.
    namespace.kubectl("delete", "ratelimitpolicy", "demo-items")
    wait_for(lambda: http.get("/v1/ratelimit/policies").json()["policies"] == {}, what="the policy gone")
    assert "RateLimit" not in http.get("/v1/demo/x").headers
    assert api.process.proc.pid == pid and api.process.running, "the api must not restart"


def test_the_check_route_answers_for_a_policy_only_other_services_use(namespace, backends, services):
    namespace.apply(
        [
            stack_manifest(),
            policy("exports", limit=3, key={"type": "user"}, algorithm="gcra", burst=3, enforceInApi=False),
        ]
    )
    stack_ready(namespace)
    api = services("api", namespace)
    http = httpx.Client(base_url=api.url, timeout=5)
    wait_for(lambda: "exports" in http.get("/v1/ratelimit/policies").json()["policies"], what="the policy in force")
    assert "RateLimit" not in http.get("/v1/demo/x").headers
    results = [http.post("/v1/ratelimit/check", json={"policy": "exports", "key": "u1"}).json() for _ in range(4)]
    assert [r["allowed"] for r in results] == [True, True, True, False]
    assert results[-1]["retryAfter"] > 0


def test_the_api_server_rejects_bad_timeouts_and_trusted_proxies(namespace):
    result = namespace.try_apply(policy(limit=1, timeout="20s"))
    assert result.returncode != 0 and "timeout must be between 1ms and 10s" in result.stderr
    result = namespace.try_apply(stack_manifest(api={"trustedProxies": ["10.0.0.0/8", "300.1.2.3/8"]}))
    assert result.returncode != 0 and "trustedProxies must be CIDRs" in result.stderr
    result = namespace.try_apply(stack_manifest(api={"trustedProxies": ["10.0.0.0/8", "2001:db8::/32"]}))
    assert result.returncode == 0, result.stderr
