"""What the auth tests do over HTTP again and again: sign up (and verify the address), log in,
authorise as a session, and check that an answer is a given problem."""

from __future__ import annotations

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
