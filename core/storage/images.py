"""Token images by content: stored once under their SHA-256, found again by reference."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from core.errors import ImageError
from core.imaging.decode import too_large
from core.models import ImageRef
from core.storage.files import TEMP_SUFFIX, atomic_write, read_capped

_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ImageStore:
    """Images under ``<data_dir>/images/<2 hex>/<sha256><suffix>``, written atomically.

    The database keeps each token's ``ImageRef`` (its key is what ``image_path`` holds, the
    same layout version 0.1 wrote), so nothing outside this class builds an image path.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._root = data_dir / "images"

    @property
    def root(self) -> Path:
        return self._root

    @staticmethod
    def key(ref: ImageRef) -> str:
        """The reference as the database stores it (relative to the data directory)."""
        return f"images/{ref.sha256[:2]}/{ref.sha256}{ref.suffix}"

    @staticmethod
    def ref(key: str, sha256: str) -> ImageRef:
        """The reference behind a stored key."""
        name = key.rsplit("/", 1)[-1]
        return ImageRef(sha256, name[len(sha256) :] if name.startswith(sha256) else "")

    def path(self, ref: ImageRef) -> Path:
        """Where the bytes live; only for readers that need a file name."""
        if not _SHA256.fullmatch(ref.sha256):
            raise ImageError("That is not a stored image reference.")
        return self._data_dir / self.key(ref)

    def has(self, ref: ImageRef) -> bool:
        return self.path(ref).is_file()

    def put(self, data: bytes, suffix: str = "") -> ImageRef:
        """Store ``data`` (once: the same bytes again cost nothing) and return its reference."""
        ref = ImageRef(hashlib.sha256(data).hexdigest(), _clean_suffix(suffix))
        target = self.path(ref)
        if not _holds(target, len(data)):
            # Not synced to disk (an fsync per image tripled ingest time): a file a power cut
            # tore has the wrong size, and the next ingest writes it again.
            atomic_write(target, data, durable=False)
        return ref

    def read(self, ref: ImageRef, max_bytes: int) -> bytes:
        """The stored bytes, size-checked before they are read."""
        path = self.path(ref)
        try:
            data = read_capped(path, max_bytes)
        except OSError as exc:
            raise ImageError(
                f"The stored image {ref.sha256[:12]} is missing; ingest its collection again."
            ) from exc
        if data is None:
            raise too_large(path.stat().st_size, max_bytes, "The stored image")
        return data


def _holds(path: Path, size: int) -> bool:
    """Whether ``path`` is already a stored image of ``size`` bytes."""
    try:
        return path.is_file() and path.stat().st_size == size
    except OSError:
        return False


def _clean_suffix(suffix: str) -> str:
    suffix = suffix.lower()
    return suffix if _SUFFIX.fullmatch(suffix) and not suffix.endswith(TEMP_SUFFIX) else ".img"
