"""Lua scripts run by EVALSHA, shared by every capability that keeps state in Redis."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError, ResponseError

from .clients import AnyRedis

READ_TIMEOUT = 5.0


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

    def pack(self, keys: list[str], args: Sequence[str | int | bytes], whole: bool = False) -> bytes:
        """The RESP of one EVALSHA (EVAL with `whole`) of this script."""
        head = self._eval_head if whole else self._evalsha_head
        count = b"%d" % len(keys)
        out = [b"*%d\r\n" % (len(keys) + len(args) + 3), head, b"$%d\r\n%s\r\n" % (len(count), count)]
        for item in (*keys, *args):
            data = item.encode() if isinstance(item, str) else item if isinstance(item, bytes) else b"%d" % item
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)


@dataclass(slots=True)
class _Call:
    client: Any
    script: LuaScript
    keys: list[str]
    args: Sequence[str | int | bytes]
    future: asyncio.Future[Any]
    deadline: float


class ScriptBatch:
    """Coalesces the script calls made in one event-loop turn: per client, one write of
    all their EVALSHAs and one read of all the answers on one connection (a pipeline, not
    a transaction: each script is atomic by itself, and they need not share a slot; on a
    cluster, redis-py's cluster pipeline sends each to its node). Each call has its own
    deadline: one timer per batch fails the calls whose time budget ran out with
    TimeoutError, and the batch goes on for the others."""

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self._pending: list[_Call] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def run(
        self, client: AnyRedis, script: LuaScript, keys: list[str], args: Sequence[str | int | bytes], timeout: float
    ) -> asyncio.Future[Any]:
        """The script's raw reply (bytes undecoded), once the batch it joined is answered."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(_Call(client, script, keys, args, future, loop.time() + timeout))
        if self._scheduled_on is not loop:  # (a loop that closed before flushing is replaced)
            self._scheduled_on = loop
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        loop, self._scheduled_on = self._scheduled_on, None
        pending = [c for c in self._pending if c.future.get_loop() is loop]
        self._pending = []
        by_client: dict[int, list[_Call]] = {}
        for call in pending:
            by_client.setdefault(id(call.client), []).append(call)
        for calls in by_client.values():
            for start in range(0, len(calls), self.max_batch):
                task = asyncio.ensure_future(self._send(calls[start : start + self.max_batch]))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _send(self, calls: list[_Call]) -> None:
        deadlines = _Deadlines(calls)
        try:
            replies = await _execute(calls[0].client, calls, whole=False)
            reload = []
            for call, reply in zip(calls, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    reload.append(call)
                else:
                    _settle(call.future, reply)
            if reload:
                for call, reply in zip(reload, await _execute(reload[0].client, reload, whole=True), strict=True):
                    _settle(call.future, reply)
        except Exception as exc:
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(exc)
        finally:
            deadlines.cancel()


class _Deadlines:
    """One timer for a batch: it fails each call whose deadline has passed with
    TimeoutError, and is set again for the next deadline."""

    def __init__(self, calls: list[_Call]) -> None:
        self.calls = calls
        self.loop = asyncio.get_running_loop()
        self.handle = self.loop.call_at(min(c.deadline for c in calls), self._fire)

    def _fire(self) -> None:
        now = self.loop.time()
        later = []
        for call in self.calls:
            if call.future.done():
                continue
            if call.deadline <= now:
                call.future.set_exception(TimeoutError())
            else:
                later.append(call.deadline)
        if later:
            self.handle = self.loop.call_at(min(later), self._fire)

    def cancel(self) -> None:
        self.handle.cancel()


async def _execute(client: Any, calls: list[_Call], whole: bool) -> list[Any]:
    """The replies (or the error of each) of `calls`, in order, in one round trip."""
    if isinstance(client, redis.Redis):
        # One connection, one write, N reads: what a pipeline does, without building one.
        pool = client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(b"".join(c.script.pack(c.keys, c.args, whole) for c in calls))
            replies: list[Any] = []
            # One socket timeout for the whole batch rather than one per reply.
            async with asyncio.timeout(conn.socket_timeout or READ_TIMEOUT):
                for _ in calls:
                    try:
                        replies.append(await conn.read_response(disable_decoding=True, timeout=math.inf))
                    except ResponseError as exc:
                        replies.append(exc)
            return replies
        except BaseException:
            await conn.disconnect()  # half read: never reused
            raise
        finally:
            await pool.release(conn)
    # A cluster: redis-py's cluster pipeline sends each call to the master of its slot
    # (its evalsha() method is refused in pipelines, the command itself is routed by key).
    pipe = client.pipeline(transaction=False)
    for c in calls:
        if whole:
            pipe.execute_command("EVAL", c.script.source, len(c.keys), *c.keys, *c.args)
        else:
            pipe.execute_command("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)
    return list(await pipe.execute(raise_on_error=False))


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    if future.done():
        return
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)
