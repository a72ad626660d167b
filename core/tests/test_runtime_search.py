"""Runtime.describe_config lists the SearchIndexes of the config in force, by name (what
GET /v1/config shows), and nothing of their settings."""

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


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    live = LiveConfig()
    made = Runtime("test-runtime-search", FileConfigSource(live, tmp_path), live)
    yield made
    await made.stop()


async def test_describe_config_lists_the_search_indexes_by_name(runtime: Runtime) -> None:
    config = RuntimeConfig.model_validate(
        {
            "stack": "demo",
            "namespace": "ns",
            "generation": 1,
            "spec": STACK,
            "searchIndexes": {
                "products": {"stackRef": {"name": "demo"}, "source": {"api": {}}, "sortableAttributes": ["price"]},
                "articles": {"stackRef": {"name": "demo"}, "source": {"mongodb": {"collection": "articles"}}},
            },
        }
    )
    credentials = {"stack.redis.url": "redis://127.0.0.1:1/0", "stack.mongodb.uri": "mongodb://127.0.0.1:1/"}
    assert runtime.live.offer(config.canonical_json(), credentials, None)
    described = runtime.describe_config()
    assert described["searchIndexes"] == ["articles", "products"]
    assert "price" not in str(described), "names only, not the indexes' settings"
