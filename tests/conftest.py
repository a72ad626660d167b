"""The stack of `make up`, started once per test session when a test first asks for it: the
runnable blocks of docs/, the `stackyard` command's view of a whole Stack and the console's
browser tests run against it, as a newcomer's terminal would after `source .stackyard/stack.env`.
Its SMTP sink takes a free port, so a `make up` beside the tests does not collide with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stackyard_harness.harness import Harness
from stackyard_harness.local_stack import LocalStack
from stackyard_harness.process import free_port


@pytest.fixture(scope="session")
def make_up() -> Iterator[LocalStack]:
    stack = LocalStack(Harness(), smtp_port=free_port()).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def stack_env(make_up: LocalStack) -> dict[str, str]:
    """The environment of `source .stackyard/stack.env`: STACKYARD_API_URL, STACKYARD_ADMIN_KEY,
    STACKYARD_SEARCH_KEY, STACKYARD_MAILDIR, KUBECONFIG and a PATH with kubectl and stackyard."""
    return make_up.client_env()
