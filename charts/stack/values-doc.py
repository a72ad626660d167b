#!/usr/bin/env python3
"""The values table of docs/chart.md, generated from values.schema.json and values.yaml.

    values-doc.py                  print the table
    values-doc.py --write FILE     replace the table between the markers in FILE
    values-doc.py --check FILE     exit 1 when the table in FILE is out of date

Types, enums and bounds come from the schema; defaults from values.yaml; descriptions
from the "# --" comments above each key in values.yaml. A row is made for the first key
on each path that has such a comment; a schema leaf reached without one, or a key that
is in values.yaml but not in the schema (or the reverse), is an error: the three files
stay in step.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent
BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):")


class DocError(Exception):
    pass


def descriptions(values_text: str) -> dict[str, str]:
    """Dotted key path -> the text of the "# --" comment block right above that key."""
    found: dict[str, str] = {}
    path: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        match = KEY_LINE.match(line)
        if not match:
            comment = []
            continue
        indent = len(match["indent"])
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, match["key"]))
        start = next((n for n, text in enumerate(comment) if text.startswith("-- ")), None)
        if start is not None:
            text = " ".join([comment[start][3:], *comment[start + 1 :]])
            found[".".join(key for _, key in path)] = text.strip()
        comment = []
    return found


def resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def describe_type(node: dict[str, Any], schema: dict[str, Any]) -> str:
    node = resolve(node, schema)
    if "allOf" in node:
        node = resolve(node["allOf"][0], schema)
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "object")
    text = " or ".join(kind) if isinstance(kind, list) else kind
    if "minimum" in node and "maximum" in node:
        text += f" ({node['minimum']} to {node['maximum']})"
    if node.get("items", {}).get("enum"):
        text += " of " + ", ".join(f"`{v}`" for v in node["items"]["enum"])
    return text


def show_default(value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": "))
    return f"`{text}`"


def rows(schema: dict[str, Any], values: Any, described: dict[str, str]) -> list[tuple[str, str, str, str]]:
    found: list[tuple[str, str, str, str]] = []

    def walk(node: dict[str, Any], value: Any, path: str) -> None:
        node = resolve(node, schema)
        if path in described:
            found.append((path, describe_type(node, schema), show_default(value), described[path]))
            return
        properties = node.get("properties")
        if not properties:
            raise DocError(f"values.yaml: {path} has no '# --' description (nor has any key above it)")
        if not isinstance(value, dict):
            raise DocError(f"values.yaml: {path} should be a mapping")
        missing = sorted(set(properties) - set(value) - {"global"})
        unknown = sorted(set(value) - set(properties))
        if missing:
            raise DocError(f"values.yaml: {path or 'the top level'} lacks {', '.join(missing)} (in values.schema.json)")
        if unknown:
            raise DocError(f"values.schema.json: {path or 'the top level'} lacks {', '.join(unknown)} (in values.yaml)")
        for key in value:  # in the order of values.yaml
            walk(properties[key], value[key], f"{path}.{key}" if path else key)

    walk(schema, values, "")
    return found


def table() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values_text = (CHART / "values.yaml").read_text()
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for key, kind, default, description in rows(schema, yaml.safe_load(values_text), descriptions(values_text)):
        cells = (f"`{key}`", kind, default, description.replace("<", "&lt;").replace(">", "&gt;"))
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def replaced(document: str, generated: str) -> str:
    if BEGIN not in document or END not in document:
        raise DocError(f"the markers {BEGIN} and {END} are missing")
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help="replace the table between the markers in FILE")
    group.add_argument("--check", type=Path, metavar="FILE", help="fail when the table in FILE is out of date")
    args = parser.parse_args(argv)
    try:
        generated = table()
        if args.write:
            args.write.write_text(replaced(args.write.read_text(), generated))
        elif args.check:
            if replaced(args.check.read_text(), generated) != args.check.read_text():
                print(f"{args.check}: the values table is out of date; run {Path(__file__).name} --write {args.check}")
                return 1
        else:
            sys.stdout.write(generated)
    except DocError as exc:
        print(f"values-doc: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
