"""The versions of an index on disk: which one is served, a swap that is all or nothing, and
the leftovers a crash can leave."""

from __future__ import annotations

from pathlib import Path

import pytest
from stackyard.search.versions import IndexVersions, VersionMeta


def _built(versions: IndexVersions, version: int, checkpoint: dict[str, object] | None = None) -> None:
    engine = versions.prepare(version)
    (engine / "segment").write_text("data")
    versions.write_meta(VersionMeta(version=version, layout_key="k", checkpoint=checkpoint))


def test_a_new_index_has_no_version_served(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path / "products")
    assert versions.current() is None
    assert versions.next_version() == 1


def test_swap_serves_the_new_version_with_its_checkpoint(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path / "products")
    _built(versions, 1)
    versions.swap(1)
    _built(versions, 2, checkpoint={"resumeToken": "abc"})
    assert versions.current() == 1  # built but not swapped: the old one is still served
    versions.swap(2)
    assert versions.current() == 2
    assert versions.read_meta(2).checkpoint == {"resumeToken": "abc"}
    assert versions.remove_others() == [1]
    assert versions.versions() == [2]
    assert (versions.engine_dir(2) / "segment").read_text() == "data"
    assert not list(versions.root.glob(".*tmp"))  # the temporary file of the swap is gone


def test_a_version_left_half_built_by_a_crash_is_never_served_and_is_removed(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path / "products")
    _built(versions, 1)
    versions.swap(1)
    versions.prepare(2)  # a rebuild killed before its meta and swap
    assert versions.current() == 1
    assert versions.next_version() == 3  # a new build never reuses a leftover's directory
    assert versions.remove_others() == [2]
    assert versions.versions() == [1]


def test_swap_refuses_a_version_without_its_meta(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path / "products")
    versions.prepare(1)
    with pytest.raises(FileNotFoundError):
        versions.swap(1)
    assert versions.current() is None


def test_meta_round_trips_the_spec_and_the_layout(tmp_path: Path) -> None:
    versions = IndexVersions(tmp_path / "products")
    versions.prepare(4)
    meta = VersionMeta(version=4, layout_key="abc", checkpoint={"at": 1}, spec={"primaryKey": "sku"})
    versions.write_meta(meta)
    assert versions.read_meta(4) == meta
