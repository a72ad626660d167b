"""stackyard-migrate: bring one Database of the Stack to its migration version, then exit.

What the operator's migrations Job runs. Config comes from the Stack's ConfigMap and Secret
(STACKYARD_STACK, STACKYARD_NAMESPACE) or from files (STACKYARD_CONFIG_DIR), as for the api and
worker. The scripts are the Python package of spec.migrations.module, or the files of
$STACKYARD_MIGRATIONS_DIR (default /etc/stackyard/migrations/<NAME>, where the Job mounts the
ConfigMap of spec.migrations.configMapRef). Progress lines go to stderr.

Exit status: 0 at the target version; 1 a script failed (retrying the same script will not
help: the Job should fail); 2 usage, config or scripts wrong (nothing ran); 3 the run could
not finish for a passing reason (the lock stayed taken or was lost, the server was unreachable,
SIGTERM): running again is the cure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from pymongo.errors import PyMongoError
from stackyard.config import AppliedConfig
from stackyard.db.migrations import Migration, MigrationError, Migrator, load_directory, load_module
from stackyard.db.options import DatabaseOptionsError
from stackyard.db.probe import scrub
from stackyard.logs import configure_logging
from stackyard.resources.base import duration_seconds
from stackyard.resources.database import DatabaseSpec
from stackyard.runtime import Runtime

PROGRAM = "stackyard-migrate"
CONFIG_WAIT = 30.0
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 3

log = logging.getLogger("stackyard_worker.migrate")


class Refused(Exception):
    """Usage or config that cannot work: exit 2, nothing ran."""


def say(line: str) -> None:
    print(f"{PROGRAM}: {line}", file=sys.stderr, flush=True)


async def first_config(runtime: Runtime, timeout: float) -> AppliedConfig:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while runtime.live.current is None:
        left = deadline - loop.time()
        if left <= 0:
            raise Refused(f"no config within {timeout:.0f}s: {runtime.live.last_error or 'nothing loaded'}")
        await runtime.live.wait_changed(min(left, 1.0))
    return runtime.live.current


def scripts(name: str, spec: DatabaseSpec) -> list[Migration]:
    migrations = spec.migrations
    if migrations is None:
        raise Refused(f"Database {name} has no spec.migrations")
    if migrations.module:
        say(f"scripts: the modules of package {migrations.module}")
        return load_module(migrations.module)
    directory = Path(os.environ.get("STACKYARD_MIGRATIONS_DIR") or f"/etc/stackyard/migrations/{name}")
    say(f"scripts: the files of {directory}")
    return load_directory(directory)


async def migrate(runtime: Runtime, name: str, to: int | None, wait: float) -> int:
    applied = await first_config(runtime, CONFIG_WAIT)
    spec = applied.config.databases.get(name)
    if spec is None:
        known = ", ".join(sorted(applied.config.databases)) or "none"
        raise Refused(f"no Database {name} in Stack {applied.config.stack}'s config (Databases: {known})")
    migrations = scripts(name, spec)
    assert spec.migrations is not None
    target = to if to is not None else spec.migrations.version
    try:
        db = runtime.database_client(name)[spec.connection.database]
    except KeyError as exc:  # the credentials Secret lacks the URI: names the key, never a value
        raise Refused(f"Database {name}: {exc.args[0]}") from None
    migrator = Migrator(db, migrations, lease=duration_seconds(spec.migrations.lock_lease), progress=say)
    say(f"Database {name} (database {spec.connection.database}) to version {target} as runner {migrator.runner}")
    result = await migrator.migrate(target, wait=wait)
    if not result.ok:
        say(f"FAILED at version {result.version}: {result.error}")
        return FAILED if result.failed_version is not None else INTERRUPTED
    done = ", ".join(map(str, result.applied)) or "nothing"
    say(f"at version {result.version} (applied: {done})")
    return OK


async def run(name: str, to: int | None, wait: float) -> int:
    try:
        runtime = Runtime.from_environment(PROGRAM)
    except SystemExit as exc:
        say(str(exc.code))
        return USAGE
    await runtime.start()
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await migrate(runtime, name, to, wait)
    except (Refused, MigrationError, DatabaseOptionsError) as exc:
        say(str(exc))
        return USAGE
    except PyMongoError as exc:
        say(f"FAILED: {scrub(f'{type(exc).__name__}: {exc}')}")
        return INTERRUPTED
    except asyncio.CancelledError:
        say("stopped by SIGTERM; the lock is given back, an unfinished version runs again next time")
        return INTERRUPTED
    finally:
        with contextlib.suppress(Exception):
            await runtime.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, metavar="NAME", help="the Database resource's name")
    parser.add_argument("--to", type=int, metavar="N", help="target version (default: spec.migrations.version)")
    parser.add_argument(
        "--wait", type=float, default=600.0, metavar="SECONDS", help="longest wait for the lock (default 600)"
    )
    args = parser.parse_args(argv)
    configure_logging(PROGRAM)
    sys.exit(asyncio.run(run(args.database, args.to, args.wait)))


if __name__ == "__main__":
    main()
