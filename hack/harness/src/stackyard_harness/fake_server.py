"""What every local stand-in for a web API shares: its own aiohttp app on a free loopback
port, served by an event loop in a background thread (so that sync and async tests can use
it alike), and what it keeps of the requests it answered, behind one lock.

A fake subclasses `FakeServer`, gives a `name` ("fake Sentry"), builds its app in
`_application()` and keeps its bookkeeping in a state object made by the factory it passes
to `__init__`. Handlers (in the server's thread) and tests (in theirs) read and change
`self._state` under `self._lock`; `reset()` replaces it with a fresh one.

    with FakeGitHub() as github:   # start() ... stop()
        github.url                 # http://127.0.0.1:<port>
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, Self, TypeVar

from aiohttp import web

StateT = TypeVar("StateT")


class FakeServer(Generic[StateT]):
    name = "fake server"
    """What messages and the thread call it: "the <name> did not start"."""
    auto_decompress = True
    """False: handlers read request bodies as sent, Content-Encoding and all."""

    def __init__(self, new_state: Callable[[], StateT]) -> None:
        self._new_state = new_state
        self._state = new_state()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget everything the fake kept: a fresh state."""
        with self._lock:
            self._state = self._new_state()

    def _application(self) -> web.Application:
        """The app to serve: the fake's routes (and its body size limit)."""
        raise NotImplementedError

    # --- running ----------------------------------------------------------------------------

    def start(self) -> Self:
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=self.name.lower().replace(" ", "-"), daemon=True)
        self._thread.start()
        if not started.wait(10) or errors:
            self._loop = self._thread = self._runner = None
            raise RuntimeError(f"the {self.name} did not start: {errors[0]!r}" if errors else f"the {self.name} hung")
        return self

    async def _serve(self) -> None:
        runner = web.AppRunner(
            self._application(),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=1,
            auto_decompress=self.auto_decompress,
        )
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = runner.addresses[0][1]

    def stop(self) -> None:
        loop, runner, thread = self._loop, self._runner, self._thread
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
