"""The benches' SMTP sink (bench/peers/smtp_sink.py) in its own process: it accepts mail as
fast as a server can and counts it; the count is read over HTTP."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .process import ManagedProcess, free_port, tcp_open
from .tools import REPO_ROOT

SINK = REPO_ROOT / "bench" / "peers" / "smtp_sink.py"


class SmtpSinkProcess:
    def __init__(self, run_dir: Path, *, stall: float = 30.0) -> None:
        """`stall`: seconds without a new message after which `wait_for` gives up."""
        self.smtp_port, self.http_port = free_port(), free_port()
        self.stall = stall
        argv = [sys.executable, str(SINK), str(self.smtp_port), str(self.http_port)]
        self.process = ManagedProcess("smtp-sink", argv, run_dir / "smtp-sink.log")

    def start(self) -> SmtpSinkProcess:
        self.process.start().wait_ready(lambda: tcp_open(self.smtp_port) and tcp_open(self.http_port), 15)
        return self

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as answer:
            result: dict[str, Any] = json.loads(answer.read())
        return result

    async def read(self) -> dict[str, Any]:
        """{"count": messages accepted, "last": the monotonic time of the last one}."""
        return await asyncio.to_thread(self._get, "/count")

    async def reset(self) -> None:
        await asyncio.to_thread(self._get, "/reset")

    async def wait_for(self, count: int, what: ManagedProcess | None = None, interval: float = 0.02) -> float:
        """Polls the count until it reaches `count`; the (monotonic) time the sink took the last one.
        Gives up when the count stalls, or when `what` (the sending process) exits."""
        last, last_change = -1, time.monotonic()
        while True:
            seen = await self.read()
            if seen["count"] >= count:
                return float(seen["last"])
            now = time.monotonic()
            if seen["count"] != last:
                last, last_change = seen["count"], now
            elif now - last_change > self.stall:
                where = f"; see {what.log_path}" if what is not None else ""
                raise SystemExit(f"stalled at {seen['count']} of {count} messages for {self.stall:.0f} s{where}")
            if what is not None and not what.running:
                raise SystemExit(f"{what.name} exited; see {what.log_path}")
            await asyncio.sleep(interval)

    def stop(self) -> None:
        self.process.stop()
