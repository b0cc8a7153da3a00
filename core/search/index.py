"""FAISS index over unit vectors keyed by token row ids; exact or HNSW, saved atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import faiss
import numpy as np

from core.config import IndexSettings


class VectorIndex:
    """Inner-product search over L2-normalised vectors (cosine similarity)."""

    def __init__(self, index: faiss.Index, ef_search: int = 128) -> None:
        self._index = index
        self._ef_search = ef_search

    @classmethod
    def build(cls, keys: np.ndarray, vectors: np.ndarray, settings: IndexSettings) -> VectorIndex:
        """Exact search up to ``approximate_above`` vectors; HNSW past it.

        Exact inner product is brute force, which stays a few milliseconds up to tens of
        thousands of 512-d vectors; HNSW keeps queries sub-millisecond far beyond that.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[0] else 512
        base: faiss.Index
        if len(keys) > settings.approximate_above:
            base = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            base = faiss.IndexFlatIP(dim)
        index = faiss.IndexIDMap2(base)
        if len(keys):
            index.add_with_ids(vectors, np.ascontiguousarray(keys, dtype=np.int64))
        return cls(index, settings.hnsw_ef_search)

    @classmethod
    def load(cls, path: Path, ef_search: int = 128) -> VectorIndex:
        return cls(faiss.read_index(str(path)), ef_search)

    def save(self, path: Path) -> None:
        """Write to a temporary file and rename it over ``path``: readers see old or new."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @property
    def kind(self) -> str:
        base = faiss.downcast_index(self._index.index)
        return "hnsw" if isinstance(base, faiss.IndexHNSWFlat) else "exact"

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``k`` (scores, keys) per query row, best first; missing slots have key -1.

        ``allowed`` restricts results to those keys (a collection filter).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, len(self)))
        if len(self) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        params = self._params(allowed)
        scores, keys = self._index.search(queries, k, params=params)
        if allowed is not None and self.kind == "hnsw":
            # A very selective filter starves the HNSW walk; fall back to exact search on
            # the allowed vectors so a small collection in a large index still gets answers.
            wanted = min(k, len(allowed))
            if (keys >= 0).sum(axis=1).min() < wanted:
                return self._exact_subset(queries, k, allowed)
        return scores, keys

    def vector(self, key: int) -> np.ndarray | None:
        """The stored vector of one key, if present."""
        try:
            return np.asarray(self._index.reconstruct(int(key)), dtype=np.float32)
        except RuntimeError:
            return None

    def _params(self, allowed: np.ndarray | None) -> faiss.SearchParameters | None:
        selector = (
            faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if allowed is not None
            else None
        )
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = self._ef_search
        elif selector is None:
            return None
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
            # The selector must outlive the search; keep a reference on the params object.
            params._selector_ref = selector  # type: ignore[attr-defined]
        return params

    def _exact_subset(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        present = [key for key in allowed.tolist() if self.vector(key) is not None]
        if not present:
            return (np.full((len(queries), k), -np.inf, np.float32),
                    np.full((len(queries), k), -1, np.int64))
        matrix = np.stack([self.vector(key) for key in present])  # type: ignore[misc]
        sims = queries @ matrix.T
        order = np.argsort(-sims, axis=1)[:, :k]
        keys = np.asarray(present, dtype=np.int64)[order]
        scores = np.take_along_axis(sims, order, axis=1)
        if keys.shape[1] < k:
            pad = k - keys.shape[1]
            keys = np.pad(keys, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return scores.astype(np.float32), keys
