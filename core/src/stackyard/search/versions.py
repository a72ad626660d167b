"""The versions of one index on disk: `<data>/indexes/<name>/v<N>/` each, the one being served
named by `<data>/indexes/<name>/current`.

    indexes/<name>/current          "3" (written to a temporary file, then os.replace)
    indexes/<name>/v3/meta.json     {"version": 3, "created", "layoutKey", "checkpoint", "spec"}
    indexes/<name>/v3/engine/       the engine's files (tantivy's own meta.json among them)

A rebuild makes the next version beside the current one, fills it, writes its meta, then
swaps `current` and removes the old one: a crash at any point leaves either the old version
served (the half-built one is removed at the next start) or the new one. The checkpoint of a
synced index (where its change feed was when the version's data was read) lives in the meta
of the version it describes, so a swap brings its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..durable import write_atomically

CURRENT = "current"
META = "meta.json"
ENGINE = "engine"
_VERSION_DIR = re.compile(r"^v([0-9]+)$")
_SET_ASIDE = re.compile(r"^unreadable-v([0-9]+)-")


@dataclass(frozen=True)
class VersionMeta:
    """What the service keeps beside a version's engine files."""

    version: int
    layout_key: str
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    checkpoint: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    """The SearchIndex spec (camelCase) the files were built with: a version whose layout no
    longer matches the config is opened with it and served until its rebuild swaps."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created": self.created,
            "layoutKey": self.layout_key,
            "checkpoint": self.checkpoint,
            "spec": self.spec,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionMeta:
        return cls(
            version=int(data["version"]),
            layout_key=str(data.get("layoutKey", "")),
            created=str(data.get("created", "")),
            checkpoint=data.get("checkpoint"),
            spec=data.get("spec"),
        )


class IndexVersions:
    """The directory of one index (`<data>/indexes/<name>`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def version_dir(self, version: int) -> Path:
        return self.root / f"v{version}"

    def engine_dir(self, version: int) -> Path:
        """Where the engine of `version` keeps its files."""
        return self.version_dir(version) / ENGINE

    def current(self) -> int | None:
        """The version being served, None for an index never built (or only half-built)."""
        try:
            text = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not text.isdigit() or not (self.version_dir(int(text)) / META).is_file():
            return None
        return int(text)

    def versions(self) -> list[int]:
        """Every version directory present, in order (the current one and leftovers)."""
        if not self.root.is_dir():
            return []
        found = (_VERSION_DIR.match(entry.name) for entry in self.root.iterdir() if entry.is_dir())
        return sorted(int(match.group(1)) for match in found if match)

    def next_version(self) -> int:
        """A version number above every one present, so a new build never meets old files."""
        present = self.versions()
        current = self.current() or 0
        aside = [int(m.group(1)) for e in self.root.glob("unreadable-v*") if (m := _SET_ASIDE.match(e.name))]
        return max([current, *present, *aside]) + 1

    def prepare(self, version: int) -> Path:
        """An empty directory for the engine of a new `version`: (its path)."""
        directory = self.version_dir(version)
        if directory.exists():
            shutil.rmtree(directory)
        self.engine_dir(version).mkdir(parents=True)
        return self.engine_dir(version)

    def read_meta(self, version: int) -> VersionMeta:
        data = json.loads((self.version_dir(version) / META).read_text(encoding="utf-8"))
        return VersionMeta.from_json(data)

    def write_meta(self, meta: VersionMeta) -> None:
        write_atomically(self.version_dir(meta.version) / META, json.dumps(meta.to_json(), sort_keys=True))

    def swap(self, version: int) -> None:
        """Serve `version` from now on (its meta must be written): `current` replaced atomically."""
        if not (self.version_dir(version) / META).is_file():
            raise FileNotFoundError(f"version {version} of {self.root.name} has no {META}")
        write_atomically(self.root / CURRENT, f"{version}\n")

    def remove_version(self, version: int) -> None:
        shutil.rmtree(self.version_dir(version), ignore_errors=True)

    def remove_others(self) -> list[int]:
        """Remove every version but the current one (a swapped-out version, or one a crash left
        half-built); returns the versions removed."""
        keep = self.current()
        removed = [version for version in self.versions() if version != keep]
        for version in removed:
            self.remove_version(version)
        return removed

    def set_aside(self, version: int) -> Path:
        """Move a version that cannot be opened out of the way (never served or removed again),
        for a person to look at: its new path."""
        aside = self.root / f"unreadable-v{version}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
        os.replace(self.version_dir(version), aside)
        return aside

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
