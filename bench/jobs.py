"""No-op jobs end to end, stackyard against arq, saq, rq, Celery and Dramatiq, on one Redis in
one run on one machine.

Each library runs in a process of its own (bench/peers/<library>_bench.py; the peers in
.venv-bench, made by `make bench`, since arq pins a redis-py older than ours), three times:

- throughput: one worker process of the library, started by its own CLI with the settings
  its docs recommend for I/O-bound work (bench/README.md says which, and the table shows
  them); N enqueue calls of a no-op job the library's normal way (async libraries 100 calls
  in flight at once, the others one after the other); the time from the first enqueue until
  every job has run (each does INCR on a counter, polled every 2 ms). Goal: stackyard >= 2x
  arq and >= 1.2x saq.
- latency: no worker; 2000 single enqueue calls one after the other (after 100 not
  counted); p50 and p99.
- memory: no worker; Redis `used_memory` before and after enqueuing --memory-jobs jobs
  (read with none of the library's connections open), per 100,000 queued jobs. It grows
  linearly: 10,000 (the default, to keep the whole bench within a few minutes) and 100,000
  give the same figure within a few percent; --memory-jobs 100000 measures it literally.

Redis is FLUSHDB'ed before and after every run. N differs by library (rq forks a process per
job, arq waits poll_delay between reads of its queue) so that each run takes a few seconds;
--jobs gives one N to all. A missed goal prints MISSED and still exits 0; a run that fails
exits 1.

    python bench/jobs.py [--jobs N] [--only stackyard,arq,saq] [--memory-jobs 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from stackyard_harness.harness import Harness, progress

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / "peers"
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"
# Jobs per throughput run: a few seconds each on a 2-core machine.
JOBS = {"stackyard": 8000, "arq": 800, "saq": 2500, "rq": 150, "celery": 400, "dramatiq": 4000}
LATENCY_CALLS = 2000
MEMORY_JOBS = 10_000
GOALS = {"arq": 2.0, "saq": 1.2}  # stackyard's throughput over theirs
RUN_TIMEOUT = 300


def run(library: str, url: str, count: int, mode: str) -> dict[str, Any] | None:
    """One mode of one library in its own process; its JSON line, or None if it failed."""
    python = sys.executable if library == "stackyard" else str(BENCH_PYTHON)
    argv = [python, str(PEERS / f"{library}_bench.py"), url, str(count), mode]
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        progress(f"{library} {mode}: no answer within {RUN_TIMEOUT} s")
        return None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        progress(f"{library} {mode}: FAILED (exit code {done.returncode})")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    if mode == "throughput":
        print(f"    {result['jobs_per_s']:,.0f} jobs/s ({result['seconds']:.1f} s)", file=sys.stderr, flush=True)
    elif mode == "latency":
        print(f"    p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms", file=sys.stderr, flush=True)
    else:
        print(f"    {result['bytes_per_100k'] / 1e6:.1f} MB per 100k queued jobs", file=sys.stderr, flush=True)
    return result


def cell(result: dict[str, Any] | None, key: str, fmt: str) -> str:
    if result is None:
        return "FAILED"
    return format(result[key], fmt)


def table(libraries: list[str], results: dict[str, dict[str, dict[str, Any] | None]]) -> None:
    head = (
        f"{'library':<10} {'settings':<56} {'jobs':>6} {'jobs/s':>8} {'enqueue/s':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'MB/100k queued':>14}"
    )
    print(head)
    print("-" * len(head))
    for library in libraries:
        r = results[library]
        settings = next((x["settings"] for x in r.values() if x is not None), "")
        t = r["throughput"]
        jobs = str(t["jobs"]) if t else "-"
        enqueue_rate = f"{t['jobs'] / t['enqueue_s']:,.0f}" if t else "FAILED"
        memory = r["memory"]
        mb = f"{memory['bytes_per_100k'] / 1e6:.1f}" if memory else "FAILED"
        print(
            f"{library:<10} {settings:<56} {jobs:>6} {cell(t, 'jobs_per_s', ',.0f'):>8} {enqueue_rate:>9} "
            f"{cell(r['latency'], 'p50_ms', '.2f'):>7} {cell(r['latency'], 'p99_ms', '.2f'):>7} {mb:>14}"
        )
    print("jobs/s: enqueue N and wait until all ran, one worker process; enqueue/s: the enqueue calls alone")
    print("p50/p99: one enqueue call, no worker; MB/100k queued: Redis used_memory per 100,000 queued jobs")


def ratios(results: dict[str, dict[str, dict[str, Any] | None]]) -> None:
    ours = results.get("stackyard", {}).get("throughput")
    if ours is None:
        return
    print()
    for peer, goal in GOALS.items():
        theirs = results.get(peer, {}).get("throughput")
        if theirs is None:
            continue
        ratio = ours["jobs_per_s"] / theirs["jobs_per_s"]
        print(f"throughput stackyard / {peer}: {ratio:.2f}x (goal >= {goal}x: {'met' if ratio >= goal else 'MISSED'})")
    for peer in ("rq", "celery", "dramatiq"):
        theirs = results.get(peer, {}).get("throughput")
        if theirs is not None:
            print(f"throughput stackyard / {peer}: {ours['jobs_per_s'] / theirs['jobs_per_s']:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, help="jobs per throughput run, for every library (default: per library)")
    parser.add_argument("--only", help=f"comma-separated, of: {','.join(JOBS)}")
    parser.add_argument("--memory-jobs", type=int, default=MEMORY_JOBS)
    args = parser.parse_args()
    libraries = list(JOBS)
    if args.only:
        libraries = [name.strip() for name in args.only.split(",") if name.strip()]
        if unknown := set(libraries) - set(JOBS):
            parser.error(f"unknown libraries: {', '.join(sorted(unknown))}; known: {', '.join(JOBS)}")
    if set(libraries) - {"stackyard"} and not BENCH_PYTHON.exists():
        raise SystemExit(f"{BENCH_PYTHON.relative_to(REPO)} is missing: `make bench` makes it")

    results: dict[str, dict[str, dict[str, Any] | None]] = {name: {} for name in libraries}
    with Harness() as harness:
        harness.start(["redis"])
        url = harness.started["redis"].url  # type: ignore[attr-defined]
        for library in libraries:
            count = args.jobs or JOBS[library]
            progress(f"{library}: {count} jobs end to end, one worker process")
            results[library]["throughput"] = run(library, url, count, "throughput")
        for library in libraries:
            progress(f"{library}: {LATENCY_CALLS} enqueue calls one after the other, no worker")
            results[library]["latency"] = run(library, url, LATENCY_CALLS, "latency")
        for library in libraries:
            progress(f"{library}: Redis memory of {args.memory_jobs} queued jobs, no worker")
            results[library]["memory"] = run(library, url, args.memory_jobs, "memory")

    print()
    table(libraries, results)
    ratios(results)
    failed = [f"{name} {mode}" for name, r in results.items() for mode, x in r.items() if x is None]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
