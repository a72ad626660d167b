"""The runnable blocks of the documentation, and how they run.

A fenced code block whose info string is `bash runnable` or `python runnable` is executed by
tests/docs/test_runnable_docs.py against the stack of `make up` (docs/testing.md, "Runnable
blocks in the docs"). This module finds them with a real CommonMark parser (markdown-it-py),
so a block shown inside a longer fence, in a list item or in a block quote is what a reader
sees, and runs one document's blocks in order in one working directory:

- bash blocks run as `bash -euo pipefail` with `set -a`; the environment a block leaves is the
  environment of the document's later blocks (bash and python);
- python blocks run as a script with this interpreter (the repository venv), the working
  directory first on `sys.path` as with `python -`;
- each block within its timeout; the first failing block stops the document.

Error line numbers are the document's own: each script is padded with blank lines so that its
first line is the block's first line in the Markdown file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

RUNNABLE = "runnable"
LANGUAGES = ("bash", "python")
BLOCK_TIMEOUT = 120.0
"""Seconds each block may take."""
OUTPUT_LIMIT = 20_000
"""Characters of a failed block's stdout and stderr shown (the end of each)."""

_PYTHON_BOOT = """\
import sys
script, document = sys.argv[1:3]
sys.argv = [script]
with open(script, encoding="utf-8") as source:
    code = compile(source.read(), document, "exec")
exec(code, {"__name__": "__main__", "__file__": script, "__builtins__": __builtins__})
"""
"""Runs a block as `python -` would: the working directory ('') first on sys.path (a module
an earlier block wrote is importable), tracebacks naming the Markdown file and its line."""

_BASH_WRAPPER = 'set -a\ntrap \'env -0 > "$__DOC_ENV_OUT"\' EXIT\nsource "$__DOC_SCRIPT"\n'
"""`set -a` exports every variable the block assigns; the trap saves the environment the block
leaves, even when it ends with `exit 0`. `source` keeps -e and pipefail, and bash's messages
name the script and the document's line."""

_SHELL_ONLY = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "__DOC_ENV_OUT", "__DOC_SCRIPT"})
"""Variables bash sets for itself, not carried to the next block."""


@dataclass(frozen=True)
class Block:
    """One fenced code block marked runnable."""

    path: Path
    line: int
    """1-based line of the opening fence in the document."""
    language: str
    source: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def first_line(self) -> int:
        """1-based line of the block's first line of code."""
        return self.line + 1


class UnknownLanguage(ValueError):
    """A block marked runnable in a language the runner does not run."""


def runnable_blocks(text: str, path: Path) -> list[Block]:
    """The blocks of `text` whose info string has `runnable` after the language, in order.

    Raises UnknownLanguage for a runnable block in any language but bash and python: a block
    its author meant to be run is never silently skipped."""
    blocks = []
    for token in MarkdownIt("commonmark").parse(text):
        if token.type != "fence" or token.map is None:
            continue
        words = token.info.split()
        if len(words) < 2 or RUNNABLE not in words[1:]:
            continue
        language = words[0]
        line = token.map[0] + 1
        if language not in LANGUAGES:
            raise UnknownLanguage(
                f"{path}:{line}: a block marked {RUNNABLE} in {language!r}; "
                f"only {' and '.join(LANGUAGES)} blocks can be run"
            )
        blocks.append(Block(path=path, line=line, language=language, source=token.content))
    return blocks


def documents(root: Path, patterns: Iterable[str] = ("README.md", "docs/**/*.md")) -> list[Path]:
    """The Markdown files the runner reads, relative to `root`, sorted."""
    found = {path.relative_to(root) for pattern in patterns for path in root.glob(pattern) if path.is_file()}
    return sorted(found)


@dataclass
class BlockFailed(Exception):
    """A block exited non-zero, raised, or ran out of time."""

    block: Block
    reason: str
    stdout: str
    stderr: str

    def __str__(self) -> str:
        code = "\n".join(f"    {line}".rstrip() for line in self.block.source.rstrip("\n").splitlines())
        return (
            f"{self.block.where}: the {self.block.language} block {self.reason}\n"
            f"{code}\n"
            f"--- stdout ---\n{_tail(self.stdout)}\n"
            f"--- stderr ---\n{_tail(self.stderr)}"
        )


