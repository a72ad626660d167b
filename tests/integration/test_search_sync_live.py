"""The SearchIndex status the search component writes to the real kube-apiserver: documents,
sync {mode, lastSync, lagSeconds, error}, rebuilding, indexVersion and the Synced condition,
next to the operator's Ready (kept as it is), written only when something changed; Synced
turns False with CollectionMissing when the collection goes, and back when it returns.

The index follows the harness's FerretDB (by poll: FerretDB has no change streams). The
status is written with the admin kubeconfig: the search component's ServiceAccount and its
RBAC come with the operator's rendering (tested there)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from stackyard.clients import mongo_client
from stackyard.config import FileConfigSource, LiveConfig, RuntimeConfig
from stackyard.resources.search import SearchIndexSpec
from stackyard.resources.stack import StackSpec
from stackyard.runtime import Runtime
from stackyard.search.service import SearchService
from stackyard.search.sync import MongoSync
from stackyard.status_reports import ClusterStatus
from stackyard_api.search_status import SearchStatusReporter, index_status

NAME = "products"
SPEC = {
    "stackRef": {"name": "demo"},
    "source": {"mongodb": {"collection": NAME, "sync": {"pollInterval": "200ms", "deleteScanInterval": "1s"}}},
    "searchableAttributes": ["title"],
}
OPERATORS_READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Reconciled",
    "message": "the index is in the Stack's config",
    "lastTransitionTime": "2026-11-26T10:00:00Z",
    "observedGeneration": 1,
}


async def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def write_config(directory: Path, namespace: str, mongo_url: str) -> None:
    config = RuntimeConfig(
        stack="demo",
        namespace=namespace,
        generation=1,
        spec=StackSpec.model_validate(
            {
                "redis": {"urlSecretRef": {"name": "b", "key": "r"}},
                "mongodb": {"uriSecretRef": {"name": "b", "key": "m"}, "database": "app"},
            }
        ),
        search_indexes={NAME: SearchIndexSpec.model_validate(SPEC)},
    )
    credentials = {"stack.redis.url": "redis://127.0.0.1:1/0", "stack.mongodb.uri": mongo_url}
    (directory / "credentials.json").write_text(json.dumps(credentials))
    (directory / "config.json").write_text(config.canonical_json())


def status(namespace: Any) -> dict[str, Any]:
    return (namespace.get("searchindex", NAME) or {}).get("status") or {}


def conditions(namespace: Any) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status(namespace).get("conditions", [])}


def test_an_index_fed_through_the_api_has_sync_mode_api_and_no_synced_condition() -> None:
    spec = SearchIndexSpec.model_validate({"stackRef": {"name": "demo"}, "source": {"api": {}}})
    assert index_status(spec, 5, 2, False, None) == {
        "documents": 5,
        "rebuilding": False,
        "indexVersion": 2,
        "sync": {"mode": "api", "lastSync": None, "lagSeconds": None, "error": None},  # null: removed by the merge
    }


@pytest.mark.usefixtures("cluster")
async def test_the_search_component_writes_documents_lag_and_synced_and_keeps_the_operators_ready(
    namespace: Any, cluster: Any, mongo_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    monkeypatch.setenv("STACKYARD_STACK", "demo")
    namespace.apply(
        {"apiVersion": "stackyard.dev/v1alpha1", "kind": "SearchIndex", "metadata": {"name": NAME}, "spec": SPEC}
    )
    namespace.kubectl(
        "patch", "searchindex", NAME, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"observedGeneration": 1, "conditions": [OPERATORS_READY]}}),
    )  # fmt: skip

    client = mongo_client(mongo_server.url, "test-search-live")
    database = client[f"search_live_{uuid.uuid4().hex[:10]}"]
    await database[NAME].insert_many([{"_id": ObjectId(), "title": t} for t in ("kettle", "teapot", "whisk")])

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    write_config(config_dir, namespace.name, mongo_server.url)
    live = LiveConfig()
    runtime = Runtime("stackyard-search", FileConfigSource(live, config_dir, interval=0.05), live)
    await runtime.start()
    service = SearchService(tmp_path / "search")
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    cluster_status = ClusterStatus(runtime)
    try:
        await eventually(lambda: live.current is not None, what="the config applied")
        await service.apply_config(runtime.config.config.search_indexes)
        await service.start()
        sync = MongoSync(NAME, runtime.config.config.search_indexes[NAME], database, service)
        service.set_source(NAME, sync)
        reporter = SearchStatusReporter(runtime, cluster_status, service, lambda: {NAME: sync}, interval=0.3)
        tasks = [asyncio.create_task(sync.run()), asyncio.create_task(reporter.run(stop))]

        synced = await eventually(
            lambda: (c := conditions(namespace).get("Synced")) and c["status"] == "True" and status(namespace),
            what="Synced=True",
        )
        assert synced["documents"] == 3 and synced["rebuilding"] is False and synced["indexVersion"] >= 1
        assert synced["sync"]["mode"] == "poll" and synced["sync"]["lagSeconds"] == 0
        assert synced["sync"]["lastSync"] and "error" not in synced["sync"]
        assert conditions(namespace)["Synced"]["reason"] == "Following"
        assert conditions(namespace)["Ready"] == OPERATORS_READY
        assert synced["observedGeneration"] == 1

        await database[NAME].insert_one({"_id": ObjectId(), "title": "saucepan"})
        await eventually(lambda: status(namespace).get("documents") == 4, what="documents: 4")

        # Nothing changes: nothing is written (checks every 0.3 s, rewrites every 5 minutes).
        before = (namespace.get("searchindex", NAME) or {})["metadata"]["resourceVersion"]
        await asyncio.sleep(2.0)
        assert (namespace.get("searchindex", NAME) or {})["metadata"]["resourceVersion"] == before

        await database.drop_collection(NAME)
        missing = await eventually(
            lambda: (c := conditions(namespace).get("Synced")) and c["reason"] == "CollectionMissing" and c,
            what="Synced=False CollectionMissing",
        )
        assert missing["status"] == "False" and NAME in missing["message"]
        assert "does not exist" in status(namespace)["sync"]["error"]
        assert status(namespace)["documents"] == 4  # the index is kept while its collection is away
        assert conditions(namespace)["Ready"] == OPERATORS_READY

        await database[NAME].insert_one({"_id": ObjectId(), "title": "ladle"})
        back = await eventually(
            lambda: (c := conditions(namespace).get("Synced")) and c["status"] == "True" and status(namespace),
            timeout=60,
            what="Synced=True again",
        )
        assert "error" not in back["sync"]
        await eventually(lambda: status(namespace).get("documents") == 1, timeout=30, what="the deletes found")
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await service.stop()
        await cluster_status.close()
        await runtime.stop()
        await client.drop_database(database.name)
        await client.close()
