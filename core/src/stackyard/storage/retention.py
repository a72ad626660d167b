"""What the retention sweep decides, as pure functions of a file's metadata and the clock.

A Bucket with `spec.retention.days` deletes each file that many days after its upload, as
an S3 lifecycle expiration rule does: `expiresAt` is set at upload to `createdAt + days`,
and a sweep also deletes files older than the days in force now (a shorter retention
applies to the files already there; a longer one does not bring deleted files back).

Besides expired files a sweep removes what an interrupted upload or delete left behind:
`pending` documents older than `PENDING_GRACE` (their upload crashed half-way: the api
deletes its own failures at once) and `deleting` documents (a delete that stopped between
the metadata and the objects).

The sweep itself (stackyard.storage.files.FileService.sweep) runs these decisions; the job
`stackyard.storage.retention` records the run in the Bucket's status.lastRetention.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..resources.bucket import RetentionSettings

__all__ = [
    "PENDING_GRACE",
    "SweepReason",
    "cutoff",
    "expires_at",
    "retention_run",
    "sweep_reason",
]

PENDING_GRACE = timedelta(days=1)
"""How old a `pending` document must be before the sweep takes it for a crash's leftover
(the longest upload, a direct upload's signed URL included, is far shorter)."""

SweepReason = Literal["expired", "abandoned", "deleting"]
ERROR_LIMIT = 2048


def _aware(value: datetime) -> datetime:
    """PyMongo returns naive datetimes in UTC unless told otherwise."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def expires_at(created_at: datetime, retention: RetentionSettings | None) -> datetime | None:
    """When a file uploaded at `created_at` expires; None without retention."""
    if retention is None:
        return None
    return _aware(created_at) + timedelta(days=retention.days)


def cutoff(now: datetime, retention: RetentionSettings | None) -> datetime | None:
    """Files created before this instant have expired under the retention in force."""
    if retention is None:
        return None
    return _aware(now) - timedelta(days=retention.days)


def sweep_reason(document: Mapping[str, Any], now: datetime, retention: RetentionSettings | None) -> SweepReason | None:
    """Why the sweep deletes this file document, or None when it stays."""
    now = _aware(now)
    state = document.get("state")
    if state == "deleting":
        return "deleting"
    created = document.get("createdAt")
    updated = document.get("updatedAt") or created
    if state == "pending":
        return "abandoned" if isinstance(updated, datetime) and _aware(updated) <= now - PENDING_GRACE else None
    if retention is None:
        return None
    expiry = document.get("expiresAt")
    if isinstance(expiry, datetime) and _aware(expiry) <= now:
        return "expired"
    limit = cutoff(now, retention)
    if isinstance(created, datetime) and limit is not None and _aware(created) <= limit:
        return "expired"
    return None


def retention_run(at: datetime, deleted: int = 0, freed: int = 0, error: str | None = None) -> dict[str, Any]:
    """status.lastRetention of a Bucket (RetentionRunStatus, camelCase)."""
    if error is not None and len(error) > ERROR_LIMIT:
        error = error[: ERROR_LIMIT - 1] + "…"
    return {
        "at": _aware(at).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "deleted": deleted,
        "bytes": freed,
        "error": error,
    }
