"""The fixtures the auth test modules share: the real api served by an AuthStack, cleared and
configured before each test, an HTTP client on it and its MongoDB database.

Each module names its Redis database in a `REDIS_DATABASE` constant (Redis has 16, 0-15), so
that no module meets another's keys or queues. In use: 0 the harness's default, 1
test_databases_api, 2 core/tests/test_cli_db, 3 test_telemetry_api, 4 test_files_api (and
core/tests/test_cli_files and tests/integration/test_telemetry_live, in other directories, run
one after the other), 5 test_telemetry_sentry, 6 test_client_emails, 7
tests/integration/test_email_sending, 8 test_auth_flows, 9 test_auth_mfa, 10 test_auth_oauth,
11 test_auth_orgs, 12 test_auth_admin, 13 test_auth_tokens, 14 test_auth_schemathesis, 15
test_client_auth (the harness's Redis has 64 databases). Notifications: 16 test_feed_api,
17 test_push_api, 18 test_webhooks_api, 19 test_notify_api, 20 test_client_notify, 21
tests/integration/test_notify_workflows, 22 core/tests/test_notify_fanout, 23
tests/integration/test_webhooks_worker, 24 core/tests/test_webhooks_deliveries, 26 test_cors. Search: 28
test_search_api, 29 core/tests/test_client_search, 30 core/tests/test_cli_search. Console: 31
test_console_session, 32 test_console_overview, 33 test_console_users, 34 test_console_emails,
35 test_console_jobs, 36 test_console_notify. OpenID Provider: 40 test_hosted_pages, 41
test_hosted_security, 42 test_hosted_browser, 43 test_hosted_password_reset, 44-46
test_hosted_methods_*, 47-49 test_hosted_signup*, 50-52 test_oidc_*.

More constants, all optional: `RUN_WORKER = True` where a test reads the auth mails (a worker
process sends them; none runs otherwise), `AUTH_SETTINGS`, the Stack auth settings (camelCase,
as in spec.auth) every test starts with, and `USER_AGENT`, the name `http` gives itself (the
audit events record it; httpx's own otherwise). A module that needs more overrides a fixture
with one of the same name, which may ask for this one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pymongo
import pytest
from stackyard_harness.auth_stack import AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink

_DATABASE_OWNERS: dict[int, str] = {}
"""Which module took which Redis database in this session: two modules on one is a mistake."""


@pytest.fixture(scope="module")
def running(request, tmp_path_factory, redis_server, mongo_server) -> Iterator[AuthStack]:  # type: ignore[no-untyped-def]
    module = request.module
    database: int = module.REDIS_DATABASE
    owner = _DATABASE_OWNERS.setdefault(database, module.__name__)
    assert owner == module.__name__, f"{module.__name__} and {owner} both use Redis database {database}"
    with SmtpSink() as sink:
        stack = AuthStack(
            tmp_path_factory.mktemp(module.__name__),
            flushed_redis_url(redis_server.url, database),
            mongo_server.url,
            sink,
            run_worker=getattr(module, "RUN_WORKER", False),
        )
        yield from stack.serve()


@pytest.fixture
def auth(request, running: AuthStack) -> AuthStack:  # type: ignore[no-untyped-def]
    running.reset()
    running.configure(getattr(request.module, "AUTH_SETTINGS", {}))
    return running


@pytest.fixture
def http(request, auth: AuthStack) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=auth.url, timeout=10) as client:
        if agent := getattr(request.module, "USER_AGENT", None):
            client.headers["User-Agent"] = agent
        yield client


@pytest.fixture
def db(auth: AuthStack) -> Iterator[Any]:
    """The MongoDB database of the test's configuration (users, sessions, auth_events, …)."""
    with pymongo.MongoClient(auth.mongo_url) as client:
        yield client[auth.database]
