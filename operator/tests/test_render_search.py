"""render() with SearchIndexes: their place in the config, the search component (a
StatefulSet and a Service) while one is in force and its removal when none is left (the api's
STACKYARD_SEARCH_URL set all along), Ready=False with why for a spec that cannot work in its Stack
(and only then), the search-only API key only in the credentials, the Stack's SearchReady."""

from __future__ import annotations

import json

from stackyard.config import SEARCH_API_KEY
from stackyard_operator.conditions import merge_conditions
from stackyard_operator.render import Observed, render
from stackyard_operator.search import SearchWorkload
from test_render import BACKENDS, STACK, conditions

API_KEY = "search-only-key-do-not-show"


def index(name: str = "products", generation: int = 1, **spec):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "SearchIndex",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "generation": generation},
        "spec": {"stackRef": {"name": "demo"}, "source": {"api": {}}} | spec,
        "status": {},
    }


def mongo_index(name: str = "articles", **mongodb):
    return index(name, source={"mongodb": {"collection": "articles"} | mongodb})


def database(name: str = "app", **connection):
    return {
        "apiVersion": "stackyard.dev/v1alpha1",
        "kind": "Database",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "stackRef": {"name": "demo"},
            "connection": {"uriSecretRef": {"name": "backends", "key": "mongodb"}, "database": "shop"} | connection,
        },
    }


def stack(**search):
    return STACK | {"spec": STACK["spec"] | {"search": search}}


def ready(desired, kind, name):
    condition = conditions(desired, kind, name)["Ready"]
    return condition.status, condition.reason, condition.message


def objects(desired, kind):
    return {o["metadata"]["name"]: o for o in desired.objects if o["kind"] == kind}


def container_of(workload):
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def env_of(workload):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container_of(workload)["env"]}


