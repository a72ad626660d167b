"""Auth: access-token verifications, authenticated requests, and login latency, each against
a peer measured in the same run.

- tokens: `stackyard.auth.tokens.verify_access_token` (header checks, the key by `kid`,
  PyJWT's decode, the claims), RS256 (the default), EdDSA and ES256, against PyJWT's plain
  `jwt.decode` of the same token with the same key, issuer and audience (the floor:
  stackyard verifies with it), the signature check alone (cryptography's `verify` on the signing input), and
  authlib's JWT and joserfc in .venv-bench (bench/peers/jwt_peers.py, the same checks).
  A token of `issue_access_token`, as logins get it. Best of ROUNDS rounds taken in turn.
- requests: the real api (`create_app` over a config directory, real Redis and FerretDB
  from the harness) served by uvicorn in a process of its own (bench/peers/auth_api.py),
  which adds `GET /bench/bare` (a small JSON, no auth) to that same app. This process is
  the load generator: aiohttp, CONNECTIONS keep-alive connections, each endpoint for
  SECONDS at a time, taking turns (after a warm-up of each), best turn of each.
  `GET /v1/auth/me` with a bearer token from a real login (PrincipalMiddleware verifies
  it, the route checks that its session is alive in Redis) against `/bench/bare`.
  Goal: >= 0.7x. Three more endpoints take turns with them, the steps between the two,
  each adding one thing: the token sent to `/bench/bare` (verified by the middleware,
  unused), `/bench/context` (the AuthContext dependency), `/bench/claims` (the claims
  dependency: the session's liveness in Redis); the api process's CPU time per request
  (read from /proc, whatever else the two cores do) tells what each step costs. When the
  goal is missed, py-spy (in .venv-bench) samples the api during one more turn of `me`
  and of `bare`, and the functions that take the time are printed.
- login: POST /v1/auth/login, one after the other, p50 and p95 (the argon2id verification
  of stackyard's parameters, m=19456 KiB, t=2, p=1, the account's reads and writes in
  FerretDB and Redis), and the hash alone against argon2-cffi's default parameters (RFC
  9106's low-memory choice, t=3, m=64 MiB, p=4) in the same library.

A missed goal prints MISSED and still exits 0 (as bench/email.py); a run that fails exits 1.

    python bench/auth.py [--seconds 4] [--connections 32] [--tokens 5000] [--logins 40]
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
import resource
import secrets
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import argon2
import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from stackyard.auth.keys import KeySet, generate_key
from stackyard.auth.passwords import MEMORY_KIB, PARALLELISM, TIME_COST, PasswordHasher
from stackyard.auth.tokens import issue_access_token, verify_access_token
from stackyard.config import RuntimeConfig
from stackyard.resources.email import EmailProviderSpec
from stackyard.resources.stack import AuthSettings, StackSpec
from stackyard_harness.api_process import cpu_seconds, stack_credentials, start_api_script, write_config_dir
from stackyard_harness.harness import Harness, progress
from stackyard_harness.process import exit_on_sigterm, free_port
from stackyard_harness.pyspy import frames, own_time, sample_stacks

REPO = Path(__file__).resolve().parent.parent
SERVER = REPO / "bench" / "peers" / "auth_api.py"
JWT_PEERS = REPO / "bench" / "peers" / "jwt_peers.py"
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"
ISSUER = "https://auth.acme.dev"
ROUNDS = 3
REQUEST_GOAL = 0.7
WARMUP_SECONDS = 2.0
LOGIN_WARMUP = 3
HASHES = 15
PROFILE_SECONDS = 4.0
PROFILE_RATE = 500


def line(name: str, value: float, unit: str) -> str:
    return f"  {name:<52} {value:>11,.0f} {unit}"


def verdict(ratio: float, goal: float) -> str:
    return f"{ratio:.2f}x (goal >= {goal}x: {'met' if ratio >= goal else 'MISSED'})"


# -- token verification --------------------------------------------------------------


def rate(op: Callable[[], object], count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        op()
    return count / (time.perf_counter() - t0)


def best_of(contenders: dict[str, Callable[[], object]], count: int) -> dict[str, float]:
    for op in contenders.values():
        rate(op, max(count // 10, 100))
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(ROUNDS):
        for name, op in contenders.items():
            best[name] = max(best[name], rate(op, count))
    return best


def signature_check(token: str, public: Any) -> Callable[[], object]:
    """The signature alone: what any JWT library must at least do."""
    head, payload, signature = token.split(".")
    signed = f"{head}.{payload}".encode()
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    if isinstance(public, ed25519.Ed25519PublicKey):
        return lambda: public.verify(raw, signed)
    if isinstance(public, rsa.RSAPublicKey):
        return lambda: public.verify(raw, signed, padding.PKCS1v15(), hashes.SHA256())
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    algorithm = ec.ECDSA(hashes.SHA256())
    return lambda: public.verify(der, signed, algorithm)


def tokens(count: int) -> None:
    for alg in ("RS256", "EdDSA", "ES256"):
        now = datetime.now(UTC)
        key = generate_key(alg, now)  # type: ignore[arg-type]
        keys = KeySet((key,))
        # What issue_access_token reads of an AuthContext and a UserRecord.
        ctx = SimpleNamespace(
            clock=lambda: datetime.now(UTC), keys=keys, settings=AuthSettings(), issuer=ISSUER, audience=ISSUER
        )
        user = SimpleNamespace(
            id="usr_01JBENCH0000000000000000AA", email="ana@example.com", email_verified=True, name="Ana Lima"
        )
        token, _ = issue_access_token(ctx, user, "ses_bench", ["pwd"])  # type: ignore[arg-type]
        public = key.public_key

        def ours(token: str = token, keys: KeySet = keys) -> object:
            return verify_access_token(token, keys, issuer=ISSUER, audience=ISSUER, now=datetime.now(UTC))

        def pyjwt(token: str = token, public: Any = public, alg: str = alg) -> object:
            return jwt.decode(token, public, algorithms=[alg], audience=ISSUER, issuer=ISSUER)

        progress(f"tokens, {alg}: {ROUNDS} rounds of {count} verifications each")
        best = best_of({"stackyard": ours, "pyjwt": pyjwt, "signature": signature_check(token, public)}, count)
        peers = jwt_peers(alg, token, public, count)
        print(f"\naccess-token verification, {alg} ({len(token)} bytes)")
        print(line("stackyard verify_access_token", best["stackyard"], "verifications/s"))
        print(line(f"PyJWT {jwt.__version__} jwt.decode (the floor)", best["pyjwt"], "verifications/s"))
        print(line("the signature alone (cryptography)", best["signature"], "verifications/s"))
        versions = peers.pop("versions", {})
        for name, value in peers.items():
            print(line(f"{name} {versions[name]} (.venv-bench)", value, "verifications/s"))
        extra = (1 / best["stackyard"] - 1 / best["pyjwt"]) * 1e6
        print(f"  vs PyJWT jwt.decode:  {best['stackyard'] / best['pyjwt']:.2f}x ({extra:+.1f} us a token)")
        for name, value in peers.items():
            print(f"  vs {name + ':':<18} {best['stackyard'] / value:.2f}x")
        print(f"  vs the signature:     {best['stackyard'] / best['signature']:.2f}x")


def jwt_peers(alg: str, token: str, public: Any, count: int) -> dict[str, Any]:
    """authlib's and joserfc's rates, from bench/peers/jwt_peers.py in .venv-bench (with the
    same cryptography release as .venv); {} when that venv is missing."""
    if not BENCH_PYTHON.exists():
        progress("no .venv-bench (make bench makes it): authlib and joserfc are left out")
        return {}
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    done = subprocess.run(
        [BENCH_PYTHON, JWT_PEERS, alg, ISSUER, str(count), str(ROUNDS)],
        input=json.dumps({"token": token, "public_pem": pem}),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- password hashing ----------------------------------------------------------------


async def hash_times() -> dict[str, dict[str, float]]:
    """Median ms of a hash and a verification: stackyard's hasher against argon2-cffi's
    defaults, and argon2-cffi with stackyard's parameters (the same work without pwdlib)."""
    password = "correct horse battery staple " + secrets.token_hex(4)
    ours = PasswordHasher()
    default = argon2.PasswordHasher()
    same = argon2.PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM)
    stored = {"stackyard": await ours.hash(password), "default": default.hash(password), "same": same.hash(password)}
    steps: dict[str, dict[str, Callable[[], Any]]] = {
        "stackyard": {
            "hash": lambda: ours.hash(password),
            "verify": lambda: ours.verify(password, stored["stackyard"]),
        },
        "default": {
            "hash": lambda: asyncio.to_thread(default.hash, password),
            "verify": lambda: asyncio.to_thread(default.verify, stored["default"], password),
        },
        "same": {
            "hash": lambda: asyncio.to_thread(same.hash, password),
            "verify": lambda: asyncio.to_thread(same.verify, stored["same"], password),
        },
    }
    times: dict[str, dict[str, list[float]]] = {n: {"hash": [], "verify": []} for n in steps}
    for _ in range(HASHES):
        for name, kinds in steps.items():
            for kind, call in kinds.items():
                t0 = time.perf_counter()
                await call()
                times[name][kind].append((time.perf_counter() - t0) * 1000)
    return {n: {k: statistics.median(v) for k, v in kinds.items()} for n, kinds in times.items()}


