"""Telemetry across the real processes: a Stack applied with kubectl names the harness's
OpenTelemetry Collector in spec.telemetry; the operator, the api and the worker run as
processes against the real API server, Redis, FerretDB and SMTP sink, and export over OTLP.
What the collector wrote is read back (collector_records.py): one trace from the api's
request through Redis, MongoDB and the queue to the worker's SMTP send; metrics and logs
with their names, attributes and trace ids; no secret anywhere in what was captured; the
services keep serving while the collector is down; settings change without a restart."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from stackyard_harness.fake_email_providers import FakeEmailProviders
from stackyard_harness.otel import OtelCollector
from stackyard_harness.otlp import STATUS_ERROR, LogRecord, MetricPoint, Span
from stackyard_harness.process import free_port
from stackyard_harness.programs import ServiceProcess, create_backends_secret
from stackyard_harness.smtp import SmtpSink

from .collector_records import CollectorFile
from .conftest import Namespace, SessionOperator, stack_manifest, wait_for
from .secret_leaks import find_leaks

API, WORKER = "stackyard-api", "stackyard-worker"
OTEL_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_BLRP_SCHEDULE_DELAY": "100"}
"""Export spans and logs every 0.1 s and metrics every 0.5 s, so the tests wait little."""
REDIS_DATABASE = 4
"""A database of these tests' own, emptied per test: the queue keys are not per Stack, so a
worker here must not meet the email jobs other tests left in database 0."""
SMTP_USER = "stackyard"
SMTP_PASSWORD = f"smtp-pass-{secrets.token_hex(12)}"
RESEND_API_KEY = f"re_telemetry_{secrets.token_hex(12)}"
SIGNUP_ROUTE = "/v1/auth/signup"
QUEUE = "email"
TOKEN = re.compile(r"token=([A-Za-z0-9_\-]+)")
ANSWER_BOUND = 2.5
"""Seconds within which the api answers while the collector is down (a few milliseconds when
idle, more on a busy machine): a request that waited for an export would take 5 s, the
exporters' timeout, as they retry a refused connection until then."""
QUIET_PERIOD = 3.0
"""How long nothing may arrive after telemetry is turned off: six metric export intervals
and thirty span and log export delays of the processes."""


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(auth={SMTP_USER: SMTP_PASSWORD}) as running:
        yield running


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmailProviders]:
    with FakeEmailProviders(resend_api_key=RESEND_API_KEY) as running:
        yield running


def smtp_provider(sink: SmtpSink, priority: int = 10) -> dict[str, Any]:
    smtp = {
        "host": sink.host,
        "port": sink.port,
        "security": "none",
        "username": SMTP_USER,
        "passwordSecretRef": {"name": "smtp", "key": "password"},
    }
    return provider("relay", {"type": "smtp", "priority": priority, "smtp": smtp})


def resend_provider(fake: FakeEmailProviders, priority: int = 20) -> dict[str, Any]:
    resend = {"apiKeySecretRef": {"name": "resend", "key": "apiKey"}, "baseUrl": fake.base_url("resend")}
    return provider("resend", {"type": "resend", "priority": priority, "resend": resend})


def provider(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "EmailProvider",
        "metadata": {"name": name},
        "spec": {"stackRef": {"name": "demo"}} | spec,
    }


# Retries at once: the tests that fail an attempt on purpose need not wait 5 s for the next.
FAST_EMAIL_QUEUE = {
    "apiVersion": "stackyard.dev/v1alpha1",
    "kind": "JobQueue",
    "metadata": {"name": QUEUE},
    "spec": {
        "stackRef": {"name": "demo"},
        "retry": {"maxAttempts": 3, "initialBackoff": "100ms", "maxBackoff": "200ms", "jitter": "none"},
    },
}


