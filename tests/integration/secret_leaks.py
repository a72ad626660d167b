"""Look for known secret values in captured output (process logs, exported telemetry) and
say which secret leaked where, in which form, without repeating the secret in the report."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

MIN_SECRET_LENGTH = 12
"""Shorter values could match by chance: the tests make long random ones."""
EXCERPT = 80


def secret_forms(value: str) -> dict[str, str]:
    """The ways a secret can show up in text: as it is, base64 (a Secret's data, a Basic
    Authorization header's payload), URL-encoded, and escaped inside a JSON string."""
    forms = {"as is": value, "base64": base64.b64encode(value.encode()).decode()}
    if (quoted := quote(value, safe="")) != value:
        forms["url-encoded"] = quoted
    if (escaped := json.dumps(value)[1:-1]) != value:
        forms["json-escaped"] = escaped
    return forms


@dataclass(frozen=True)
class Leak:
    secret: str
    form: str
    source: str
    line: int
    excerpt: str

    def __str__(self) -> str:
        return f"{self.secret} ({self.form}) in {self.source}, line {self.line}: {self.excerpt}"


def _excerpt(line: str, found: str, name: str) -> str:
    at = line.index(found)
    start, end = max(at - EXCERPT, 0), min(at + len(found) + EXCERPT, len(line))
    return line[start:end].replace(found, f"<{name}>")


def find_leaks(secrets: Mapping[str, str], outputs: Mapping[str, str]) -> list[Leak]:
    """Every line of every output (name -> text) that holds a form of a secret (name -> value)."""
    leaks = []
    for name, value in secrets.items():
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"secret {name!r} is too short to look for ({len(value)} characters)")
        for form, text in secret_forms(value).items():
            for source, output in outputs.items():
                if text not in output:
                    continue
                for number, line in enumerate(output.splitlines(), 1):
                    if text in line:
                        leaks.append(Leak(name, form, source, number, _excerpt(line, text, name)))
    return leaks
