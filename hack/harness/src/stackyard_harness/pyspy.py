"""py-spy (installed in .venv-bench by `make bench`) sampling a process while a benchmark's
load runs: the stacks behind the benches' "where the CPU goes" tables."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path, PurePath
from typing import TypeVar

from .harness import progress
from .tools import REPO_ROOT

SPY = REPO_ROOT / ".venv-bench" / "bin" / "py-spy"
T = TypeVar("T")


async def sample_stacks(
    pid: int,
    *,
    seconds: float,
    rate: int,
    target: Path,
    flags: Sequence[str],
    during: Awaitable[T],
    what: str,
    keep: Callable[[str], bool] = lambda stack: True,
) -> tuple[dict[str, int], T] | None:
    """Samples of `pid` (`rate` a second, py-spy's `flags` besides raw function stacks) while
    `during` runs (started once py-spy is attached): each stack (functions, root first) that
    `keep` accepts with its count, and what `during` answered. None, said why, without py-spy
    or when it fails."""
    if not SPY.exists():
        progress("no py-spy in .venv-bench (make bench installs it): no profile")
        return None
    progress(f"py-spy: sampling {what} for {seconds:.0f} s")
    spy = await asyncio.create_subprocess_exec(
        SPY,
        *("record", "--pid", str(pid), "--rate", str(rate), "--duration", str(int(seconds) + 1)),
        *("--format", "raw", "--function", *flags, "--output", str(target)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.5)  # attached
    result = await during
    _, errors = await spy.communicate()
    if spy.returncode != 0:
        progress(f"py-spy failed ({spy.returncode}): {errors.decode(errors='replace')[-400:]}")
        return None
    stacks: dict[str, int] = {}
    for row in (await asyncio.to_thread(target.read_text)).splitlines():
        stack, _, count = row.rpartition(" ")
        if keep(stack):
            stacks[stack] = stacks.get(stack, 0) + int(count)
    return stacks, result


FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")
"""A frame of a raw stack recorded with --function: `function (file:line)`."""


def frames(stack: str) -> list[tuple[str, str]]:
    """(file, function) of each frame of a py-spy raw stack (--function), root first."""
    found = []
    for frame in stack.split(";"):
        match = FRAME.match(frame)
        if match:
            found.append((match["file"].rsplit(":", 1)[0], match["function"]))
    return found


def package(path: str) -> str:
    """The package a frame's file belongs to (fastapi, stackyard, stackyard_api, ...)."""
    parts = PurePath(path).parts
    for anchor in ("site-packages", "src"):
        if anchor in parts and parts.index(anchor) + 1 < len(parts):
            return parts[parts.index(anchor) + 1].removesuffix(".py")
    # py-spy names most files from their package down (fastapi/routing.py)
    return parts[0].removesuffix(".py") if parts and not path.startswith("/") else PurePath(path).stem


def own_time(stacks: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """The samples by the function that was running (the innermost frame, as
    "function (dir/file)") and by its package."""
    own: dict[str, int] = {}
    by_package: dict[str, int] = {}
    for stack, count in stacks.items():
        path, function = (frames(stack)[-1:] or [("?", "?")])[0]
        key = f"{function} ({'/'.join(PurePath(path).parts[-2:])})"
        own[key] = own.get(key, 0) + count
        by_package[package(path)] = by_package.get(package(path), 0) + count
    return own, by_package
