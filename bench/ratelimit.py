"""Rate limit decisions per second, against their peers, on one Redis in one run.

For each algorithm, the same number of decisions over the same keys with the same
concurrency (asyncio tasks sharing one client, as api requests do):

- stackyard: `RateLimiter.decide` (key, budget, failure handling, one EVALSHA)
- peer 1, `limits` (the Python library) with its nearest strategy on the same Redis:
  fixedWindow -> FixedWindowRateLimiter, slidingWindow -> SlidingWindowCounterRateLimiter,
  tokenBucket and gcra -> MovingWindowRateLimiter (it has neither). Goal: >= 2x.
- peer 2, the Redis-bound limit: a bare EVALSHA loop of the very same script with its
  arguments prepared in advance (redis-py, one call per task). Goal: >= 0.8x.
  stackyard writes the EVALSHAs that start in one event-loop turn together on one
  connection (each script still atomic on its own), so it beats that loop; two stricter
  bounds are printed with it: the same script in a redis-py pipeline of `concurrency`
  calls, and "the wire": the same EVALSHAs packed in advance, written `concurrency` at a
  time on one connection and their answers read, with nothing decided in Python.

Then the middleware's overhead on a FastAPI endpoint (ASGI calls in process, no sockets:
the app alone, with a policy that matches, with policies that do not), and decisions per
second for a blocked key with the deny cache on versus off. Each figure is the best of
three rounds taken in turn, so a noisy neighbour hurts every contender alike.

    python bench/ratelimit.py [--decisions 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from limits import RateLimitItemPerHour
from limits.aio import storage as limits_storage
from limits.aio import strategies as limits_strategies
from stackyard.clients import redis_client
from stackyard.ratelimit import ALGORITHMS, Policy, RateLimiter, RateLimitMiddleware
from stackyard.ratelimit.scripts import SCRIPTS
from stackyard.resources.ratelimit import RateLimitPolicySpec
from stackyard_harness.harness import Harness, progress

ROUNDS = 3
KEYS = 1000
BIG = 1_000_000_000
NEAREST = {
    "fixedWindow": ("FixedWindow", limits_strategies.FixedWindowRateLimiter),
    "slidingWindow": ("SlidingWindowCounter", limits_strategies.SlidingWindowCounterRateLimiter),
    "tokenBucket": ("MovingWindow", limits_strategies.MovingWindowRateLimiter),
    "gcra": ("MovingWindow", limits_strategies.MovingWindowRateLimiter),
}


def policy(algorithm: str, limit: int = BIG, **extra: object) -> Policy:
    spec = {"stackRef": {"name": "bench"}, "algorithm": algorithm, "limit": limit, "window": "1h", "timeout": "1s"}
    return Policy.from_spec(f"bench-{algorithm.lower()}", RateLimitPolicySpec.model_validate(spec | extra))


async def rate(op: Callable[[int], Awaitable[object]], count: int, concurrency: int) -> float:
    """Operations per second: `count` calls of op(i) spread over `concurrency` tasks."""

    async def worker(start: int) -> None:
        for i in range(start, count, concurrency):
            await op(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return count / (time.perf_counter() - t0)


async def best_of(contenders: dict[str, Callable[[int], Awaitable[object]]], count: int, concurrency: int):
    for op in contenders.values():  # warm connections and script caches
        await rate(op, min(count, 500), concurrency)
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(ROUNDS):
        for name, op in contenders.items():
            best[name] = max(best[name], await rate(op, count, concurrency))
    return best


def line(name: str, value: float, unit: str = "decisions/s") -> str:
    return f"  {name:<48} {value:>11,.0f} {unit}"


def verdict(ratio: float, goal: float) -> str:
    return f"{ratio:.2f}x (goal >= {goal}x: {'met' if ratio >= goal else 'MISSED'})"


async def algorithms(url: str, count: int, concurrency: int) -> list[bool]:
    client = redis_client(url)
    limiter = RateLimiter(client, use_deny_cache=False)
    storage = limits_storage.RedisStorage(f"async+{url}", implementation="redispy", max_connections=200)
    item = RateLimitItemPerHour(BIG)
    met = []
    for algorithm in ALGORITHMS:
        p = policy(algorithm)
        script = SCRIPTS[algorithm]
        keys = [limiter.redis_keys(p, f"k{i}") for i in range(KEYS)]
        args: list[str | int] = ["", p.limit, p.window_us, p.capacity, 1]
        peer_name, peer_class = NEAREST[algorithm]
        peer = peer_class(storage)

        async def stackyard(i: int, p: Policy = p) -> object:
            return await limiter.decide(p, f"k{i % KEYS}")

        async def bare(
            i: int, sha: str = script.sha, keys: list[list[str]] = keys, args: list[str | int] = args
        ) -> object:
            k = keys[i % KEYS]
            return await client.evalsha(sha, len(k), *k, *args)

        async def limits_hit(
            i: int, peer: limits_strategies.RateLimiter = peer, namespace: str = f"bench-{algorithm}"
        ) -> object:
            return await peer.hit(item, namespace, f"k{i % KEYS}")

        async def pipelined(
            i: int, sha: str = script.sha, keys: list[list[str]] = keys, args: list[str | int] = args
        ) -> object:
            pipe = client.pipeline(transaction=False)
            for j in range(concurrency):
                k = keys[(i * concurrency + j) % KEYS]
                pipe.evalsha(sha, len(k), *k, *args)
            return await pipe.execute()

        progress(f"{algorithm}: {ROUNDS} rounds of {count} decisions each")
        best = await best_of(
            {"stackyard": stackyard, "limits": limits_hit, "bare": bare},
            count,
            concurrency,
        )
        packed = [
            b"".join(script.pack(keys[(b * concurrency + j) % KEYS], args) for j in range(concurrency))
            for b in range(KEYS)
        ]

        async def wire(i: int, packed: list[bytes] = packed) -> object:
            pool = client.connection_pool
            conn = await pool.get_connection()
            try:
                await conn.send_packed_command(packed[i % KEYS])
                return [await conn.read_response(disable_decoding=True, timeout=math.inf) for _ in range(concurrency)]
            finally:
                await pool.release(conn)

        batches = {"pipelined": pipelined, "wire": wire}
        for name, value in (await best_of(batches, count // concurrency, 1)).items():
            best[name] = value * concurrency
        ours = best["stackyard"]
        print(f"\n{algorithm}")
        print(line("stackyard RateLimiter.decide", ours))
        print(line(f"limits {peer_name}", best["limits"]))
        print(line("bare EVALSHA of the same script", best["bare"]))
        print(line(f"same script, redis-py pipeline of {concurrency}", best["pipelined"]))
        print(line(f"the wire: packed in advance, {concurrency} a write", best["wire"]))
        print(f"  vs limits:            {verdict(ours / best['limits'], 2.0)}")
        print(f"  vs bare EVALSHA:      {verdict(ours / best['bare'], 0.8)}")
        print(f"  vs redis-py pipeline: {ours / best['pipelined']:.2f}x")
        print(f"  vs the wire:          {ours / best['wire']:.2f}x")
        met += [ours / best["limits"] >= 2.0, ours / best["bare"] >= 0.8]
    await client.aclose()
    return met


class AsgiDriver:
    """Calls an ASGI app directly with a GET, as a server would, and checks the status."""

    def __init__(self, app: object, path: str, status: int = 200) -> None:
        self.app, self.path, self.status = app, path, status

    async def __call__(self, i: int) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
            "client": (f"10.0.{i % 250}.{i % 200}", 40000),
            "server": ("bench", 80),
        }
        status = 0

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]

        await self.app(scope, receive, send)  # type: ignore[operator]
        if status != self.status:
            raise SystemExit(f"{self.path} answered {status}, expected {self.status}")


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


async def middleware(url: str, count: int, concurrency: int) -> None:
    limiter = RateLimiter(redis_client(url), use_deny_cache=False)
    spec = {"stackRef": {"name": "bench"}, "limit": BIG, "window": "1h", "timeout": "1s", "algorithm": "gcra"}
    matching = {"items": RateLimitPolicySpec.model_validate(spec | {"match": {"paths": ["/items/*"]}})}
    elsewhere = {
        f"other-{i}": RateLimitPolicySpec.model_validate(spec | {"match": {"paths": [f"/v1/other{i}/**"]}})
        for i in range(10)
    }
    bare_app = fastapi_app()
    limited = fastapi_app()
    limited.add_middleware(RateLimitMiddleware, policies=matching, limiter=limiter)
    unmatched = fastapi_app()
    unmatched.add_middleware(RateLimitMiddleware, policies=elsewhere, limiter=limiter)
    progress(f"middleware: {ROUNDS} rounds of {count} requests each")
    best = await best_of(
        {
            "bare": AsgiDriver(bare_app, "/items/7"),
            "matching": AsgiDriver(limited, "/items/7"),
            "unmatched": AsgiDriver(unmatched, "/items/7"),
        },
        count,
        concurrency,
    )
    print("\nmiddleware on a FastAPI endpoint (in-process ASGI calls)")
    print(line("FastAPI alone", best["bare"], "requests/s"))
    print(line("+ RateLimitMiddleware, 1 matching policy", best["matching"], "requests/s"))
    print(line("+ RateLimitMiddleware, 10 policies, none match", best["unmatched"], "requests/s"))
    for name in ("matching", "unmatched"):
        added = (1 / best[name] - 1 / best["bare"]) * 1e6
        print(f"  overhead, {name:<9}: {added:6.1f} us per request ({best[name] / best['bare']:.2f}x throughput)")


async def deny_cache(url: str, count: int, concurrency: int) -> None:
    client = redis_client(url)
    cached, uncached = RateLimiter(client), RateLimiter(client, use_deny_cache=False)
    p = policy("gcra", limit=1)
    for limiter in (cached, uncached):
        await limiter.decide(p, "blocked")
        assert not (await limiter.decide(p, "blocked")).allowed

    async def from_memory(i: int) -> object:
        return await cached.decide(p, "blocked")

    async def from_redis(i: int) -> object:
        return await uncached.decide(p, "blocked")

    progress(f"deny cache: {ROUNDS} rounds of {count} decisions each")
    best = await best_of({"on": from_memory, "off": from_redis}, count, concurrency)
    print("\nblocked key (gcra)")
    print(line("deny cache on (answered from memory)", best["on"]))
    print(line("deny cache off (a Redis round trip)", best["off"]))
    print(f"  ratio: {best['on'] / best['off']:.1f}x")
    await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with Harness() as harness:
        harness.start(["redis"])
        url = harness.started["redis"].url  # type: ignore[attr-defined]

        async def run() -> list[bool]:
            met = await algorithms(url, args.decisions, args.concurrency)
            await middleware(url, args.decisions // 2, args.concurrency)
            await deny_cache(url, args.decisions * 5, args.concurrency)
            return met

        met = asyncio.run(run())
    print(f"\ngoals met: {sum(met)} of {len(met)}")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
