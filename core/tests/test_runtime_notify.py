"""Runtime.describe_config lists the NotificationWorkflows and Webhooks of the config in
force, by name, like the other member kinds (what GET /v1/config and the worker's /config
show), and nothing of their settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.runtime import Runtime

STACK = {
    "redis": {"urlSecretRef": {"name": "b", "key": "redis"}},
    "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}, "database": "plain"},
}
STEPS = [{"name": "feed", "inApp": {"title": "Hello {{ recipient.name }}"}}]


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    live = LiveConfig()
    made = Runtime("test-runtime-notify", FileConfigSource(live, tmp_path), live)
    yield made
    await made.stop()


async def test_describe_config_lists_the_workflows_and_webhooks_by_name(runtime: Runtime) -> None:
    config = RuntimeConfig.model_validate(
        {
            "stack": "demo",
            "namespace": "ns",
            "generation": 1,
            "spec": STACK,
            "notificationWorkflows": {
                "welcome": {"stackRef": {"name": "demo"}, "steps": STEPS},
                "comment-created": {"stackRef": {"name": "demo"}, "steps": STEPS},
            },
            "webhooks": {
                "crm": {"stackRef": {"name": "demo"}, "url": "https://crm.example/hooks", "events": ["user.*"]}
            },
        }
    )
    credentials = {"stack.redis.url": "redis://127.0.0.1:1/0", "stack.mongodb.uri": "mongodb://127.0.0.1:1/"}
    assert runtime.live.offer(config.canonical_json(), credentials, None)
    described = runtime.describe_config()
    assert described["notificationWorkflows"] == ["comment-created", "welcome"]
    assert described["webhooks"] == ["crm"]
    assert "crm.example" not in str(described), "names only, not the Webhooks' settings"
