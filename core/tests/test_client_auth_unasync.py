"""The SDK's blocking namespaces (`client/auth_sync.py`, `admin_sync.py`, `databases_sync.py`,
`files_sync.py`, `notify_sync.py`, `orgs_sync.py`,
`push_sync.py`, `search_sync.py`, `ratelimit_sync.py`, `config_sync.py`)
are the asyncio ones (`auth_async.py`, ...) with the awaits taken out, and nothing
else: the two of a pair cannot drift.
They are compared as syntax trees, so that formatting (ruff joins lines the rewrite made
shorter) does not count.

After changing an async one, write the blocking ones again with
`.venv/bin/python core/tests/test_client_auth_unasync.py && .venv/bin/ruff format core/src/stackyard/client`."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[1] / "src" / "stackyard" / "client"
REWRITES = [
    (r"\basync def ", "def "),
    (r"\bawait ", ""),
    (r"\basync for ", "for "),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"for (\w+) in ([^\n]+):\n\s+yield \1\n", r"yield from \2\n"),
    (r"\bAsyncStackyard\b", "Stackyard"),
    (r"\bAsync(?=[A-Z]\w*)", ""),
    (r"\.async_client\b", ".sync_client"),
    (r"\.(\w+)_async\b", r".\1_sync"),
    (r"\basyncio\.sleep\(", "time.sleep("),
    (r"(?m)^import asyncio\n", ""),
    (r"\basync with ", "with "),
    (r"\.aiter_bytes\(", ".iter_bytes("),
    (r"\.aread\(", ".read("),
    (r"\.aclose\(", ".close("),
]


def unasync(source: str) -> str:
    for pattern, replacement in REWRITES:
        source = re.sub(pattern, replacement, source)
    return source


PAIRS = [
    ("auth_async.py", "auth_sync.py"),
    ("admin_async.py", "admin_sync.py"),
    ("orgs_async.py", "orgs_sync.py"),
    ("push_async.py", "push_sync.py"),
    ("databases_async.py", "databases_sync.py"),
    ("files_async.py", "files_sync.py"),
    ("notify_async.py", "notify_sync.py"),
    ("search_async.py", "search_sync.py"),
    ("ratelimit_async.py", "ratelimit_sync.py"),
    ("config_async.py", "config_sync.py"),
]


@pytest.mark.parametrize(("asynchronous", "blocking"), PAIRS)
def test_the_blocking_namespace_is_the_async_one_without_awaits(asynchronous: str, blocking: str):
    expected = ast.dump(ast.parse(unasync((CLIENT / asynchronous).read_text())))
    assert ast.dump(ast.parse((CLIENT / blocking).read_text())) == expected, (
        f"{blocking} differs from {asynchronous} without its awaits: run "
        ".venv/bin/python core/tests/test_client_auth_unasync.py, then ruff format"
    )


def test_the_rewrite_takes_out_awaits_and_async_names():
    source = "async def me(self) -> Me:\n    return await AsyncAccount(self).x()\n"
    assert unasync(source) == "def me(self) -> Me:\n    return Account(self).x()\n"
    loop = "    async for page in pages():\n        for user in page.items:\n            yield user\n"
    assert unasync(loop) == "    for page in pages():\n        yield from page.items\n"


if __name__ == "__main__":
    for asynchronous, blocking in PAIRS:
        (CLIENT / blocking).write_text(unasync((CLIENT / asynchronous).read_text()))
        sys.stdout.write(f"wrote {blocking}\n")