def print_hashes(ms: dict[str, dict[str, float]]) -> None:
    print("\nargon2id, one at a time (median of", HASHES, "each; the login verifies, sign-up hashes)")
    rows = [
        ("stackyard (pwdlib), m=19456 KiB t=2 p=1", "stackyard"),
        ("argon2-cffi, the same parameters", "same"),
        ("argon2-cffi defaults (RFC 9106 low-memory), m=64 MiB t=3 p=4", "default"),
    ]
    for label, name in rows:
        print(f"  {label:<62} hash {ms[name]['hash']:6.1f} ms   verify {ms[name]['verify']:6.1f} ms")
    ratio = ms["stackyard"]["hash"] / ms["default"]["hash"]
    memory = MEMORY_KIB / argon2.PasswordHasher().memory_cost
    print(f"  stackyard's hash: {ratio:.2f}x the time of argon2-cffi's default, {memory:.2f}x its memory")


# -- the api ---------------------------------------------------------------------------


def write_config(directory: Path, redis_url: str, mongo_url: str) -> None:
    """A Stack as the demo's: auth with email links on (one SMTP provider; nothing is sent
    here), email verification off so that sign-up logs in, the per-IP login limit raised
    so that the login round is not refused."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = StackSpec.model_validate(
        {
            "redis": {"urlSecretRef": {"name": "bench", "key": "redis"}},
            "mongodb": {"uriSecretRef": {"name": "bench", "key": "mongodb"}, "database": "bench_auth"},
            "auth": {
                "issuer": ISSUER,
                "appUrl": "https://app.acme.dev",
                "emailFrom": "Acme <auth@acme.dev>",
                "requireEmailVerification": False,
                "lockout": {"ipMaxAttempts": 100000},
            },
        }
    )
    relay = {"stackRef": {"name": "bench"}, "type": "smtp", "smtp": {"host": "127.0.0.1", "port": free_port()}}
    config = RuntimeConfig(
        stack="bench",
        namespace="bench",
        generation=1,
        spec=spec,
        email_providers={"relay": EmailProviderSpec.model_validate(relay | {"priority": 10})},
    )
    credentials = stack_credentials(redis_url, mongo_url)
    write_config_dir(directory, config.canonical_json(), credentials)


class Load:
    """`connections` tasks on one aiohttp session, each sending one request after another."""

    def __init__(self, session: aiohttp.ClientSession, url: str, connections: int, pids: dict[str, int]):
        self.session, self.url, self.connections, self.pids = session, url, connections, pids

    async def run(self, path: str, headers: dict[str, str], seconds: float) -> dict[str, float]:
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds
        done = 0

        async def one() -> None:
            nonlocal done
            while loop.time() < stop:
                async with self.session.get(self.url + path, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise SystemExit(f"GET {path} answered {answer.status}: {(await answer.text())[:300]}")
                done += 1

        cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(self.connections)))
        elapsed = time.perf_counter() - t0
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        result = {"rate": done / elapsed, "requests": done, "elapsed": elapsed}
        for name, pid in self.pids.items():
            result[f"{name}_cpu"] = cpu_seconds(pid) - cpu0[name]
        result["client_cpu"] = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
        return result


async def login(session: aiohttp.ClientSession, url: str, email: str, password: str) -> dict[str, Any]:
    async with session.post(f"{url}/v1/auth/login", json={"email": email, "password": password}) as answer:
        body: dict[str, Any] = await answer.json(content_type=None)
        if answer.status != 200:
            raise SystemExit(f"login answered {answer.status}: {body}")
        return body


async def requests_and_logins(
    url: str, pids: dict[str, int], directory: Path, seconds: float, connections: int, logins: int
) -> None:
    email, password = f"ana+{secrets.token_hex(3)}@example.com", "quiet lantern " + secrets.token_hex(6)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(f"{url}/v1/auth/signup", json={"email": email, "password": password}) as answer:
            if answer.status != 201:
                raise SystemExit(f"sign-up answered {answer.status}: {await answer.text()}")
        progress(f"login: {LOGIN_WARMUP} + {logins} logins one after the other")
        latencies = []
        for i in range(LOGIN_WARMUP + logins):
            t0 = time.perf_counter()
            session_body = await login(session, url, email, password)
            if i >= LOGIN_WARMUP:
                latencies.append((time.perf_counter() - t0) * 1000)
        bearer = {"Authorization": f"Bearer {session_body['accessToken']}"}
        load = Load(session, url, connections, pids)
        # Steps from bare to me, each adding one thing: the token (which PrincipalMiddleware
        # verifies for every route), the AuthContext dependency, the claims dependency (the
        # session's liveness in Redis), the Me answer.
        endpoints = {
            "me": ("/v1/auth/me", bearer),
            "bare": ("/bench/bare", {}),
            "bare+token": ("/bench/bare", bearer),
            "context": ("/bench/context", bearer),
            "claims": ("/bench/claims", bearer),
        }
        progress(f"requests: warm-up, then {ROUNDS} turns of {seconds:.0f} s per endpoint, {connections} connections")
        for path, headers in endpoints.values():
            await load.run(path, headers, WARMUP_SECONDS)
        best: dict[str, dict[str, float]] = {}
        for _ in range(ROUNDS):
            for name, (path, headers) in endpoints.items():
                result = await load.run(path, headers, seconds)
                if name not in best or result["rate"] > best[name]["rate"]:
                    best[name] = result
        print_requests(best, connections)
        if best["me"]["rate"] / best["bare"]["rate"] < REQUEST_GOAL:
            profiles = {}
            for name in ("me", "bare"):
                path, headers = endpoints[name]
                profiles[name] = await profile(load, pids["api"], path, headers, directory / f"py-spy-{name}.txt")
            if profiles["me"] is not None and profiles["bare"] is not None:
                print_profile(profiles)  # type: ignore[arg-type]
    print_logins(latencies)


def print_requests(best: dict[str, dict[str, float]], connections: int) -> None:
    me, bare = best["me"], best["bare"]
    print(f"\nrequests on one uvicorn process (the real app), {connections} connections, best turn of {ROUNDS}")
    print(line("GET /v1/auth/me (bearer token, live session)", me["rate"], "requests/s"))
    print(line("GET /bench/bare (small JSON, no auth), same app", bare["rate"], "requests/s"))
    print(line("GET /bench/bare with the token (verified, unused)", best["bare+token"]["rate"], "requests/s"))
    print(line("GET /bench/context (AuthDep), with the token", best["context"]["rate"], "requests/s"))
    print(line("GET /bench/claims (ClaimsDep), with the token", best["claims"]["rate"], "requests/s"))
    print(f"  ratio:                {verdict(me['rate'] / bare['rate'], REQUEST_GOAL)}")
    print("  CPU a request:         api process   Redis   load generator (its busy share)   api busy")
    cpu = {}
    for name, result in best.items():
        n, elapsed = result["requests"], result["elapsed"]
        cpu[name] = result["api_cpu"] / n * 1e6
        print(
            f"    {name:<20} {cpu[name]:9.0f} us {result['redis_cpu'] / n * 1e6:6.0f} us"
            f" {result['client_cpu'] / n * 1e6:9.0f} us ({result['client_cpu'] / elapsed:4.0%})"
            f" {result['api_cpu'] / elapsed:17.0%}"
        )
    steps = [
        ("the token, verified by PrincipalMiddleware", "bare", "bare+token"),
        ("the AuthContext dependency (auth_context)", "bare+token", "context"),
        ("the claims dependency (session alive, Redis)", "context", "claims"),
        ("the Me answer (response model)", "claims", "me"),
    ]
    print(f"  the api's CPU for auth: {cpu['me'] - cpu['bare']:+.0f} us a request, step by step:")
    for label, before, after in steps:
        print(f"    {label:<48} {cpu[after] - cpu[before]:+6.0f} us  ({before} -> {after})")


async def profile(
    load: Load, pid: int, path: str, headers: dict[str, str], target: Path
) -> tuple[dict[str, int], dict[str, float]] | None:
    """py-spy samples the api process while `load` runs: its stacks (functions, root first)
    with their sample counts, and the load's figures. --nonblocking: reading the stacks
    without stopping the process now and then gives a torn stack (a few samples land in odd
    places), stopping it costs it more than that."""
    return await sample_stacks(
        pid,
        seconds=PROFILE_SECONDS,
        rate=PROFILE_RATE,
        target=target,
        flags=["--nonblocking"],
        during=load.run(path, headers, PROFILE_SECONDS),
        what=f"the api during GET {path}",
        # the event loop's thread only (not idle workers)
        keep=lambda stack: not stack.startswith("Thread._bootstrap"),
    )


# Functions whose inclusive share of the api's samples says what auth adds to a request
# (file suffix, function). A coroutine is on the stack only while it runs: waiting for
# Redis is not in its share, sending the command and reading the answer are.
WATCHED = {
    "PrincipalMiddleware._claims": ("stackyard_api/auth_deps.py", "_claims"),
    "  verify_access_token": ("auth/tokens.py", "verify_access_token"),
    "    jwt.get_unverified_header": ("jwt/api_jws.py", "get_unverified_header"),
    "    jwt.decode": ("jwt/api_jwt.py", "decode"),
    "auth_context (dependency)": ("stackyard_api/auth_deps.py", "auth_context"),
    "  AuthContext.__post_init__ (its stores)": ("auth/context.py", "__post_init__"),
    "  _mailer (an EmailService a request)": ("stackyard_api/auth_deps.py", "_mailer"),
    "current_claims (dependency)": ("stackyard_api/auth_deps.py", "current_claims"),
    "  Sessions.alive (Redis EXISTS)": ("auth/sessions.py", "alive"),
    "the route (me / bare)": ("", "me|bare"),
    "FastAPI solve_dependencies (all of them)": ("dependencies/utils.py", "solve_dependencies"),
    "FastAPI serialize_response": ("fastapi/routing.py", "serialize_response"),
    "LivePolicies.get (rate limits, no policy)": ("ratelimit/sources.py", "get"),
}


def share(stacks: dict[str, int], suffix: str, functions: str) -> float:
    names = set(functions.split("|"))
    total = sum(stacks.values())
    hit = sum(
        n for s, n in stacks.items() if any(f.rsplit(".", 1)[-1] in names and p.endswith(suffix) for p, f in frames(s))
    )
    return hit / total if total else 0.0


def print_profile(profiles: dict[str, tuple[dict[str, int], dict[str, float]]]) -> None:
    cpu = {name: result["api_cpu"] / result["requests"] * 1e6 for name, (_, result) in profiles.items()}
    print(f"\nwhere the api's CPU goes (py-spy, {PROFILE_RATE} samples/s of the event loop's thread, idle excluded;")
    print("the share of the samples, and that share of the CPU a request of the profiled turn)")
    print(f"  {'':<42} {'/v1/auth/me':>18} {'/bench/bare':>18}")
    counts = "".join(f" {sum(profiles[n][0].values()):>10} samples" for n in ("me", "bare"))
    print(f"  {'':<42}{counts}")
    row = "".join(f" {cpu[n]:>8.0f} us (100%)" for n in ("me", "bare"))
    print(f"  {'the whole request':<42}{row}")
    for label, (suffix, function) in WATCHED.items():
        cells = ""
        for name in ("me", "bare"):
            part = share(profiles[name][0], suffix, function)
            cells += f" {part * cpu[name]:>8.0f} us ({part:4.0%})" if part else f" {'-':>18}"
        print(f"  {label:<42}{cells}")
    for name in ("me", "bare"):
        stacks = profiles[name][0]
        total = sum(stacks.values()) or 1
        own, by_package = own_time(stacks)
        packages = sorted(by_package.items(), key=lambda item: -item[1])[:8]
        print(f"  GET {'/v1/auth/me' if name == 'me' else '/bench/bare'}, own time by package: ", end="")
        print(", ".join(f"{p} {n / total:.0%}" for p, n in packages))
        if name == "me":
            print("  GET /v1/auth/me, the 12 functions with the most own time:")
            for key, n in sorted(own.items(), key=lambda item: -item[1])[:12]:
                print(f"    {n / total:5.1%} ({n / total * cpu[name]:5.0f} us)  {key}")


def print_logins(latencies: list[float]) -> None:
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"\nPOST /v1/auth/login, one at a time ({len(latencies)} logins)")
    print(f"  p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   max {max(latencies):6.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one turn of one endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=5000, help="verifications per round")
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args()

    exit_on_sigterm()
    tokens(args.tokens)
    progress(f"argon2id: {HASHES} hashes and verifications of each")
    print_hashes(asyncio.run(hash_times()))
    with contextlib.ExitStack() as stack:
        harness = stack.enter_context(Harness())
        harness.start(["redis", "mongo"])
        redis = harness.started["redis"]
        directory = harness.run_dir / "auth-bench"
        write_config(directory, redis.url, harness.started["mongo"].url)  # type: ignore[attr-defined]
        progress("starting the api (bench/peers/auth_api.py) under uvicorn")
        server, url = start_api_script(SERVER, directory)
        stack.callback(server.stop)
        pids = {"api": server.proc.pid, "redis": redis.process.proc.pid}  # type: ignore[attr-defined,union-attr]
        asyncio.run(requests_and_logins(url, pids, directory, args.seconds, args.connections, args.logins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
