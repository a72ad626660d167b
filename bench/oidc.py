"""The OpenID Provider (issue 17): the token endpoint with client credentials, introspection
and the JWKS, against node oidc-provider (panva's certified OpenID Provider), measured in
the same run with the same load generator.

- stackyard: the real api (`create_app` over a config directory as the operator renders it,
  real Redis and FerretDB from the harness, one OIDCClient `reports` of type machine with its
  client secret in the credentials, the Stack's signing key EdDSA, as the peer's) under
  uvicorn in a process of its own (bench/peers/auth_api.py, the app as stackyard-api serves
  it).
- the peer: oidc-provider as `make tools` installs it for the harness (hack/harness/oidc),
  started by bench/peers/oidc_provider.mjs with a configuration of its own: client
  credentials, introspection and revocation on, its default in-memory adapter, one EdDSA
  key; two confidential clients with client_secret_basic: `reports`, whose tokens are
  EdDSA-signed JWTs (resource indicators, as stackyard's machine tokens are JWTs), and
  `reports-opaque` (the package's default opaque token, kept in its adapter: oidc-provider
  refuses to introspect its JWT access tokens, so introspection is measured with that one).
- load: this process, aiohttp, CONNECTIONS keep-alive connections, each endpoint SECONDS at
  a time, taking turns (after a warm-up of each), best turn of ROUNDS; requests/s, p50 and
  p95 latency, and each server's CPU time a request (from /proc).
  1. `POST /oauth2/token` (`/token`), grant_type=client_credentials, scope=reports:read,
     HTTP Basic client authentication;
  2. introspection of an access token (`POST /oauth2/introspect` against
     `/token/introspection`), Basic authentication of the client the token was issued to;
  3. `GET /.well-known/jwks.json` against `/jwks` (cheap, cacheable).
  And, with no peer, `GET /bench/bare` of the same api (a small JSON, no auth, the same
  middleware): the floor of any route of the api, which tells what the protocol itself adds.
  Goal: stackyard >= 0.5x the peer's requests/s on each (the token against the peer's JWT
  tokens). When a goal is missed, py-spy (in .venv-bench) samples the api during one more
  turn and the functions that take the time are printed.

Node.js is single-threaded like the api's event loop, so each side is one process on one core.
A missed goal prints MISSED and still exits 0 (as bench/auth.py); a run that fails exits 1.

    python bench/oidc.py [--seconds 4] [--connections 32]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ is first on sys.path and holds email.py, which would hide the standard library's
# `email` package from aiohttp and httpx.
# ruff: noqa: E402
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import base64
import contextlib
import json
import re
import resource
import shutil
import time
from typing import Any

import aiohttp
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from stackyard.config import RuntimeConfig
from stackyard.resources.oidc import OIDCClientSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.api_process import cpu_seconds, stack_credentials, start_api_script, write_config_dir
from stackyard_harness.harness import Harness, progress
from stackyard_harness.oidc_provider import provider_script
from stackyard_harness.process import ManagedProcess, exit_on_sigterm
from stackyard_harness.pyspy import SPY, own_time, sample_stacks

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "bench" / "peers" / "auth_api.py"
PEER = REPO / "bench" / "peers" / "oidc_provider.mjs"
ISSUER = "https://auth.acme.dev"
AUDIENCE = "https://reports.acme.dev"
SECRET = "reports-client-secret-" + "m" * 30
SCOPE = "reports:read"
ROUNDS = 3
GOAL = 0.5
WARMUP_SECONDS = 2.0
PROFILE_SECONDS = 4.0
PROFILE_RATE = 500
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(client_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{SECRET}".encode()).decode()}


# -- the two servers -----------------------------------------------------------------------


def write_config(directory: Path, redis_url: str, mongo_url: str) -> None:
    """A Stack with auth (EdDSA, as the peer's keys) and one machine OIDCClient."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = StackSpec.model_validate(
        {
            "redis": {"urlSecretRef": {"name": "bench", "key": "redis"}},
            "mongodb": {"uriSecretRef": {"name": "bench", "key": "mongodb"}, "database": "bench_oidc"},
            "auth": {"issuer": ISSUER, "appUrl": "https://app.acme.dev", "emailFrom": "Acme <auth@acme.dev>"}
            | {"signingAlgorithm": "EdDSA"},
        }
    )
    client = OIDCClientSpec.model_validate(
        {"stackRef": {"name": "bench"}, "type": "machine", "scopes": ["reports:read", "reports:write"]}
        | {"audience": AUDIENCE}
    )
    config = RuntimeConfig(stack="bench", namespace="bench", generation=1, spec=spec, oidc_clients={"reports": client})
    credentials = stack_credentials(redis_url, mongo_url) | {"oidcclient.reports.clientSecret": SECRET}
    write_config_dir(directory, config.canonical_json(), credentials)


