"""docs/reference/crds.md: rendered from the CRDs, complete, and checked as `make test` checks it."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel
from stackyard.resources import KINDS, EmailProvider, Stack
from stackyard.resources.crd_reference import render_reference, table_text
from stackyard.resources.crdgen import SHARED_TYPES, crd, main, render_crd_reference, structural_schema
from stackyard.resources.notify import NotificationWorkflow

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "reference" / "crds.md"


@pytest.fixture(scope="module")
def reference() -> str:
    return render_crd_reference()


def test_checked_in_reference_matches_the_models(reference):
    assert REFERENCE.read_text() == reference, "docs/reference/crds.md differs from the models: run `make crds`"


def test_reference_has_a_section_and_an_index_row_for_every_kind(reference):
    for kind in KINDS:
        name = kind.info.kind
        assert f"\n## {name}\n" in reference
        assert f"| [{name}](#{name.lower()}) | `stackyard.dev/v1alpha1` |" in reference
        for short_name in kind.info.short_names:
            assert f"`{short_name}`" in reference


def _model_of(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models inside a field's type, with the path suffix that reaches them."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _model_of(get_args(annotation)[0])
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            yield from _model_of(arg)
    elif origin is list:
        for suffix, model in _model_of(get_args(annotation)[0]):
            yield "[]" + suffix, model
    elif origin is dict:
        for suffix, model in _model_of(get_args(annotation)[1]):
            yield ".<name>" + suffix, model
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation


def _field_paths(model: type[BaseModel], path: str) -> Iterator[str]:
    """Every field path under `model` as a person reads it, down to the shared types."""
    for name, field in model.model_fields.items():
        field_path = f"{path}.{field.alias or name}"
        yield field_path
        for suffix, child in _model_of(field.annotation):
            if child not in SHARED_TYPES:
                yield from _field_paths(child, field_path + suffix)


@pytest.mark.parametrize("kind", [Stack, EmailProvider, NotificationWorkflow], ids=lambda k: k.info.kind)
def test_reference_has_every_spec_and_status_field_of_the_model(reference, kind):
    section = reference.split(f"\n## {kind.info.kind}\n")[1].split("\n## ")[0]
    for part in ("spec", "status"):
        paths = list(_field_paths(kind.model_fields[part].annotation, part))
        assert len(paths) >= 3
        missing = [p for p in paths if f"| `{p}` |" not in section]
        assert not missing, f"{kind.info.kind}: fields without a row: {missing}"


def _validations(node: Any) -> Iterator[dict[str, str]]:
    if isinstance(node, list):
        for item in node:
            yield from _validations(item)
    elif isinstance(node, dict):
        yield from node.get("x-kubernetes-validations", [])
        for value in node.values():
            yield from _validations(value)


def test_reference_states_every_validation_rule(reference):
    rules = [rule for kind in KINDS for rule in _validations(crd(kind))]
    assert len(rules) > 30
    for rule in rules:
        assert table_text(rule["message"]) in reference
        assert rule["rule"].replace("|", "\\|") in reference


def test_shared_types_are_described_once_and_linked(reference):
    for model in SHARED_TYPES:
        assert reference.count(f"\n### {model.__name__}\n") == 1
        assert f"[{model.__name__}](#{model.__name__.lower()})" in reference
    # Never spelled out again where they are used.
    assert "`spec.smtp.passwordSecretRef.key`" not in reference
    assert "| `spec.smtp.passwordSecretRef` | [SecretKeyRef](#secretkeyref) |" in reference


def test_object_defaults_show_only_what_differs_from_their_fields():
    schema = structural_schema(Stack.model_fields["spec"].annotation)
    definition = {
        "metadata": {"name": "things.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"kind": "Thing", "plural": "things", "shortNames": ["th"]},
            "versions": [
                {
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "A thing.",
                            "properties": {"spec": schema, "status": {"type": "object", "properties": {}}},
                        }
                    },
                }
            ],
        },
    }
    text = render_reference([definition], {})
    # The worker's object default has one replica, its field's own default two.
    assert "| `spec.worker` | object (below) | its fields' defaults, but `replicas: 1` |" in text
    assert "| `spec.worker.replicas` | integer; 0 to 100 | `2` |" in text
    assert "| `spec.api.resources` | object (below) |" in text  # not shared here: a table of its own
    assert "**`spec.api.resources`**" in text


def test_check_fails_on_a_stale_or_missing_reference(tmp_path, capsys):
    crds, doc = tmp_path / "crds", tmp_path / "docs" / "reference" / "crds.md"
    args = ["--out", str(crds), "--reference", str(doc)]
    assert main(["--check", *args]) == 1
    assert f"{doc} is out of date with the models (run `make crds`)" in capsys.readouterr().err

    assert main(args) == 0
    assert doc.read_text() == render_crd_reference()
    assert main(["--check", *args]) == 0
    assert capsys.readouterr().err == ""

    doc.write_text(doc.read_text().replace("## EmailProvider", "## EmailProviders"))
    assert main(["--check", *args]) == 1
    err = capsys.readouterr().err
    assert "out of date" in err and "run `make crds`" in err and "CRDs differ" not in err
    assert "## EmailProviders" in doc.read_text()  # --check never writes
    assert main(args) == 0
    assert main(["--check", *args]) == 0
