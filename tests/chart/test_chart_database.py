"""The default Stack's Database (stack.database): rendered from the chart's MongoDB or the
external one, merged with stack.database.spec, named by the Stack's spec.mongodb.databaseRef,
and accepted by the API server against the CRDs."""

from __future__ import annotations

import json

import pytest
from stack_chart import find
from stackyard.resources import DatabaseSpec, StackSpec

ON = {"mongodb": {"enabled": True}, "stack": {"enabled": True, "database": {"enabled": True, "spec": {}}}}


def with_database_spec(spec: dict) -> dict:
    return {**ON, "stack": {**ON["stack"], "database": {"enabled": True, "spec": spec}}}


def test_the_stack_names_a_database_connected_to_the_charts_mongodb(chart_helm):
    objects = chart_helm.template(with_database_spec({"pool": {"maxPoolSize": 50}, "indexPolicy": "report"}))
    stack, database = find(objects, "Stack", "demo-stack"), find(objects, "Database", "demo-stack")
    assert stack["spec"]["mongodb"] == {"databaseRef": {"name": "demo-stack"}}
    spec = DatabaseSpec.model_validate(database["spec"])
    assert spec.stack_ref.name == "demo-stack"
    uri = spec.connection.uri_secret_ref
    assert (uri.name, uri.key) == ("demo-stack-backends", "mongodb")
    assert spec.pool.max_pool_size == 50 and spec.index_policy == "report"
    assert StackSpec.model_validate(stack["spec"]).mongodb.database_ref is not None


def test_an_external_mongodb_is_the_databases_connection(chart_helm):
    values = {
        "mongodb": {"enabled": False, "external": {"uriSecretRef": {"name": "atlas", "key": "uri"}}},
        "stack": {"enabled": True, "database": {"enabled": True, "spec": {"connection": {"database": "app"}}}},
    }
    database = find(chart_helm.template(values), "Database", "demo-stack")
    assert database["spec"]["connection"] == {"uriSecretRef": {"name": "atlas", "key": "uri"}, "database": "app"}


def test_without_the_database_the_stack_keeps_its_connection_string(chart_helm):
    objects = chart_helm.template({"mongodb": {"enabled": True}, "stack": {"enabled": True}})
    assert not [o for o in objects if o["kind"] == "Database"]
    mongodb = find(objects, "Stack")["spec"]["mongodb"]
    assert mongodb == {"uriSecretRef": {"name": "demo-stack-backends", "key": "mongodb"}}


def test_a_database_without_any_mongodb_fails_with_what_to_set(chart_helm):
    result = chart_helm.try_template({"stack": {"enabled": True, "database": {"enabled": True, "spec": {}}}})
    assert result.returncode != 0
    assert "stack.database: the Database needs MongoDB" in result.stderr


def test_a_misspelt_database_field_is_refused_by_the_values_schema(chart_helm):
    result = chart_helm.try_template(with_database_spec({"pools": {"maxPoolSize": 5}}))
    assert result.returncode != 0 and "pools" in result.stderr


@pytest.mark.usefixtures("chart_crds")
def test_the_api_server_accepts_the_rendered_stack_and_database(chart_helm, chart_namespace):
    objects = chart_helm.template(
        with_database_spec({"backup": {"schedule": "0 3 * * *", "volume": {"claimName": "db-backups"}}}),
        namespace=chart_namespace.name,
    )
    for kind in ("Database", "Stack"):
        body = json.dumps(find(objects, kind, "demo-stack"))
        result = chart_namespace.kubectl("create", "--dry-run=server", "-f", "-", "-o", "json", input=body, check=False)
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        if kind == "Database":  # the API server filled in the schema's defaults
            assert created["spec"]["pool"]["maxPoolSize"] == 100
            assert created["spec"]["backup"]["retention"]["keepLast"] == 7


def test_database_spec_keys_are_those_of_the_database_crd():
    from stack_chart import CHART

    schema = json.loads((CHART / "values.schema.json").read_text())
    keys = set(schema["properties"]["stack"]["properties"]["database"]["properties"]["spec"]["properties"])
    assert keys == set(DatabaseSpec.model_json_schema(by_alias=True)["properties"]) - {"stackRef"}
