"""SearchIndexes applied with kubectl and reconciled by the operator process: the API server
refuses what a CEL rule can say (`*` mixed with named attributes, a bad mapping key), a
SearchIndex is Ready and in the Stack's config and brings the search component (StatefulSet
and Service), which goes with the last index while the api's STACKYARD_SEARCH_URL stays (no
rollout of the api either way); a databaseRef
naming no Database of the Stack gives Ready=False DatabaseNotFound until the Database exists;
the Stack's own account may record an index's documents and Synced condition, which the
operator keeps; the search-only key reaches the credentials only."""

from __future__ import annotations

import base64
import json

import pytest
from stackyard_harness.programs import service_account_kubeconfig

from .conftest import stack_manifest, wait_for
from .test_jobs_resources_live import EXAMPLES, config, ready

pytestmark = pytest.mark.usefixtures("operator")

SEARCH_KEY = "search-only-live-key-do-not-show"


@pytest.fixture
def backends(namespace) -> str:
    """The Stack's Secret: the operator only copies these into the credentials (nothing here
    connects to Redis or MongoDB)."""
    namespace.secret("backends", redis="redis://redis.example:6379/0", mongodb="mongodb://mongo.example:27017/")
    return "backends"


def index(name: str = "products", **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "SearchIndex",
        "metadata": {"name": name},
        "spec": {"stackRef": {"name": "demo"}, "source": {"api": {}}} | spec,
    }


def api_env(namespace) -> dict[str, str]:
    api = namespace.get("deployment", "demo-api") or {}
    containers = api.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])
    return {e["name"]: e.get("value") for e in containers[0].get("env", [])}


def test_the_api_server_rejects_what_the_cel_rules_say(namespace):
    rejected = {
        "`*` stands alone in searchableAttributes": index(searchableAttributes=["*", "title"]),
        "`*` stands alone in displayedAttributes": index(displayedAttributes=["title", "*"]),
        "`*` is not allowed in filterable, facetable or sortable ones": index(sortableAttributes=["*"]),
        "exactly one of source.mongodb and source.api": index(source={"api": {}, "mongodb": {"collection": "a"}}),
        "twoTypos must be at least oneTypo": index(
            typoTolerance={"minWordSizeForTypos": {"oneTypo": 6, "twoTypos": 4}}
        ),
        "every key must be an attribute name": index(
            source={"mongodb": {"collection": "articles", "fields": {"bad key": "title"}}}
        ),
    }
    for message, manifest in rejected.items():
        result = namespace.try_apply(manifest)
        assert result.returncode != 0 and message in result.stderr, (message, result.stderr)
    assert namespace.get("searchindex", "products") is None
    # The defaults pass every rule: an index with only its source.
    result = namespace.try_apply(index("plain"))
    assert result.returncode == 0, result.stderr


def test_an_index_brings_the_search_component_and_the_last_one_gone_takes_it_away(namespace, backends):
    namespace.apply([stack_manifest(search={"storage": "2Gi"}), index(sortableAttributes=["price"])])
    obj = wait_for(lambda: ready(namespace, "searchindex", "products"), what="SearchIndex products Ready")
    assert obj["status"]["conditions"][0]["reason"] == "InForce"
    assert config(namespace)["searchIndexes"]["products"]["sortableAttributes"] == ["price"]
    statefulset = wait_for(lambda: namespace.get("statefulset", "demo-search"), what="the search StatefulSet")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["command"] == ["stackyard-search"]
    assert namespace.get("service", "demo-search")["spec"]["ports"][0]["port"] == 7700
    url = f"http://demo-search.{namespace.name}.svc:7700"
    assert api_env(namespace).get("STACKYARD_SEARCH_URL") == url
    api_generation = namespace.get("deployment", "demo-api")["metadata"]["generation"]
    listing = namespace.kubectl("get", "searchindexes").stdout.splitlines()
    assert listing[0].split()[:4] == ["NAME", "DOCUMENTS", "LAG", "READY"]

    namespace.apply(index("articles-copy"))  # a second index: the same component, applied again unchanged
    wait_for(lambda: ready(namespace, "searchindex", "articles-copy"), what="the second index Ready")
    again = namespace.get("statefulset", "demo-search")
    assert again["metadata"]["resourceVersion"] == statefulset["metadata"]["resourceVersion"], "nothing changed"
    namespace.kubectl("delete", "searchindex", "products")
    wait_for(lambda: "products" not in config(namespace)["searchIndexes"], what="products out of the config")
    assert namespace.get("statefulset", "demo-search") is not None, "one index is left"

    namespace.kubectl("delete", "searchindex", "articles-copy")
    wait_for(lambda: namespace.get("statefulset", "demo-search") is None, what="the StatefulSet deleted")
    wait_for(lambda: namespace.get("service", "demo-search") is None, what="the Service deleted")
    # The api was told where search is before the first index and keeps it: no rollout.
    assert api_env(namespace).get("STACKYARD_SEARCH_URL") == url
    assert namespace.get("deployment", "demo-api")["metadata"]["generation"] == api_generation


