"""Reading an attribute of a document by its dotted path, the one way the index (when it
indexes a document) and the filters' reference evaluator (when it checks one) both read it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def found_at(document: Mapping[str, Any], path: str) -> list[Any]:
    """The values at a dotted path, as stored (an array stays one value): a path steps into
    every object of an array, and a key may itself hold dots ({"author.name": ...})."""
    if "." not in path:
        return [document[path]] if path in document else []
    parts = path.split(".")
    found: list[Any] = []

    def walk(node: Any, at: int) -> None:
        if at == len(parts):
            found.append(node)
        elif isinstance(node, list):
            for element in node:
                if isinstance(element, Mapping | list):
                    walk(element, at)
        elif isinstance(node, Mapping):
            for end in range(at + 1, len(parts) + 1):
                key = ".".join(parts[at:end])
                if key in node:
                    walk(node[key], end)

    walk(document, 0)
    return found
