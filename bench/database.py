"""Database: migrations with stackyard's Migrator against migrate-mongo, and backup and restore
throughput, on the same FerretDB in one run.

- migrations: N small migrations (default 50), version 0 to N, each the same work on every
  side: one insert and one updateMany (`$inc` and `$set`, a tenth of the documents) on a
  collection of --seed (3000) documents. Before each run the database is dropped and seeded.
  Each side runs in a fresh process of its own (as a Job or a deploy step does), connected
  and pinged before the clock starts; the clock covers loading the scripts and applying them.
  Right after, in the same process, the same call again: the "nothing to do" run, which
  every deploy pays. Sides:
  - stackyard, Python scripts (`V<n>__step.py`, `async def up(db)`) and JSON scripts
    (`V<n>__step.json`, the same two database commands), `load_directory` +
    `Migrator.migrate(N)`: the lease lock, a history record claimed and finished per version;
  - migrate-mongo (npm, PEER_VERSION, installed on first use into
    ~/.cache/stackyard/bench-node, outside the repository), its programmatic API
    (`config.set`, `database.connect`, `up`) with CommonJS migration files doing the same two
    calls; with its lock on (`lockTtl` > 0, a TTL index) and with its default (`lockTtl: 0`,
    no lock);
  - the work alone, for the floor: the same two calls per version with the driver of each
    language (PyMongo's async API, Node's mongodb driver), no framework.
  Then, at the target, the nothing-to-do run as a deploy runs it, from process start to exit:
  `stackyard db migrate --local` against `migrate-mongo up`. ROUNDS rounds, the sides taking
  turns in an order that alternates; the best of each. Figures: wall time per run and per
  migration, and stackyard's time over the peer's.
- backup and restore (no peer: mongodump is not available here): `stackyard.db.backup.backup`
  of one collection of BACKUP_DOCUMENTS small documents, then `restore` into another
  database, each in a fresh process; documents/s, MB/s of BSON, and the process's peak RSS;
  and, for the floor, the backup's cursor alone (every document read, nothing written).

A run that fails exits 1; a peer that cannot run is reported with its error.

    python bench/database.py [--migrations 50] [--seed 3000] [--rounds 3] [--backup-documents 100000]
                             [--skip-backup] [--mongo-backend sqlite|postgresql]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ is first on sys.path and holds email.py, which would hide the standard library's
# `email` package (http.client imports it).
# ruff: noqa: E402
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import contextlib
import glob
import json
import os
import re
import resource
import shutil
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

from pymongo import MongoClient
from stackyard.clients import mongo_client
from stackyard.db.backup import MANIFEST, MAX_BATCH_DOCUMENTS, RAW, backup, restore
from stackyard.db.migrations import Migrator, load_directory
from stackyard_harness.harness import Harness, progress
from stackyard_harness.process import exit_on_sigterm

REPO = Path(__file__).resolve().parent.parent
STACKYARD_CLI = Path(sys.executable).parent / "stackyard"
PEER = "migrate-mongo"
PEER_VERSION = "14.0.7"
NODE_PREFIX = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stackyard" / "bench-node"
DATABASE = "bench_migrations"
MIGRATIONS = 50
SEED = 3000
GROUPS = 10
ROUNDS = 3
PEER_LOCK_TTL = 300  # seconds; migrate-mongo's lock is a document under a TTL index
BACKUP_DOCUMENTS = 100_000
BACKUP_DATABASE, RESTORE_DATABASE = "bench_backup", "bench_restore"
RUN_TIMEOUT = 600

SIDES = {
    "stackyard-py": "stackyard, Python scripts",
    "stackyard-json": "stackyard, JSON scripts",
    "peer-lock": f"{PEER} {PEER_VERSION}, lock on (lockTtl {PEER_LOCK_TTL})",
    "peer-nolock": f"{PEER} {PEER_VERSION}, its default (no lock)",
    "bare-py": "the work alone, PyMongo async",
    "bare-node": "the work alone, Node's mongodb driver",
}
NODE_SIDES = ("peer-lock", "peer-nolock", "bare-node")


# -- the scripts: the same work on every side ----------------------------------------------------


def step_id(version: int) -> str:
    return f"step-{version:03d}"


def write_scripts(work: Path, count: int) -> dict[str, Path]:
    """Each version inserts one document and updates a tenth of the seeded ones, in each form."""
    dirs = {
        "py": work / "stackyard-py",
        "json": work / "stackyard-json",
        "node": work / "peer" / "migrations",
    }
    for directory in dirs.values():
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    # CommonJS whatever a package.json above says, for the migrations and the CLI's config.
    (work / "peer" / "package.json").write_text('{"type": "commonjs"}\n')
    for v in range(1, count + 1):
        doc, group = {"_id": step_id(v), "step": v}, v % GROUPS
        change = {"$inc": {"counter": 1}, "$set": {"step": v}}
        (dirs["py"] / f"V{v}__step.py").write_text(
            "async def up(db):\n"
            f"    await db.items.insert_one({doc!r})\n"
            f"    await db.items.update_many({{'group': {group}}}, {change!r})\n"
        )
        commands = [
            {"insert": "items", "documents": [doc]},
            {"update": "items", "updates": [{"q": {"group": group}, "u": change, "multi": True}]},
        ]
        (dirs["json"] / f"V{v}__step.json").write_text(json.dumps({"description": f"step {v}", "commands": commands}))
        (dirs["node"] / f"{20260101000000 + v}-step.js").write_text(
            "module.exports = {\n"
            "  async up(db) {\n"
            f'    await db.collection("items").insertOne({json.dumps(doc)});\n'
            f'    await db.collection("items").updateMany({{ group: {group} }}, {json.dumps(change)});\n'
            "  },\n"
            "  async down() {},\n"
            "};\n"
        )
    return dirs


def reset(url: str, seed: int) -> None:
    with MongoClient(url) as client:
        client.drop_database(DATABASE)
        docs = [{"_id": i, "group": i % GROUPS, "counter": 0, "name": f"item-{i:05d}"} for i in range(seed)]
        client[DATABASE].items.insert_many(docs)


def check_effects(url: str, count: int, seed: int, side: str) -> None:
    """Every side must leave the same data: the N inserts and N updates, each once."""
    with MongoClient(url) as client:
        items = client[DATABASE].items
        inserted = items.count_documents({"_id": {"$type": "string"}})
        total = sum(d["counter"] for d in items.find({"counter": {"$exists": True}}, {"counter": 1}))
    expected = sum(sum(1 for i in range(seed) if i % GROUPS == v % GROUPS) for v in range(1, count + 1))
    if inserted != count or total != expected:
        raise SystemExit(f"{side}: {inserted} inserted and {total} increments, expected {count} and {expected}")


# -- the drivers: one fresh process per run --------------------------------------------------------


async def python_driver(args: dict[str, Any]) -> dict[str, Any]:
    client = mongo_client(args["url"], "bench-database")
    try:
        db = client[args["db"]]
        await db.command("ping")
        mode, count = args["mode"], args.get("count", 0)
        if mode == "bare-py":
            t0 = time.perf_counter()
            for v in range(1, count + 1):
                await db.items.insert_one({"_id": step_id(v), "step": v})
                await db.items.update_many({"group": v % GROUPS}, {"$inc": {"counter": 1}, "$set": {"step": v}})
            return {"up_s": time.perf_counter() - t0, "applied": count}
        if mode in ("stackyard-py", "stackyard-json"):
            directory = Path(args["dir"])
            t0 = time.perf_counter()
            result = await Migrator(db, load_directory(directory)).migrate(count)
            up_s = time.perf_counter() - t0
            if not result.ok:
                raise SystemExit(f"{mode}: {result.error}")
            t0 = time.perf_counter()
            again = await Migrator(db, load_directory(directory)).migrate(count)
            noop_s = time.perf_counter() - t0
            return {"up_s": up_s, "noop_s": noop_s, "applied": len(result.applied), "again": len(again.applied)}
        if mode == "backup":
            before = peak_rss_mib()
            done = await backup(db, Path(args["dir"]), collections=["docs"])
            manifest = json.loads((done.path / MANIFEST).read_text())
            rss = peak_rss_mib()
            t0 = time.perf_counter()  # the floor: the same cursor, every document read, nothing written
            cursor = db.get_collection("docs", codec_options=RAW).find({}, batch_size=MAX_BATCH_DOCUMENTS)
            read = sum([len(document.raw) async for document in cursor])
            read_s = time.perf_counter() - t0
            return {
                "seconds": done.seconds,
                "documents": done.documents,
                "gzip_bytes": done.bytes,
                "bson_bytes": manifest["collections"]["docs"]["bsonBytes"],
                "path": str(done.path),
                "rss_before_mib": before,
                "rss_mib": rss,
                "read_s": read_s,
                "read_bytes": read,
            }
        if mode == "restore":
            before = peak_rss_mib()
            restored = await restore(db, Path(args["dir"]), drop=True)
            return {
                "seconds": restored.seconds,
                "documents": restored.documents,
                "rss_before_mib": before,
                "rss_mib": peak_rss_mib(),
            }
        raise SystemExit(f"unknown driver mode {mode}")
    finally:
        await client.close()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


NODE_DRIVER = r"""
// One run of migrate-mongo (or of the bare driver) against the bench's FerretDB: one JSON line.
// An ES module in the prefix, so that its imports resolve from the prefix's node_modules.
const args = JSON.parse(process.argv[2]);

