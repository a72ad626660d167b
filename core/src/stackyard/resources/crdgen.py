"""CustomResourceDefinitions generated from the pydantic models.

Pydantic writes JSON Schema 2020-12 (with $defs, $ref and anyOf-null for optional
fields); Kubernetes wants a structural OpenAPI v3 schema (everything inline, a type on
every node, no null; a field of any JSON value, `Any` in a model, has no type and
declares `x-kubernetes-preserve-unknown-fields` instead). `structural_schema` converts
one into the other, keeping descriptions, defaults, enums, bounds, patterns and the
`x-kubernetes-*` extensions (CEL rules among them) that the models declare.

`stackyard-crds --out crds --out charts/stack/crds` writes one file per kind;
`--reference docs/reference/crds.md` also writes the reference for people
(`crd_reference.render_reference`); `--check` exits non-zero when a file on disk differs
(CI and the tests use it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .base import CATEGORY, GROUP, VERSION, Condition, CustomResource, SecretKeyRef, StackRef
from .crd_reference import render_reference
from .registry import KINDS
from .stack import ComputeResources

_DROP = {"title"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in _DROP}
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_resolve(target, defs), **node}  # siblings (description, default) win
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {node['anyOf']} in a structural schema")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", ...) is None:
            del rest["default"]
        node = {**_resolve(options[0], defs), **rest, "x-stackyard-optional": True}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "default" in node and node["default"] is None:
        del node["default"]  # absent means the same, and null is not a value of a non-nullable field
    # A property may be named like a dropped key (a step's `title`): only schema keys go.
    return {
        k: {name: _resolve(schema, defs) for name, schema in v.items()} if k == "properties" else _resolve(v, defs)
        for k, v in node.items()
    }


def _finish(node: Any) -> Any:
    """Second pass: object defaults and bookkeeping keys."""
    if isinstance(node, list):
        return [_finish(item) for item in node]
    if not isinstance(node, dict):
        return node
    optional = node.pop("x-stackyard-optional", False)
    node = {k: _finish(v) if k not in ("properties", "default") else v for k, v in node.items()}
    if isinstance(node.get("default"), dict):
        node["default"] = _prune(node["default"])
    props = node.get("properties")
    if isinstance(props, dict):
        props = node["properties"] = {name: _finish(child) for name, child in props.items()}
        for name, child in props.items():
            # A nested object whose fields all have defaults gets `default: {}` so that
            # the API server fills them in; optional (nullable) blocks stay absent,
            # because rules such as has(self.smtp) depend on it, and so do required ones.
            if (
                name not in node.get("required", [])
                and child.get("type") == "object"
                and "properties" in child
                and "default" not in child
                and not child.get("required")
                and not child.get("x-stackyard-nullable")
            ):
                child["default"] = {}
            child.pop("x-stackyard-nullable", None)
    if optional:
        node["x-stackyard-nullable"] = True
    return dict(sorted(node.items(), key=_key_order))


def _prune(value: Any) -> Any:
    """A default object without its null and empty members (absent means the same)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != [] and v != {}}
    return value


_FIRST = ["type", "description", "format", "enum", "default"]
_LAST = ["required", "properties", "additionalProperties", "items", "x-kubernetes-validations"]


def _key_order(item: tuple[str, Any]) -> tuple[int, int, str]:
    key = item[0]
    if key in _FIRST:
        return (0, _FIRST.index(key), key)
    if key in _LAST:
        return (2, _LAST.index(key), key)
    return (1, 0, key)


def structural_schema(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _finish(_resolve(raw, defs))
    schema.pop("x-stackyard-nullable", None)
    return schema


def crd(resource: type[CustomResource]) -> dict[str, Any]:
    info = resource.info
    fields = resource.model_fields
    spec_schema = structural_schema(fields["spec"].annotation)  # type: ignore[arg-type]
    status_schema = structural_schema(fields["status"].annotation)  # type: ignore[arg-type]
    for schema in (spec_schema, status_schema):
        schema.pop("default", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/part-of": "stackyard"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": info.short_names,
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "jsonPath": c.json_path,
                            **({"description": c.description} if c.description else {}),
                            **({"priority": c.priority} if c.priority else {}),
                        }
                        for c in info.columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": info.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `make crds` from the models in core/src/stackyard/resources. Do not edit.\n"


def render_files() -> dict[str, str]:
    """File name -> YAML text, one CRD per kind."""
    return {
        f"{GROUP}_{kind.info.plural}.yaml": HEADER + yaml.safe_dump(crd(kind), sort_keys=False, width=120)
        for kind in KINDS
    }


# Object types used across kinds, described once in the reference.
SHARED_TYPES: list[type[Any]] = [StackRef, SecretKeyRef, Condition, ComputeResources]


def render_crd_reference() -> str:
    """docs/reference/crds.md."""
    shared = {model.__name__: structural_schema(model) for model in SHARED_TYPES}
    conditions = {kind.info.kind: kind.info.conditions for kind in KINDS}
    return render_reference([crd(kind) for kind in KINDS], shared, conditions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackyard-crds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", action="append", type=Path, required=True, help="directory to write (repeatable)")
    parser.add_argument("--reference", type=Path, help="markdown reference of every CRD to write (or check)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on drift")
    args = parser.parse_args(argv)
    stale_reference = args.reference is not None and _stale_reference(args.reference, write=not args.check)
    files = render_files()
    drift = []
    for out in args.out:
        expected = set(files)
        present = {p.name for p in out.glob(f"{GROUP}_*.yaml")} if out.exists() else set()
        for name in sorted(present - expected):
            drift.append(out / name)
            if not args.check:
                (out / name).unlink()
        for name, text in files.items():
            path = out / name
            if not path.exists() or path.read_text() != text:
                drift.append(path)
                if not args.check:
                    out.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
    if args.check and drift:
        print("CRDs differ from the models (run `make crds`):", *map(str, drift), sep="\n  ", file=sys.stderr)
    if args.check and stale_reference:
        print(f"{args.reference} is out of date with the models (run `make crds`)", file=sys.stderr)
    return 1 if args.check and (drift or stale_reference) else 0


def _stale_reference(path: Path, write: bool) -> bool:
    """Whether the reference at `path` differs from the models; rewritten when `write`."""
    text = render_crd_reference()
    stale = not path.exists() or path.read_text() != text
    if stale and write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return stale


if __name__ == "__main__":
    sys.exit(main())
