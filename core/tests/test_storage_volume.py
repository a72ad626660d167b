"""VolumeStorage: what only the volume backend does (keys confined to the directory,
temporary files next to the target, the check's reasons, a subPath in a mounted volume)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from stackyard.storage.problems import StorageUnavailable
from stackyard.storage.volume import TEMP_PREFIX, VolumeStorage

NOBODY = 65534


def listing(directory: Path) -> list[str]:
    return sorted(path.relative_to(directory).as_posix() for path in directory.rglob("*"))


@pytest.mark.parametrize(
    "key", ["../outside", "/etc/passwd", "files/../../outside", "files//f_1", "./files", "files/.", "a\\b", "", "f\0"]
)
async def test_keys_outside_the_directory_are_refused(tmp_path: Path, key: str) -> None:
    storage = VolumeStorage(tmp_path / "bucket", mount=tmp_path)
    with pytest.raises(ValueError, match="relative path"):
        await storage.put(key, b"x", "text/plain")
    with pytest.raises(ValueError, match="relative path"):
        await storage.open_writer(key, "text/plain")
    with pytest.raises(ValueError, match="relative path"):
        await storage.head(key)
    with pytest.raises(ValueError, match="relative path"):
        await anext(aiter(storage.read(key)))
    with pytest.raises(ValueError, match="relative path"):
        await storage.delete(key)
    with pytest.raises(ValueError, match="relative path"):
        await storage.move("files/f_1", key)
    assert listing(tmp_path) == []  # nothing written anywhere


async def test_writer_uses_a_temporary_file_next_to_the_target(tmp_path: Path) -> None:
    storage = VolumeStorage(tmp_path)
    writer = await storage.open_writer("files/f_1", "image/png")
    await writer.write(os.urandom(3 * 1024 * 1024))
    temporary = list((tmp_path / "files").iterdir())
    assert len(temporary) == 1 and temporary[0].name.startswith(TEMP_PREFIX)
    assert await storage.delete_prefix("files/") == 0  # an upload in progress is no object
    await writer.complete()
    assert [p.name for p in (tmp_path / "files").iterdir()] == ["f_1"]
    assert (tmp_path / "files" / "f_1").stat().st_size == 3 * 1024 * 1024

    writer = await storage.open_writer("files/f_2", "image/png")
    await writer.write(b"partial")
    await writer.abort()
    assert [p.name for p in (tmp_path / "files").iterdir()] == ["f_1"]


async def test_deletes_remove_empty_directories_but_not_the_root(tmp_path: Path) -> None:
    storage = VolumeStorage(tmp_path / "root", mount=tmp_path)
    await storage.put("variants/f_1/a.webp", b"v", "image/webp")
    await storage.delete("variants/f_1/a.webp")
    assert list((tmp_path / "root").iterdir()) == []
    await storage.put("variants/f_2/a.webp", b"v", "image/webp")
    assert await storage.delete_prefix("variants/") == 1
    assert list((tmp_path / "root").iterdir()) == []


async def test_check_reports_a_missing_directory(tmp_path: Path) -> None:
    storage = VolumeStorage(tmp_path / "absent" / "sub", mount=tmp_path / "absent")
    with pytest.raises(StorageUnavailable, match="missing"):
        await storage.check()
    with pytest.raises(StorageUnavailable, match="missing"):
        await storage.put("files/f_1", b"x", "text/plain")
    assert not (tmp_path / "absent").exists()  # an unmounted volume is not made on the local disk


async def test_a_sub_path_is_created_inside_the_mounted_volume(tmp_path: Path) -> None:
    storage = VolumeStorage(tmp_path / "team" / "files", mount=tmp_path)
    await storage.check()
    assert (tmp_path / "team" / "files").is_dir()


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """As root permissions do not stop a write: act as nobody meanwhile."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def read_only_directory() -> Iterator[Path]:
    """A directory nobody may write in (outside pytest's tmp_path, which only root may enter)."""
    directory = Path(tempfile.mkdtemp(prefix="stackyard-readonly-"))
    directory.chmod(0o555)
    yield directory
    directory.chmod(0o755)
    shutil.rmtree(directory)


async def test_check_reports_a_directory_it_cannot_write(read_only_directory: Path) -> None:
    storage = VolumeStorage(read_only_directory)
    with unprivileged(), pytest.raises(StorageUnavailable) as caught:
        await storage.check()
    assert "Permission denied" in str(caught.value.detail)
    assert str(read_only_directory) not in str(caught.value.detail)
    assert listing(read_only_directory) == []


async def test_no_presigned_urls(tmp_path: Path) -> None:
    storage = VolumeStorage(tmp_path)
    assert await storage.direct_upload("files/f_1", "image/png", 100, 60) is None
    assert await storage.presigned_get("files/f_1", 60, "a.png") is None
