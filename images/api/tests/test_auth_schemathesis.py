"""schemathesis over the auth routes of the real api's OpenAPI document: generated requests
(valid and invalid) against the running app, with real Redis and FerretDB, must never get
a server error, and every answer must be one the document declares (status, content type,
body schema, headers).

Bounded: a few examples per operation and no shrinking, so the run stays near a minute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from stackyard_api.routers.auth import router as auth_router
from stackyard_harness.auth_stack import AuthStack, flushed_redis_url
from stackyard_harness.smtp import SmtpSink

AUTH_PATHS = r"^/(v1/auth(/|$)|\.well-known/)"
MAX_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EMAIL = "ana@example.com"
PASSWORD = "a long and quiet river"


@pytest.fixture(scope="module")
def auth(tmp_path_factory, redis_server, mongo_server) -> Iterator[AuthStack]:  # type: ignore[no-untyped-def]
    with SmtpSink() as sink:
        stack = AuthStack(
            tmp_path_factory.mktemp("auth-schemathesis"),
            flushed_redis_url(redis_server.url, 14),
            mongo_server.url,
            sink,
            run_worker=False,
        )
        for running in stack.serve():
            running.configure(
                {
                    "requireEmailVerification": False,
                    "lockout": {"ipMaxAttempts": 100000, "maxFailures": 100, "baseDelay": "1s"},
                }
            )
            with redis.Redis.from_url(running.redis_url) as client:
                client.flushdb()
            yield running


class Caller:
    """Authorises generated requests as a real user, logging in again whenever a generated
    request ended the session (logout, revoking sessions)."""

    def __init__(self, auth: AuthStack) -> None:
        self.http = httpx.Client(base_url=auth.url, timeout=10)
        answer = self.http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD})
        assert answer.status_code == 201, answer.text
        self.token = answer.json()["accessToken"]

    def headers(self) -> dict[str, str]:
        if self.http.get("/v1/auth/me", headers={"Authorization": f"Bearer {self.token}"}).status_code != 200:
            answer = self.http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            self.token = answer.json()["accessToken"]
        return {"Authorization": f"Bearer {self.token}"}


def auth_operations(auth: AuthStack) -> list[Any]:
    """The operations of routers/auth.py (sign-up to sessions, JWKS and discovery) in the
    served document; MFA, passkeys, social login, organisations and admin have tests of
    their own."""
    labels = {f"{method} {route.path}" for route in auth_router.routes for method in getattr(route, "methods", ())}
    schema = schemathesis.openapi.from_url(f"{auth.url}/openapi.json")
    operations = [result.ok() for result in schema.include(path_regex=AUTH_PATHS).get_all_operations()]
    mine = [op for op in operations if op.label in labels]
    assert {op.label for op in mine} == labels, sorted(labels - {op.label for op in mine})
    return mine


def test_auth_routes_answer_what_their_openapi_says(auth: AuthStack):
    caller = Caller(auth)
    failures: dict[str, str] = {}
    tried: list[str] = []
    operations = auth_operations(auth)
    for operation in operations:

        @given(case=st.one_of(operation.as_strategy(mode) for mode in GenerationMode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def exercise(case: Any) -> None:
            headers = caller.headers() if "Authorization" not in (case.headers or {}) else None
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as exc:  # one operation's failure must not hide another's
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
        tried.append(operation.label)
    assert len(tried) == len(operations) >= 21, tried
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
