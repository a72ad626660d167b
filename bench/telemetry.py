"""Telemetry: requests per second of an instrumented api route with telemetry on, against
the same route with telemetry off, in one run, exporting to a real collector.

The real api (`stackyard-api`: `create_app` over a config directory as the operator renders
it, uvicorn with its options) in one process per mode, all on the same Redis from the
harness, each with the Stack's `spec.telemetry` of its mode:

- off:  `enabled: false`; the SDK is never installed in that process (no providers, no
        instrumentation of Redis, PyMongo or httpx). The FastAPI instrumentation is in
        every app (stackyard_api/telemetry.py) and runs against the API's no-op proxies;
- 0.1:  `enabled: true`, `samplingRatio: 0.1`, OTLP/HTTP to the harness's collector (built
        by ocb, writing what it receives to a file, as a test's): the goal's mode;
- 0.0 and 1.0: the same at `samplingRatio: 0` (the SDK, the instrumentations and the
        metrics, but no span recorded or exported) and `1.0`, for information: the floor
        of telemetry on, and everything traced.

Exports, batching and metric intervals are the SDK's defaults (spans in batches of up to
512 every 5 s, metrics every 60 s), logs exported too (`exportLogs` default).

The route: `GET /v1/jobs/{id}` of a job enqueued first (through `POST /v1/jobs`): the
jobs router, the rate-limit and principal middleware every route passes, one Redis
pipeline (HMGET + HGETALL) through the instrumented redis-py client, a pydantic answer.
With telemetry on, each request makes a SERVER span (the FastAPI instrumentation) and a
redis CLIENT span below it when sampled, and records the HTTP server metrics always.

This process is the load generator: aiohttp, CONNECTIONS keep-alive connections, each
sending one request after another, for SECONDS per turn. A warm-up turn of each mode, then
ROUNDS rounds; each round gives every mode one turn, in an order that alternates from one
round to the next (off, 0.0, 0.1, 1.0, then 1.0, 0.1, 0.0, off, ...), so that a drift of the machine
(2 cores shared with whatever else runs) does not favour one side. Per mode: the median of
its turns' requests/s, p50 and p99 latency over all its turns, the api process's CPU per
request (from /proc), the collector's, and the api's largest RSS after a turn. The ratio is
median(0.1) / median(off), and the same ratio per round (adjacent turns) shows its spread.
Goal: >= 0.9x (overhead <= 10 %). After the rounds, the collector's file is read to check
that the spans arrived (SERVER spans per process against the requests sent).

When the goal is missed (or with --profile), py-spy (in .venv-bench) samples the off and
the 0.1 process during one more turn each; each sample is charged to its innermost frame
outside the standard library, and the share of each package (OpenTelemetry's by part) and
of the OpenTelemetry functions that take the most is printed.

The run waits (up to 5 minutes) for a 1-minute load average below --max-load (1.5) first.

A missed goal prints MISSED and still exits 0 (as bench/auth.py); a run that fails exits 1.

    python bench/telemetry.py [--seconds 5] [--rounds 6] [--connections 32] [--profile]
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
import contextlib
import json
import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
from stackyard.clients import redis_client
from stackyard.config import RuntimeConfig
from stackyard.jobs import JobClient
from stackyard.resources.jobs import JobQueueSpec
from stackyard.resources.stack import StackSpec
from stackyard_harness.harness import Harness, progress
from stackyard_harness.otel import OtelCollector
from stackyard_harness.process import ManagedProcess, exit_on_sigterm, free_port
from stackyard_harness.pyspy import sample_stacks

REPO = Path(__file__).resolve().parent.parent
GOAL = 0.9
QUEUE = "bench"
FUNCTION = "reports.send"
WARMUP_SECONDS = 3.0
EXPORT_WAIT = 8.0
"""Seconds to let the last spans reach the collector (the batch processor's 5 s delay)."""
STARTUP_TIMEOUT = 120.0
PROFILE_SECONDS = 5.0
PROFILE_RATE = 250
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Mode:
    name: str
    label: str
    ratio: float | None  # None: telemetry off

    @property
    def instance(self) -> str:
        """service.instance.id of its spans (STACKYARD_POD_NAME), to tell the processes apart."""
        return f"bench-telemetry-{self.name}"


MODES = (
    Mode("off", "telemetry off (SDK not installed)", None),
    Mode("0.0", "on, samplingRatio 0 (no trace sampled)", 0.0),
    Mode("0.1", "on, samplingRatio 0.1 (the goal's)", 0.1),
    Mode("1.0", "on, samplingRatio 1.0", 1.0),
)
OFF, GOAL_MODE = MODES[0], MODES[2]


# -- the api processes ------------------------------------------------------------------


def write_config(directory: Path, mode: Mode, redis_url: str, endpoint: str) -> None:
    """A Stack with one JobQueue and the mode's telemetry, as the operator renders it."""
    directory.mkdir(parents=True, exist_ok=True)
    telemetry: dict[str, Any] = {"enabled": False}
    if mode.ratio is not None:
        telemetry = {"enabled": True, "endpoint": endpoint, "samplingRatio": mode.ratio}
    spec = StackSpec.model_validate(
        {
            "redis": {"urlSecretRef": {"name": "bench", "key": "redis"}},
            "mongodb": {"uriSecretRef": {"name": "bench", "key": "mongodb"}},
            "telemetry": telemetry,
        }
    )
    config = RuntimeConfig(
        stack="bench",
        namespace="bench",
        generation=1,
        spec=spec,
        job_queues={QUEUE: JobQueueSpec.model_validate({"stackRef": {"name": "bench"}})},
    )
    (directory / "credentials.json").write_text(json.dumps({"stack.redis.url": redis_url}))
    (directory / "config.json").write_text(config.canonical_json())


def start_api(directory: Path, mode: Mode) -> tuple[ManagedProcess, str]:
    """`stackyard-api` (its module, with this venv's Python) on a free port; not waited for."""
    port = free_port()
    env = {
        "STACKYARD_CONFIG_DIR": str(directory),
        "STACKYARD_LOG_LEVEL": "warning",
        "STACKYARD_STACK": "",
        "STACKYARD_POD_NAME": mode.instance,
    }
    argv = [sys.executable, "-m", "stackyard_api.main", "--host", "127.0.0.1", "--port", str(port)]
    server = ManagedProcess(f"stackyard-api ({mode.name})", argv, directory / "api.log", env=env)
    return server.start(), f"http://127.0.0.1:{port}"


def wait_serving(server: ManagedProcess, url: str) -> None:
    def ready() -> bool:
        return httpx.get(f"{url}/v1/config", timeout=1).status_code == 200

    # Importing the api takes 3 s on a quiet machine, over 30 s while tests run.
    server.wait_ready(ready, STARTUP_TIMEOUT, "serving its config")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime, stime


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB / 1024


# -- the load ---------------------------------------------------------------------------


@dataclass
class Turn:
    rate: float
    requests: int
    elapsed: float
    api_cpu: float
    collector_cpu: float
    client_cpu: float
    latencies: list[float]


@dataclass
class Figures:
    turns: list[Turn] = field(default_factory=list)
    rss: float = 0.0

    def median_rate(self) -> float:
        return statistics.median(t.rate for t in self.turns)

    def latency(self, q: float) -> float:
        pooled = sorted(x for t in self.turns for x in t.latencies)
        return pooled[min(len(pooled) - 1, int(q * len(pooled)))] * 1000

    def per_request(self, attr: str) -> float:
        """Microseconds of a process's CPU a request, over every turn."""
        return sum(getattr(t, attr) for t in self.turns) / sum(t.requests for t in self.turns) * 1e6


class Load:
    """`connections` tasks on one aiohttp session, each sending one request after another."""

    def __init__(self, session: aiohttp.ClientSession, connections: int, collector_pid: int) -> None:
        self.session, self.connections, self.collector_pid = session, connections, collector_pid
        self.sent: dict[int, int] = {}
        """Requests sent to each api process (by pid), warm-up and profiling included."""

    async def run(self, url: str, pid: int, seconds: float) -> Turn:
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds
        latencies: list[float] = []

        async def one() -> None:
            clock = time.perf_counter
            while loop.time() < stop:
                t0 = clock()
                async with self.session.get(url) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise SystemExit(f"GET {url} answered {answer.status}: {(await answer.text())[:300]}")
                latencies.append(clock() - t0)

        api0, collector0 = cpu_seconds(pid), cpu_seconds(self.collector_pid)
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(self.connections)))
        elapsed = time.perf_counter() - t0
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        self.sent[pid] = self.sent.get(pid, 0) + len(latencies)
        return Turn(
            rate=len(latencies) / elapsed,
            requests=len(latencies),
            elapsed=elapsed,
            api_cpu=cpu_seconds(pid) - api0,
            collector_cpu=cpu_seconds(self.collector_pid) - collector0,
            client_cpu=own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime,
            latencies=latencies,
        )