class LiveStack:
    """A Stack `demo` with telemetry to the harness collector, in a fresh namespace; its
    api and worker as processes; and what the collector received from them."""

    def __init__(
        self,
        namespace: Namespace,
        services: Callable[..., ServiceProcess],
        collector: OtelCollector,
        redis_url: str,
        mongo_url: str,
    ) -> None:
        self.namespace = namespace
        self.services = services
        self.collector = collector
        self.exported = CollectorFile(collector.output)
        self.redis_password = f"redis-pass-{secrets.token_hex(12)}"
        # The harness Redis has no password; its `default` user takes any (nopass), so the
        # Stack's Redis URL can carry one, as a real one would.
        host = redis_url.split("://", 1)[1].split("/", 1)[0]
        self.redis_url = f"redis://default:{self.redis_password}@{host}/{REDIS_DATABASE}"
        self.mongo_url = mongo_url
        self.database = f"telemetry_{uuid.uuid4().hex[:8]}"
        self.telemetry: dict[str, Any] = {}
        self.auth: dict[str, Any] = {}
        self.api: ServiceProcess | None = None
        self.worker: ServiceProcess | None = None
        self.http: httpx.Client | None = None

    # -- the resources ------------------------------------------------------------------

    def stack(self) -> dict[str, Any]:
        return stack_manifest(
            mongodb={"uriSecretRef": {"name": "backends", "key": "mongodb"}, "database": self.database},
            auth={"appUrl": "http://app.test", "emailFrom": "Acme <auth@acme.dev>"} | self.auth,
            telemetry=self.telemetry,
        )

    def start(self, *resources: dict[str, Any], telemetry: dict[str, Any], auth: dict[str, Any] | None = None) -> None:
        """Apply the Stack (with `telemetry`) and `resources`, wait until the operator made them
        Ready, then start the api and the worker and wait until both apply the config."""
        flushed = redis.Redis.from_url(self.redis_url)
        flushed.flushdb()
        flushed.close()
        create_backends_secret(self.namespace.kube, self.namespace.name, self.redis_url, self.mongo_url)
        self.namespace.secret("smtp", password=SMTP_PASSWORD)
        self.namespace.secret("resend", apiKey=RESEND_API_KEY)
        self.telemetry = {"endpoint": self.collector.otlp_http_endpoint, "samplingRatio": 1} | telemetry
        self.auth = auth or {}
        self.namespace.apply([self.stack(), FAST_EMAIL_QUEUE, *resources])
        for kind, name in [("stack", "demo")] + [(r["kind"].lower(), r["metadata"]["name"]) for r in resources]:
            wait_for(
                lambda k=kind, n=name: (self.namespace.condition(k, n) or {}).get("status") == "True",
                timeout=30,
                what=f"{kind} {name} Ready",
            )
        wait_for(
            lambda: (self.namespace.condition("stack", "demo", "AuthReady") or {}).get("status") == "True",
            timeout=30,
            what="Stack AuthReady",
        )
        self.api = self.services("api", self.namespace, env=OTEL_ENV)
        self.worker = self.services("worker", self.namespace, env=OTEL_ENV)
        self.http = httpx.Client(base_url=self.api.url, timeout=10)
        self.wait_applied()
        worker = self.worker
        wait_for(lambda: httpx.get(f"{worker.url}/readyz").status_code == 200, timeout=30, what="the worker ready")

    def config_hash(self) -> str | None:
        config_map = self.namespace.get("configmap", "demo-config")
        return config_map and config_map["metadata"]["annotations"]["stackyard.dev/config-hash"]

    def wait_applied(self, previous: str | None = None) -> str:
        """The config hash the operator rendered last (another than `previous`), once both
        processes apply it."""
        rendered = wait_for(
            lambda: (h := self.config_hash()) != previous and h, timeout=30, what="the operator renders the config"
        )
        for service in self.processes():
            wait_for(
                lambda s=service: httpx.get(f"{s.url}/v1/config").json().get("hash") == rendered,
                timeout=30,
                what=f"{service.process.name} applies config {rendered}",
            )
        return rendered

    def set_telemetry(self, **changes: Any) -> None:
        """kubectl apply the Stack with spec.telemetry changed; back once both processes apply it."""
        previous = self.config_hash()
        self.telemetry |= changes
        self.namespace.apply(self.stack())
        self.wait_applied(previous)

    def processes(self) -> list[ServiceProcess]:
        return [s for s in (self.api, self.worker) if s is not None]

    def pids(self) -> dict[str, int]:
        return {s.process.name: s.process.proc.pid for s in self.processes() if s.process.proc is not None}

    # -- what they exported ------------------------------------------------------------

    def ours(self, resource: dict[str, Any], service: str | None = None) -> bool:
        return resource.get("k8s.namespace.name") == self.namespace.name and (
            service is None or resource.get("service.name") == service
        )

    def spans(self, service: str | None = None) -> list[Span]:
        return [s for s in self.exported.spans() if self.ours(s.resource, service)]

    def trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.exported.spans() if s.trace_id == trace_id]

    def points(self, name: str, service: str | None = None) -> list[MetricPoint]:
        return [p for p in self.exported.metric_points() if p.name == name and self.ours(p.resource, service)]

    def points_since(self, since_ns: int) -> list[MetricPoint]:
        return [p for p in self.exported.metric_points() if p.time_ns >= since_ns and self.ours(p.resource)]

    def logs(self, service: str | None = None) -> list[LogRecord]:
        return [r for r in self.exported.log_records() if self.ours(r.resource, service)]

    def server_spans(self, route: str, method: str = "GET", after_ns: int = 0) -> list[Span]:
        wanted = {"http.route": route, "http.request.method": method}
        return [
            s
            for s in self.spans(API)
            if s.kind == "SERVER" and s.start_ns >= after_ns and wanted.items() <= s.attributes.items()
        ]

    def outputs(self, operator: SessionOperator) -> dict[str, str]:
        """Everything captured: each process's log, the collector's log and what it exported."""
        captured = {"operator log": operator.log()}
        captured |= {f"{s.process.name} log": s.process.log_path.read_text(errors="replace") for s in self.processes()}
        collector_log = self.collector.dir.parent / "otel-collector.log"
        captured["collector log"] = collector_log.read_text(errors="replace") if collector_log.exists() else ""
        captured["collector export (spans, metrics, logs)"] = self.exported.text()
        return captured

    def close(self) -> None:
        if self.http is not None:
            self.http.close()


