"""The OpenID Provider's protocol endpoints (routers/oidc.py) under schemathesis: valid and
invalid requests, generated from the served OpenAPI document, never get a server error and
always get an answer the document declares (status, content type, schema, headers).

Redis database 51."""

from __future__ import annotations

from typing import Any

import pytest
from auth_http import check_operations, route_labels
from oidc_http import configure_provider
from stackyard_api.routers import oidc
from stackyard_harness.auth_stack import AuthStack

REDIS_DATABASE = 51
OIDC_PATHS = r"^/(oauth2/|\.well-known/openid-configuration$)"


@pytest.fixture(scope="module")
def auth(running: AuthStack) -> AuthStack:
    """In place of the shared `auth`: one configuration, with the provider's clients, for the run."""
    running.reset()
    configure_provider(running)
    return running


def no_headers(case: Any) -> dict[str, str] | None:
    return None


def test_the_protocol_endpoints_answer_what_their_openapi_says(auth: AuthStack):
    check_operations(auth.url, OIDC_PATHS, route_labels(oidc.router), no_headers, max_examples=15)
