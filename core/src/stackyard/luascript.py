"""Lua scripts run by EVALSHA, shared by every capability that keeps state in Redis."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from .clients import AnyRedis


@dataclass
class LuaScript:
    """One script run by EVALSHA; on NOSCRIPT (a restarted or flushed Redis, a new cluster
    node) it is sent once with EVAL, which also caches it on that server again."""

    source: str
    sha: str = field(init=False)
    _evalsha_head: bytes = field(init=False, repr=False)
    _eval_head: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        source = self.source.encode()
        self._evalsha_head = b"$7\r\nEVALSHA\r\n$40\r\n%s\r\n" % self.sha.encode()
        self._eval_head = b"$4\r\nEVAL\r\n$%d\r\n%s\r\n" % (len(source), source)

    async def __call__(self, client: AnyRedis, keys: list[str], args: Sequence[str | int | bytes]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)

    def pack(self, keys: list[str], args: list[str | int], whole: bool = False) -> bytes:
        """The RESP of one EVALSHA (EVAL with `whole`) of this script."""
        head = self._eval_head if whole else self._evalsha_head
        count = b"%d" % len(keys)
        out = [b"*%d\r\n" % (len(keys) + len(args) + 3), head, b"$%d\r\n%s\r\n" % (len(count), count)]
        for item in (*keys, *args):
            data = item.encode() if isinstance(item, str) else b"%d" % item
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)
