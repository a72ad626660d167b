"""The stack of `make up`, started once for the tests of this folder: the runnable blocks
of docs/ and the `stackyard` command's view of a whole Stack run against it, as a newcomer's
terminal would after `source .stackyard/stack.env`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stackyard_harness.harness import Harness
from stackyard_harness.local_stack import LocalStack
from stackyard_harness.process import free_port


@pytest.fixture(scope="package")
def make_up() -> Iterator[LocalStack]:
    stack = LocalStack(Harness(), smtp_port=free_port()).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def stack_env(make_up: LocalStack) -> dict[str, str]:
    """The environment of `source .stackyard/stack.env`: STACKYARD_API_URL, STACKYARD_ADMIN_KEY,
    STACKYARD_SEARCH_KEY, STACKYARD_MAILDIR, KUBECONFIG and a PATH with kubectl and stackyard."""
    return make_up.client_env()
