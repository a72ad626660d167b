"""What the operator decides for the SearchIndexes of a Stack, besides their place in the
config (render() folds them like any member kind; an index's name is its uid in the API).

Pure functions, called by render():

- `settle_indexes`: a SearchIndex is in force only when its spec holds together in its Stack
  (`index_problem`): source.mongodb.databaseRef names a Database of the Stack that is in force
  (DatabaseNotFound, DatabaseInvalid); with a source.mongodb.fields mapping, the primary key is
  not mapped (it always comes from `_id`: AttributeConflict) and every attribute the settings
  name is one the mapped documents can have (AttributeNotMapped: it would never hold a value).
  What the models let through and does no harm is left alone (a typo-disabled attribute that
  is not searchable, a sortable or filterable one that is not displayed). Otherwise the index
  is Ready=False with the reason; a last good version that passes the same checks stays.
- `render_search_objects`: while at least one SearchIndex is in force, the search component:
  the StatefulSet `<stack>-search` (one pod of the api image running `stackyard-search`, its
  index files on the claim of the template `data`, sized by spec.search) and the Service
  `<stack>-search` on port 7700, which the api reaches through STACKYARD_SEARCH_URL (set on
  the api whether or not the component is deployed, so that it never rolls the api out). When none
  is left, both are obsolete (the reconciler deletes them); the claim `data-<stack>-search-0`
  stays with the index files (persistentVolumeClaimRetentionPolicy Retain) until someone
  deletes it, and a new StatefulSet takes it again. A claim template cannot change: when
  spec.search.storage or storageClassName moves, the StatefulSet keeps the template it was
  made with and SearchReady=False says what to do.
- `search_condition`: the Stack's SearchReady condition: whether the search-only API key of
  spec.search.searchApiKeySecretRef resolves (render() copies it into the credentials under
  SEARCH_API_KEY), and the component's volume.

The search component needs no restart for a new config: like the api and the worker, it
watches the Stack's ConfigMap and credentials Secret (its pod template carries no hash).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from stackyard.resources.database import DatabaseSpec
from stackyard.resources.search import SearchIndexSpec
from stackyard.resources.stack import StackSpec

from . import manifests
from .conditions import FALSE, TRUE, ConditionIntent, keep_last_good
from .databases import ObjectRef

COMPONENT = "search"
SEARCH_PORT = 7700
SEARCH_DATA = "/var/lib/stackyard/search"
"""Where the search component keeps its index files and task log (the volume's mount)."""
SEARCH_COMMAND = "stackyard-search"
DATA_VOLUME = "data"
GRACE_SECONDS = 30
"""The search pod's termination grace period: the task in progress commits or is redone at start."""


def search_name(stack: str) -> str:
    """The StatefulSet and the Service of a Stack's search component."""
    return manifests.workload_name(stack, COMPONENT)


def search_url(stack: str, namespace: str) -> str:
    """Where the api reaches the search component (its STACKYARD_SEARCH_URL)."""
    return f"http://{search_name(stack)}.{namespace}.svc:{SEARCH_PORT}"


def claim_name(stack: str) -> str:
    """The claim the StatefulSet makes from its template for its one pod."""
    return f"{DATA_VOLUME}-{search_name(stack)}-0"


# -- the indexes -------------------------------------------------------------------------


def _covers(mapped: str, attribute: str) -> bool:
    """Whether documents with the attribute `mapped` can hold `attribute` (the same one, a
    field nested in it, or a parent of it)."""
    return mapped == attribute or attribute.startswith(mapped + ".") or mapped.startswith(attribute + ".")


def _named_attributes(spec: SearchIndexSpec) -> list[tuple[str, list[str]]]:
    return [
        ("searchableAttributes", spec.searchable_attributes),
        ("filterableAttributes", spec.filterable_attributes),
        ("facetableAttributes", spec.facetable_attributes),
        ("sortableAttributes", spec.sortable_attributes),
        ("displayedAttributes", spec.displayed_attributes),
    ]


def index_problem(
    spec: SearchIndexSpec,
    stack: str,
    databases: Mapping[str, DatabaseSpec],
    database_members: Mapping[str, str | None],
) -> tuple[str, str] | None:
    """(reason, message) when the index cannot work in its Stack; None when it can.

    `databases`: the Databases in force; `database_members`: every Database of the Stack by
    name, with why it is invalid (None when it is valid)."""
    mongodb = spec.source.mongodb
    if mongodb is None:
        return None
    ref = mongodb.database_ref
    if ref is not None:
        where = "source.mongodb.databaseRef"
        if ref.name not in database_members:
            return "DatabaseNotFound", f"{where}: no Database {ref.name} with a spec.stackRef naming Stack {stack}"
        if ref.name not in databases:
            return "DatabaseInvalid", f"{where}: Database {ref.name} is not in force ({database_members[ref.name]})"
    if not mongodb.fields:
        return None
    if spec.primary_key in mongodb.fields:
        return (
            "AttributeConflict",
            f"source.mongodb.fields maps {spec.primary_key!r}, the primaryKey, which always comes from _id: "
            "map that field under another name",
        )
    mapped = [spec.primary_key, *mongodb.fields]
    for setting, attributes in _named_attributes(spec):
        for attribute in attributes:
            if attribute != "*" and not any(_covers(m, attribute) for m in mapped):
                return (
                    "AttributeNotMapped",
                    f"{setting}: {attribute!r} is in no document: source.mongodb.fields maps only "
                    f"{', '.join(sorted(mongodb.fields))} (and {spec.primary_key}, from _id)",
                )
    return None


@dataclass(frozen=True)
class IndexVerdict:
    reason: str
    message: str
    kept: bool
    """Whether the last good version stays in force."""


def settle_indexes(
    stack: str,
    candidates: Mapping[str, SearchIndexSpec],
    previous: Mapping[str, SearchIndexSpec],
    databases: Mapping[str, DatabaseSpec],
    database_members: Mapping[str, str | None],
) -> tuple[dict[str, SearchIndexSpec], dict[str, IndexVerdict]]:
    """The indexes in force, and why the others are not. `candidates`: the indexes whose spec
    parses (by name); `previous`: the versions in the config in force."""
    in_force, problems = keep_last_good(
        candidates, previous, lambda spec: index_problem(spec, stack, databases, database_members)
    )
    return in_force, {name: IndexVerdict(*problem, kept=kept) for name, (problem, kept) in problems.items()}


# -- the search component ----------------------------------------------------------------


@dataclass(frozen=True)
class SearchWorkload:
    """The search StatefulSet as the operator last saw it."""

    uid: str
    ready_replicas: int
    storage: str | None
    """The request of its claim template `data`."""
    storage_class_name: str | None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> SearchWorkload:
        """From a StatefulSet's metadata, spec and status (as the operator's index keeps them)."""
        templates = (body.get("spec") or {}).get("volumeClaimTemplates") or []
        data: Mapping[str, Any] = next(
            (t for t in templates if (t.get("metadata") or {}).get("name") == DATA_VOLUME), {}
        )
        claim = data.get("spec") or {}
        return cls(
            uid=str((body.get("metadata") or {}).get("uid", "")),
            ready_replicas=int((body.get("status") or {}).get("readyReplicas") or 0),
            storage=((claim.get("resources") or {}).get("requests") or {}).get("storage"),
            storage_class_name=claim.get("storageClassName"),
        )


def _claim_template(stack: str, storage: str | None, storage_class_name: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}
    if storage_class_name is not None:
        spec["storageClassName"] = storage_class_name
    return {"metadata": {"name": DATA_VOLUME, "labels": manifests.labels(stack, COMPONENT)}, "spec": spec}


def statefulset(
    stack_body: dict[str, Any], spec: StackSpec, storage: str | None = None, storage_class_name: str | None = None
) -> dict[str, Any]:
    """The search component: one pod of the api image running `stackyard-search`, under the
    restricted Pod Security Standard as the api's, its data on the claim template `data`
    (`storage` and `storage_class_name`: those of an existing StatefulSet, which cannot change;
    spec.search's by default)."""
    stack = stack_body["metadata"]["name"]
    name = search_name(stack)
    settings = spec.search
    container = manifests.runtime_container(spec, COMPONENT, "api", settings)
    container["command"] = [SEARCH_COMMAND]
    container["env"] = [
        {"name": "STACKYARD_STACK", "value": stack},
        *manifests.pod_identity_env(None),
        {"name": "STACKYARD_PORT", "value": str(SEARCH_PORT)},
        {"name": "STACKYARD_SEARCH_DATA", "value": SEARCH_DATA},
    ]
    # Opening large indexes takes a while at start: up to 5 minutes before liveness counts.
    manifests.serve_http(container, SEARCH_PORT, startup_period=5, startup_failures=60)
    container["volumeMounts"].append({"name": DATA_VOLUME, "mountPath": SEARCH_DATA})
    pod_spec = manifests.runtime_pod_spec(stack_body, spec, settings, container)
    pod_spec["terminationGracePeriodSeconds"] = GRACE_SECONDS
    if storage is None:
        storage, storage_class_name = settings.storage, settings.storage_class_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": manifests.component_metadata(stack_body, name, COMPONENT),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": manifests.selector_labels(stack, COMPONENT)},
            "updateStrategy": {"type": "RollingUpdate"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": manifests.labels(stack, COMPONENT, spec.image.tag)},
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [_claim_template(stack, storage, storage_class_name)],
        },
    }