@pytest.fixture
def live(operator, namespace, services, otel_collector, redis_server, mongo_server, sink, fake) -> Iterator[LiveStack]:  # type: ignore[no-untyped-def]
    """The shared operator runs; the Stack's processes are the test's to start."""
    sink.clear()
    fake.reset()
    stack = LiveStack(namespace, services, otel_collector, redis_server.url, mongo_server.url)
    yield stack
    stack.close()


def new_user() -> tuple[str, str]:
    return f"ana-{uuid.uuid4().hex[:8]}@example.com", f"quiet-river-{secrets.token_hex(10)}"


# -- 1. one trace across the processes -------------------------------------------------------


def descends(span: Span, ancestor: Span, by_id: dict[str, Span]) -> bool:
    """Whether `ancestor` is on the chain of parent ids from `span` up."""
    seen: set[str] = set()
    current: Span | None = span
    while current is not None and current.parent_id and current.parent_id not in seen:
        if current.parent_id == ancestor.span_id:
            return True
        seen.add(current.parent_id)
        current = by_id.get(current.parent_id)
    return False


def db_system(span: Span) -> Any:
    return span.attributes.get("db.system.name", span.attributes.get("db.system"))


def expect_attributes(problems: list[str], span: Span, expected: dict[str, Any]) -> None:
    wrong = {k: span.attributes.get(k) for k, v in expected.items() if span.attributes.get(k) != v}
    if wrong:
        problems.append(f"{span.describe()}: attributes {wrong}, expected {expected}")


