"""`stackyard-harness up [services…]`: start the real servers and wait for Ctrl-C.

Prints where each server listens and writes their connection settings as shell
exports (default .stackyard/harness.env) so that other terminals can `source` them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .harness import SERVICES, Harness, progress
from .process import HarnessError
from .tools import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackyard-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start servers and wait for Ctrl-C")
    up.add_argument("services", nargs="*", default=list(SERVICES), help=f"any of {', '.join(SERVICES)} (default all)")
    up.add_argument("--env-file", type=Path, default=REPO_ROOT / ".stackyard" / "harness.env")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    harness = Harness()
    try:
        harness.start(args.services)
        env_file = harness.write_env_file(args.env_file)
        print("\nRunning:")
        for service in harness.started.values():
            print(f"  {service.describe()}")
        print(f"\nConnection settings: source {env_file}\nLogs: {harness.run_dir}\nCtrl-C stops everything.")
        sys.stdout.flush()
        stop.wait()
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        progress("stopping")
        harness.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
