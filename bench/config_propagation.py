"""How long from `kubectl apply` of a changed RateLimitPolicy until the api applies it.

Starts the whole local stack as `make up` does (servers, operator, examples/, api and
worker), adds a policy `login`, then changes its limit N times (default 60), each time
timing from the start of `kubectl apply` until the api's GET /v1/config reports a new
config hash. Target: p99 under 2 s.

Peer: the floor any config pipeline on Kubernetes pays, measured on the same changes: a
client reading the RateLimitPolicy straight from the API server, polled from the same
start until it returns the new limit. It is what `kubectl apply` itself costs (process
start, discovery, the write). The ratio, and the difference, say how much the operator's
watch and render and the api's watch and swap add on top of it.

    python bench/config_propagation.py [--changes 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import httpx
from stackyard_harness.harness import Harness, progress
from stackyard_harness.local_stack import NAMESPACE, STACK, LocalStack
from stackyard_harness.programs import wait_until

TARGET_P99 = 2.0


def policy(limit: int) -> str:
    return json.dumps(
        {
            "apiVersion": "stackyard.dev/v1alpha1",
            "kind": "RateLimitPolicy",
            "metadata": {"name": "login", "namespace": NAMESPACE},
            "spec": {"stackRef": {"name": STACK}, "limit": limit, "window": "1m", "match": {"paths": ["/v1/auth/**"]}},
        }
    )


def time_until_each(apply: Callable[[], object], seen: dict[str, Callable[[], bool]], timeout: float = 30.0):
    """Seconds from the start of `apply` until each of `seen` first holds (polled every 5 ms)."""
    t0 = time.perf_counter()
    apply()
    times: dict[str, float] = {}
    while len(times) < len(seen):
        for name, check in seen.items():
            if name not in times and check():
                times[name] = time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"not seen within {timeout:.0f} s: {sorted(set(seen) - set(times))}")
        time.sleep(0.005)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} p50 {percentile(values, 50) * 1000:7.0f} ms   p99 {percentile(values, 99) * 1000:7.0f} ms   "
        f"mean {statistics.fmean(values) * 1000:7.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=60)
    args = parser.parse_args()

    # The whole local stack (as `make up`): servers, operator, examples/, api and worker.
    stack = LocalStack(Harness()).start()
    try:
        kube, api = stack.kube, stack.services["api"]
        kube.kubectl("apply", "--server-side", "-f", "-", input=policy(1))
        http = httpx.Client(base_url=api.url, timeout=5)
        admin = kube.http_client()

        def api_hash() -> str | None:
            response = http.get("/v1/config")
            return response.json()["hash"] if response.status_code == 200 else None

        wait_until(
            lambda: "login" in http.get("/v1/config").json().get("rateLimitPolicies", []),
            30,
            "the api to apply `login`",
        )

        policy_url = f"/apis/stackyard.dev/v1alpha1/namespaces/{NAMESPACE}/ratelimitpolicies/login"
        stackyard: list[float] = []
        floor: list[float] = []
        progress(f"{args.changes} changes of the policy's limit")
        for limit in range(2, args.changes + 2):
            before = api_hash()
            times = time_until_each(
                lambda limit=limit: kube.kubectl("apply", "--server-side", "-f", "-", input=policy(limit)),
                {
                    "api": lambda before=before: api_hash() not in (before, None),
                    "api server": lambda limit=limit: admin.get(policy_url).json()["spec"]["limit"] == limit,
                },
            )
            stackyard.append(times["api"])
            floor.append(times["api server"])
            if (limit - 1) % 10 == 0:
                progress(f"{limit - 1}/{args.changes}")
    finally:
        stack.stop()

    p99 = percentile(stackyard, 99)
    print()
    added = [a - b for a, b in zip(stackyard, floor, strict=True)]
    print(summary("stackyard: apply → api applies", stackyard))
    print(summary("peer: apply → readable from API", floor))
    print(summary("added by operator + api watch", added))
    print(
        f"ratio (stackyard / peer): p50 {percentile(stackyard, 50) / percentile(floor, 50):.2f}x, "
        f"p99 {p99 / percentile(floor, 99):.2f}x over {len(stackyard)} changes"
    )
    print(f"target p99 < {TARGET_P99:.0f} s: {'met' if p99 < TARGET_P99 else 'MISSED'} ({p99:.3f} s)")
    return 0 if p99 < TARGET_P99 else 1


if __name__ == "__main__":
    sys.exit(main())