async function main() {
  if (args.mode === "bare-node") {
    const { MongoClient } = await import("mongodb");
    const client = await MongoClient.connect(args.url);
    const items = client.db(args.db).collection("items");
    await client.db(args.db).command({ ping: 1 });
    const t0 = performance.now();
    for (let v = 1; v <= args.count; v++) {
      await items.insertOne({ _id: "step-" + String(v).padStart(3, "0"), step: v });
      await items.updateMany({ group: v % args.groups }, { $inc: { counter: 1 }, $set: { step: v } });
    }
    const up_s = (performance.now() - t0) / 1000;
    await client.close();
    return { up_s, applied: args.count };
  }
  const mm = await import("migrate-mongo");
  mm.config.set({
    mongodb: { url: args.url, databaseName: args.db, options: {} },
    migrationsDir: args.dir,
    changelogCollectionName: "changelog",
    lockCollectionName: "changelog_lock",
    lockTtl: args.lockTtl,
    migrationFileExtension: ".js",
    useFileHash: false,
    moduleSystem: "commonjs",
  });
  const { db, client } = await mm.database.connect();
  await db.command({ ping: 1 });
  let t0 = performance.now();
  const applied = await mm.up(db, client);
  const up_s = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const again = await mm.up(db, client);
  const noop_s = (performance.now() - t0) / 1000;
  await client.close();
  return { up_s, noop_s, applied: applied.length, again: again.length };
}