async def enqueue_job(session: aiohttp.ClientSession, url: str, redis_url: str) -> str:
    """A job that waits an hour (no worker runs here): what GET /v1/jobs/{id} reads. Its
    function is registered as a worker would, so that the api accepts it."""
    redis = redis_client(redis_url)
    await JobClient(redis).register_functions(QUEUE, [FUNCTION])
    await redis.aclose()
    body = {"queue": QUEUE, "function": FUNCTION, "payload": {"userId": "u_42"}, "delay": 3600}
    async with session.post(f"{url}/v1/jobs", json=body) as answer:
        job: dict[str, Any] = await answer.json(content_type=None)
        if answer.status != 201:
            raise SystemExit(f"POST /v1/jobs answered {answer.status}: {job}")
        return str(job["id"])


def wait_for_quiet(limit: float, patience: float) -> None:
    """Wait (up to `patience` s) until the 1-minute load average is below `limit`: a turn
    measured while tests run elsewhere measures them."""
    deadline = time.monotonic() + patience
    while (load := os.getloadavg()[0]) >= limit:
        if time.monotonic() > deadline:
            progress(f"load average still {load:.2f}: measuring anyway (the figures hold that load)")
            return
        progress(f"load average {load:.2f} >= {limit}: waiting for a quieter machine")
        time.sleep(15)


