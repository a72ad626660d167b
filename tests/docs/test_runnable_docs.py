"""Every block of README.md and docs/**/*.md marked `bash runnable` or `python runnable` runs
against the stack of `make up`, in the environment `source .stackyard/stack.env` gives: one
test per document, its blocks in order in one fresh working directory (docs/testing.md).

One document's blocks: `.venv/bin/pytest tests/docs/test_runnable_docs.py -k quickstart`.
Against a `make up` already running (instead of a stack of its own):
`STACKYARD_DOCS_STACK_ENV=.stackyard/stack.env .venv/bin/pytest tests/docs/test_runnable_docs.py -k quickstart`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .doc_blocks import (
    BLOCK_TIMEOUT,
    Block,
    BlockFailed,
    UnknownLanguage,
    documents,
    env_of_file,
    run_document,
    runnable_blocks,
)

ROOT = Path(__file__).resolve().parents[2]
RUNNING_STACK = "STACKYARD_DOCS_STACK_ENV"
"""The stack.env of a `make up` already running, to run the blocks against it instead."""
STACK_START = 300
"""Seconds on top of the blocks' own for `make up` (the fixture's start counts in the test's time)."""


def _document_params() -> list[object]:
    params: list[object] = []
    for path in documents(ROOT):
        try:
            blocks: list[Block] | UnknownLanguage = runnable_blocks((ROOT / path).read_text(encoding="utf-8"), path)
        except UnknownLanguage as error:
            blocks = error  # the document's test fails with it, the others still run
        if isinstance(blocks, list) and not blocks:
            continue
        count = len(blocks) if isinstance(blocks, list) else 0
        timeout = STACK_START + BLOCK_TIMEOUT * count
        params.append(pytest.param(path, blocks, id=str(path), marks=pytest.mark.timeout(timeout)))
    if not params:
        # An error at collection, not a passing run of nothing: a parser that finds no block
        # (or docs that lost them all) must not look like documentation that works.
        raise RuntimeError(f"no `bash runnable` or `python runnable` block in README.md or docs/ under {ROOT}")
    return params


def _terminal_env(stack_env: dict[str, str]) -> dict[str, str]:
    """A newcomer's terminal after `source .stackyard/stack.env`: this process's environment
    without pytest's own variables, with the stack's on top."""
    env = {
        name: value for name, value in os.environ.items() if not name.startswith("PYTEST_") and name != RUNNING_STACK
    }
    return env | stack_env


@pytest.mark.slow
@pytest.mark.parametrize(("path", "blocks"), _document_params())
def test_runnable_blocks_of_the_document_run(
    path: Path, blocks: list[Block] | UnknownLanguage, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if isinstance(blocks, UnknownLanguage):
        pytest.fail(str(blocks), pytrace=False)
    running = os.environ.get(RUNNING_STACK)
    stack_env: dict[str, str] = env_of_file(Path(running)) if running else request.getfixturevalue("stack_env")
    failure = None
    try:
        run_document(blocks, workdir=tmp_path, env=_terminal_env(stack_env), root=ROOT)
    except BlockFailed as failed:
        failure = str(failed)
    if failure:
        pytest.fail(failure, pytrace=False)
