"""Schedule ticks and retry backoff: pure functions, checked with plain dates and numbers
and with hypothesis."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from stackyard.jobs.backoff import after_failure, backoff_cap, backoff_delay
from stackyard.jobs.ids import new_job_id, queue_of
from stackyard.jobs.scheduler import Fired, job_request, latest_tick, next_tick
from stackyard.jobs.settings import RetryPolicy
from stackyard.resources.jobs import ScheduleSpec


def schedule(**spec) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"stackRef": {"name": "demo"}, "job": {"function": "f"}} | spec)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_cron_ticks_follow_the_time_zone_across_daylight_saving():
    nine_in_paris = schedule(cron="0 9 * * *", timeZone="Europe/Paris")
    # Winter: Paris is UTC+1; summer: UTC+2 (the change was on 2026-03-29).
    assert latest_tick(nine_in_paris, utc(2026, 3, 28, 12)) == utc(2026, 3, 28, 8)
    assert next_tick(nine_in_paris, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 7)
    assert latest_tick(nine_in_paris, utc(2026, 3, 29, 7, 0, 0)) == utc(2026, 3, 29, 7)


def test_interval_ticks_count_from_the_epoch_so_replicas_agree():
    every_five = schedule(interval="5m")
    assert latest_tick(every_five, utc(2026, 11, 25, 10, 7, 13)) == utc(2026, 11, 25, 10, 5)
    assert next_tick(every_five, utc(2026, 11, 25, 10, 5)) == utc(2026, 11, 25, 10, 10)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["*/7 * * * *", "0 9 * * 1-5", "30 2 * * *", "@hourly", "15 */3 * * *"]),
    st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
)
def test_the_latest_tick_is_never_after_now_and_the_next_one_is_after_it(now, cron, zone):
    spec = schedule(cron=cron, timeZone=zone)
    latest = latest_tick(spec, now)
    following = next_tick(spec, latest)
    assert latest <= now < following
    assert next_tick(spec, now) == following, "no tick lies between the latest and the next"


def test_a_fired_tick_reports_its_status_in_the_resource_fields():
    fired = Fired("nightly", utc(2026, 1, 2, 3), "default.x", "completed", utc(2026, 1, 3, 3), "started")
    assert fired.status() == {
        "lastRunTime": "2026-01-02T03:00:00Z",
        "nextRunTime": "2026-01-03T03:00:00Z",
        "lastResult": "completed",
        "lastJobId": "default.x",
    }
    skipped = Fired("nightly", utc(2026, 1, 2, 3), None, "active", utc(2026, 1, 3, 3), "skipped: busy")
    assert skipped.status()["lastResult"] == "skipped: busy" and "lastJobId" not in skipped.status()


def test_each_tick_enqueues_with_its_own_idempotency_key():
    spec = schedule(
        interval="1m", job={"queue": "reports", "function": "r.send", "payload": {"a": 1}, "timeout": "30s"}
    )
    request = job_request("weekly", spec, utc(2026, 1, 1))
    assert request.idempotency_key == "schedule:weekly:1767225600000"
    assert (request.queue, request.function, request.payload, request.timeout) == ("reports", "r.send", {"a": 1}, 30)


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 100),
    initial_backoff=st.floats(0.001, 60),
    max_backoff=st.floats(60, 86400),
    multiplier=st.floats(1, 10),
    jitter=st.sampled_from(["full", "none"]),
)


@given(policies, st.integers(1, 100), st.randoms())
def test_backoff_stays_within_zero_and_its_capped_exponential(policy, attempt, rng):
    cap = backoff_cap(attempt, policy)
    assert cap <= policy.max_backoff
    assert cap >= min(policy.initial_backoff, policy.max_backoff)
    assert backoff_cap(attempt + 1, policy) >= cap
    delay = backoff_delay(attempt, policy, rng)
    assert 0 <= delay <= cap
    if policy.jitter == "none":
        assert delay == cap


def test_full_jitter_spreads_retries_over_the_whole_window():
    policy = RetryPolicy(initial_backoff=1, max_backoff=100, multiplier=2)
    rng = random.Random(7)
    delays = [backoff_delay(4, policy, rng) for _ in range(2000)]
    assert max(delays) <= 8 and min(delays) >= 0
    assert 3.6 < sum(delays) / len(delays) < 4.4, "uniform over [0, 8): the mean is near 4"


def test_after_failure_retries_while_attempts_remain_unless_told_otherwise():
    policy = RetryPolicy(max_attempts=3, jitter="none", initial_backoff=2)
    assert after_failure(1, 3, policy).retry_in == 2
    assert after_failure(2, 3, policy).retry_in == 4
    assert after_failure(3, 3, policy).retry_in is None
    assert after_failure(1, 3, policy, retryable=False).retry_in is None
    assert after_failure(1, 3, policy, retry_after=30).retry_in == 30


def test_job_ids_name_their_queue_and_sort_by_time():
    first = new_job_id("emails", now_ms=1_700_000_000_000)
    later = new_job_id("emails", now_ms=1_700_000_000_001)
    assert queue_of(first) == "emails" and first < later
    assert queue_of("emails.short") is None and queue_of("no-dot") is None
    assert len(first.split(".")[1]) == 26