async def measure(
    apis: dict[Mode, tuple[ManagedProcess, str]],
    collector: OtelCollector,
    redis_url: str,
    args: argparse.Namespace,
    run_dir: Path,
) -> tuple[dict[Mode, Figures], str, dict[Mode, Any], dict[Mode, int]]:
    seconds, rounds, connections = args.seconds, args.rounds, args.connections
    connector = aiohttp.TCPConnector(limit=connections)
    assert collector.process is not None and collector.process.proc is not None
    async with aiohttp.ClientSession(connector=connector) as session:
        job_id = await enqueue_job(session, apis[OFF][1], redis_url)
        path = f"/v1/jobs/{job_id}"
        load = Load(session, connections, collector.process.proc.pid)
        pids = {mode: server.proc.pid for mode, (server, _) in apis.items()}  # type: ignore[union-attr]
        progress(f"warm-up: {WARMUP_SECONDS:.0f} s of GET {path} on each api")
        for mode, (_, url) in apis.items():
            await load.run(url + path, pids[mode], WARMUP_SECONDS)
        figures = {mode: Figures() for mode in apis}
        for r in range(rounds):
            order = list(apis) if r % 2 == 0 else list(reversed(apis))
            cells = []
            for mode in order:
                turn = await load.run(apis[mode][1] + path, pids[mode], seconds)
                figures[mode].turns.append(turn)
                figures[mode].rss = max(figures[mode].rss, rss_mib(pids[mode]))
                cells.append(f"{mode.name} {turn.rate:,.0f}/s {turn.api_cpu / turn.requests * 1e6:,.0f} us")
            progress(f"round {r + 1}/{rounds} (requests/s, api CPU a request): " + ", ".join(cells))
        profiles: dict[Mode, Any] = {}
        if args.profile or figures[GOAL_MODE].median_rate() / figures[OFF].median_rate() < GOAL:
            for mode in (OFF, GOAL_MODE):
                url = apis[mode][1] + path
                profiles[mode] = await profile(load, url, pids[mode], run_dir / f"py-spy-{mode.name}.txt")
    return figures, path, profiles, {mode: load.sent.get(pid, 0) for mode, pid in pids.items()}