def eddsa_jwk() -> dict[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    d = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    x = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "d": b64(d), "x": b64(x), "alg": "EdDSA", "use": "sig", "kid": "bench"}


def start_peer(directory: Path) -> tuple[ManagedProcess, str]:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on PATH (Node.js 20 or later)")
    installed = provider_script().parent
    config = {"port": 0, "jwk": eddsa_jwk(), "secret": SECRET, "audience": AUDIENCE}
    log = directory / "oidc-provider.log"
    log.unlink(missing_ok=True)
    env = {"OIDC_PROVIDER_DIR": str(installed), "BENCH_OIDC_CONFIG": json.dumps(config), "NODE_ENV": "production"}
    peer = ManagedProcess("oidc-provider (bench)", [node, PEER], log, env=env, cwd=installed)
    found: list[str] = []

    def listening() -> bool:
        match = re.search(r"^listening (http://\S+)$", log.read_text(errors="replace"), re.M)
        if match:
            found[:] = [match.group(1)]
        return bool(match) and httpx.get(f"{found[0]}/jwks", timeout=2).status_code == 200

    peer.start().wait_ready(listening, 30, "serving its JWKS")
    return peer, found[0]


def package_version(installed: Path) -> str:
    manifest = installed / "node_modules" / "oidc-provider" / "package.json"
    return str(json.loads(manifest.read_text())["version"])


# -- load ----------------------------------------------------------------------------------


class Endpoint:
    def __init__(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: str | None,
        check: str | None,
        pid: int,
        token_from: tuple[str, str] | None = None,
    ):
        self.method, self.url, self.headers, self.body, self.check, self.pid = method, url, headers, body, check, pid
        # (token endpoint, client id): the body is `token=<a new access token>`, taken before
        # each turn (oidc-provider's in-memory adapter keeps the last 1,000 tokens or so, so
        # the token turns in between would drop an older one).
        self.token_from = token_from


