"""stackyard-harness: run the real servers, or the whole stack, until Ctrl-C.

  stackyard-harness up                 the whole stack: servers, CRDs, operator, api,
                                       worker and examples/ (what `make up` runs)
  stackyard-harness servers [names…]   only the servers (kube, redis, mongo, otel;
                                       also redis-cluster on request)

Both print where everything listens and write the connection settings as shell
exports (default .stackyard/harness.env) for other terminals to `source`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .harness import DEFAULT_SERVERS, SERVICES, Harness, progress, write_exports
from .local_stack import LocalStack
from .process import HarnessError
from .tools import REPO_ROOT


def _run_until_stopped(start: Callable[[], str], stop: Callable[[], None]) -> int:
    """Run `start` (which returns what to print), wait for a signal, then `stop`."""
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        print(start(), flush=True)
        stopping.wait()
        return 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        progress("stopping")
        stop()
        progress("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stackyard-harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env-file", type=Path, default=REPO_ROOT / ".stackyard" / "harness.env")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="the whole stack, as local processes")
    servers = sub.add_parser("servers", help="only the servers")
    servers.add_argument(
        "services",
        nargs="*",
        default=DEFAULT_SERVERS,
        help=f"any of {', '.join(SERVICES)} (default: {' '.join(DEFAULT_SERVERS)})",
    )
    args = parser.parse_args(argv)

    harness = Harness()
    if args.command == "up":
        stack = LocalStack(harness)

        def start() -> str:
            stack.start()
            env_file = harness.write_env_file(args.env_file)
            stack_env = write_exports(args.env_file.parent / "stack.env", stack.client_env())
            return (
                f"{stack.summary()}\nConnection settings: source {env_file}\n"
                f"For stackyard, the SDK and kubectl in another terminal: source {stack_env}"
            )

        return _run_until_stopped(start, stack.stop)

    def start_servers() -> str:
        harness.start(args.services)
        env_file = harness.write_env_file(args.env_file)
        running = "\n".join(f"  {service.describe()}" for service in harness.started.values())
        return (
            f"\nRunning:\n{running}\n\nConnection settings: source {env_file}\n"
            f"Logs: {harness.run_dir}\nCtrl-C stops everything."
        )

    return _run_until_stopped(start_servers, harness.stop)


if __name__ == "__main__":
    sys.exit(main())
