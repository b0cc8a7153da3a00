"""VectorIndex checked against brute-force numpy search: exact, HNSW, filtered, saved, loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import IndexSettings
from core.embedding.embedder import l2_normalise
from core.search.index import VectorIndex

N, DIM, K = 2000, 32, 10
EXACT = IndexSettings(approximate_above=50_000)
# HNSW with the shipped graph settings (hnsw_m 32, ef_search 128), forced on at any size.
HNSW = IndexSettings(approximate_above=0, hnsw_m=32, hnsw_ef_search=128)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random unit vectors under scattered (non-contiguous) keys, and random unit queries."""
    rng = np.random.default_rng(42)
    keys = rng.choice(10**9, size=N, replace=False).astype(np.int64)
    vectors = l2_normalise(rng.standard_normal((N, DIM)))
    queries = l2_normalise(rng.standard_normal((50, DIM)))
    return keys, vectors, queries


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, ...]) -> dict[str, VectorIndex]:
    """Both kinds over the same data, built once: building HNSW is the slow part."""
    keys, vectors, _ = data
    return {
        "exact": VectorIndex.build(keys, vectors, EXACT),
        "hnsw": VectorIndex.build(keys, vectors, HNSW),
    }


def brute_force(
    keys: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    sims = queries @ vectors.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), keys[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def test_exact_search_equals_brute_force(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex]
) -> None:
    keys, vectors, queries = data
    index = built["exact"]

    scores, found = index.search(queries, K)

    want_scores, want_keys = brute_force(keys, vectors, queries, K)
    assert index.kind == "exact"
    assert len(index) == N and index.dim == DIM
    np.testing.assert_array_equal(found, want_keys)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_hnsw_recall_against_brute_force(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex]
) -> None:
    keys, vectors, queries = data
    index = built["hnsw"]

    scores, found = index.search(queries, K)

    _, want_keys = brute_force(keys, vectors, queries, K)
    assert index.kind == "hnsw"
    assert recall(found, want_keys) >= 0.95
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
@pytest.mark.parametrize("share", [0.1, 0.01], ids=["10%", "1%"])
def test_filter_equals_brute_force_over_the_subset(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], kind: str, share: float
) -> None:
    keys, vectors, queries = data
    index = built[kind]
    rng = np.random.default_rng(7)
    chosen = rng.choice(N, size=int(N * share), replace=False)

    _, found = index.search(queries, K, allowed=keys[chosen])

    _, want = brute_force(keys[chosen], vectors[chosen], queries, K)
    assert set(found.ravel().tolist()) <= set(keys[chosen].tolist())
    if kind == "exact":
        np.testing.assert_array_equal(found, want)
    else:
        assert recall(found, want) >= 0.95


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_very_selective_filter(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], kind: str
) -> None:
    """Fewer allowed keys than k: every one of them comes back, best first, then -1."""
    keys, vectors, queries = data
    index = built[kind]
    chosen = np.array([3, 500, 1999])

    scores, found = index.search(queries, K, allowed=keys[chosen])

    want_scores, want = brute_force(keys[chosen], vectors[chosen], queries, 3)
    np.testing.assert_array_equal(found[:, :3], want)
    np.testing.assert_allclose(scores[:, :3], want_scores, atol=1e-5)
    assert (found[:, 3:] == -1).all()


def test_filter_with_keys_not_in_the_index(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex]
) -> None:
    keys, _, queries = data
    index = built["hnsw"]
    absent = np.array([-5, -6], dtype=np.int64)

    _, found = index.search(queries[:2], K, allowed=np.concatenate([absent, keys[:2]]))

    assert set(found[:, :2].ravel().tolist()) == set(keys[:2].tolist())
    assert (found[:, 2:] == -1).all()


def test_k_is_capped_by_the_index_size(data: tuple[np.ndarray, ...]) -> None:
    keys, vectors, queries = data
    index = VectorIndex.build(keys[:4], vectors[:4], EXACT)

    _, found = index.search(queries[0], 10)

    assert found.shape == (1, 4)
    assert sorted(found[0].tolist()) == sorted(keys[:4].tolist())


def test_empty_index() -> None:
    index = VectorIndex.build(np.empty(0, np.int64), np.empty((0, 0), np.float32), EXACT)

    scores, found = index.search(np.ones(512, np.float32), 5)

    assert len(index) == 0
    assert found.shape == (1, 0) and scores.shape == (1, 0)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_vector_lookup(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], kind: str
) -> None:
    keys, vectors, _ = data
    index = built[kind]

    np.testing.assert_allclose(index.vector(int(keys[17])), vectors[17])  # type: ignore[arg-type]
    assert index.vector(-1) is None


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_save_load_round_trip(
    tmp_path: Path, data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], kind: str
) -> None:
    keys, _, queries = data
    index = built[kind]
    path = tmp_path / "nested" / "index.faiss"

    index.save(path)
    loaded = VectorIndex.load(path, HNSW.hnsw_ef_search)

    assert (loaded.kind, len(loaded), loaded.dim) == (index.kind, N, DIM)
    for allowed in (None, keys[:100]):
        want_scores, want_keys = index.search(queries, K, allowed)
        got_scores, got_keys = loaded.search(queries, K, allowed)
        np.testing.assert_array_equal(got_keys, want_keys)
        np.testing.assert_allclose(got_scores, want_scores)


def test_save_replaces_atomically(
    tmp_path: Path, data: tuple[np.ndarray, ...], built: dict[str, VectorIndex]
) -> None:
    keys, vectors, _ = data
    path = tmp_path / "index.faiss"
    VectorIndex.build(keys[:10], vectors[:10], EXACT).save(path)
    before = path.stat().st_ino

    built["exact"].save(path)

    assert len(VectorIndex.load(path)) == N
    # Replaced by a rename, not rewritten in place: a reader holding the old file keeps it.
    assert path.stat().st_ino != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss"]


def test_failed_save_leaves_no_temporary_file(
    tmp_path: Path, data: tuple[np.ndarray, ...], built: dict[str, VectorIndex]
) -> None:
    keys, vectors, _ = data
    path = tmp_path / "index.faiss"
    VectorIndex.build(keys[:10], vectors[:10], EXACT).save(path)
    blocked = tmp_path / "blocked.faiss"
    blocked.mkdir()  # a directory cannot be replaced by a file

    with pytest.raises(OSError):
        built["exact"].save(blocked)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked.faiss", "index.faiss"]
    assert list(blocked.iterdir()) == []
    assert len(VectorIndex.load(path)) == 10


def test_hnsw_filter_on_a_small_collection_keeps_recall() -> None:
    rng = np.random.default_rng(42)
    n, dim = 10_000, 64
    keys = np.arange(n, dtype=np.int64)
    vectors = l2_normalise(rng.standard_normal((n, dim)))
    queries = l2_normalise(rng.standard_normal((50, dim)))
    index = VectorIndex.build(keys, vectors, HNSW)
    chosen = rng.choice(n, size=n // 100, replace=False)
    _, unfiltered = index.search(queries, K)
    assert recall(unfiltered, brute_force(keys, vectors, queries, K)[1]) >= 0.95

    _, found = index.search(queries, K, allowed=keys[chosen])

    _, want = brute_force(keys[chosen], vectors[chosen], queries, K)
    assert recall(found, want) >= 0.95
