"""FAISS index over unit vectors keyed by token row ids, chosen by size; saved atomically.

Up to ``approximate_above`` vectors the search is exact (brute-force inner product). Past it,
by default, an IVF index: the coarse search runs on a PCA-reduced copy of each vector held as
4-bit codes, and its shortlist (``rerank_factor`` × k) is re-ranked on 8-bit codes of the full
vectors. At a million 1,216-d vectors that answers in about a millisecond on one thread, keeps
about 1.4 KB per token and builds in about a minute (``python -m bench.search``). HNSW
(``approximate: hnsw``) answers as fast but holds 5 KB per token and builds far slower.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

import faiss
import numpy as np

from core.config import IndexSettings
from core.storage.files import atomic_path

# Filters keeping at most this many keys (or this share of an HNSW index) search exactly.
EXACT_FILTER_MIN = 20_000
EXACT_FILTER_SHARE = 0.2
# IVF: about 4·√n lists, each trained on at least this many points (faiss warns below 39),
# from a sample of at most MAX_TRAIN vectors; k-means iterations kept few (build time).
TRAIN_PER_LIST = 40
MAX_TRAIN = 200_000
TRAIN_ITERATIONS = 10
# A small filter's codes are decoded this many at a time.
SCAN_BLOCK = 4096

EXACT, IVF, HNSW = "exact", "ivf", "hnsw"


def ivf_lists(count: int) -> int:
    """Inverted lists for ``count`` vectors: the power of two nearest 4·√count, no more than
    the training sample (at most MAX_TRAIN) supports: 4,096 from a million vectors on. An
    index rebuilt at four times its size gets more lists, up to that."""
    target = max(1.0, min(4 * math.sqrt(count), count / TRAIN_PER_LIST))
    lists = 2 ** round(math.log2(target))
    while lists > 1 and lists * TRAIN_PER_LIST > min(count, MAX_TRAIN):
        lists //= 2
    return lists


def training_size(count: int) -> int:
    """How many of ``count`` vectors an IVF index is trained on."""
    return min(count, max(TRAIN_PER_LIST * ivf_lists(count), 10_000), MAX_TRAIN)


def reduced_dim(count: int, dim: int, settings: IndexSettings) -> int:
    """The PCA output size for ``count`` vectors of ``dim``: ``pca_dim``, or less when there
    are fewer vectors to train on (a tiny index past a low ``approximate_above``)."""
    return min(settings.pca_dim, dim, training_size(count))


def kind_for(count: int, settings: IndexSettings) -> str:
    """The index kind ``count`` vectors call for."""
    return settings.approximate if count > settings.approximate_above else EXACT


class VectorIndex:
    """Cosine similarity over L2-normalised vectors; scores are cosines whatever the kind."""

    def __init__(self, index: faiss.Index, settings: IndexSettings | None = None) -> None:
        self._index = index
        self._settings = settings or IndexSettings()
        base = faiss.downcast_index(index.index)  # type: ignore[attr-defined]
        if isinstance(base, faiss.IndexRefine):
            self.kind = IVF
            self._refine = base
            self._remember_keys()
        else:
            self.kind = HNSW if isinstance(base, faiss.IndexHNSWFlat) else EXACT

    @classmethod
    def build(cls, keys: np.ndarray, vectors: np.ndarray, settings: IndexSettings) -> VectorIndex:
        """The kind that ``len(keys)`` calls for, holding ``vectors`` under ``keys``."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[0] else 512
        batches = [(keys, vectors)] if len(keys) else []
        return cls.build_from(keys, batches, lambda rows: vectors[rows], dim, settings)

    @classmethod
    def build_from(
        cls,
        keys: np.ndarray,
        batches: Iterable[tuple[np.ndarray, np.ndarray]],
        sample: Callable[[np.ndarray], np.ndarray],
        dim: int,
        settings: IndexSettings,
    ) -> VectorIndex:
        """The kind that ``len(keys)`` calls for, filled from ``batches`` of (keys, vectors).

        ``sample(rows)`` gives the vectors of those positions in ``keys`` (IVF trains on a
        sample); the rest never needs every vector in memory at once.
        """
        kind = kind_for(len(keys), settings)
        base: faiss.Index
        if kind == HNSW:
            base = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        elif kind == IVF:
            base = _trained_ivf(len(keys), dim, sample, settings)
        else:
            base = faiss.IndexFlatIP(dim)
        index = faiss.IndexIDMap2(base)
        for batch_keys, batch_vectors in batches:
            if len(batch_keys):
                index.add_with_ids(
                    np.ascontiguousarray(batch_vectors, dtype=np.float32),
                    np.ascontiguousarray(batch_keys, dtype=np.int64),
                )
        return cls(index, settings)

    def searched_with(self, settings: IndexSettings) -> VectorIndex:
        """The same index, searched with other settings (nprobe, re-ranking, efSearch)."""
        return VectorIndex(self._index, settings)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under keys not yet in the index (a sync's handful of new tokens)."""
        if len(keys):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(keys, dtype=np.int64),
            )
            if self.kind == IVF:
                self._remember_keys()

    def suits(self, count: int, settings: IndexSettings) -> bool:
        """Whether this index is the kind (and, for IVF, the size of lists) for ``count``."""
        if self.kind != kind_for(count, settings):
            return False
        if self.kind != IVF:
            return True
        # A PCA learnt from too few vectors for pca_dim is kept while the index stays that
        # small (a few adds do not need a retrain); a changed pca_dim, or enough vectors to
        # learn it, rebuilds.
        wanted = reduced_dim(count, self.dim, settings)
        full = min(settings.pca_dim, self.dim)
        pca_fits = self.reduced == wanted or (self.reduced < wanted < full)
        return self.lists == ivf_lists(count) and pca_fits

    @property
    def lists(self) -> int:
        """IVF inverted lists (0 for the other kinds)."""
        if self.kind != IVF:
            return 0
        return int(faiss.extract_index_ivf(self._refine.base_index).nlist)

    @property
    def reduced(self) -> int:
        """The dimension IVF's shortlist works in (the PCA output; 0 for other kinds)."""
        if self.kind != IVF:
            return 0
        return int(faiss.extract_index_ivf(self._refine.base_index).d)

    def holds(self, key: int) -> bool:
        """Whether ``key`` is in the index."""
        return self._has(key)

    @classmethod
    def load(cls, path: Path, settings: IndexSettings | None = None) -> VectorIndex:
        return cls(faiss.read_index(str(path)), settings)

    def save(self, path: Path) -> None:
        """Write to a temporary file and rename it over ``path``: readers see old or new."""
        with atomic_path(path) as tmp:
            faiss.write_index(self._index, str(tmp))

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
        if self.kind == IVF:
            return self._search_ivf(queries, k, allowed)
        if allowed is not None and self.kind == HNSW and len(allowed) <= self._exact_limit():
            # A selective filter starves the HNSW walk (it only skips disallowed nodes, so
            # most of the graph it explores is wasted); a small collection inside a large
            # index is searched exactly instead, which at this size is also fast.
            return self._exact_subset(queries, k, allowed)
        scores, keys = self._index.search(queries, k, params=self._params(allowed))
        if allowed is not None and self.kind == HNSW:
            wanted = min(k, len(allowed))
            if (keys >= 0).sum(axis=1).min() < wanted:
                return self._exact_subset(queries, k, allowed)
        return scores, keys

    def vector(self, key: int) -> np.ndarray | None:
        """The stored vector of one key, if present (8-bit precision in an IVF index)."""
        try:
            return np.asarray(self._index.reconstruct(int(key)), dtype=np.float32)
        except RuntimeError:
            return None

    def _search_ivf(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        selector = None
        allowed_positions = np.empty(0, np.int64)
        if allowed is not None:
            allowed_positions = self._positions(allowed)
            if len(allowed_positions) <= EXACT_FILTER_MIN:
                # A small collection inside a large index: every one of its vectors is
                # compared, on the full-vector codes, so the filter never costs recall.
                return self._filtered_scan(queries, k, allowed_positions)
            selector = faiss.IDSelectorBatch(allowed_positions)
        probe = faiss.SearchParametersIVF()
        probe.nprobe = self._settings.nprobe
        if selector is not None:
            probe.sel = selector
        params = faiss.IndexRefineSearchParameters()
        params.k_factor = float(self._settings.rerank_factor)
        params.base_index_params = probe
        distances, positions = self._refine.search(queries, k, params=params)
        scores, keys = self._as_results(distances, positions)
        # Short of k though the filter holds more (keys it names that the index does not
        # hold do not count): compare every allowed vector instead.
        if allowed is not None and (keys >= 0).sum(axis=1).min() < min(k, len(allowed_positions)):
            return self._filtered_scan(queries, k, allowed_positions)
        return scores, keys

    def _filtered_scan(
        self, queries: np.ndarray, k: int, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the full-vector codes of ``positions`` only."""
        refine = faiss.downcast_index(self._refine.refine_index)
        if len(positions) > EXACT_FILTER_MIN:
            # A large filter the probe came up short on: one pass over every code, skipping
            # those outside it.
            params = faiss.SearchParameters()
            selector = faiss.IDSelectorBatch(positions)
            params.sel = selector
            distances, found = refine.search(queries, k, params=params)
            return self._as_results(distances, found)
        # A small one: decode just its codes, a block at a time, and keep the best k. Ranked
        # by L2 like the rest of the index: an 8-bit code's error moves the distance to a near
        # neighbour in proportion to that distance, but moves an inner product by its full
        # size, which reorders look-alikes (recall@10 0.93 instead of 0.99 in a family).
        best_scores = np.full((len(queries), 0), -np.inf, np.float32)
        best_positions = np.full((len(queries), 0), -1, np.int64)
        query_norms = np.einsum("ij,ij->i", queries, queries)[:, None]
        for start in range(0, len(positions), SCAN_BLOCK):
            block = positions[start : start + SCAN_BLOCK]
            decoded = refine.reconstruct_batch(block)
            squared = np.einsum("ij,ij->i", decoded, decoded)[None, :]
            sims = 1.0 - (squared - 2.0 * (queries @ decoded.T) + query_norms) / 2.0
            best_scores = np.concatenate([best_scores, sims], axis=1)
            best_positions = np.concatenate(
                [best_positions, np.broadcast_to(block, sims.shape)], axis=1
            )
            order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
            best_scores = np.take_along_axis(best_scores, order, axis=1)
            best_positions = np.take_along_axis(best_positions, order, axis=1)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        keys = np.full((len(queries), k), -1, np.int64)
        scores[:, : best_scores.shape[1]] = best_scores
        keys[:, : best_scores.shape[1]] = self._positions_to_keys[best_positions]
        lost = ~np.isfinite(scores)
        scores[lost], keys[lost] = -np.inf, -1
        return scores, keys

    def _as_results(
        self, distances: np.ndarray, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        # Squared L2 between unit vectors is 2 - 2·cos. A non-finite distance (a query of
        # NaNs) is no match at all.
        hit = (positions >= 0) & np.isfinite(distances)
        keys = np.where(hit, self._positions_to_keys[np.where(hit, positions, 0)], -1)
        scores = np.where(hit, 1.0 - distances / 2.0, -np.inf).astype(np.float32)
        return scores, keys.astype(np.int64)

    def _positions(self, allowed: np.ndarray) -> np.ndarray:
        """Where the IVF index holds each allowed key (absent keys dropped), in key order."""
        wanted = np.unique(np.asarray(allowed, dtype=np.int64))
        at = np.searchsorted(self._sorted_keys, wanted)
        inside = at < len(self._sorted_keys)
        at, wanted = at[inside], wanted[inside]
        return self._key_order[at[self._sorted_keys[at] == wanted]]

    def _remember_keys(self) -> None:
        """The key at each IVF position, and the positions in key order (for filters)."""
        self._positions_to_keys = faiss.vector_to_array(self._index.id_map)  # type: ignore[attr-defined]
        self._key_order = np.argsort(self._positions_to_keys, kind="stable")
        self._sorted_keys = self._positions_to_keys[self._key_order]

    def _exact_limit(self) -> int:
        return max(EXACT_FILTER_MIN, int(EXACT_FILTER_SHARE * len(self)))

    def _params(self, allowed: np.ndarray | None) -> faiss.SearchParameters | None:
        selector = (
            faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            if allowed is not None
            else None
        )
        if self.kind == HNSW:
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = self._settings.hnsw_ef_search
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


def _trained_ivf(
    count: int, dim: int, sample: Callable[[np.ndarray], np.ndarray], settings: IndexSettings
) -> faiss.Index:
    """PCA → IVF with 4-bit codes for the shortlist, re-ranked on 8-bit full vectors, trained
    on a sample of the ``count`` vectors.

    Squared L2 ranks unit vectors as cosine does, and unlike inner product it is unchanged by
    the PCA's centring.
    """
    lists = ivf_lists(count)
    reduced = reduced_dim(count, dim, settings)
    ivf = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatL2(reduced), reduced, lists, faiss.ScalarQuantizer.QT_4bit, faiss.METRIC_L2
    )
    ivf.cp.niter = TRAIN_ITERATIONS
    shortlist: faiss.Index = (
        faiss.IndexPreTransform(faiss.PCAMatrix(dim, reduced), ivf) if reduced < dim else ivf
    )
    full = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2)
    index = faiss.IndexRefine(shortlist, full)
    rows = np.sort(
        np.random.default_rng(0).choice(count, size=training_size(count), replace=False)
    )
    index.train(np.ascontiguousarray(sample(rows), dtype=np.float32))
    return index
