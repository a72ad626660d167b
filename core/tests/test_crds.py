"""The CRDs are generated from the models, structural, and checked in as generated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stackyard.resources import KINDS, duration_seconds
from stackyard.resources.crdgen import crd, render_files

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("directory", ["crds", "charts/stack/crds"])
def test_checked_in_crds_match_the_models(directory):
    files = render_files()
    on_disk = {p.name: p.read_text() for p in (REPO / directory).glob("stackyard.dev_*.yaml")}
    assert set(on_disk) == set(files), "a CRD file is missing or extra: run `make crds`"
    for name, text in files.items():
        assert on_disk[name] == text, f"{directory}/{name} differs from the models: run `make crds`"


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, child in node.get("properties", {}).items():
            yield from _walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.info.kind)
def test_schema_is_structural(kind):
    schema = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        # Only a field of any JSON value may go without a type, and says so.
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True, f"{path} has no type"
        assert node.get("default", ...) is not None, f"{path} has a null default"
        for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "const", "title", "$defs"):
            assert forbidden not in node, f"{path} has {forbidden}"
        if node.get("type") == "array":
            assert "items" in node, f"{path} is an array without items"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.info.kind)
def test_every_kind_is_in_the_category_with_ready_and_age_columns(kind):
    definition = crd(kind)
    assert definition["spec"]["names"]["categories"] == ["stackyard"]
    version = definition["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert "Ready" in columns and columns[-1] == "Age"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    condition = status["conditions"]["items"]["properties"]
    assert set(condition) >= {"type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"}


def test_optional_blocks_have_no_default_but_settings_blocks_do():
    spec = crd(KINDS[1])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "default" not in spec["properties"]["smtp"], "has(self.smtp) rules need smtp absent by default"
    assert spec["properties"]["circuitBreaker"]["default"]["failureThreshold"] == 5


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h"])), min_size=1, max_size=4))
def test_duration_seconds_sums_its_parts(parts):
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit] for n, unit in parts)
    assert duration_seconds(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["", "10", "1d", "1 m", "-5s", "1.5.5s"])
def test_duration_seconds_refuses_what_the_crd_pattern_refuses(bad):
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds(bad)
