"""A missing server, tool or image: a failure in CI, a skip naming what to run elsewhere."""

from __future__ import annotations

import pytest
from stackyard_harness.pytest_plugin import unavailable


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_in_ci_a_missing_service_fails_the_test(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"redis-server is missing: run `make tools` \(CI is set"):
        unavailable("redis-server is missing: run `make tools`")


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_it_is_skipped_with_what_to_run(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="run `make tools`"):
        unavailable(RuntimeError("redis-server is missing: run `make tools`"))