def test_a_database_ref_naming_no_database_is_not_ready_until_the_database_exists(namespace, backends):
    articles = index("articles", source={"mongodb": {"databaseRef": {"name": "app"}, "collection": "articles"}})
    namespace.apply([stack_manifest(), articles])
    obj = wait_for(lambda: ready(namespace, "searchindex", "articles", "False"), what="SearchIndex Ready=False")
    condition = obj["status"]["conditions"][0]
    assert condition["reason"] == "DatabaseNotFound"
    assert condition["message"] == "source.mongodb.databaseRef: no Database app with a spec.stackRef naming Stack demo"
    assert "articles" not in config(namespace)["searchIndexes"]
    assert namespace.get("statefulset", "demo-search") is None
    events = namespace.kubectl("get", "events", "--field-selector", "involvedObject.name=articles").stdout
    assert "DatabaseNotFound" in events

    database = {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Database",
        "metadata": {"name": "app"},
        "spec": {
            "stackRef": {"name": "demo"},
            "connection": {"uriSecretRef": {"name": "backends", "key": "mongodb"}, "database": "shop"},
        },
    }
    namespace.apply(database)
    wait_for(lambda: ready(namespace, "searchindex", "articles"), what="SearchIndex Ready once the Database exists")
    wait_for(lambda: namespace.get("statefulset", "demo-search"), what="the search StatefulSet")


def test_the_search_key_is_only_in_the_credentials_and_a_missing_one_says_so(namespace, backends):
    ref = {"searchApiKeySecretRef": {"name": "search-keys", "key": "search"}}
    namespace.apply([stack_manifest(search=ref), index()])
    wait_for(lambda: ready(namespace, "searchindex", "products"), what="SearchIndex products Ready")
    condition = wait_for(
        lambda: (c := namespace.condition("stack", "demo", "SearchReady")) and c["status"] == "False" and c,
        what="SearchReady=False",
    )
    assert condition["reason"] == "SecretNotFound" and "Secret search-keys not found" in condition["message"]

    namespace.secret("search-keys", search=SEARCH_KEY)
    wait_for(
        lambda: (c := namespace.condition("stack", "demo", "SearchReady")) and c["status"] == "True",
        what="SearchReady=True once the Secret exists",
    )
    data = namespace.get("secret", "demo-credentials")["data"]
    assert base64.b64decode(data["stack.search.apiKey"]).decode() == SEARCH_KEY
    assert SEARCH_KEY not in json.dumps(namespace.get("configmap", "demo-config"))


def test_the_stacks_account_records_index_status_and_the_operator_keeps_it(namespace, backends, cluster):
    namespace.apply([stack_manifest(), index()])
    wait_for(lambda: ready(namespace, "searchindex", "products"), what="SearchIndex products Ready")
    kubeconfig = service_account_kubeconfig(cluster, namespace.name, "demo-stackyard")
    component_status = {
        "status": {
            "conditions": [
                *namespace.get("searchindex", "products")["status"]["conditions"],
                {
                    "type": "Synced",
                    "status": "True",
                    "reason": "UpToDate",
                    "message": "every document pushed is searchable",
                    "lastTransitionTime": "2026-11-26T10:00:00Z",
                    "observedGeneration": 1,
                },
            ],
            "documents": 1234,
            "sync": {"mode": "api", "lastSync": "2026-11-26T10:00:00Z", "lagSeconds": 0},
            "indexVersion": 1,
        }
    }
    cluster.kubectl(
        "patch", "searchindex", "products", "-n", namespace.name, "--subresource=status", "--type=merge",
        "-p", json.dumps(component_status), kubeconfig=kubeconfig,
    )  # fmt: skip
    refused = cluster.kubectl(
        "patch", "searchindex", "products", "-n", namespace.name, "--type=merge", "-p", '{"spec":{"language":"none"}}',
        kubeconfig=kubeconfig, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
    listing = namespace.kubectl("get", "searchindexes").stdout.splitlines()
    assert listing[1].split()[:3] == ["products", "1234", "0"]

    namespace.apply(index(language="none"))  # a new generation: the operator writes Ready
    obj = wait_for(
        lambda: (o := ready(namespace, "searchindex", "products")) and o["status"]["observedGeneration"] == 2 and o,
        what="the SearchIndex reconciled at generation 2",
    )
    assert {c["type"]: c["status"] for c in obj["status"]["conditions"]} == {"Ready": "True", "Synced": "True"}
    assert obj["status"]["documents"] == 1234 and obj["status"]["sync"]["mode"] == "api"


def test_the_example_applies_and_becomes_ready(namespace, backends):
    for example in ("stack.yaml", "database.yaml", "search.yaml"):
        namespace.kubectl("apply", "-f", str(EXAMPLES / example))
    for name in ("products", "articles"):
        wait_for(lambda n=name: ready(namespace, "searchindex", n), what=f"the example SearchIndex {name} Ready")
    applied = config(namespace)["searchIndexes"]
    assert applied["articles"]["source"]["mongodb"]["fields"]["author"] == "author.name"
    assert applied["products"]["synonyms"]["tv"] == ["television"]
    assert namespace.get("statefulset", "demo-search") is not None
