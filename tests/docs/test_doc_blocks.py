"""The runnable-block parser and runner of tests/docs/doc_blocks.py, without a stack."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from .doc_blocks import (
    Block,
    BlockFailed,
    DocumentRun,
    UnknownLanguage,
    documents,
    env_of_file,
    run_document,
    runnable_blocks,
)

DOC = Path("docs/example.md")


def blocks_of(markdown: str) -> list[Block]:
    return runnable_blocks(textwrap.dedent(markdown), DOC)


def test_only_blocks_marked_runnable_are_found_in_document_order() -> None:
    blocks = blocks_of(
        """\
        # Title

        ```bash runnable
        echo one
        ```

        ```bash
        echo shown, not run
        ```

        ```text
        one
        ```

        ```python runnable
        print("two")
        ```
        """
    )
    assert [(b.language, b.line, b.source) for b in blocks] == [
        ("bash", 3, "echo one\n"),
        ("python", 15, 'print("two")\n'),
    ]
    assert blocks[0].where == "docs/example.md:3"


def test_a_runnable_block_shown_inside_a_longer_fence_is_not_run() -> None:
    blocks = blocks_of(
        """\
        ````markdown
        ```bash runnable
        echo from the convention's own example
        ```
        ````
        """
    )
    assert blocks == []


def test_blocks_in_list_items_tildes_and_extra_words_are_found() -> None:
    blocks = blocks_of(
        """\
        1. First:

           ```bash runnable
           echo in a list
           ```

        ~~~python runnable slow
        print("tildes")
        ~~~
        """
    )
    assert [(b.language, b.source) for b in blocks] == [("bash", "echo in a list\n"), ("python", 'print("tildes")\n')]


def test_runnable_must_follow_the_language() -> None:
    assert blocks_of("```runnable\necho no language\n```\n") == []
    assert blocks_of("```bash-runnable\necho one word\n```\n") == []


def test_a_runnable_block_in_another_language_is_an_error_naming_file_and_line() -> None:
    with pytest.raises(UnknownLanguage, match=r"docs/example.md:3: .*'sh'"):
        blocks_of("Intro\n\n```sh runnable\necho hi\n```\n")


def test_documents_are_the_readme_and_every_markdown_file_under_docs(tmp_path: Path) -> None:
    for name in ("README.md", "docs/a.md", "docs/reference/b.md", "other/c.md", "docs/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert documents(tmp_path) == [Path("README.md"), Path("docs/a.md"), Path("docs/reference/b.md")]


def run(markdown: str, tmp_path: Path, *, timeout: float = 30.0) -> list[str]:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    document = tmp_path / DOC
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_text(textwrap.dedent(markdown))
    runner = DocumentRun(workdir=workdir, env=dict(os.environ), root=tmp_path, timeout=timeout)
    try:
        return [runner.run(block) for block in runnable_blocks(document.read_text(), DOC)]
    finally:
        runner.close()


def test_variables_of_a_bash_block_reach_later_bash_and_python_blocks(tmp_path: Path) -> None:
    outputs = run(
        """\
        ```bash runnable
        USER_EMAIL=ada.$RANDOM@example.com
        GREETING="hello world"
        ```

        ```bash runnable
        echo "$GREETING to $USER_EMAIL"
        ```

        ```python runnable
        import os

        print(os.environ["GREETING"])
        ```
        """,
        tmp_path,
    )
    assert outputs[1].startswith("hello world to ada.")
    assert outputs[2] == "hello world\n"


def test_blocks_share_one_working_directory(tmp_path: Path) -> None:
    outputs = run(
        """\
        ```bash runnable
        echo 'NAME = "from a file"' > settings.py
        ```

        ```python runnable
        import settings

        print(settings.NAME)
        ```

        ```bash runnable
        mkdir sub && cd sub
        ```

        ```bash runnable
        basename "$PWD"
        ```
        """,
        tmp_path,
    )
    assert outputs[1] == "from a file\n"
    assert outputs[3] == "work\n"  # each block starts in the document's directory


def test_a_failing_command_in_the_middle_fails_the_bash_block(tmp_path: Path) -> None:
    with pytest.raises(BlockFailed) as failure:
        run("```bash runnable\necho before\nfalse\necho after\n```\n", tmp_path)
    assert failure.value.stdout == "before\n"
    assert "exited with status 1" in str(failure.value)


def test_a_failing_pipeline_and_an_unset_variable_fail_the_bash_block(tmp_path: Path) -> None:
    with pytest.raises(BlockFailed):
        run("```bash runnable\nfalse | cat\n```\n", tmp_path)
    with pytest.raises(BlockFailed, match="NOT_SET"):
        run("```bash runnable\necho $NOT_SET\n```\n", tmp_path)


def test_the_failure_names_file_line_the_block_and_its_output(tmp_path: Path) -> None:
    with pytest.raises(BlockFailed) as failure:
        run(
            """\
            Intro.

            ```python runnable
            print("to stdout")
            assert 1 + 1 == 3, "arithmetic"
            ```
            """,
            tmp_path,
        )
    message = str(failure.value)
    assert message.startswith("docs/example.md:3: the python block exited with status 1")
    assert '    assert 1 + 1 == 3, "arithmetic"' in message
    assert "to stdout" in message
    # the traceback names the document and its own line, with the line's text
    assert f'File "{tmp_path / DOC}", line 5' in message
    assert "AssertionError: arithmetic" in message


def test_bash_errors_give_the_document_line(tmp_path: Path) -> None:
    with pytest.raises(BlockFailed) as failure:
        run("Intro.\n\n```bash runnable\ntrue\nno-such-command-here\n```\n", tmp_path)
    assert "line 5" in failure.value.stderr


def test_the_first_failing_block_stops_the_document(tmp_path: Path) -> None:
    with pytest.raises(BlockFailed) as failure:
        run("```bash runnable\nexit 3\n```\n\n```bash runnable\ntouch ran\n```\n", tmp_path)
    assert failure.value.block.line == 1
    assert not (tmp_path / "work" / "ran").exists()


def test_an_early_exit_0_keeps_the_blocks_variables(tmp_path: Path) -> None:
    outputs = run("```bash runnable\nKEPT=yes\nexit 0\n```\n\n```bash runnable\necho $KEPT\n```\n", tmp_path)
    assert outputs[1] == "yes\n"


def test_a_block_past_its_timeout_fails_and_is_ended(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BlockFailed, match="did not finish within 1 s"):
        run("```bash runnable\necho waiting\nsleep 30\n```\n", tmp_path, timeout=1)
    assert time.monotonic() - started < 10


def test_a_background_process_does_not_hold_the_block_and_ends_with_the_document(tmp_path: Path) -> None:
    started = time.monotonic()
    run("```bash runnable\nsleep 30 &\necho $! > sleeper.pid\n```\n", tmp_path)
    assert time.monotonic() - started < 10
    pid = int((tmp_path / "work" / "sleeper.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()


def test_run_document_returns_each_blocks_output(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / DOC).write_text("```bash runnable\necho a\n```\n")
    blocks = runnable_blocks((tmp_path / DOC).read_text(), DOC)
    assert run_document(blocks, workdir=tmp_path, env=dict(os.environ), root=tmp_path) == ["a\n"]


def test_a_stack_env_file_is_read_as_bash_reads_it(tmp_path: Path) -> None:
    env_file = tmp_path / "stack.env"
    env_file.write_text("export STACKYARD_API_URL=http://127.0.0.1:41237\nexport KEY='a b'\\''c'\n")
    assert env_of_file(env_file) == {"STACKYARD_API_URL": "http://127.0.0.1:41237", "KEY": "a b'c"}
