"""The retention sweep's decisions: expired by the expiry set at upload or by the days in
force now, crash leftovers after a day, interrupted deletes at once; the status record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from stackyard.resources.bucket import RetentionSettings
from stackyard.storage.retention import PENDING_GRACE, cutoff, expires_at, retention_run, sweep_reason

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
WEEK = RetentionSettings(days=7)


def doc(state: str = "available", age: timedelta = timedelta(0), **fields: Any) -> dict[str, Any]:
    created = NOW - age
    return {"state": state, "createdAt": created, "updatedAt": created} | fields


def test_a_file_expires_its_retention_days_after_upload() -> None:
    assert expires_at(NOW, WEEK) == NOW + timedelta(days=7)
    assert expires_at(NOW.replace(tzinfo=None), WEEK) == NOW + timedelta(days=7)  # PyMongo's naive UTC
    assert expires_at(NOW, None) is None and cutoff(NOW, None) is None
    assert cutoff(NOW, WEEK) == NOW - timedelta(days=7)


def test_files_older_than_the_retention_are_swept_and_younger_ones_stay() -> None:
    assert sweep_reason(doc(age=timedelta(days=7)), NOW, WEEK) == "expired"
    assert sweep_reason(doc(age=timedelta(days=6, hours=23)), NOW, WEEK) is None
    assert sweep_reason(doc("quarantined", timedelta(days=8)), NOW, WEEK) == "expired"
    assert sweep_reason(doc(age=timedelta(days=400)), NOW, None) is None  # no retention: kept for ever


def test_a_shorter_retention_applies_to_files_already_there() -> None:
    uploaded = doc(age=timedelta(days=3), expiresAt=NOW + timedelta(days=27))  # uploaded under 30 days
    assert sweep_reason(uploaded, NOW, RetentionSettings(days=2)) == "expired"
    assert sweep_reason(uploaded, NOW, WEEK) is None


def test_the_expiry_recorded_at_upload_is_kept_when_the_retention_grows() -> None:
    uploaded = doc(age=timedelta(days=3), expiresAt=(NOW - timedelta(seconds=1)).replace(tzinfo=None))
    assert sweep_reason(uploaded, NOW, RetentionSettings(days=30)) == "expired"


def test_crash_leftovers_go_after_a_day_and_interrupted_deletes_at_once() -> None:
    assert sweep_reason(doc("pending", PENDING_GRACE), NOW, None) == "abandoned"
    assert sweep_reason(doc("pending", PENDING_GRACE - timedelta(minutes=1)), NOW, WEEK) is None  # still uploading
    assert sweep_reason(doc("deleting"), NOW, None) == "deleting"
    assert sweep_reason(doc("scanning", timedelta(days=2)), NOW, None) is None  # waits for its scan


def test_the_run_is_recorded_in_the_status_shape() -> None:
    assert retention_run(NOW, 3, 1024) == {"at": "2026-03-10T12:00:00Z", "deleted": 3, "bytes": 1024, "error": None}
    failed = retention_run(NOW, error="x" * 5000)
    assert failed["deleted"] == 0 and len(failed["error"]) == 2048 and failed["error"].endswith("…")


@given(st.integers(min_value=0, max_value=40 * 24 * 3600), st.integers(min_value=1, max_value=30))
def test_a_file_is_expired_exactly_from_its_expiry_on(age_seconds: int, days: int) -> None:
    retention = RetentionSettings(days=days)
    created = NOW - timedelta(seconds=age_seconds)
    document = doc(age=timedelta(seconds=age_seconds), expiresAt=expires_at(created, retention))
    expected = "expired" if age_seconds >= days * 24 * 3600 else None
    assert sweep_reason(document, NOW, retention) == expected
