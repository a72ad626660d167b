"""The SDK's blocking auth namespace (`client/auth_sync.py`) is the asyncio one
(`client/auth_async.py`) with the awaits taken out, and nothing else: the two cannot drift.
They are compared as syntax trees, so that formatting (ruff joins lines the rewrite made
shorter) does not count.

After changing auth_async.py, write auth_sync.py again with
`.venv/bin/python core/tests/test_client_auth_unasync.py && .venv/bin/ruff format core/src/stackyard/client`."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[1] / "src" / "stackyard" / "client"
REWRITES = [
    (r"\basync def ", "def "),
    (r"\bawait ", ""),
    (r"\basync for ", "for "),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncStackyard\b", "Stackyard"),
    (r"\bAsync(?=[A-Z]\w*)", ""),
    (r"\.async_client\b", ".sync_client"),
]


def unasync(source: str) -> str:
    for pattern, replacement in REWRITES:
        source = re.sub(pattern, replacement, source)
    return source


def test_the_blocking_auth_namespace_is_the_async_one_without_awaits():
    expected = ast.dump(ast.parse(unasync((CLIENT / "auth_async.py").read_text())))
    assert ast.dump(ast.parse((CLIENT / "auth_sync.py").read_text())) == expected, (
        "auth_sync.py differs from auth_async.py without its awaits: run "
        ".venv/bin/python core/tests/test_client_auth_unasync.py, then ruff format"
    )


def test_the_rewrite_takes_out_awaits_and_async_names():
    source = "async def me(self) -> Me:\n    return await AsyncAccount(self).x()\n"
    assert unasync(source) == "def me(self) -> Me:\n    return Account(self).x()\n"


if __name__ == "__main__":
    (CLIENT / "auth_sync.py").write_text(unasync((CLIENT / "auth_async.py").read_text()))
    sys.stdout.write("wrote auth_sync.py\n")
