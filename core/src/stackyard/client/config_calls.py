"""What the api says about itself: the configuration it applies (GET /v1/config) and its
probes (/healthz, /readyz), shared by `config_async` and `config_sync`."""

from __future__ import annotations

from stackyard.runtime_contract import AppliedConfigInfo, Health

from .calls import Call

CONFIG = "/v1/config"


def get_config() -> Call[AppliedConfigInfo]:
    return Call("GET", CONFIG, AppliedConfigInfo, repeatable=True)


def healthz() -> Call[Health]:
    return Call("GET", "/healthz", Health, repeatable=True)


def readyz() -> Call[Health]:
    """A 503 is the answer "not ready" with its checks: read, not retried, not raised."""
    return Call("GET", "/readyz", Health, repeatable=True, never_retry=frozenset({503}), error_answers=frozenset({503}))