def _tail(text: str) -> str:
    text = text.rstrip("\n")
    if len(text) <= OUTPUT_LIMIT:
        return text or "(empty)"
    return f"[… {len(text) - OUTPUT_LIMIT} characters cut]\n{text[-OUTPUT_LIMIT:]}"


@dataclass
class DocumentRun:
    """Runs one document's blocks, in order, in `workdir` with the environment `env` (updated
    by each bash block). Processes a block leaves in the background are ended by close()."""

    workdir: Path
    env: dict[str, str]
    root: Path
    """The repository: the document paths of the blocks are relative to it."""
    timeout: float = BLOCK_TIMEOUT

    def __post_init__(self) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="doc-blocks-"))
        self._groups: list[int] = []

    def run(self, block: Block) -> str:
        """Runs `block`; returns its stdout, raises BlockFailed."""
        script = self._scratch / f"{block.path.name}-L{block.line}.{'py' if block.language == 'python' else 'sh'}"
        script.write_text("\n" * (block.first_line - 1) + block.source, encoding="utf-8")
        env_out = self._scratch / "env"
        if block.language == "bash":
            command = ["bash", "-euo", "pipefail", "-c", _BASH_WRAPPER, "bash"]
            env = self.env | {"__DOC_SCRIPT": str(script), "__DOC_ENV_OUT": str(env_out)}
            env_out.unlink(missing_ok=True)
        elif block.language == "python":
            command = [sys.executable, "-c", _PYTHON_BOOT, str(script), str(self.root / block.path)]
            env = self.env
        else:
            raise BlockFailed(block, f"is in {block.language!r}, which cannot be run", "", "")
        stdout, stderr, returncode, timed_out = self._execute(command, env)
        if timed_out:
            raise BlockFailed(block, f"did not finish within {self.timeout:.0f} s", stdout, stderr)
        if returncode != 0:
            raise BlockFailed(block, f"exited with status {returncode}", stdout, stderr)
        if block.language == "bash":
            self.env = _read_env(env_out.read_bytes()) if env_out.exists() else self.env
        return stdout

    def _execute(self, command: list[str], env: Mapping[str, str]) -> tuple[str, str, int, bool]:
        # Files, not pipes: a process the block starts in the background would hold a pipe
        # open, and the block would seem to run until it ended.
        with (self._scratch / "stdout").open("w+b") as out, (self._scratch / "stderr").open("w+b") as err:
            process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            self._groups.append(process.pid)
            try:
                returncode, timed_out = process.wait(timeout=self.timeout), False
            except subprocess.TimeoutExpired:
                _kill_group(process.pid)
                returncode, timed_out = process.wait(), True
            out.seek(0)
            err.seek(0)
            return (
                out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"),
                returncode,
                timed_out,
            )

    def close(self) -> None:
        for group in self._groups:
            _kill_group(group)
        self._groups.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_env(data: bytes) -> dict[str, str]:
    env = {}
    for entry in data.decode("utf-8", "surrogateescape").split("\0"):
        name, sep, value = entry.partition("=")
        if sep and name not in _SHELL_ONLY:
            env[name] = value
    return env


def env_of_file(path: Path) -> dict[str, str]:
    """The variables a shell file of exports (such as .stackyard/stack.env) sets, read by
    bash itself."""
    script = 'set -a; source "$1"; env -0'
    done = subprocess.run(["bash", "-euc", script, "bash", str(path)], capture_output=True, check=True, env={})
    return {name: value for name, value in _read_env(done.stdout).items() if name in _exported_names(path)}


def _exported_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        words = line.split(maxsplit=1)
        if len(words) == 2 and words[0] == "export":
            names.add(words[1].split("=", 1)[0])
    return names


def run_document(blocks: Iterable[Block], workdir: Path, env: Mapping[str, str], root: Path) -> list[str]:
    """Runs `blocks` in order; returns each block's stdout, raises BlockFailed at the first
    failure. Background processes the blocks started are ended before it returns."""
    runner = DocumentRun(workdir=workdir, env=dict(env), root=root)
    try:
        return [runner.run(block) for block in blocks]
    finally:
        runner.close()
