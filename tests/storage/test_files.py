"""Files the engine writes: atomic, one permission rule, bounded reads, orphans swept."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.config import IndexSettings
from core.errors import ImageError, ImageTooLarge
from core.search.index import VectorIndex
from core.storage.files import (
    atomic_dir,
    atomic_path,
    atomic_write,
    read_capped,
    sweep_temp_files,
)
from core.storage.images import ImageStore


@pytest.fixture
def umask() -> Iterator[int]:
    previous = os.umask(0o022)
    yield 0o022
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_everything_written_gets_the_same_permissions(tmp_path: Path, umask: int) -> None:
    images = ImageStore(tmp_path)
    image = images.path(images.put(b"image bytes", ".png"))
    index = tmp_path / "index" / "m.faiss"
    VectorIndex.build(np.arange(2), np.eye(2, 4, dtype=np.float32), IndexSettings()).save(index)
    plain = tmp_path / "collage.png"
    atomic_write(plain, b"x")

    assert {mode(p) for p in (image, index, plain)} == {0o666 & ~umask}
    assert not list(tmp_path.rglob("*.part"))


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "index.faiss"
    target.write_bytes(b"old")

    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_images_are_stored_once_by_content(tmp_path: Path) -> None:
    images = ImageStore(tmp_path)

    first, again = images.put(b"same", ".PNG"), images.put(b"same", ".png")
    # A copy torn by a power cut (wrong size) is written again.
    images.path(first).write_bytes(b"")
    assert images.put(b"same", ".png") == first and images.read(first, 10) == b"same"

    assert first == again and first.suffix == ".png"
    assert images.read(first, max_bytes=10) == b"same"
    assert images.key(first) == f"images/{first.sha256[:2]}/{first.sha256}.png"
    assert images.ref(images.key(first), first.sha256) == first


def test_image_reads_and_copies_are_size_checked(tmp_path: Path) -> None:
    images = ImageStore(tmp_path)
    big = tmp_path / "big.png"
    with big.open("wb") as handle:
        handle.truncate(6 << 30)  # sparse: 6 GB by stat, nothing on disk

    ref = images.put(b"0123456789", ".png")
    with pytest.raises(ImageTooLarge):
        images.read(ref, max_bytes=5)
    images.path(ref).unlink()
    with pytest.raises(ImageError, match="missing"):
        images.read(ref, max_bytes=100)
    assert read_capped(big, 100) is None
    assert not list(tmp_path.rglob("*.part"))


def test_only_old_temporary_files_are_swept(tmp_path: Path) -> None:
    old, young, other = tmp_path / "a" / ".x.part", tmp_path / ".y.part", tmp_path / "z.png"
    old.parent.mkdir()
    for path in (old, young, other):
        path.write_bytes(b"")
    os.utime(old, (time.time() - 7200, time.time() - 7200))

    assert sweep_temp_files(tmp_path, older_than_s=3600) == 1
    assert not old.exists() and young.exists() and other.exists()
    assert sweep_temp_files(tmp_path / "missing", older_than_s=1) == 0


def test_a_model_folder_is_replaced_whole_and_a_killed_one_is_swept_later(
    tmp_path: Path,
) -> None:
    target = tmp_path / "models" / "m"
    with atomic_dir(target) as tmp:
        (tmp / "a.bin").write_bytes(b"new")
    assert (target / "a.bin").read_bytes() == b"new"
    # What a SIGKILL mid-conversion leaves: a .part folder, swept once it is old.
    leftover = tmp_path / "models" / ".m.dead.part"
    leftover.mkdir()
    (leftover / "half.bin").write_bytes(b"x")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))

    assert sweep_temp_files(tmp_path, older_than_s=3600) == 1
    assert not leftover.exists() and (target / "a.bin").exists()


def test_a_model_folder_reaches_the_disk_before_it_is_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a power cut the folder must be whole or absent: every file and the folder itself
    are synced while still under their temporary name."""
    target = tmp_path / "models" / "m"
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    with atomic_dir(target) as tmp:
        (tmp / "trunk.bin").write_bytes(b"weights")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "head.bin").write_bytes(b"head")

    names = [Path(path).relative_to(tmp_path / "models").parts[1:] for path, _ in synced]
    assert sorted(names) == [(), ("sub",), ("sub", "head.bin"), ("trunk.bin",)]
    assert not any(existed for _, existed in synced)  # all before the rename
    assert (target / "sub" / "head.bin").read_bytes() == b"head"