def signup_trace_problems(trace: list[Span], sink_port: int) -> list[str]:
    """What the trace of a sign-up lacks: the api's SERVER span; MongoDB and Redis client
    spans and the `send email` PRODUCER span under it; in the worker a `process email`
    CONSUMER span per attempt whose parent is that producer, the first (failed by the sink)
    with status ERROR and an exception event, the last completed; under the completed one a
    `send email` span of the relay, and under that the `smtp send` CLIENT span."""
    by_id = {s.span_id: s for s in trace}
    servers = [s for s in trace if s.kind == "SERVER" and s.service == API]
    if len(servers) != 1:
        return [f"one SERVER span of the api, not {len(servers)}"]
    (server,) = servers
    problems: list[str] = []
    if server.name != f"POST {SIGNUP_ROUTE}":
        problems.append(f"the SERVER span is named {server.name!r}")
    expect_attributes(
        problems, server, {"http.route": SIGNUP_ROUTE, "http.request.method": "POST", "http.response.status_code": 202}
    )
    under_server = [s for s in trace if descends(s, server, by_id)]
    for system in ("mongodb", "redis"):
        if not any(s.kind == "CLIENT" and s.service == API and db_system(s) == system for s in under_server):
            problems.append(f"no {system} CLIENT span of the api under its SERVER span")
    producers = [s for s in under_server if s.kind == "PRODUCER" and s.name == f"send {QUEUE}"]
    if len(producers) != 1:
        return [*problems, f"one `send {QUEUE}` PRODUCER span under the SERVER span, not {len(producers)}"]
    (producer,) = producers
    job_id = producer.attributes.get("messaging.message.id")
    messaging = {"messaging.system": "stackyard", "messaging.destination.name": QUEUE}
    expect_attributes(
        problems, producer, messaging | {"messaging.operation.type": "send", "messaging.operation.name": "send"}
    )
    if not job_id:
        problems.append("the PRODUCER span has no messaging.message.id")
    consumers = [s for s in trace if s.kind == "CONSUMER" and s.name == f"process {QUEUE}"]
    for consumer in consumers:
        if consumer.service != WORKER or consumer.parent_id != producer.span_id:
            problems.append(f"{consumer.describe()}: not a worker span whose parent is the producer")
        expect_attributes(
            problems,
            consumer,
            messaging
            | {"messaging.operation.type": "process", "messaging.operation.name": "process"}
            | {"messaging.message.id": job_id},
        )
    attempts = {c.attributes.get("stackyard.job.attempt"): c for c in consumers}
    if set(attempts) != {1, 2}:
        return [*problems, f"`process {QUEUE}` CONSUMER spans for attempts 1 and 2, found {sorted(attempts)}"]
    failed, completed = attempts[1], attempts[2]
    if failed.status_code != STATUS_ERROR or not failed.events_named("exception"):
        problems.append(f"the failed attempt: status {failed.status_code}, events {[e.name for e in failed.events]}")
    expect_attributes(problems, failed, {"stackyard.job.outcome": "retried"})
    expect_attributes(problems, completed, {"stackyard.job.outcome": "completed"})
    if not completed.attributes.get("stackyard.job.function"):
        problems.append(f"{completed.describe()}: no stackyard.job.function")
    sends = [s for s in trace if s.name == "send email" and s.kind == "INTERNAL" and descends(s, completed, by_id)]
    if len(sends) != 1:
        return [*problems, f"one INTERNAL `send email` span under the completed attempt, not {len(sends)}"]
    (send,) = sends
    expect_attributes(
        problems,
        send,
        {
            "stackyard.email.provider": "relay",
            "stackyard.email.provider.type": "smtp",
            "stackyard.email.outcome": "sent",
        },
    )
    smtp = [s for s in trace if s.name == "smtp send" and s.kind == "CLIENT" and descends(s, send, by_id)]
    if len(smtp) != 1:
        return [*problems, f"one CLIENT `smtp send` span under `send email`, not {len(smtp)}"]
    expect_attributes(
        problems, smtp[0], {"server.address": "127.0.0.1", "server.port": sink_port, "network.protocol.name": "smtp"}
    )
    return problems