async def run(session: aiohttp.ClientSession, endpoint: Endpoint, connections: int, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    latencies: list[float] = []
    if endpoint.token_from is not None:
        endpoint.body = "token=" + await token_of(session, *endpoint.token_from)
    data = endpoint.body.encode() if endpoint.body is not None else None

    async def one() -> None:
        while loop.time() < stop:
            t0 = time.perf_counter()
            async with session.request(endpoint.method, endpoint.url, data=data, headers=endpoint.headers) as answer:
                text = await answer.read()
                if answer.status != 200 or (endpoint.check and endpoint.check.encode() not in text):
                    raise SystemExit(f"{endpoint.method} {endpoint.url} answered {answer.status}: {text[:300]!r}")
            latencies.append(time.perf_counter() - t0)

    cpu0 = cpu_seconds(endpoint.pid)
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()
    n = len(latencies)
    return {
        "rate": n / elapsed,
        "requests": n,
        "p50": latencies[n // 2] * 1000,
        "p95": latencies[min(n - 1, int(n * 0.95))] * 1000,
        "server_cpu": (cpu_seconds(endpoint.pid) - cpu0) / n * 1e6,
        "server_busy": (cpu_seconds(endpoint.pid) - cpu0) / elapsed,
        "client_busy": (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) / elapsed,
    }


async def token_of(session: aiohttp.ClientSession, url: str, client_id: str) -> str:
    body = f"grant_type=client_credentials&scope={SCOPE}"
    async with session.post(url, data=body.encode(), headers=FORM | basic(client_id)) as answer:
        got: dict[str, Any] = await answer.json(content_type=None)
        if answer.status != 200:
            raise SystemExit(f"{url} answered {answer.status}: {got}")
        return str(got["access_token"])


async def bench(api: str, peer: str, pids: dict[str, int], directory: Path, seconds: float, connections: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections * 2)) as session:
        sy_token = await token_of(session, f"{api}/oauth2/token", "reports")
        op_jwt = await token_of(session, f"{peer}/token", "reports")
        progress(f"stackyard's token {sy_token[:20]}... ({len(sy_token)} bytes), the peer's JWT {len(op_jwt)} bytes")
        grant = f"grant_type=client_credentials&scope={SCOPE}"
        endpoints = {
            "stackyard token": Endpoint(
                "POST", f"{api}/oauth2/token", FORM | basic("reports"), grant, "access_token", pids["api"]
            ),
            "peer token (JWT)": Endpoint(
                "POST", f"{peer}/token", FORM | basic("reports"), grant, "access_token", pids["peer"]
            ),
            "peer token (opaque)": Endpoint(
                "POST", f"{peer}/token", FORM | basic("reports-opaque"), grant, "access_token", pids["peer"]
            ),
            "stackyard introspect": Endpoint(
                "POST",
                f"{api}/oauth2/introspect",
                FORM | basic("reports"),
                None,
                '"active":true',
                pids["api"],
                token_from=(f"{api}/oauth2/token", "reports"),
            ),
            "peer introspect": Endpoint(
                "POST",
                f"{peer}/token/introspection",
                FORM | basic("reports-opaque"),
                None,
                '"active":true',
                pids["peer"],
                token_from=(f"{peer}/token", "reports-opaque"),
            ),
            "stackyard jwks": Endpoint("GET", f"{api}/.well-known/jwks.json", {}, None, '"keys"', pids["api"]),
            "peer jwks": Endpoint("GET", f"{peer}/jwks", {}, None, '"keys"', pids["peer"]),
            # No peer: the floor of any route of the api (its middleware, uvicorn, a small JSON).
            "stackyard bare (floor)": Endpoint("GET", f"{api}/bench/bare", {}, None, '"ok"', pids["api"]),
        }
        progress(f"warm-up, then {ROUNDS} turns of {seconds:.0f} s per endpoint, {connections} connections")
        for endpoint in endpoints.values():
            await run(session, endpoint, connections, WARMUP_SECONDS)
        best: dict[str, dict[str, Any]] = {}
        for turn in range(ROUNDS):
            for name, endpoint in endpoints.items():
                result = await run(session, endpoint, connections, seconds)
                progress(f"turn {turn + 1}: {name:<22} {result['rate']:8,.0f} requests/s")
                if name not in best or result["rate"] > best[name]["rate"]:
                    best[name] = result
        missed = print_results(best, connections)
        if missed and not SPY.exists():
            progress("no py-spy in .venv-bench (make bench installs it): no profile")
            missed = []
        for name in missed:
            path = directory / f"py-spy-{name.replace(' ', '-')}.txt"
            profiled = await sample_stacks(
                pids["api"],
                seconds=PROFILE_SECONDS,
                rate=PROFILE_RATE,
                target=path,
                flags=["--nonblocking"],
                during=run(session, endpoints[name], connections, PROFILE_SECONDS),
                what=f"the api during {name}",
                keep=lambda stack: not stack.startswith("Thread._bootstrap"),
            )
            if profiled is not None:
                print_profile(name, *profiled)


def print_results(best: dict[str, dict[str, Any]], connections: int) -> list[str]:
    print(f"\nrequests/s, {connections} connections, best turn of {ROUNDS} (p50 / p95 latency of that turn)")
    print(f"  {'':<24} {'requests/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'CPU a request':>14} {'server busy':>12}")
    for name, r in best.items():
        print(
            f"  {name:<24} {r['rate']:>11,.0f} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['server_cpu']:>11.0f} us"
            f" {r['server_busy']:>12.0%}"
        )
    missed = []
    pairs = [
        ("token (client_credentials)", "stackyard token", "peer token (JWT)"),
        ("introspection", "stackyard introspect", "peer introspect"),
        ("JWKS", "stackyard jwks", "peer jwks"),
    ]
    for label, ours, theirs in pairs:
        ratio = best[ours]["rate"] / best[theirs]["rate"]
        met = ratio >= GOAL
        print(f"  {label + ':':<28} {ratio:.2f}x the peer (goal >= {GOAL}x: {'met' if met else 'MISSED'})")
        if not met:
            missed.append(ours)
    opaque = best["stackyard token"]["rate"] / best["peer token (opaque)"]["rate"]
    print(f"  {'token vs the opaque one:':<28} {opaque:.2f}x (no goal: no signature on the peer's side)")
    return missed


def inclusive(stacks: dict[str, int], needle: str) -> float:
    total = sum(stacks.values()) or 1
    return sum(n for s, n in stacks.items() if needle in s) / total


WATCHED = {
    "the route (stackyard_api/routers/oidc.py)": "(stackyard_api/routers/oidc.py",
    "authenticate_client (client auth)": "authenticate_client",
    "grants.client_credentials": "client_credentials (",
    "issue_client_access_token (sign)": "issue_client_access_token",
    "introspection.introspect (core)": "introspect (stackyard/auth/oidc",
    "verify_access_token": "verify_access_token",
    "revocation.denylisted (Redis)": "denylisted",
    "FastAPI route matching": "_match (",
    "auth_context (dependency)": "auth_context",
    "FastAPI solve_dependencies": "solve_dependencies",
    "Starlette form parsing": "_get_form",
    "cryptography sign/verify": "sign (",
}


def print_profile(name: str, stacks: dict[str, int], result: dict[str, Any]) -> None:
    total = sum(stacks.values()) or 1
    print(f"\nwhere the api's time goes during {name} (py-spy, {total} samples of the event loop's thread,")
    print(f"idle excluded; {result['rate']:,.0f} requests/s, {result['server_cpu']:.0f} us of api CPU a request)")
    for label, needle in WATCHED.items():
        part = inclusive(stacks, needle)
        if part:
            print(f"  {label:<40} {part:5.1%} of the samples (inclusive)")
    own, by_package = own_time(stacks)
    packages = sorted(by_package.items(), key=lambda item: -item[1])[:8]
    print("  own time by package: " + ", ".join(f"{p} {n / total:.0%}" for p, n in packages))
    print("  the 12 functions with the most own time:")
    for key, n in sorted(own.items(), key=lambda item: -item[1])[:12]:
        print(f"    {n / total:5.1%}  {key}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one turn of one endpoint")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    exit_on_sigterm()
    with contextlib.ExitStack() as stack:
        harness = stack.enter_context(Harness())
        harness.start(["redis", "mongo"])
        directory = harness.run_dir / "oidc-bench"
        write_config(directory, harness.started["redis"].url, harness.started["mongo"].url)  # type: ignore[attr-defined]
        progress("starting the api (bench/peers/auth_api.py) under uvicorn")
        api, api_url = start_api_script(SERVER, directory)
        stack.callback(api.stop)
        progress("starting oidc-provider (bench/peers/oidc_provider.mjs)")
        peer, peer_url = start_peer(directory)
        stack.callback(peer.stop)
        progress(f"oidc-provider {package_version(provider_script().parent)}, node {shutil.which('node')}; EdDSA keys")
        pids = {"api": api.proc.pid, "peer": peer.proc.pid}  # type: ignore[union-attr]
        asyncio.run(bench(api_url, peer_url, pids, directory, args.seconds, args.connections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