def service(stack_body: dict[str, Any]) -> dict[str, Any]:
    stack = stack_body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": manifests.component_metadata(stack_body, search_name(stack), COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": manifests.selector_labels(stack, COMPONENT),
            "ports": [{"name": "http", "port": SEARCH_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


@dataclass(frozen=True)
class SearchObjects:
    objects: list[dict[str, Any]]
    """The StatefulSet and the Service to apply (none without a SearchIndex in force)."""
    obsolete: list[ObjectRef]
    """The Service and the StatefulSet to delete when no SearchIndex is left."""
    url: str
    """The api's STACKYARD_SEARCH_URL: always set, deployed component or not, so that the
    first SearchIndex and the removal of the last one do not roll the api out (the api answers
    503 while nothing listens there)."""
    volume_problem: str | None
    """Why the StatefulSet keeps a claim template other than spec.search's."""


def render_search_objects(
    stack_body: dict[str, Any],
    spec: StackSpec,
    indexes: Mapping[str, SearchIndexSpec],
    workload: SearchWorkload | None,
) -> SearchObjects:
    """`indexes`: the SearchIndexes in force; `workload`: the search StatefulSet if it exists."""
    meta = stack_body["metadata"]
    stack, namespace = meta["name"], meta["namespace"]
    name = search_name(stack)
    url = search_url(stack, namespace)
    if not indexes:
        if workload is None:
            return SearchObjects([], [], url, None)
        # The Service first: a reconcile cut short after it still sees the StatefulSet next time.
        obsolete = [ObjectRef("Service", name, ""), ObjectRef("StatefulSet", name, workload.uid)]
        return SearchObjects([], obsolete, url, None)
    storage, storage_class_name = spec.search.storage, spec.search.storage_class_name
    problem = None
    if workload is not None and workload.storage is not None:
        same_size = same_quantity(workload.storage, storage)
        if not same_size or workload.storage_class_name != storage_class_name:
            storage, storage_class_name = workload.storage, workload.storage_class_name
            problem = (
                f"spec.search asks for a {spec.search.storage} volume"
                f"{_of_class(spec.search.storage_class_name)}, but StatefulSet {name} was made with "
                f"{workload.storage}{_of_class(workload.storage_class_name)} and Kubernetes does not let a volume "
                f"claim template change: expand the claim {claim_name(stack)} itself if its StorageClass allows, "
                "or set spec.search back"
            )
    objects = [statefulset(stack_body, spec, storage, storage_class_name), service(stack_body)]
    return SearchObjects(objects, [], url, problem)


_UNITS = {
    **{suffix: Decimal(1024) ** power for power, suffix in enumerate(("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{suffix: Decimal(1000) ** power for power, suffix in enumerate(("k", "M", "G", "T", "P", "E"), start=1)},
    "m": Decimal("0.001"),
}


def same_quantity(a: str, b: str) -> bool:
    """Whether two Kubernetes quantities are the same amount (the API server may write
    "0.5Gi" back as "512Mi")."""
    pattern = r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?"
    found = [re.fullmatch(pattern, q) for q in (a, b)]
    if found[0] is None or found[1] is None:
        return a == b
    amounts = [Decimal(m.group(1)) * _UNITS[m.group(2) or ""] for m in found if m is not None]
    return amounts[0] == amounts[1]


def _of_class(storage_class_name: str | None) -> str:
    return f" of StorageClass {storage_class_name}" if storage_class_name else " of the default StorageClass"


# -- the search-only API key and the Stack's SearchReady --------------------------------


def search_condition(
    stack: str,
    spec: StackSpec,
    indexes: int,
    key_problem: tuple[str, str] | None,
    volume_problem: str | None,
) -> ConditionIntent | None:
    """SearchReady, when the Stack has something of search (an index in force or a search
    key); None otherwise. `key_problem`: (reason, message) of a search key that does not resolve."""
    if not indexes and spec.search.search_api_key_secret_ref is None:
        return None
    if key_problem is not None:
        reason, message = key_problem
        return ConditionIntent(
            "SearchReady",
            FALSE,
            reason,
            f"spec.search.searchApiKeySecretRef: {message}; only the admin API key can search until it resolves",
        )
    if volume_problem is not None:
        return ConditionIntent("SearchReady", FALSE, "VolumeImmutable", volume_problem)
    if not indexes:
        return ConditionIntent(
            "SearchReady", TRUE, "NoIndexes", "no SearchIndex is in force: the search component is not deployed"
        )
    noun = "SearchIndex" if indexes == 1 else "SearchIndexes"
    return ConditionIntent("SearchReady", TRUE, "Deployed", f"StatefulSet {search_name(stack)} serves {indexes} {noun}")