def resource_problems(resource: dict[str, Any], service: str, namespace: str) -> list[str]:
    problems = []
    if resource.get("service.name") != service:
        problems.append(f"service.name {resource.get('service.name')!r}, not {service!r}")
    for key in ("service.version", "service.instance.id"):
        if not resource.get(key):
            problems.append(f"{service}: no {key}")
    if resource.get("k8s.namespace.name") != namespace:
        problems.append(f"{service}: k8s.namespace.name {resource.get('k8s.namespace.name')!r}, not {namespace!r}")
    return problems


def point_problems(points: list[MetricPoint], name: str, type_: str, unit: str, expected: dict[str, Any]) -> list[str]:
    """Problems unless one of `points` (metric `name`) has the `expected` attributes, type and unit."""
    matching = [p for p in points if all(p.attributes.get(k) == v for k, v in expected.items())]
    if not matching:
        seen = sorted({json.dumps(p.attributes, sort_keys=True) for p in points})[:5]
        return [f"no {name} point with {expected}; attributes seen: {seen or 'none'}"]
    point = matching[-1]
    if (point.type, point.unit, point.value > 0) != (type_, unit, True):
        return [f"{name}: a {point.type} in {point.unit!r} of value {point.value}, not a {type_} in {unit!r}"]
    return []


def signup_metric_problems(live: LiveStack) -> list[str]:
    """The RED metric of the sign-up route, the email sent, and the job's processing time."""
    return [
        *point_problems(
            live.points("http.server.request.duration", API),
            "http.server.request.duration",
            "histogram",
            "s",
            {"http.route": SIGNUP_ROUTE, "http.request.method": "POST", "http.response.status_code": 202},
        ),
        *point_problems(
            live.points("stackyard.email.sends", WORKER),
            "stackyard.email.sends",
            "sum",
            "{message}",
            {
                "stackyard.email.outcome": "sent",
                "stackyard.email.provider": "relay",
                "stackyard.email.provider.type": "smtp",
            },
        ),
        *point_problems(
            live.points("messaging.process.duration", WORKER),
            "messaging.process.duration",
            "histogram",
            "s",
            {
                "messaging.system": "stackyard",
                "messaging.destination.name": QUEUE,
                "stackyard.job.outcome": "completed",
            },
        ),
    ]


def until_no_problems(check: Callable[[], list[str]], timeout: float, what: str, context: Callable[[], str]) -> None:
    """Poll `check` until it finds no problem; fail with the last problems and `context()`."""
    deadline = time.monotonic() + timeout
    while problems := check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} after {timeout:.0f}s:\n  " + "\n  ".join(problems) + "\n" + context(), pytrace=False)
        time.sleep(0.2)


def dump(spans: list[Span]) -> str:
    return "spans:\n    " + "\n    ".join(s.describe() for s in sorted(spans, key=lambda s: s.start_ns))


def json_log_trace_ids(service: ServiceProcess) -> set[str]:
    """The trace ids in a process's JSON log lines."""
    ids = set()
    for line in service.process.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("trace_id"):
            ids.add(entry["trace_id"])
    return ids


