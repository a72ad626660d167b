"""JobQueue and Schedule models: their defaults, what they refuse and why, and the
credentials a queue needs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from stackyard.config import RuntimeConfig
from stackyard.resources import JobQueue, JobQueueSpec, Schedule, ScheduleSpec, SecretKeyRef
from stackyard.resources.crdgen import crd
from stackyard.resources.jobs import CRON_ALIASES

STACK_REF = {"stackRef": {"name": "demo"}}


def schedule(**spec):
    return ScheduleSpec.model_validate({**STACK_REF, "job": {"function": "reports.daily"}, **spec})


def error_of(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return exc.value.errors()[0]["msg"]


def test_job_queue_defaults():
    spec = JobQueueSpec.model_validate(STACK_REF)
    assert (spec.concurrency, spec.global_concurrency, spec.rate_limit) == (10, None, None)
    assert spec.retry.model_dump() == {
        "max_attempts": 5,
        "initial_backoff": "1s",
        "max_backoff": "1h",
        "multiplier": 2.0,
        "jitter": "full",
    }
    assert (spec.timeout, spec.visibility_timeout, spec.idempotency_window) == ("5m", "30s", "24h")
    assert (spec.retention.completed, spec.retention.dead) == ("24h", "336h")
    assert (spec.priority, spec.max_payload_bytes, spec.paused) == (0, 262_144, False)
    assert spec.http_target.allowed_urls == [] and spec.http_target.signing_secret_ref is None


def test_job_queue_reads_its_camel_case_spec():
    spec = JobQueueSpec.model_validate(
        {
            **STACK_REF,
            "globalConcurrency": 50,
            "rateLimit": {"limit": 100, "interval": "1s"},
            "retry": {"maxAttempts": 3, "initialBackoff": "500ms"},
            "visibilityTimeout": "2m",
            "httpTarget": {"allowedUrls": ["https://app.example.com/jobs/"]},
        }
    )
    assert spec.global_concurrency == 50 and spec.rate_limit is not None and spec.rate_limit.limit == 100
    assert (spec.retry.max_attempts, spec.retry.initial_backoff, spec.retry.max_backoff) == (3, "500ms", "1h")
    assert spec.http_target.allowed_urls == ["https://app.example.com/jobs/"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("concurrency", 0),
        ("concurrency", 1001),
        ("globalConcurrency", 100_001),
        ("priority", 10),
        ("maxPayloadBytes", 10_485_761),
        ("timeout", "5 minutes"),
        ("httpTarget", {"allowedUrls": ["ftp://files.example.com/"]}),
        ("retry", {"jitter": "half"}),
        ("rateLimit", {"limit": 0, "interval": "1s"}),
    ],
)
def test_job_queue_refuses_out_of_range_fields(field, value):
    with pytest.raises(ValidationError):
        JobQueueSpec.model_validate({**STACK_REF, field: value})


def test_signing_secret_is_the_only_credential_of_a_queue():
    assert JobQueueSpec.model_validate(STACK_REF).secret_refs() == {}
    spec = JobQueueSpec.model_validate(
        {**STACK_REF, "httpTarget": {"signingSecretRef": {"name": "jobs-signing", "key": "hmac"}}}
    )
    assert spec.secret_refs() == {"signingSecret": SecretKeyRef(name="jobs-signing", key="hmac")}


def test_schedule_defaults():
    spec = schedule(cron="0 9 * * mon-fri")
    assert (spec.time_zone, spec.overlap_policy, spec.paused, spec.starting_deadline) == ("UTC", "skip", False, "1m")
    assert (spec.job.queue, spec.job.function, spec.job.http, spec.job.payload) == (
        "default",
        "reports.daily",
        None,
        None,
    )


@pytest.mark.parametrize("cron", ["*/15 * * * *", "0 9 * * mon-fri", "30 2 1 * *", "0 0 29 2 *", *CRON_ALIASES])
def test_standard_cron_expressions_and_aliases_are_accepted(cron):
    assert schedule(cron=cron).cron == cron


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "invalid cron expression '61 * * * *'"),
        ("* * * *", "has 4 fields, not 5"),
        ("0 0 * * * *", "has 6 fields, not 5"),
        ("every day", "has 2 fields, not 5"),
        ("@reboot", "unknown cron alias '@reboot'"),
        ("0 0 30 2 *", "never matches a date"),
    ],
)
def test_invalid_cron_expressions_are_refused_with_the_reason(cron, message):
    with pytest.raises(ValidationError) as exc:
        schedule(cron=cron)
    assert message in error_of(exc)


@given(
    st.integers(0, 59),
    st.integers(0, 23),
    st.integers(1, 28),
    st.integers(1, 12),
    st.integers(0, 6),
)
def test_any_in_range_five_field_expression_is_accepted(minute, hour, day, month, weekday):
    cron = f"{minute} {hour} {day} {month} {weekday}"
    assert schedule(cron=cron).cron == cron


def test_time_zone_must_be_known():
    assert schedule(interval="30s", timeZone="Europe/Paris").time_zone == "Europe/Paris"
    with pytest.raises(ValidationError) as exc:
        schedule(cron="@daily", timeZone="Mars/Olympus_Mons")
    assert "unknown time zone 'Mars/Olympus_Mons'" in error_of(exc)


@pytest.mark.parametrize("clock", [{}, {"cron": "@hourly", "interval": "1h"}])
def test_exactly_one_of_cron_and_interval(clock):
    with pytest.raises(ValidationError) as exc:
        schedule(**clock)
    assert "exactly one of cron and interval must be set" in error_of(exc)


@pytest.mark.parametrize(
    "job",
    [{}, {"function": "reports.daily", "http": {"url": "https://app.example.com/jobs/daily"}}],
)
def test_exactly_one_of_function_and_http(job):
    with pytest.raises(ValidationError) as exc:
        ScheduleSpec.model_validate({**STACK_REF, "cron": "@daily", "job": job})
    assert "exactly one of job.function and job.http must be set" in error_of(exc)


def test_an_http_job_keeps_any_json_body_and_payload():
    spec = ScheduleSpec.model_validate(
        {
            **STACK_REF,
            "interval": "5m",
            "job": {
                "queue": "webhooks",
                "http": {"url": "https://app.example.com/jobs/sync", "headers": {"X-Tenant": "7"}, "body": [1, "a"]},
                "payload": {"nested": {"list": [True, None, 1.5]}},
                "priority": 7,
                "maxAttempts": 2,
            },
        }
    )
    assert spec.job.http is not None and spec.job.http.method == "POST" and spec.job.http.body == [1, "a"]
    assert spec.job.payload == {"nested": {"list": [True, None, 1.5]}}
    assert (spec.job.queue, spec.job.priority, spec.job.max_attempts) == ("webhooks", 7, 2)


def test_runtime_config_carries_queues_and_schedules_by_name():
    config = RuntimeConfig.model_validate(
        {
            "stack": "demo",
            "namespace": "shop",
            "generation": 1,
            "spec": {
                "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}},
            },
            "jobQueues": {"emails": {**STACK_REF, "concurrency": 3}},
            "schedules": {"nightly": {**STACK_REF, "cron": "@daily", "job": {"function": "reports.daily"}}},
        }
    )
    assert config.job_queues["emails"].concurrency == 3
    assert config.schedules["nightly"].job.function == "reports.daily"
    assert RuntimeConfig.model_validate_json(config.canonical_json()) == config
    assert RuntimeConfig.model_validate(config.model_dump(exclude={"job_queues", "schedules"})).job_queues == {}


def _schema(kind):
    return crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


def test_crd_rules_the_api_server_enforces():
    spec = _schema(JobQueue)["spec"]
    rules = {r["message"]: r["rule"] for r in spec["x-kubernetes-validations"]}
    assert set(rules) == {"timeout must be between 1s and 24h", "visibilityTimeout must be between 1s and 1h"}
    retry_rules = spec["properties"]["retry"]["x-kubernetes-validations"]
    assert retry_rules[0]["message"] == "maxBackoff must be at least initialBackoff"
    assert "default" not in spec["properties"]["rateLimit"], "an absent rate limit means none"

    spec = _schema(Schedule)["spec"]
    assert spec["x-kubernetes-validations"][0]["rule"] == "has(self.cron) != has(self.interval)"
    assert set(spec["required"]) == {"stackRef", "job"}
    job = spec["properties"]["job"]
    assert "default" not in job, "a required block gets no default"
    assert job["x-kubernetes-validations"][0]["rule"] == "has(self.function) != has(self.http)"
    for node in (job["properties"]["payload"], job["properties"]["http"]["properties"]["body"]):
        assert node == {"description": node["description"], "x-kubernetes-preserve-unknown-fields": True}


def test_schedule_status_holds_what_the_worker_records():
    status = _schema(Schedule)["status"]["properties"]
    assert {"lastRunTime", "lastJobId", "lastResult", "nextRunTime", "conditions"} <= set(status)
    assert status["nextRunTime"]["format"] == "date-time"
