"""What the auth tests do over HTTP again and again: sign up (and verify the address), log in,
authorise as a session, and check that an answer is a given problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from stackyard_harness.auth_stack import AuthStack

PASSWORD = "a long and quiet river"
EMAIL = "ana@example.com"


def bearer(session: dict[str, Any]) -> dict[str, str]:
    """The headers that authorise a request as `session` (a sign-up's or login's answer)."""
    return {"Authorization": f"Bearer {session['accessToken']}"}


def problem(answer: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The body of `answer`, which must be the problem+json of type `…/slug` with `status`."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["type"].endswith("/" + slug), body
    return body


def without_trace_id(body: dict[str, Any]) -> dict[str, Any]:
    """A problem's members but `traceId`, which is there (32 hex digits) whenever the process
    has telemetry installed, as it has once any test turned it on."""
    trace_id = body.get("traceId", "0" * 32)
    assert isinstance(trace_id, str) and len(trace_id) == 32 and int(trace_id, 16) >= 0, body
    return {k: v for k, v in body.items() if k != "traceId"}


def sign_up_and_log_in(
    http: httpx.Client, email: str = EMAIL, password: str = PASSWORD, **fields: Any
) -> dict[str, Any]:
    """Sign up where email verification is off, which logs in at once: the session."""
    answer = http.post("/v1/auth/signup", json={"email": email, "password": password} | fields)
    assert answer.status_code == 201, answer.text
    session: dict[str, Any] = answer.json()
    return session


def sign_up_and_verify(auth: AuthStack, http: httpx.Client, email: str = EMAIL, password: str = PASSWORD) -> None:
    """Sign up where email verification is on, then follow the link of the mail."""
    answer = http.post("/v1/auth/signup", json={"email": email, "password": password, "profile": {"name": "Ana"}})
    assert answer.status_code == 202, answer.text
    token = auth.token_from_mail(email, "Confirm your email")
    verified = http.post("/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["emailVerified"] is True


def login(
    http: httpx.Client, email: str = EMAIL, password: str = PASSWORD, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A password login that must succeed: its answer (a session, or an MFA challenge)."""
    answer = http.post("/v1/auth/login", json={"email": email, "password": password}, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


# -- schemathesis over a group of routes ---------------------------------------------------


def route_labels(*routers: Any) -> set[str]:
    """ "METHOD /path" of every route of FastAPI routers, as schemathesis labels operations."""
    return {f"{method} {route.path}" for router in routers for route in router.routes for method in route.methods}


def check_operations(
    url: str,
    path_regex: str,
    labels: set[str],
    headers_for: Callable[[Any], dict[str, str] | None],
    max_examples: int = 10,
) -> None:
    """schemathesis over the operations of the api at `url` whose path matches `path_regex`
    (which must be exactly `labels`): valid and invalid requests, a few per operation, each
    with `headers_for(case)` unless the case brings its own Authorization: never a server
    error, always a declared answer. Every operation runs, so one failure hides no other."""
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

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [r.ok() for r in schema.include(path_regex=path_regex).get_all_operations()]
    assert {op.label for op in operations} == labels
    failures: dict[str, str] = {}
    for operation in operations:

        @given(case=st.one_of(operation.as_strategy(mode) for mode in GenerationMode))
        @settings(
            max_examples=max_examples,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def exercise(case: Any) -> None:
            headers = None if "Authorization" in (case.headers or {}) else headers_for(case)
            case.call_and_validate(headers=headers, checks=checks, timeout=10)

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:1500]}"
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
