"""FAISS index over unit vectors keyed by token row ids; exact or HNSW, saved atomically."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from core.config import IndexSettings
from core.storage.files import atomic_path

# Filters keeping at most this many keys (or this share of an HNSW index) search exactly.
EXACT_FILTER_MIN = 20_000
EXACT_FILTER_SHARE = 0.2


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

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under keys not yet in the index (a sync's handful of new tokens)."""
        if len(keys):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(keys, dtype=np.int64),
            )

    def holds(self, key: int) -> bool:
        """Whether ``key`` is in the index."""
        return self._has(key)

    @classmethod
    def load(cls, path: Path, ef_search: int = 128) -> VectorIndex:
        return cls(faiss.read_index(str(path)), ef_search)

    def save(self, path: Path) -> None:
        """Write to a temporary file and rename it over ``path``: readers see old or new."""
        with atomic_path(path) as tmp:
            faiss.write_index(self._index, str(tmp))

    @property
    def kind(self) -> str:
        base = faiss.downcast_index(self._index.index)  # type: ignore[attr-defined]
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
        if allowed is not None and self.kind == "hnsw" and len(allowed) <= self._exact_limit():
            # A selective filter starves the HNSW walk (it only skips disallowed nodes, so
            # most of the graph it explores is wasted); a small collection inside a large
            # index is searched exactly instead, which at this size is also fast.
            return self._exact_subset(queries, k, allowed)
        scores, keys = self._index.search(queries, k, params=self._params(allowed))
        if allowed is not None and self.kind == "hnsw":
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

    def _exact_limit(self) -> int:
        return max(EXACT_FILTER_MIN, int(EXACT_FILTER_SHARE * len(self)))

    def _params(self, allowed: np.ndarray | None) -> faiss.SearchParameters | None:
        selector = (
            faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if allowed is not None
            else None
        )
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = self._ef_search
        elif selector is None:
            return None
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
            # The selector must outlive the search; keep a reference on the params object.
            params._selector_ref = selector
        return params

    def _exact_subset(
        self, queries: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        present = np.array(
            [key for key in np.unique(allowed).tolist() if self._has(key)], dtype=np.int64
        )
        scores = np.full((len(queries), k), -np.inf, np.float32)
        keys = np.full((len(queries), k), -1, np.int64)
        if not len(present):
            return scores, keys
        matrix = self._index.reconstruct_batch(present)
        sims = queries @ matrix.T
        top = min(k, len(present))
        order = np.argsort(-sims, axis=1, kind="stable")[:, :top]
        keys[:, :top] = present[order]
        scores[:, :top] = np.take_along_axis(sims, order, axis=1)
        return scores, keys

    def _has(self, key: int) -> bool:
        try:
            self._index.reconstruct(int(key))
        except RuntimeError:
            return False
        return True
