"""schemathesis over the auth routes of the real api's OpenAPI document: generated requests
(valid and invalid) against the running app, with real Redis and FerretDB, must never get
a server error, and every answer must be one the document declares (status, content type,
body schema, headers).

Covered here: routers/auth.py, routers/auth_mfa.py and routers/auth_oauth.py; the
organisation and admin routers are in test_auth_admin.py (the same checks, with an owned
organisation and the admin key). Bounded: a few examples per operation and no shrinking."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from auth_http import EMAIL, PASSWORD
from fastapi import APIRouter
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
from stackyard_api.routers import auth_mfa, auth_oauth
from stackyard_api.routers.auth import router as auth_router
from stackyard_harness.auth_stack import AuthStack

AUTH_PATHS = r"^/(v1/auth(/|$)|\.well-known/)"
MAX_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
REDIS_DATABASE = 14


@pytest.fixture(scope="module")
def auth(running: AuthStack) -> AuthStack:
    """In place of the shared `auth`: one configuration for the whole module's run."""
    running.reset()
    running.configure(
        {
            "requireEmailVerification": False,
            "lockout": {"ipMaxAttempts": 100000, "maxFailures": 100, "baseDelay": "1s"},
        }
    )
    return running


class Caller:
    """Authorises generated requests as a real user, logging in again whenever a generated
    request ended the session (logout, revoking sessions)."""

    def __init__(self, auth: AuthStack) -> None:
        self.http = httpx.Client(base_url=auth.url, timeout=10)
        self.http.post("/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD})  # once per module
        self.token = "none yet"  # refused by /me, so the first headers() logs in

    def headers(self) -> dict[str, str]:
        if self.http.get("/v1/auth/me", headers={"Authorization": f"Bearer {self.token}"}).status_code != 200:
            answer = self.http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
            assert answer.status_code == 200 and "accessToken" in answer.json(), answer.text
            self.token = answer.json()["accessToken"]
        return {"Authorization": f"Bearer {self.token}"}


def operations_of(auth: AuthStack, *routers: APIRouter) -> list[Any]:
    """The operations of the given routers in the served document (all of them, or the test
    fails: a route left out of the document is left out of the run)."""
    labels = {
        f"{method} {route.path}"
        for router in routers
        for route in router.routes
        for method in getattr(route, "methods", ())
    }
    schema = schemathesis.openapi.from_url(f"{auth.url}/openapi.json")
    operations = [result.ok() for result in schema.include(path_regex=AUTH_PATHS).get_all_operations()]
    mine = [op for op in operations if op.label in labels]
    assert {op.label for op in mine} == labels, sorted(labels - {op.label for op in mine})
    return mine


def failures_of(caller: Caller, operations: list[Any]) -> dict[str, str]:
    """Runs each operation's generated requests (as the caller's user, unless the case has an
    Authorization header of its own); what each operation failed with, by label."""
    failures: dict[str, str] = {}
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
    return failures


def test_auth_routes_answer_what_their_openapi_says(auth: AuthStack):
    """routers/auth.py: sign-up to sessions, and the JWKS (discovery is the OpenID Provider's:
    test_oidc_schemathesis)."""
    operations = operations_of(auth, auth_router)
    failures = failures_of(Caller(auth), operations)
    assert len(operations) >= 20, [op.label for op in operations]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def test_mfa_and_passkey_routes_answer_what_their_openapi_says(auth: AuthStack):
    """routers/auth_mfa.py: TOTP, recovery codes, the login's second step, passkeys."""
    failures = failures_of(Caller(auth), operations_of(auth, auth_mfa.router))
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def test_social_login_routes_answer_what_their_openapi_says(auth: AuthStack):
    """routers/auth_oauth.py: providers, authorize, callback, exchange, identities (the Stack has
    no IdentityProvider here: the named ones answer 404, the rest is validation and state)."""
    failures = failures_of(Caller(auth), operations_of(auth, auth_oauth.router))
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
