"""Debian's clamd (package clamav-daemon) with a local test signature database.

freshclam cannot download ClamAV's signatures here (and the official database is 200+ MB),
so clamd loads only what this module writes into its database directory:

- `stackyard.hdb`: the MD5 and size of the EICAR test file, named `Stackyard.Test.EICAR`;
- `stackyard.ndb`: a body signature for `MARKER` (anywhere in any file), named
  `Stackyard.Test.Marker`: a "virus" that hides inside larger, otherwise ordinary files.

clamd appends `.UNOFFICIAL` to the names of signatures outside ClamAV's own databases, so
it reports `Stackyard.Test.EICAR.UNOFFICIAL FOUND` (see `EICAR_SIGNATURE`).

It listens on a free loopback TCP port and on a unix socket in its directory;
`stop()` then `start()` brings it back on the same port (the scan-retry tests).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

from .process import ManagedProcess, free_port
from .tools import ToolMissing, Tools

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
"""The EICAR anti-virus test file (68 bytes): harmless, and detected by every scanner."""
MARKER = b"STACKYARD-TEST-MALWARE-MARKER-7f3a9c"
"""Bytes that make any file "infected" for this clamd."""
EICAR_SIGNATURE = "Stackyard.Test.EICAR.UNOFFICIAL"
MARKER_SIGNATURE = "Stackyard.Test.Marker.UNOFFICIAL"
SEARCH_PATH = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"


def clamd_binary() -> Path:
    found = shutil.which("clamd", path=SEARCH_PATH)
    if not found:
        raise ToolMissing("clamd", "/usr/sbin/clamd", "sudo hack/apt-packages.sh (Debian's clamav-daemon)")
    return Path(found)


def write_database(directory: Path) -> None:
    """The test signatures (see the module)."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(EICAR, usedforsecurity=False).hexdigest()
    (directory / "stackyard.hdb").write_text(f"{digest}:{len(EICAR)}:Stackyard.Test.EICAR\n")
    # name:target type (0: any file):offset (*: anywhere):hex bytes
    (directory / "stackyard.ndb").write_text(f"Stackyard.Test.Marker:0:*:{MARKER.hex()}\n")


def _ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"zPING\0")
        return sock.recv(16).rstrip(b"\0") == b"PONG"


class ClamdServer:
    name = "clamd"

    def __init__(self, tools: Tools | None, run_dir: Path, *, stream_max_length: str = "100M") -> None:
        self.binary = clamd_binary()
        self.dir = run_dir / "clamav"
        self.stream_max_length = stream_max_length
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        """`tcp://127.0.0.1:<port>` (Bucket spec.scan.address)."""
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.dir / "clamd.sock"

    @property
    def unix_address(self) -> str:
        return f"unix://{self.socket_path}"

    def write_config(self) -> Path:
        write_database(self.dir / "db")
        config = self.dir / "clamd.conf"
        config.write_text(
            "\n".join(
                [
                    "Foreground yes",
                    f"TCPSocket {self.port}",
                    "TCPAddr 127.0.0.1",
                    f"LocalSocket {self.socket_path}",
                    "LocalSocketMode 600",
                    f"DatabaseDirectory {self.dir / 'db'}",
                    f"PidFile {self.dir / 'clamd.pid'}",
                    f"TemporaryDirectory {self.dir}",
                    "LogTime yes",
                    "LogVerbose no",
                    f"StreamMaxLength {self.stream_max_length}",
                    "MaxThreads 4",
                    "SelfCheck 3600",
                    "ConcurrentDatabaseReload no",
                    "",
                ]
            )
        )
        return config

    def start(self) -> ClamdServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        config = self.write_config()
        self.process = ManagedProcess(
            "clamd", [self.binary, f"--config-file={config}"], self.dir.parent / "clamd.log"
        ).start()
        self.process.wait_ready(lambda: _ping(self.port), 60, "answering PING")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def env(self) -> dict[str, str]:
        return {"STACKYARD_CLAMD_ADDRESS": self.address}

    def describe(self) -> str:
        return f"clamd           {self.address}"
