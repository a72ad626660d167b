"""Files that survive a crash or a power cut: written whole or not at all, with the rename
itself made durable. Used by the search component's index versions and task payloads and by
the database backups."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make the entries of `directory` (a file created or renamed in it) durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes | str) -> None:
    """`data` in `path`, whole or not at all: a temporary file beside it (`.<name>.tmp`),
    fsynced, renamed over it, and the directory fsynced so that the rename survives."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)