def test_a_search_index_deploys_the_search_component_and_tells_the_api_where_it_is():
    settings = {
        "storage": "20Gi",
        "storageClassName": "fast-ssd",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "nodeSelector": {"disk": "ssd"},
    }
    desired = render(Observed(stack(**settings), [index()], {"backends": BACKENDS}))
    assert desired.config.search_indexes["products"].source.api is not None
    assert ready(desired, "SearchIndex", "products")[:2] == ("True", "InForce")
    assert desired.stack_status.fields["members"]["SearchIndex"] == 1

    statefulset = objects(desired, "StatefulSet")["demo-search"]
    assert statefulset["metadata"]["ownerReferences"][0]["kind"] == "Stack"
    assert statefulset["spec"]["replicas"] == 1 and statefulset["spec"]["serviceName"] == "demo-search"
    retention = statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}, "the index files outlive the StatefulSet"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "demo-stackyard" and pod["nodeSelector"] == {"disk": "ssd"}
    container = container_of(statefulset)
    assert container["image"].endswith("/stackyard-api:" + desired.config.spec.image.tag)
    assert container["command"] == ["stackyard-search"]
    assert container["resources"] == settings["resources"]
    assert container["ports"] == [{"name": "http", "containerPort": 7700, "protocol": "TCP"}]
    assert {"name": "data", "mountPath": "/var/lib/stackyard/search"} in container["volumeMounts"]
    env = env_of(statefulset)
    assert env["STACKYARD_STACK"] == "demo" and env["STACKYARD_PORT"] == "7700"
    assert env["STACKYARD_SEARCH_DATA"] == "/var/lib/stackyard/search"
    assert env["STACKYARD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "STACKYARD_POD_NAME" in env and "STACKYARD_NODE_NAME" in env

    api = objects(desired, "Deployment")["demo-api"]
    assert container_of(statefulset)["securityContext"] == container_of(api)["securityContext"]
    assert pod["securityContext"] == api["spec"]["template"]["spec"]["securityContext"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == container_of(api)[probe]["httpGet"]["path"]
    assert "annotations" not in statefulset["spec"]["template"]["metadata"], "config changes are watched, no restart"

    service = objects(desired, "Service")["demo-search"]
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 7700
    assert env_of(api)["STACKYARD_SEARCH_URL"] == "http://demo-search.shop.svc:7700"
    assert "STACKYARD_SEARCH_URL" not in env_of(objects(desired, "Deployment")["demo-worker"])

    search_ready = conditions(desired, "Stack", "demo")["SearchReady"]
    assert (search_ready.status, search_ready.reason) == ("True", "Deployed")
    assert search_ready.message == "StatefulSet demo-search serves 1 SearchIndex"
    available = conditions(desired, "Stack", "demo")["Available"]
    assert available.status == "False" and "search 0/1 ready" in available.message

    workloads = {"api": {"readyReplicas": 2}, "worker": {"readyReplicas": 1}, "search": {"readyReplicas": 1}}
    desired = render(Observed(stack(**settings), [index()], {"backends": BACKENDS}, workloads=workloads))
    assert conditions(desired, "Stack", "demo")["Available"].status == "True"


def test_without_a_search_index_there_is_no_search_component():
    desired = render(Observed(STACK, [], {"backends": BACKENDS}))
    assert "demo-search" not in objects(desired, "StatefulSet") and "demo-search" not in objects(desired, "Service")
    # Set all the same: the first index must not roll the api out.
    assert (
        env_of(objects(desired, "Deployment")["demo-api"])["STACKYARD_SEARCH_URL"] == "http://demo-search.shop.svc:7700"
    )
    assert "SearchReady" not in conditions(desired, "Stack", "demo")
    assert desired.obsolete == []


def test_the_last_index_gone_makes_the_statefulset_and_service_obsolete_and_leaves_the_claim():
    workload = SearchWorkload(uid="uid-sts", ready_replicas=1, storage="10Gi", storage_class_name=None)
    desired = render(Observed(STACK, [], {"backends": BACKENDS}, search_workload=workload))
    assert [(o.kind, o.name, o.uid) for o in desired.obsolete] == [
        ("Service", "demo-search", ""),
        ("StatefulSet", "demo-search", "uid-sts"),
    ]
    assert not any(o["kind"] == "PersistentVolumeClaim" for o in desired.objects)
    assert (
        env_of(objects(desired, "Deployment")["demo-api"])["STACKYARD_SEARCH_URL"] == "http://demo-search.shop.svc:7700"
    )
    assert "Deployment" not in {o.kind for o in desired.obsolete}


def test_a_database_ref_naming_no_database_of_the_stack_is_not_ready_and_becomes_ready_with_it():
    members = [mongo_index(databaseRef={"name": "app"})]
    desired = render(Observed(STACK, members, {"backends": BACKENDS}))
    status, reason, message = ready(desired, "SearchIndex", "articles")
    assert (status, reason) == ("False", "DatabaseNotFound")
    assert message == "source.mongodb.databaseRef: no Database app with a spec.stackRef naming Stack demo"
    assert desired.config.search_indexes == {}
    assert "demo-search" not in objects(desired, "StatefulSet"), "no index in force, no component"
    assert "SearchIndex articles: DatabaseNotFound" in conditions(desired, "Stack", "demo")["MembersReady"].message

    desired = render(Observed(STACK, [*members, database()], {"backends": BACKENDS}))
    assert ready(desired, "SearchIndex", "articles")[:2] == ("True", "InForce")
    assert desired.config.search_indexes["articles"].source.mongodb.database_ref.name == "app"
    assert "demo-search" in objects(desired, "StatefulSet")


def test_a_database_ref_to_an_invalid_database_says_why():
    broken = database(uriSecretRef={"name": "nowhere", "key": "uri"})
    desired = render(Observed(STACK, [mongo_index(databaseRef={"name": "app"}), broken], {"backends": BACKENDS}))
    status, reason, message = ready(desired, "SearchIndex", "articles")
    assert (status, reason) == ("False", "DatabaseInvalid")
    assert (
        message == "source.mongodb.databaseRef: Database app is not in force (SecretNotFound: Secret nowhere not found)"
    )


def test_a_mongodb_source_without_database_ref_reads_the_stacks_own_database():
    desired = render(Observed(STACK, [mongo_index()], {"backends": BACKENDS}))
    assert ready(desired, "SearchIndex", "articles")[:2] == ("True", "InForce")


def test_a_mapped_primary_key_and_an_attribute_no_document_has_are_refused_with_the_setting_named():
    fields = {"title": "headline", "author": "author", "publishedAt": "meta.published"}
    conflict = mongo_index(fields=fields | {"id": "slug"})
    desired = render(Observed(STACK, [conflict], {"backends": BACKENDS}))
    status, reason, message = ready(desired, "SearchIndex", "articles")
    assert (status, reason) == ("False", "AttributeConflict")
    assert message.startswith("source.mongodb.fields maps 'id', the primaryKey, which always comes from _id")

    unmapped = mongo_index(fields=fields)
    unmapped["spec"]["sortableAttributes"] = ["publishedAt", "price"]
    desired = render(Observed(STACK, [unmapped], {"backends": BACKENDS}))
    status, reason, message = ready(desired, "SearchIndex", "articles")
    assert (status, reason) == ("False", "AttributeNotMapped")
    assert message == (
        "sortableAttributes: 'price' is in no document: source.mongodb.fields maps only author, publishedAt, title "
        "(and id, from _id)"
    )


def test_what_does_no_harm_is_in_force():
    fine = mongo_index(fields={"title": "headline", "author": "author", "price": "price"})
    fine["spec"] |= {
        "searchableAttributes": ["title", "author.name"],  # nested in a mapped attribute
        "sortableAttributes": ["price", "id"],  # not displayed; the primary key
        "filterableAttributes": ["author.country"],
        "facetableAttributes": ["price"],
        "displayedAttributes": ["title", "author"],
        "typoTolerance": {"disableOnAttributes": ["sku", "price"]},  # not searchable, not even mapped
    }
    api = index("notes", filterableAttributes=["anything"], typoTolerance={"disableOnAttributes": ["title"]})
    desired = render(Observed(STACK, [fine, api], {"backends": BACKENDS}))
    assert ready(desired, "SearchIndex", "articles")[:2] == ("True", "InForce")
    assert ready(desired, "SearchIndex", "notes")[:2] == ("True", "InForce")
    assert (
        conditions(desired, "Stack", "demo")["SearchReady"].message == "StatefulSet demo-search serves 2 SearchIndexes"
    )


def test_a_spec_the_model_refuses_is_invalid_and_the_last_good_version_stays():
    good = render(Observed(STACK, [index(searchableAttributes=["title"])], {"backends": BACKENDS}))
    broken = index(generation=2, searchableAttributes=["*", "title"])
    desired = render(Observed(STACK, [broken], {"backends": BACKENDS}, previous_config=good.config))
    status, reason, message = ready(desired, "SearchIndex", "products")
    assert (status, reason) == ("False", "Invalid")
    assert "`*` stands alone" in message and message.endswith("the last good version stays in force")
    assert desired.config.search_indexes["products"].searchable_attributes == ["title"]
    assert "demo-search" in objects(desired, "StatefulSet")


def test_an_index_whose_database_goes_keeps_its_last_good_version_only_if_that_one_works():
    good = render(Observed(STACK, [mongo_index(), database()], {"backends": BACKENDS}))
    moved = mongo_index(databaseRef={"name": "gone"})
    desired = render(Observed(STACK, [moved, database()], {"backends": BACKENDS}, previous_config=good.config))
    status, reason, message = ready(desired, "SearchIndex", "articles")
    assert (status, reason) == ("False", "DatabaseNotFound") and message.endswith("stays in force")
    assert desired.config.search_indexes["articles"].source.mongodb.database_ref is None

    on_app = render(Observed(STACK, [mongo_index(databaseRef={"name": "app"}), database()], {"backends": BACKENDS}))
    desired = render(
        Observed(
            STACK, [mongo_index(databaseRef={"name": "app"})], {"backends": BACKENDS}, previous_config=on_app.config
        )
    )
    assert ready(desired, "SearchIndex", "articles")[1] == "DatabaseNotFound"
    assert desired.config.search_indexes == {}, "the last good version names the same missing Database"


def test_the_search_key_is_only_in_the_credentials_and_a_missing_secret_says_so_on_the_stack():
    ref = {"searchApiKeySecretRef": {"name": "search-keys", "key": "search"}}
    desired = render(Observed(stack(**ref), [index()], {"backends": BACKENDS, "search-keys": {"search": API_KEY}}))
    assert desired.credentials[SEARCH_API_KEY] == API_KEY
    assert API_KEY not in json.dumps(objects(desired, "ConfigMap"))
    assert conditions(desired, "Stack", "demo")["SearchReady"].status == "True"

    desired = render(Observed(stack(**ref), [index()], {"backends": BACKENDS}))
    assert SEARCH_API_KEY not in desired.credentials
    search_ready = conditions(desired, "Stack", "demo")["SearchReady"]
    assert (search_ready.status, search_ready.reason) == ("False", "SecretNotFound")
    assert search_ready.message == (
        "spec.search.searchApiKeySecretRef: Secret search-keys not found; only the admin API key can search until "
        "it resolves"
    )
    assert conditions(desired, "Stack", "demo")["Ready"].status == "True", "the rest of the config applies"
    assert "demo-search" in objects(desired, "StatefulSet")

    desired = render(Observed(stack(**ref), [], {"backends": BACKENDS, "search-keys": {"search": API_KEY}}))
    search_ready = conditions(desired, "Stack", "demo")["SearchReady"]
    assert (search_ready.status, search_ready.reason) == ("True", "NoIndexes")


def test_a_changed_volume_size_keeps_the_statefulsets_claim_template_and_says_what_to_do():
    workload = SearchWorkload(uid="uid-sts", ready_replicas=1, storage="10Gi", storage_class_name=None)
    desired = render(Observed(stack(storage="50Gi"), [index()], {"backends": BACKENDS}, search_workload=workload))
    (claim,) = objects(desired, "StatefulSet")["demo-search"]["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"]
    search_ready = conditions(desired, "Stack", "demo")["SearchReady"]
    assert (search_ready.status, search_ready.reason) == ("False", "VolumeImmutable")
    assert "spec.search asks for a 50Gi volume" in search_ready.message
    assert "expand the claim data-demo-search-0" in search_ready.message

    same = render(Observed(STACK, [index()], {"backends": BACKENDS}, search_workload=workload))
    assert conditions(same, "Stack", "demo")["SearchReady"].reason == "Deployed"

    # The API server writes a quantity back in its own form: the same amount is no change.
    written_back = SearchWorkload(uid="uid-sts", ready_replicas=1, storage="512Mi", storage_class_name=None)
    same = render(Observed(stack(storage="0.5Gi"), [index()], {"backends": BACKENDS}, search_workload=written_back))
    assert conditions(same, "Stack", "demo")["SearchReady"].reason == "Deployed"


def test_the_search_components_synced_condition_and_status_fields_are_kept():
    desired = render(Observed(STACK, [index()], {"backends": BACKENDS}))
    update = desired.statuses[("SearchIndex", "products")]
    assert update.fields == {}, "documents, sync, rebuilding and indexVersion are the search component's"
    synced = {"type": "Synced", "status": "True", "reason": "UpToDate", "message": "", "lastTransitionTime": "t0"}
    merged = merge_conditions([synced], update.conditions, update.generation, "t1")
    assert [c["type"] for c in merged] == ["Ready", "Synced"]