# -- the collector's side ---------------------------------------------------------------


SIGNALS = (("resourceSpans", "spans"), ("resourceMetrics", "metrics"), ("resourceLogs", "logs"))


def received(collector: OtelCollector) -> dict[str, dict[str, int]]:
    """Per service.instance.id: spans by kind, metric and log exports, read line by line
    from the collector's file (it can be large at ratio 1.0)."""
    counts: dict[str, dict[str, int]] = {}
    if not collector.output.exists():
        return counts
    with collector.output.open() as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # blank, or the last line while the collector still writes it
            for signal_name, key in SIGNALS:
                for block in record.get(signal_name, ()):
                    attrs = {a["key"]: a["value"].get("stringValue") for a in block["resource"].get("attributes", ())}
                    row = counts.setdefault(attrs.get("service.instance.id") or "?", {})
                    if key != "spans":
                        row[key] = row.get(key, 0) + 1
                        continue
                    for scope in block.get("scopeSpans", ()):
                        for span in scope.get("spans", ()):
                            kind = {1: "internal", 2: "server", 3: "client"}.get(span.get("kind", 0), "other")
                            row[kind] = row.get(kind, 0) + 1
    return counts


# -- py-spy -----------------------------------------------------------------------------


async def profile(load: Load, url: str, pid: int, target: Path) -> tuple[dict[str, int], Turn] | None:
    """py-spy samples the api process while `load` runs: its stacks with their counts. It
    stops the process for each sample (a few percent of its time): sampling without
    stopping it tore stacks here, and single lines took a tenth of the samples."""
    return await sample_stacks(
        pid,
        seconds=PROFILE_SECONDS,
        rate=PROFILE_RATE,
        target=target,
        flags=["--gil", "--threads", "--full-filenames"],
        during=load.run(url, pid, PROFILE_SECONDS),
        what=f"{target.stem} under load",
    )


def frames(stack: str) -> list[tuple[str, str]]:
    """(file, function) of each frame of a py-spy raw stack, root first (`--threads` puts
    the thread's name before them, `--full-filenames` the whole paths)."""
    found = []
    for frame in stack.split(";"):
        function, _, where = frame.rpartition(" (")
        if function and where.endswith(")"):
            found.append((where[:-1].rsplit(":", 1)[0], function))
    return found


IDLE = frozenset({"select", "poll", "wait", "_worker", "acquire", "sleep"})
HELPERS = ("/wrapt/", "/google/protobuf/", "/requests/", "/urllib3/", "/deprecated/")
"""Libraries only OpenTelemetry calls here (wrappers, protobuf, the exporter's HTTP client):
their time is charged to the caller, as the standard library's is."""


def owner(chain: list[tuple[str, str]]) -> tuple[str, str]:
    """The frame a sample is charged to: the innermost one that is neither the standard
    library nor a helper library, so that OpenTelemetry's share is the time spent in it
    and in what it calls, and not the request it wraps."""
    for path, function in reversed(chain):
        stdlib = path.startswith("<") or ("/lib/python" in path and "site-packages" not in path)
        if not stdlib and not any(h in path for h in HELPERS):
            return path, function
    return chain[-1]