main().then(
  (out) => console.log(JSON.stringify(out)),
  (err) => { console.error(err && err.stack ? err.stack : String(err)); process.exit(1); },
);
"""

NODE_CONFIG = """module.exports = {
  mongodb: { url: %(url)s, databaseName: %(db)s, options: {} },
  migrationsDir: %(dir)s,
  changelogCollectionName: "changelog",
  lockCollectionName: "changelog_lock",
  lockTtl: %(ttl)d,
  migrationFileExtension: ".js",
  useFileHash: false,
  moduleSystem: "commonjs",
};
"""


def run_driver(side: str, args: dict[str, Any], work: Path) -> dict[str, Any]:
    """One run in a fresh process; its JSON line (with `wall_s`, process start to exit), or
    {"error": ...} with the last lines it printed."""
    if side in NODE_SIDES:
        argv = ["node", str(NODE_PREFIX / "bench-driver.mjs"), json.dumps(args)]
    else:
        argv = [sys.executable, str(Path(__file__).resolve()), "--driver", json.dumps(args)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {RUN_TIMEOUT} s"}
    wall = time.perf_counter() - t0
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit code {done.returncode}: {error_line(done.stderr)}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_s"] = wall
    return result


def error_line(output: str) -> str:
    """The exception's own line (Node's `MongoServerError: ...`, Python's last line), else the tail."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    found = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit)\b.*:", line)]
    return found[-1] if found else " | ".join(lines[-4:])