def test_a_signup_is_one_trace_from_the_api_through_redis_mongodb_and_the_queue_to_the_smtp_send(live, sink):
    live.start(smtp_provider(sink), telemetry={})
    sink.fail_next(451, "try again later")  # the first attempt fails and is retried: a log line in the trace
    address, password = new_user()
    answer = live.http.post(SIGNUP_ROUTE, json={"email": address, "password": password})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: any(address in m.recipients for m in sink.messages), timeout=30, what="the verification mail")

    (server,) = wait_for(lambda: live.server_spans(SIGNUP_ROUTE, "POST"), timeout=30, what="the api's SERVER span")
    trace_id = server.trace_id
    until_no_problems(
        lambda: signup_trace_problems(live.trace(trace_id), sink.port),
        30,
        f"the sign-up's trace {trace_id} is not what it should be",
        lambda: dump(live.trace(trace_id)),
    )
    elsewhere = [s for s in live.spans(WORKER) if s.kind == "CONSUMER" and s.trace_id != trace_id]
    assert elsewhere == [], f"the job's attempts started traces of their own: {dump(elsewhere)}"
    trace = live.trace(trace_id)
    (completed,) = [
        s for s in trace if s.kind == "CONSUMER" and s.attributes.get("stackyard.job.outcome") == "completed"
    ]
    assert resource_problems(server.resource, API, live.namespace.name) == []
    assert resource_problems(completed.resource, WORKER, live.namespace.name) == []
    assert server.resource["service.instance.id"] != completed.resource["service.instance.id"]

    until_no_problems(lambda: signup_metric_problems(live), 30, "metrics missing", lambda: "")

    exported = wait_for(
        lambda: [r for r in live.logs() if r.trace_id == trace_id],
        timeout=30,
        what="an exported log record in the trace",
    )
    assert all(r.span_id in {s.span_id for s in trace} for r in exported), "log records name spans of the trace"
    assert trace_id in json_log_trace_ids(live.worker), "the worker's JSON log lines carry the trace id"


# -- 2. no secret in any captured output -----------------------------------------------------