def area(path: str) -> str:
    """`opentelemetry/<sdk|instrumentation|exporter|...>/<part>` for OpenTelemetry's code (and
    `stackyard/telemetry`), else the top-level package."""
    if "/opentelemetry/" in path:
        parts = path.split("/opentelemetry/", 1)[1].split("/")
        return "opentelemetry/" + "/".join(parts[:2]).removesuffix(".py")
    if "/stackyard/telemetry/" in path:
        return "stackyard/telemetry"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/")[0].removesuffix(".py")
    if "/src/" in path:
        return path.rsplit("/src/", 1)[1].split("/")[0]
    return "the standard library"


def is_otel(name: str) -> bool:
    return name.startswith(("opentelemetry", "stackyard/telemetry"))


def print_profile(profiles: dict[Mode, Any]) -> None:
    if not profiles or any(p is None for p in profiles.values()):
        return
    print(f"\nwhere the api's CPU goes (py-spy, {PROFILE_RATE} samples/s of the thread holding the GIL, idle left out;")
    print("a sample is charged to its innermost frame outside the standard library)")
    shares: dict[Mode, dict[str, float]] = {}
    functions: dict[Mode, dict[str, float]] = {}
    cpu: dict[Mode, float] = {}
    for mode, (stacks, turn) in profiles.items():
        by_area: dict[str, int] = {}
        by_function: dict[str, int] = {}
        for stack, n in stacks.items():
            chain = frames(stack)
            if not chain or chain[-1][1].rsplit(".", 1)[-1] in IDLE:
                continue
            path, function = owner(chain)
            name = area(path)
            by_area[name] = by_area.get(name, 0) + n
            if is_otel(name):
                key = f"{function} ({'/'.join(Path(path).parts[-2:])})"
                by_function[key] = by_function.get(key, 0) + n
        total = sum(by_area.values()) or 1
        shares[mode] = {k: v / total for k, v in by_area.items()}
        functions[mode] = {k: v / total for k, v in by_function.items()}
        cpu[mode] = turn.api_cpu / turn.requests * 1e6
        print(f"  {mode.label}: {total} samples, {turn.rate:,.0f} requests/s, {cpu[mode]:.0f} us of api CPU a request")
    modes = list(profiles)
    print(f"  {'':<46}" + "".join(f" {m.name:>16}" for m in modes))
    otel = {m: sum(v for k, v in shares[m].items() if is_otel(k)) for m in modes}
    print(f"  {'OpenTelemetry, all of it':<46}" + "".join(f" {otel[m] * cpu[m]:6.0f} us {otel[m]:5.1%}" for m in modes))
    names = sorted({k for m in modes for k in shares[m]}, key=lambda k: -max(shares[m].get(k, 0) for m in modes))
    for name in [n for n in names if is_otel(n)][:10] + [n for n in names if not is_otel(n)][:8]:
        cells = "".join(f" {shares[m].get(name, 0) * cpu[m]:6.0f} us {shares[m].get(name, 0):5.1%}" for m in modes)
        print(f"  {('  ' if is_otel(name) else '') + name:<46}{cells}")
    for mode in modes:
        if mode.ratio is not None:
            print(f"  {mode.label}, the OpenTelemetry functions that take the most (own time and what they call):")
            for key, share in sorted(functions[mode].items(), key=lambda item: -item[1])[:12]:
                print(f"    {share:5.1%} ({share * cpu[mode]:4.0f} us)  {key}")


# -- the report -------------------------------------------------------------------------


