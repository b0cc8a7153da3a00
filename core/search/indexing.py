"""``index``: embed tokens that lack a current vector, then rebuild the FAISS index file.

Vectors are committed to the database one batch at a time, so a killed run loses at most the
batch in flight and a rerun picks up where it stopped; the index file is then rebuilt from
all stored vectors and swapped in atomically.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.config import Settings
from core.embedding.embedder import Embedder
from core.embedding.pipeline import embed_stream
from core.errors import ImageError, LensError
from core.imaging.canonical import canonicalise
from core.imaging.decode import ImageLimits, decode_image
from core.search.index import VectorIndex
from core.storage import Store, StoredToken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexReport:
    """What one ``index`` run did."""

    embedded: int
    failed: int
    indexed: int
    kind: str
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def index_path(data_dir: Path, model_key: str) -> Path:
    """Where the index for one embedding model lives."""
    return data_dir / "index" / f"{model_key}.faiss"


class TokenImageLoader:
    """Reads a stored token image and returns its canonical view for the embedder."""

    def __init__(self, data_dir: Path, settings: Settings, size: int) -> None:
        self._data_dir = data_dir
        self._limits = ImageLimits(settings.images.max_bytes, settings.images.max_pixels)
        self._background = settings.images.background_rgb
        self._size = size

    def __call__(self, token: StoredToken) -> np.ndarray:
        path = self._data_dir / token.image_path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"The stored image of token {token.token_id} is missing.") from exc
        return canonicalise(decode_image(data, self._limits), self._size, self._background)


def build_index(
    store: Store,
    embedder: Embedder,
    settings: Settings,
    collection: str | None = None,
    progress: bool = True,
) -> IndexReport:
    """Embed what is missing (optionally one collection's), then rewrite the index file."""
    started = time.perf_counter()
    todo = store.tokens_to_embed(embedder.key, collection)
    loader = TokenImageLoader(settings.data_dir, settings, embedder.input_size)
    embedded = failed = 0
    with tqdm(total=len(todo), unit="img", desc="embedding", disable=not progress or None) as bar:
        for batch in embed_stream(
            embedder,
            todo,
            loader,
            settings.embedding.batch_size,
            settings.embedding.decode_workers,
        ):
            if batch.items:
                store.save_embeddings(embedder.key, batch.items, batch.vectors)
            for token, error in batch.failed:
                log.warning("skipped %s:%s: %s", token.collection, token.token_id, error)
            embedded += len(batch.items)
            failed += len(batch.failed)
            bar.update(len(batch.items) + len(batch.failed))
    elapsed = time.perf_counter() - started
    path = index_path(settings.data_dir, embedder.key)
    keys, vectors = store.embeddings(embedder.key)
    if embedded == 0:
        current = _current_index(path, len(keys), settings)
        if current is not None:
            # Nothing new: an HNSW rebuild of a large index takes tens of seconds for nothing.
            return IndexReport(0, failed, len(current), current.kind, elapsed)
    index = VectorIndex.build(keys, vectors, settings.index)
    index.save(path)
    return IndexReport(embedded, failed, len(index), index.kind, elapsed)


def _current_index(path: Path, stored: int, settings: Settings) -> VectorIndex | None:
    """The index file, if it already holds every stored vector in the configured kind."""
    if not path.is_file():
        return None
    try:
        index = VectorIndex.load(path, settings.index.hnsw_ef_search)
    except RuntimeError:
        return None  # damaged: rebuild it
    kind = "hnsw" if stored > settings.index.approximate_above else "exact"
    return index if len(index) == stored and index.kind == kind else None


class IndexCache:
    """Loads the index file once and again only when ``index`` has replaced it."""

    def __init__(self, path: Path, ef_search: int) -> None:
        self._path = path
        self._ef_search = ef_search
        self._stamp: tuple[int, int] | None = None
        self._index: VectorIndex | None = None

    def get(self) -> VectorIndex:
        from core.errors import IndexNotReady

        try:
            stat = self._path.stat()
        except FileNotFoundError as exc:
            raise IndexNotReady(
                "There is no similarity index yet; run 'python -m core index' first."
            ) from exc
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._index is None or stamp != self._stamp:
            try:
                self._index = VectorIndex.load(self._path, self._ef_search)
            except RuntimeError as exc:
                raise LensError(
                    "The similarity index file is damaged; run 'index' again."
                ) from exc
            self._stamp = stamp
        return self._index