def test_the_leak_finder_names_the_secret_its_form_and_where_it_leaked():
    leaks = find_leaks(
        {"api key": "k3y-0123456789", "password": "p@ss word 42!"},
        {"api log": "ok\nsent with k3y-0123456789 to x", "export": '{"v":"cEBzcyB3b3JkIDQyIQ=="}'},
    )
    assert [str(leak) for leak in leaks] == [
        "api key (as is) in api log, line 2: sent with <api key> to x",
        'password (base64) in export, line 1: {"v":"<password>"}',
    ]
    assert find_leaks({"api key": "k3y-0123456789"}, {"api log": "k3y-012345678"}) == []


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_secret_reaches_a_process_log_or_the_exported_telemetry(live, sink, fake, operator):
    admin_key = f"sy_admin_{secrets.token_hex(16)}"
    header_value = f"otlp-header-{secrets.token_hex(12)}"
    sentry_key = secrets.token_hex(16)
    sentry_dsn = f"http://{sentry_key}@127.0.0.1:{free_port()}/42"  # nothing listens: errors only would go
    live.namespace.secret("telemetry", header=header_value, sentryDsn=sentry_dsn)
    live.namespace.secret("admin", apiKey=admin_key)
    telemetry = {
        "headers": [{"name": "x-stackyard-key", "valueSecretRef": {"name": "telemetry", "key": "header"}}],
        "sentry": {"dsnSecretRef": {"name": "telemetry", "key": "sentryDsn"}},
    }
    auth = {"adminApiKeySecretRef": {"name": "admin", "key": "apiKey"}}
    live.start(smtp_provider(sink, 10), resend_provider(fake, 20), telemetry=telemetry, auth=auth)
    # The relay takes the SMTP password (AUTH), then refuses the message: Resend (the API key) is next.
    sink.fail_next(451, "try again later")
    address, password = new_user()
    wrong_password = f"not-{password}"
    http = live.http
    assert http.post(SIGNUP_ROUTE, json={"email": address, "password": password}).status_code == 202

    def verification_token() -> str | None:
        """From the mail, whichever provider delivered it."""
        texts = [json.dumps(r.body) for r in fake.received("resend") if address in json.dumps(r.body)]
        texts += [m.message.get_body(("plain",)).get_content() for m in sink.messages if address in m.recipients]
        return next((found.group(1) for text in texts if (found := TOKEN.search(text))), None)

    token = wait_for(verification_token, timeout=30, what="the verification mail")
    assert sink.connections > 0 and fake.received("resend"), "the relay refused after AUTH, Resend sent the mail"
    assert http.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    assert http.post("/v1/auth/login", json={"email": address, "password": wrong_password}).status_code == 401
    session = http.post("/v1/auth/login", json={"email": address, "password": password})
    assert session.status_code == 200, session.text
    tokens = session.json()
    assert http.get("/v1/auth/me", headers=bearer(tokens["accessToken"])).status_code == 200
    refreshed = http.post("/v1/auth/token/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert refreshed.status_code == 200, refreshed.text
    users = http.get("/v1/auth/admin/users", headers=bearer(admin_key))
    assert users.status_code == 200 and address in users.text, users.text

    # Everything above has been exported once the last request's span and the mail job's are in.
    wait_for(lambda: live.server_spans("/v1/auth/admin/users"), timeout=30, what="the admin request's span")
    wait_for(
        lambda: [s for s in live.spans(WORKER) if s.attributes.get("stackyard.job.outcome") == "completed"],
        timeout=30,
        what="the mail job's span",
    )
    wait_for(lambda: live.logs(), timeout=30, what="exported log records")
    known = {
        "user password": password,
        "wrong password tried": wrong_password,
        "verification token": token,
        "access token": tokens["accessToken"],
        "refresh token": tokens["refreshToken"],
        "refreshed access token": refreshed.json()["accessToken"],
        "refreshed refresh token": refreshed.json()["refreshToken"],
        "SMTP password": SMTP_PASSWORD,
        "Resend API key": RESEND_API_KEY,
        "admin API key": admin_key,
        "Redis password": live.redis_password,
        "Redis URL": live.redis_url,
        "Sentry DSN": sentry_dsn,
        "Sentry DSN key": sentry_key,
        "OTLP header value": header_value,
    }
    outputs = live.outputs(operator)
    empty = [name for name, text in outputs.items() if not text and name != "collector log"]
    assert empty == [], f"nothing captured in {empty}"
    leaks = find_leaks(known, outputs)
    assert leaks == [], "secrets leaked:\n" + "\n".join(str(leak) for leak in leaks)


# -- 3. the collector down --------------------------------------------------------------------


def send_email(http: httpx.Client) -> str:
    body = {"from": "Acme <hello@acme.dev>", "to": ["bo@example.com"], "subject": "Hello", "text": "Hi"}
    answer = http.post("/v1/emails", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def sent(http: httpx.Client, email_id: str) -> bool:
    return http.get(f"/v1/emails/{email_id}").json().get("status") == "sent"


def exporter_complaints(service: ServiceProcess) -> list[str]:
    """The OpenTelemetry exporters' warnings and errors in a process's log (on stderr only:
    they are never exported themselves)."""
    complaints = []
    for line in service.process.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if str(entry.get("logger", "")).startswith("opentelemetry.exporter") and entry.get("level") != "info":
            complaints.append(str(entry.get("message")))
    return complaints


def test_with_the_collector_down_the_services_keep_serving_and_telemetry_resumes_when_it_is_back(
    live, sink, otel_collector
):
    live.start(smtp_provider(sink), telemetry={})
    pids = live.pids()
    http = live.http
    first = send_email(http)
    wait_for(lambda: sent(http, first), timeout=30, what="an email sent")
    wait_for(lambda: live.server_spans("/v1/emails", "POST"), timeout=30, what="the api's span at the collector")

    otel_collector.stop()
    try:
        # Longer than one export's timeout (5 s): the exporters fail, retry and give up meanwhile.
        slowest, sent_while_down = 0.0, []
        until = time.monotonic() + 6.0
        while time.monotonic() < until:
            started = time.monotonic()
            sent_while_down.append(send_email(http))
            assert http.get("/v1/emails", params={"limit": 5}).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.25)
        assert slowest < ANSWER_BOUND, f"a request took {slowest:.2f}s with the collector down"
        assert exporter_complaints(live.api), "the api's exporters never met the closed port"
        for email_id in sent_while_down:
            wait_for(lambda e=email_id: sent(http, e), timeout=30, what="the emails sent with the collector down")
    finally:
        otel_collector.start()  # on the same ports; it starts a new output file
        live.exported.reopen()

    back = time.time_ns()
    resumed = send_email(http)
    wait_for(lambda: sent(http, resumed), timeout=30, what="an email sent after the collector is back")
    wait_for(lambda: live.server_spans("/v1/emails", "POST", after_ns=back), timeout=30, what="the api's spans again")
    wait_for(
        lambda: [s for s in live.spans(WORKER) if s.kind == "CONSUMER" and s.start_ns >= back],
        timeout=30,
        what="the worker's spans again",
    )
    wait_for(
        lambda: [p for p in live.points("http.server.request.duration", API) if p.time_ns >= back],
        timeout=30,
        what="the api's metrics again",
    )
    assert live.pids() == pids and all(s.process.running for s in live.processes()), "no process restarted"


# -- 4. spec.telemetry changes apply live -------------------------------------------------------


def traceparent() -> tuple[str, dict[str, str]]:
    """A sampled W3C trace context, as a caller that traces its requests sends."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def exported_since(live: LiveStack, since_ns: int) -> list[str]:
    """What the processes of the test exported with a time from `since_ns` on."""
    late = [f"span {s.describe()}" for s in live.spans() if s.start_ns >= since_ns]
    late += [f"metric {p.name} from {p.resource.get('service.name')}" for p in live.points_since(since_ns)]
    late += [f"log {r.body!r}" for r in live.logs() if r.time_ns >= since_ns]
    return late


def test_changing_spec_telemetry_with_kubectl_applies_to_the_running_processes(live):
    live.start(telemetry={})
    pids = live.pids()
    http = live.http
    assert http.get("/v1/emails").status_code == 200
    wait_for(lambda: live.server_spans("/v1/emails"), timeout=30, what="a span at samplingRatio 1")

    live.set_telemetry(samplingRatio=0)
    unsampled = time.time_ns()
    for _ in range(5):
        assert http.get("/v1/emails").status_code == 200
    traced, headers = traceparent()
    assert http.get("/v1/emails", headers=headers).status_code == 200
    # Parent-based: a caller's sampled context is still followed; and spans leave in order,
    # so once it is in, any span of the five requests before it would be too.
    (followed,) = wait_for(
        lambda: [s for s in live.server_spans("/v1/emails", after_ns=unsampled) if s.trace_id == traced],
        timeout=30,
        what="the span of the request with a sampled traceparent",
    )
    assert followed.parent_id == headers["traceparent"].split("-")[2]
    assert [s for s in live.server_spans("/v1/emails", after_ns=unsampled) if s.trace_id != traced] == []
    wait_for(
        lambda: [
            p
            for p in live.points("http.server.request.duration", API)
            if p.time_ns >= unsampled and p.attributes.get("http.route") == "/v1/emails"
        ],
        timeout=30,
        what="metrics at samplingRatio 0 (sampling is for traces only)",
    )

    live.set_telemetry(enabled=False)
    off = time.time_ns()
    for _ in range(5):
        assert http.get("/v1/emails", headers=traceparent()[1]).status_code == 200
    quiet_until = time.monotonic() + QUIET_PERIOD
    while time.monotonic() < quiet_until:
        late = exported_since(live, off)
        assert late == [], "exported after telemetry was turned off:\n" + "\n".join(late[:10])
        time.sleep(0.2)

    live.set_telemetry(enabled=True, samplingRatio=1)
    on = time.time_ns()
    assert http.get("/v1/emails").status_code == 200
    wait_for(lambda: live.server_spans("/v1/emails", after_ns=on), timeout=30, what="spans after turning it on")
    wait_for(lambda: live.points_since(on), timeout=30, what="metrics after turning it on")
    assert live.pids() == pids and all(s.process.running for s in live.processes()), "no process restarted"
