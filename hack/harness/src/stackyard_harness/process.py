"""Child processes that never outlive the harness.

Every server runs in its own session (so a Ctrl-C in the terminal reaches the harness,
which stops the servers in order) and with the kernel's parent-death signal set, so
that a harness killed with SIGKILL still takes its servers with it: no orphans.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


class HarnessError(RuntimeError):
    """A server could not be built, found or started; the message says which and where its log is."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    (port,) = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on loopback that nothing listens on right now: each socket
    stays bound until all are picked, so the kernel cannot hand out one port twice."""
    with contextlib.ExitStack() as bound:
        ports = []
        for _ in range(count):
            sock = bound.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the harness is gone: no one waits for a graceful exit
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit(128 + 15) in the main thread, so the with-blocks and
    ExitStacks of a bench or script unwind and stop every process they started."""

    def terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ManagedProcess:
    """One server process with its log file; `stop()` is safe to call more than once."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(self.env or {})},
                    cwd=self.cwd,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                raise HarnessError(f"{self.name}: cannot start {self.argv[0]}: {exc}") from exc
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout: float = 30.0, what: str = "ready") -> None:
        """Poll `check` until it is true; fail fast with the log's tail if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                raise HarnessError(
                    f"{self.name} exited with code {code} before it was {what}.\n"
                    f"Log: {self.log_path}\n--- last lines ---\n{log_tail(self.log_path)}"
                )
            try:
                if check():
                    return
            except Exception:  # noqa: S110 (not ready yet: the check raises until the server answers)
                pass
            time.sleep(0.1)
        self.stop()
        raise HarnessError(
            f"{self.name} was not {what} within {timeout:.0f} s.\n"
            f"Log: {self.log_path}\n--- last lines ---\n{log_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (for tests of recovery)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