def print_figures(figures: dict[Mode, Figures], path: str, connections: int, seconds: float) -> float:
    turns = len(figures[OFF].turns)
    print(f"\nGET {path} (the real api, one uvicorn process per mode), {connections} connections,")
    print(f"{turns} turns of {seconds:.0f} s per mode taken in alternating order; median turn")
    print(f"  {'mode':<38} {'requests/s':>11} {'p50':>8} {'p99':>8} {'api CPU':>10} {'collector':>10} {'RSS':>8}")
    print(f"  {'':<38} {'':>11} {'ms':>8} {'ms':>8} {'us/req':>10} {'us/req':>10} {'MiB':>8}")
    for mode, f in figures.items():
        print(
            f"  {mode.label:<38} {f.median_rate():>11,.0f} {f.latency(0.5):>8.2f} {f.latency(0.99):>8.2f}"
            f" {f.per_request('api_cpu'):>10.0f} {f.per_request('collector_cpu'):>10.0f} {f.rss:>8.0f}"
        )
    busy = [t.api_cpu / t.elapsed for f in figures.values() for t in f.turns]
    client = [t.client_cpu / t.elapsed for f in figures.values() for t in f.turns]
    print(f"  in the turns: api busy {min(busy):.0%}-{max(busy):.0%} of a core, ", end="")
    print(f"load generator {min(client):.0%}-{max(client):.0%}")
    off = figures[OFF].median_rate()
    for mode in MODES[1:]:
        ratio = figures[mode].median_rate() / off
        paired = [t.rate / o.rate for t, o in zip(figures[mode].turns, figures[OFF].turns, strict=True)]
        on_cpu, off_cpu = figures[mode].per_request("api_cpu"), figures[OFF].per_request("api_cpu")
        head = f"  {mode.name} / off: {ratio:.2f}x"
        if mode is GOAL_MODE:
            met = "met" if ratio >= GOAL else "MISSED"
            head += f", overhead {1 - ratio:.1%} (goal <= {1 - GOAL:.0%}: {met})"
        print(head)
        print(
            f"      per round {min(paired):.2f}x-{max(paired):.2f}x (median {statistics.median(paired):.2f}x);"
            f" api CPU a request {on_cpu - off_cpu:+.0f} us ({off_cpu / on_cpu:.2f}x the requests a core serves)"
        )
    return figures[GOAL_MODE].median_rate() / off


def print_received(counts: dict[str, dict[str, int]], sent: dict[Mode, int]) -> None:
    print("\nwhat the collector received from each api process (spans by kind, metric and log exports)")
    for mode in MODES:
        row = counts.get(mode.instance, {})
        spans = ", ".join(f"{k} {v:,}" for k, v in sorted(row.items())) or "nothing"
        share = f"; SERVER spans {row.get('server', 0) / sent[mode]:.1%} of the {sent[mode]:,} requests sent"
        print(f"  {mode.name:<4} {spans}{share if mode.ratio is not None else ''}")
    if counts.get(OFF.instance):
        raise SystemExit("the off process exported telemetry: it should have installed nothing")
    for mode in MODES[1:]:
        spans = counts.get(mode.instance, {}).get("server", 0)
        if (spans == 0) != (mode.ratio == 0):
            raise SystemExit(f"{spans} SERVER spans of the {mode.name} process reached the collector")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one turn")
    parser.add_argument("--rounds", type=int, default=6, help="turns of each mode")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="py-spy the api even when the goal is met")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for a 1-minute load average below this")
    args = parser.parse_args()

    exit_on_sigterm()
    wait_for_quiet(args.max_load, patience=300)
    with contextlib.ExitStack() as stack:
        harness = stack.enter_context(Harness())
        harness.start(["redis", "otel"])
        redis_url = harness.started["redis"].url  # type: ignore[attr-defined]
        collector: OtelCollector = harness.started["otel"]  # type: ignore[assignment]
        apis = {}
        for mode in MODES:
            directory = harness.run_dir / f"telemetry-bench-{mode.name}"
            write_config(directory, mode, redis_url, collector.otlp_http_endpoint)
            progress(f"starting stackyard-api, {mode.label}")
            apis[mode] = start_api(directory, mode)
            stack.callback(apis[mode][0].stop)
        for server, url in apis.values():
            wait_serving(server, url)
        figures, path, profiles, sent = asyncio.run(measure(apis, collector, redis_url, args, harness.run_dir))
        print_figures(figures, path, args.connections, args.seconds)
        print_profile(profiles)
        progress(f"waiting {EXPORT_WAIT:.0f} s for the last batches, then reading the collector's file")
        time.sleep(EXPORT_WAIT)
        print_received(received(collector), sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
