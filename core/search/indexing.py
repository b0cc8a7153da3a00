"""``index``: embed tokens that lack a current vector, then rebuild the FAISS index file.

Vectors are committed to the database one batch at a time, so a killed run loses at most the
batch in flight and a rerun picks up where it stopped; the index file is then rebuilt from
all stored vectors and swapped in atomically. One run at a time per data directory and model
(a file lock): a second ``index`` waits for the first and then finds nothing left to embed,
and the scheduled job skips its turn rather than queue behind a long CLI run.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from core.config import IndexSettings, Settings
from core.embedding.embedder import Embedder
from core.embedding.pipeline import embed_stream
from core.errors import IndexBusy, IndexNotReady, LensError
from core.imaging.decode import ImageLimits
from core.imaging.prepare import PrepareSpec
from core.imaging.workers import ImageDecoder
from core.search.index import VectorIndex
from core.storage import Catalog, StoredToken, VectorStore
from core.storage.files import STALE_TEMP_S, sweep_temp_files
from core.storage.images import ImageStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexReport:
    """What one ``index`` run did."""

    embedded: int
    failed: int
    indexed: int
    kind: str
    seconds: float
    # How the index file was brought up to date: "rebuilt" from every stored vector, "added"
    # to (new vectors only), or "unchanged".
    mode: str = "rebuilt"

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"embedded {self.embedded} images ({self.images_per_second:.1f} img/s), "
            f"{self.failed} failed; index holds {self.indexed} vectors ({self.kind}, "
            f"{self.mode})"
        )


def index_path(data_dir: Path, model_key: str) -> Path:
    """Where the index for one embedding model lives."""
    return data_dir / "index" / f"{model_key}.faiss"


class Indexer:
    """Embeds what is missing and keeps the index file current."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        vectors: VectorStore,
        images: ImageStore,
        decoder: ImageDecoder,
        embedder: Embedder,
        settings: Settings,
    ) -> None:
        self._catalog = catalog
        self._vectors = vectors
        self._images = images
        self._decoder = decoder
        self._embedder = embedder
        self._settings = settings
        self.path = index_path(settings.data_dir, embedder.key)
        self._spec = PrepareSpec(
            ImageLimits(settings.images.max_bytes, settings.images.max_pixels),
            canonical_size=embedder.input_size,
            background=settings.images.background_rgb,
        )

    def run(
        self,
        collection: str | None = None,
        *,
        progress: bool = True,
        wait: bool = True,
        stop: threading.Event | None = None,
    ) -> IndexReport:
        """Embed what is missing (optionally one collection's), then rewrite the index file.

        With ``wait`` false, raise ``IndexBusy`` at once if another run holds the lock. Once
        ``stop`` is set the run ends after the batch in flight, keeping what it embedded and
        leaving the index file for the next run (its report's kind is "stopped").
        """
        if collection is not None:
            self._catalog.collection(collection)  # an unknown slug fails before any waiting
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{self.path}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise IndexBusy("Another index run is in progress.") from None
            log.info("another index run is in progress; waiting for it to finish")
            lock.acquire()
        try:
            sweep_temp_files(self.path.parent, STALE_TEMP_S)
            return self._run(collection, progress, stop)
        finally:
            lock.release()

    def _run(
        self, collection: str | None, progress: bool, stop: threading.Event | None
    ) -> IndexReport:
        started = time.perf_counter()
        todo = self._vectors.tokens_to_embed(self._embedder.key, collection)
        embedded = failed = 0
        embedded_pks: list[int] = []
        bar = tqdm(total=len(todo), unit="img", desc="embedding", disable=not progress or None)
        with bar:
            for batch in embed_stream(
                self._embedder, todo, self._load, self._settings.embedding.batch_size
            ):
                if batch.items:
                    self._vectors.save(self._embedder.key, batch.items, batch.vectors)
                for token, error in batch.failed:
                    log.warning("skipped %s:%s: %s", token.collection, token.token_id, error)
                embedded += len(batch.items)
                embedded_pks.extend(token.pk for token in batch.items)
                failed += len(batch.failed)
                bar.update(len(batch.items) + len(batch.failed))
                if stop is not None and stop.is_set():
                    elapsed = time.perf_counter() - started
                    return IndexReport(embedded, failed, 0, "stopped", elapsed)
        elapsed = time.perf_counter() - started
        stored = sum(self._vectors.counts(self._embedder.key).values())
        current = self._current_index(stored - len(embedded_pks), stored)
        if current is not None and not embedded_pks:
            # Nothing new: rebuilding a large index takes tens of seconds for nothing.
            return IndexReport(0, failed, len(current), current.kind, elapsed, "unchanged")
        if (
            current is not None
            and len(current)
            and current.dim == self._embedder.dim
            and not any(current.holds(pk) for pk in embedded_pks)
        ):
            # Only new tokens (a sync's handful): add them rather than rebuild everything.
            keys, vectors = self._vectors.vectors(self._embedder.key, embedded_pks)
            current.add(keys, vectors)
            if len(current) == stored:
                current.save(self.path)
                return IndexReport(embedded, failed, len(current), current.kind, elapsed, "added")
        # Streamed from the database a batch at a time: a million vectors are 5 GB.
        model_key = self._embedder.key
        keys = self._vectors.current_keys(model_key)
        index = VectorIndex.build_from(
            keys,
            self._vectors.batches(model_key),
            lambda rows: self._vectors.vectors(model_key, keys[rows].tolist())[1],
            self._embedder.dim,
            self._settings.index,
        )
        index.save(self.path)
        return IndexReport(embedded, failed, len(index), index.kind, elapsed)

    def _load(self, tokens: list[StoredToken]) -> list[np.ndarray | LensError]:
        """Canonical views of a batch of stored token images, decoded by the workers."""
        blobs: list[bytes] = []
        missing: dict[int, LensError] = {}
        for i, token in enumerate(tokens):
            try:
                blobs.append(self._images.read(token.image, self._settings.images.max_bytes))
            except LensError as exc:
                missing[i] = exc
                blobs.append(b"")
        prepared = self._decoder.prepare_many(blobs, self._spec)
        results: list[np.ndarray | LensError] = []
        for i, item in enumerate(prepared):
            if i in missing:
                results.append(missing[i])
            elif isinstance(item, LensError):
                results.append(item)
            elif item.canonical is None:  # pragma: no cover - the spec asks for it
                results.append(LensError("The image worker returned no canonical view."))
            else:
                results.append(item.canonical)
        return results

    def _current_index(self, held: int, stored: int) -> VectorIndex | None:
        """The index file, if it holds exactly ``held`` vectors, in the kind (and IVF lists)
        that ``stored`` vectors call for: an IVF index is retrained when it has grown 4×."""
        if not self.path.is_file():
            return None
        try:
            index = VectorIndex.load(self.path, self._settings.index)
        except RuntimeError:
            return None  # damaged: rebuild it
        return index if len(index) == held and index.suits(stored, self._settings.index) else None


class IndexCache:
    """Loads the index file once and again only when ``index`` has replaced it."""

    def __init__(self, path: Path, settings: IndexSettings) -> None:
        self._path = path
        self._settings = settings
        self._stamp: tuple[int, int] | None = None
        self._index: VectorIndex | None = None
        # Two threads seeing a new file at once load it once, not twice (it can be GBs).
        self._lock = threading.Lock()

    def get(self) -> VectorIndex:
        with self._lock:
            return self._get()

    def _get(self) -> VectorIndex:
        try:
            stat = self._path.stat()
        except FileNotFoundError as exc:
            raise IndexNotReady(
                "There is no similarity index yet; run 'python -m core index' first."
            ) from exc
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._index is None or stamp != self._stamp:
            try:
                self._index = VectorIndex.load(self._path, self._settings)
            except RuntimeError as exc:
                raise LensError(
                    "The similarity index file is damaged; run 'index' again."
                ) from exc
            self._stamp = stamp
        return self._index
