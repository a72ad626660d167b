"""What the search component knows of each SearchIndex, written to its status: documents,
sync {mode, lastSync, lagSeconds, error}, rebuilding, indexVersion and the Synced condition.

Every 2 seconds, and at once when the config changes, each index the service holds is looked
at (its document count, its version, whether it is being rebuilt, and its sync's state), and its status
is merge-patched when any of that changed (a lag that stays the same, a sync that keeps
finding nothing new, write nothing), and at least every 5 minutes. The operator owns Ready
and observedGeneration: the patch carries only the fields above and the Synced condition,
and keeps every other condition as it is (stackyard.status_reports.status_patch).

Synced (metav1.Condition), for an index sourced from MongoDB:

| the sync                                              | Synced | reason                    |
|-------------------------------------------------------|--------|---------------------------|
| follows the collection (change stream or poll)        | True   | Following                 |
| has not started yet, or builds the first version      | False  | Starting, InitialLoad     |
| rebuilds because the change feed lost its place       | False  | Rebuilding                |
| cannot reach MongoDB                                  | False  | SourceUnreachable         |
| finds no such collection                              | False  | CollectionMissing         |
| was told changeStream where the server has none       | False  | ChangeStreamsUnsupported  |
| a rebuild task failed, or anything else went wrong    | False  | RebuildFailed, SyncFailed |

An index whose documents come through the API has sync {mode: api} and no Synced condition.
Messages name the database and collection, never a URI or a credential, and are scrubbed of
the Stack's credential values once more. Several replicas would write the same facts; the
search component runs one.

    reporter = SearchStatusReporter(runtime, ClusterStatus(runtime), service, lambda: syncs)
    task = asyncio.create_task(reporter.run(stop))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from stackyard.resources.search import SearchIndexSpec
from stackyard.runtime import Runtime
from stackyard.search.service import SearchService
from stackyard.search.sync import MongoSync, SyncState
from stackyard.status_reports import ClusterStatus, Condition, PeriodicStatusReporter, now_iso

__all__ = ["CHECK_INTERVAL", "REWRITE_INTERVAL", "SearchStatusReporter", "index_status", "synced_condition"]

log = logging.getLogger(__name__)

CHECK_INTERVAL = 2.0
"""Seconds between two looks at the indexes."""
REWRITE_INTERVAL = 300.0
"""Most seconds between two writes of an unchanged status."""
WRITE_TIMEOUT = 10.0
MESSAGE_LIMIT = 1024

Syncs = Callable[[], Mapping[str, MongoSync]]
"""The syncs running now, by index name."""


def _timestamp(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lag(seconds: float | None) -> float | None:
    """The lag as status shows it: tenths of a second below a minute, whole seconds above."""
    if seconds is None:
        return None
    return round(seconds, 1) if seconds < 60 else float(round(seconds))


def synced_condition(state: SyncState) -> Condition:
    message = state.message if len(state.message) <= MESSAGE_LIMIT else state.message[: MESSAGE_LIMIT - 1] + "…"
    return {
        "type": "Synced",
        "status": "True" if state.synced else "False",
        "reason": state.reason,
        "message": message,
        "lastTransitionTime": now_iso(),
    }


def index_status(
    spec: SearchIndexSpec, documents: int, version: int, rebuilding: bool, state: SyncState | None
) -> dict[str, Any]:
    """The status fields of one index (a pure function of what the service and its sync say)."""
    view: dict[str, Any] = {"documents": documents, "rebuilding": rebuilding, "indexVersion": version}
    if spec.source.api is not None:
        view["sync"] = {"mode": "api", "lastSync": None, "lagSeconds": None, "error": None}
    elif state is not None:
        view["sync"] = {
            "mode": state.mode,
            "lastSync": _timestamp(state.last_sync),
            "lagSeconds": _lag(state.lag_seconds),
            "error": state.error,
        }
        view["conditions"] = [synced_condition(state)]
    return view


def significant(view: Mapping[str, Any]) -> dict[str, Any]:
    """`view` without the conditions' lastTransitionTime (status_patch keeps the written one
    while the status stays the same)."""
    conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in view.get("conditions", [])]
    return {**view, "conditions": conditions}


class SearchStatusReporter(PeriodicStatusReporter[SearchIndexSpec]):
    """Writes each SearchIndex's documents, sync, rebuilding, indexVersion and Synced (see the module)."""

    kind, plural = "SearchIndex", "searchindexes"
    ok_word, failed_word = "in sync", "not in sync"
    write_timeout = WRITE_TIMEOUT
    log = log

    def __init__(
        self,
        runtime: Runtime,
        cluster: ClusterStatus,
        service: SearchService,
        syncs: Syncs,
        *,
        interval: float = CHECK_INTERVAL,
        rewrite_interval: float = REWRITE_INTERVAL,
    ) -> None:
        super().__init__(runtime, cluster, interval=interval, rewrite_interval=rewrite_interval)
        self.service = service
        self.syncs = syncs

    def specs(self) -> Mapping[str, SearchIndexSpec]:
        held = set(self.service.index_names())
        return {name: spec for name, spec in self.runtime.config.config.search_indexes.items() if name in held}

    def _significant(self, view: Mapping[str, Any]) -> dict[str, Any]:
        return significant(view)

    async def check(self, name: str, spec: SearchIndexSpec) -> dict[str, Any]:
        # The count the searcher keeps, not stats(): its field distribution aggregates over the whole index.
        documents = self.service.document_count(name)
        version = self.service.version(name)
        sync = self.syncs().get(name)
        state = sync.state if sync is not None else None
        if state is not None and state.error is not None:
            state.error = self._scrub(state.error)
            state.message = self._scrub(state.message)
        view = index_status(spec, documents, version, self.service.rebuilding(name), state)
        if view.get("conditions"):
            self._note(name, view["conditions"][0])
        return view
