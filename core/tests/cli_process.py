"""Running the `stackyard` CLI as a user does, a process against a running api, for the CLI
tests of the capabilities: its environment, and what a success and a failure must look like."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

STACKYARD = Path(sys.executable).with_name("stackyard")


def run_cli(
    api_url: str, *args: str, environment: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """`stackyard <args>` against `api_url`, with none of this process's STACKYARD_* settings
    and the `environment` given (keys, tokens)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")}
    env["STACKYARD_API_URL"] = api_url
    env.update(environment or {})
    return subprocess.run([str(STACKYARD), *args], capture_output=True, env=env, timeout=timeout, check=False)


def ok(done: subprocess.CompletedProcess[bytes]) -> Any:
    """The json output of a command that succeeded."""
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def one_line_error(done: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The one line a failed command prints (`error: ...`), with its exit code checked."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]
