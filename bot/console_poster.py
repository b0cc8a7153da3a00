"""Posting to the console: each post becomes a text file and its pictures in a folder."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.errors import PostingError
from core.posting import Post
from core.storage.files import atomic_write

log = logging.getLogger(__name__)

MAX_NAME = 100  # characters of a sanitised name; whole paths stay well under NAME_MAX
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ConsolePoster:
    """Writes each post under ``out_dir/<chat>/`` as ``<UTC time>-<n>.txt`` plus its pictures.

    Every file is written under a temporary name in the same folder and then renamed, so a
    reader (a person, a test, a file watcher) never sees half a file; the text goes last, so
    its appearance means the whole post is there.
    """

    platform = "console"

    def __init__(self, out_dir: Path, clock: Callable[[], datetime] = _utc_now) -> None:
        self._out_dir = out_dir
        self._clock = clock
        self._numbers = itertools.count(1)

    async def post(self, chat: str, post: Post) -> None:
        """Write ``post`` to ``chat``'s folder; raise ``PostingError`` if it cannot be written."""
        folder = self._out_dir / safe_name(chat)
        try:
            # Pictures can be megabytes; the disk work stays off the event loop.
            path = await asyncio.to_thread(self._write, folder, post)
        except OSError as exc:
            reason = exc.strerror or exc
            raise PostingError(
                f"Cannot post to console:{chat}: {folder} cannot be written ({reason})."
            ) from exc
        log.info("console: posted to %s", path)

    def _write(self, folder: Path, post: Post) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = self._clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        # The counter keeps one poster's posts apart; the check, another run's in the same second.
        stem = f"{stamp}-{next(self._numbers)}"
        while (folder / f"{stem}.txt").exists():
            stem = f"{stamp}-{next(self._numbers)}"
        lines = [post.text]
        for i, picture in enumerate(post.pictures, start=1):
            name = f"{stem}-{i}-{safe_name(picture.filename)}"
            atomic_write(folder / name, picture.data, durable=False)
            lines.append(f"[picture {i}: {name}] {picture.description}".rstrip())
        text_path = folder / f"{stem}.txt"
        atomic_write(text_path, ("\n".join(lines) + "\n").encode(), durable=False)
        return text_path


def safe_name(text: str) -> str:
    """``text`` as a file name: only ``[A-Za-z0-9._-]``, no leading dot or dash, not empty."""
    name = _UNSAFE.sub("_", text).lstrip(".-")[:MAX_NAME]
    return name or "_"
