"""Job ids: `<queue>.<26 characters>`: the queue (so a job is found from its id alone) and a
ULID-shaped part (48 bits of milliseconds, 80 random bits, Crockford base32), so ids sort by
creation time."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def sortable_id(now_ms: int | None = None) -> str:
    """26 characters: milliseconds then randomness, Crockford base32 (lower case)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return _encode((ms << 80) | int.from_bytes(os.urandom(10), "big"))


class MonotonicIds:
    """sortable_id, strictly increasing in this process: an id made in the same millisecond
    as the one before (or when the clock stepped back) is that one plus one, so records
    written one after the other list in the order they were written."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, now_ms: int | None = None) -> str:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return _encode(value)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_job_id(queue: str, now_ms: int | None = None) -> str:
    return f"{queue}.{sortable_id(now_ms)}"


def queue_of(job_id: str) -> str | None:
    """The queue named in a job id, or None if it is not one."""
    queue, dot, rest = job_id.rpartition(".")
    if not dot or not queue or len(rest) != 26 or any(c not in _ALPHABET for c in rest):
        return None
    return queue
