"""values.schema.json refuses what would break the chart, naming the field; values.yaml,
the schema and the values table of docs/chart.md stay in step."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from stack_chart import CHART
from stackyard_harness.tools import REPO_ROOT

DOC = REPO_ROOT / "docs" / "chart.md"


@pytest.mark.parametrize(
    ("args", "field", "complaint"),
    [
        (["--set-json", "redis.persistence.size=5"], "/redis/persistence/size", "got number, want string"),
        (["--set", "redis.persistance.size=5Gi"], "/redis", "additional properties 'persistance' not allowed"),
        (["--set", "operator.replica=2"], "/operator", "additional properties 'replica' not allowed"),
        (["--set", "operator.watch.scope=everything"], "/operator/watch/scope", "value must be one of"),
        (["--set", "operator.replicas=-1"], "/operator/replicas", "minimum"),
        (["--set", "operator.image.tag=latest"], "/operator/image/tag", "failed"),
        (["--set", "operator.image.pullPolicy=Sometimes"], "/operator/image/pullPolicy", "value must be one of"),
        (["--set", "operator.resources.limits=null"], "/operator/resources", "missing property 'limits'"),
        (["--set", "redis.persistence.size=lots"], "/redis/persistence/size", "does not match pattern"),
        (["--set", "redis.config.maxmemoryPolicy=allkeys-everything"], "/redis/config/maxmemoryPolicy", "one of"),
        (["--set", "otelCollector.otlpExporter.protocol=udp"], "/otelCollector/otlpExporter/protocol", "one of"),
        (["--set-json", 'mongodb.enabled="yes"'], "/mongodb/enabled", "got string, want boolean"),
        (["--set", "stack.spec.aip.replicas=3"], "/stack/spec", "additional properties 'aip' not allowed"),
        (["--set", "stack.name=Shop"], "/stack/name", "does not match pattern"),
        (["--set", "fullnameOverride=" + "x" * 41], "/fullnameOverride", "maxLength"),
    ],
)
def test_values_that_break_the_schema_are_refused_naming_the_field(chart_helm, args, field, complaint):
    result = chart_helm.try_template(None, *args)
    assert result.returncode != 0, f"{args} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert f"at '{field}'" in result.stderr and complaint in result.stderr, result.stderr


def test_schema_is_draft_07_and_closed_on_the_charts_own_objects():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def closed(node, path):
        if "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, child in node["properties"].items():
                closed(child, f"{path}.{key}")

    closed(schema, "values")


def test_default_stack_spec_keys_are_those_of_the_stack_crd():
    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text())
    crd = yaml.safe_load((CHART / "crds" / "stackyard.dev_stacks.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    crd_spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert set(schema["properties"]["stack"]["properties"]["spec"]["properties"]) == set(crd_spec)


def test_values_doc_table_matches_the_schema_and_values():
    result = subprocess.run(
        [sys.executable, str(CHART / "values-doc.py"), "--check", str(DOC)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_values_doc_refuses_a_value_missing_from_the_schema(tmp_path):
    chart = tmp_path / "stack"
    chart.mkdir()
    for name in ("values-doc.py", "values.schema.json"):
        (chart / name).write_text((CHART / name).read_text())
    (chart / "values.yaml").write_text((CHART / "values.yaml").read_text() + "\n# -- Not in the schema.\nstray: 1\n")
    result = subprocess.run([sys.executable, str(chart / "values-doc.py")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "values.schema.json: the top level lacks stray" in result.stderr