def run_command(argv: list[str], cwd: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=RUN_TIMEOUT, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        return {"error": f"exit code {done.returncode}: {error_line(done.stderr + done.stdout)}"}
    return {"wall_s": wall}


# -- the peer ----------------------------------------------------------------------------------


def install_peer() -> str | None:
    """migrate-mongo in NODE_PREFIX (outside the repository, no lock file); None when it is
    there, else why it is not."""
    installed = NODE_PREFIX / "node_modules" / PEER / "package.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(installed.read_text()).get("version") == PEER_VERSION:
            return None
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return "node and npm are not installed"
    progress(f"installing {PEER}@{PEER_VERSION} into {NODE_PREFIX} (once; npm, no lock file)")
    NODE_PREFIX.mkdir(parents=True, exist_ok=True)
    flags = ["--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--prefix", str(NODE_PREFIX)]
    done = subprocess.run(
        [npm, "install", *flags, f"{PEER}@{PEER_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"npm install failed: {done.stderr.strip()[-500:]}"
    return None


# -- the migrations bench ------------------------------------------------------------------------


def migrations_bench(url: str, work: Path, count: int, seed: int, rounds: int) -> dict[str, Any]:
    dirs = write_scripts(work, count)
    peer_missing = install_peer()
    sides = [s for s in SIDES if not (peer_missing and s in NODE_SIDES)]
    if peer_missing:
        progress(f"{PEER} left out: {peer_missing}")
    if not peer_missing:
        (NODE_PREFIX / "bench-driver.mjs").write_text(NODE_DRIVER)
    config = work / "peer" / "migrate-mongo-config.js"
    config.write_text(
        NODE_CONFIG
        % {"url": json.dumps(url), "db": json.dumps(DATABASE), "dir": json.dumps(str(dirs["node"])), "ttl": 0}
    )
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in [*sides, "cli-stackyard", "cli-peer"]}
    for n in range(1, rounds + 1):
        order = sides if n % 2 else list(reversed(sides))
        progress(f"round {n} of {rounds}: {count} migrations from version 0, then again at {count}, each side")
        for side in order:
            reset(url, seed)
            args: dict[str, Any] = {"mode": side, "url": url, "db": DATABASE, "count": count, "groups": GROUPS}
            if side.startswith("stackyard"):
                args["dir"] = str(dirs["py" if side == "stackyard-py" else "json"])
            if side.startswith("peer"):
                args |= {"dir": str(dirs["node"]), "lockTtl": PEER_LOCK_TTL if side == "peer-lock" else 0}
            result = run_driver(side, args, work)
            results[side].append(result)
            if "error" in result:
                print(f"    {SIDES[side]}: FAILED: {result['error']}", file=sys.stderr, flush=True)
                continue
            check_effects(url, count, seed, side)
            noop = f", again {result['noop_s'] * 1000:.0f} ms" if "noop_s" in result else ""
            print(f"    {SIDES[side]}: {result['up_s']:.2f} s{noop}", file=sys.stderr, flush=True)
            # The nothing-to-do run as a deploy runs it: the command, from process start.
            if side == "stackyard-py":
                argv = [str(STACKYARD_CLI), "db", "migrate", "--local", "--uri", url, "--db", DATABASE]
                results["cli-stackyard"].append(run_command([*argv, "--dir", args["dir"]], work))
            elif side == "peer-nolock":
                binary = NODE_PREFIX / "node_modules" / ".bin" / PEER
                results["cli-peer"].append(run_command([str(binary), "up", "-f", str(config)], work / "peer"))
    return {"count": count, "seed": seed, "rounds": rounds, "results": results, "peer_missing": peer_missing}


def best(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return min(values) if values else None


def first_error(runs: list[dict[str, Any]]) -> str | None:
    return next((r["error"] for r in runs if "error" in r), None)


def report_migrations(found: dict[str, Any]) -> None:
    count, seed, results = found["count"], found["seed"], found["results"]
    print(f"\nmigrations: {count} versions from 0 (an insert + an updateMany of {seed // GROUPS} of {seed} documents")
    print(f"each), a fresh process per run, best of {found['rounds']} rounds; the clock starts after connect")
    print(f"  {'side':<48} {'0 to N':>9} {'a version':>10} {'nothing to do':>14}")
    for side, label in SIDES.items():
        runs = results.get(side)
        if runs is None:
            print(f"  {label:<48} not run: {found['peer_missing']}")
            continue
        up, noop = best(runs, "up_s"), best(runs, "noop_s")
        if up is None:
            print(f"  {label:<48} FAILED: {first_error(runs)}")
            continue
        again = f"{noop * 1000:>11.1f} ms" if noop is not None else f"{'':>14}"
        print(f"  {label:<48} {up:>7.2f} s {up / count * 1000:>7.1f} ms {again}")
    ours = best(results["stackyard-py"], "up_s")
    ours_json = best(results["stackyard-json"], "up_s")
    bare_py, bare_node = best(results["bare-py"], "up_s"), best(results.get("bare-node", []), "up_s")
    ours_noop = best(results["stackyard-py"], "noop_s")
    print("  stackyard's time over the peer's (below 1: stackyard is faster):")
    for peer in ("peer-lock", "peer-nolock"):
        theirs = best(results.get(peer, []), "up_s")
        theirs_noop = best(results.get(peer, []), "noop_s")
        if theirs is None or theirs_noop is None or ours is None or ours_json is None or ours_noop is None:
            continue
        print(
            f"    vs {SIDES[peer]}: 0 to N {ours / theirs:.2f}x (JSON scripts {ours_json / theirs:.2f}x), "
            f"nothing to do {ours_noop / theirs_noop:.2f}x"
        )
    if bare_py and ours and bare_node:
        print("  each framework's own cost a version (its time less the work alone in its language):")
        print(f"    stackyard {(ours - bare_py) / count * 1000:.1f} ms over PyMongo {bare_py / count * 1000:.1f} ms")
        for peer in ("peer-lock", "peer-nolock"):
            theirs = best(results.get(peer, []), "up_s")
            if theirs is not None:
                extra = (theirs - bare_node) / count * 1000
                print(f"    {SIDES[peer]} {extra:.1f} ms over Node's driver {bare_node / count * 1000:.1f} ms")
    cli_ours, cli_theirs = best(results["cli-stackyard"], "wall_s"), best(results["cli-peer"], "wall_s")
    print(f"  nothing to do, the whole command from process start (at version {count}):")
    if cli_ours is None:
        print(f"    stackyard db migrate --local: FAILED: {first_error(results['cli-stackyard'])}")
    else:
        print(f"    {'stackyard db migrate --local':<44} {cli_ours:>7.2f} s")
    if cli_theirs is None:
        print(f"    {PEER} up: {first_error(results['cli-peer']) or 'not run'}")
    else:
        print(f"    {f'{PEER} up (no lock)':<44} {cli_theirs:>7.2f} s")
    if cli_ours is not None and cli_theirs is not None:
        print(f"    stackyard / {PEER}: {cli_ours / cli_theirs:.2f}x")


# -- backup and restore --------------------------------------------------------------------------


def seed_backup(url: str, documents: int) -> None:
    progress(f"backup: seeding {documents:,} documents into {BACKUP_DATABASE}.docs")
    now = datetime.now(UTC)
    with MongoClient(url) as client:
        client.drop_database(BACKUP_DATABASE)
        client.drop_database(RESTORE_DATABASE)
        docs = client[BACKUP_DATABASE].docs
        for start in range(0, documents, 1000):
            docs.insert_many(
                [
                    {"_id": i, "name": f"user-{i:06d}", "email": f"user{i}@example.com", "n": i, "at": now}
                    for i in range(start, min(start + 1000, documents))
                ]
            )
        docs.create_index("email", unique=True)


def backup_bench(url: str, work: Path, documents: int) -> dict[str, Any]:
    seed_backup(url, documents)
    root = work / "backups"
    shutil.rmtree(root, ignore_errors=True)
    progress("backup: stackyard.db.backup.backup of the collection (a fresh process)")
    args = {"mode": "backup", "url": url, "db": BACKUP_DATABASE, "dir": str(root)}
    made = run_driver("backup", args, work)
    if "error" in made:
        raise SystemExit(f"backup failed: {made['error']}")
    progress("restore: stackyard.db.backup.restore into another database (a fresh process)")
    args = {"mode": "restore", "url": url, "db": RESTORE_DATABASE, "dir": made["path"]}
    back = run_driver("restore", args, work)
    if "error" in back:
        raise SystemExit(f"restore failed: {back['error']}")
    with MongoClient(url) as client:
        client.drop_database(BACKUP_DATABASE)
        client.drop_database(RESTORE_DATABASE)
    shutil.rmtree(root, ignore_errors=True)
    return {"backup": made, "restore": back}


def report_backup(found: dict[str, Any]) -> None:
    made, back = found["backup"], found["restore"]
    mb = made["bson_bytes"] / 1e6
    print(f"\nbackup and restore of one collection: {made['documents']:,} documents, {mb:.1f} MB of BSON,")
    print(f"{made['gzip_bytes'] / 1e6:.1f} MB gzipped; no peer here (mongodump is not available), so no ratio")
    for name, run in (("backup", made), ("restore (indexes included)", back)):
        seconds = run["seconds"]
        print(
            f"  {name:<28} {seconds:>6.1f} s {run['documents'] / seconds:>9,.0f} documents/s {mb / seconds:>6.2f} MB/s"
            f"   peak RSS {run['rss_mib']:.0f} MiB (after connect {run['rss_before_mib']:.0f})"
        )
    read_s = made["read_s"]
    print(
        f"  {'the floor: the cursor alone':<28} {read_s:>6.1f} s {made['documents'] / read_s:>9,.0f} documents/s "
        f"{made['read_bytes'] / 1e6 / read_s:>6.2f} MB/s   (the same find, raw BSON, nothing written)"
    )


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--migrations", type=int, default=MIGRATIONS, help="versions per run")
    parser.add_argument("--seed", type=int, default=SEED, help="documents the updateMany of each version works on")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--backup-documents", type=int, default=BACKUP_DOCUMENTS)
    parser.add_argument("--skip-backup", action="store_true")
    have_postgres = bool(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    parser.add_argument(
        "--mongo-backend",
        choices=["sqlite", "postgresql"],
        default="postgresql" if have_postgres else "sqlite",
        help="FerretDB's storage (default: postgresql when Debian's postgresql is installed)",
    )
    parser.add_argument("--driver", help=argparse.SUPPRESS)  # one run, in a process of its own
    args = parser.parse_args()
    if args.driver:
        print(json.dumps(asyncio.run(python_driver(json.loads(args.driver)))))
        return 0

    exit_on_sigterm()
    os.environ["STACKYARD_FERRETDB_BACKEND"] = args.mongo_backend
    progress(f"FerretDB with its {args.mongo_backend} backend")
    with Harness() as harness:
        harness.start(["mongo"])
        url = harness.started["mongo"].url  # type: ignore[attr-defined]
        work = harness.run_dir / "database-bench"
        found = migrations_bench(url, work, args.migrations, args.seed, args.rounds)
        copied = None if args.skip_backup else backup_bench(url, work, args.backup_documents)
    print(f"\nFerretDB 1.x on {args.mongo_backend}")
    report_migrations(found)
    if copied:
        report_backup(copied)
    return 0


if __name__ == "__main__":
    sys.exit(main())
