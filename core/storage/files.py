"""Files the engine writes: atomic replacement, one permission rule, orphan clean-up.

Every file is written under a temporary name in its final folder and renamed into place, so
a reader (or a process killed mid-write) sees the old file or the new one, never half. The
temporary files are created with mode 0666 minus the umask, the same rule ``open()`` follows,
so an image, an index and a model written by the same user get the same permissions
(``mkstemp`` would make some 0600). Temporaries a killed process left behind end in
``.part`` and are swept by ``sweep_temp_files``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".part"
# A temporary file this old belongs to no write still in progress (the longest writes, an
# index of a million vectors or a large image, take minutes).
STALE_TEMP_S = 6 * 3600


def temp_path_for(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a new empty temporary file beside ``path`` to write; on success it replaces
    ``path``, on failure it is removed. For writers that need a file name (FAISS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a new empty temporary folder beside ``path`` to fill; on success it replaces
    ``path`` (a model of several files), on failure it is removed. If another process put a
    finished ``path`` in place first, that one is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    tmp.mkdir(mode=0o777)
    try:
        yield tmp
        # On disk before the rename: after a power cut a model folder must be whole or
        # absent (zeroed weights would still load, and embed garbage).
        for item in sorted(tmp.rglob("*"), reverse=True):
            _fsync(item)
        _fsync(tmp)
        shutil.rmtree(path, ignore_errors=True)
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') writes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | Iterable[bytes], *, durable: bool = True) -> None:
    """Write ``data`` (bytes, or chunks of it) to ``path`` atomically.

    ``durable`` also syncs the bytes to disk before the rename, so even a power cut leaves
    the old file or the whole new one. Without it a killed process is still safe (the page
    cache survives it); callers that can tell a torn file and write it again skip the cost.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    # One open (O_EXCL: never someone else's file); opening costs more than writing a small
    # image on some filesystems.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes | bytearray | memoryview):
                handle.write(data)
            else:
                for chunk in data:
                    handle.write(chunk)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_capped(path: Path, max_bytes: int) -> bytes | None:
    """The file's bytes, or ``None`` when it is larger than ``max_bytes`` (checked before
    reading, and again while reading, in case it grew); ``OSError`` when unreadable."""
    size = path.stat().st_size
    if size > max_bytes:
        return None
    with path.open("rb") as handle:
        # Ask for what stat said plus one byte: asking for max_bytes would allocate (and
        # page in) 20 MB for every 1 KB punk.
        data = handle.read(size + 1)
        if len(data) > size:
            data += handle.read(max_bytes + 1 - len(data))
    return None if len(data) > max_bytes else data


def sweep_temp_files(root: Path, older_than_s: float, now: float | None = None) -> int:
    """Delete ``.part`` files and folders under ``root`` older than ``older_than_s``;
    return how many.

    Only old ones: a younger one may belong to a write in progress in another process.
    """
    if not root.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = 0
    for candidate in root.rglob(f"*{TEMP_SUFFIX}"):
        try:
            if candidate.stat().st_mtime >= cutoff:
                continue
            if candidate.is_dir():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
            removed += 1
        except OSError:
            log.debug("could not remove %s", candidate, exc_info=True)
    if removed:
        log.info("removed %d leftover temporary file(s) under %s", removed, root)
    return removed
