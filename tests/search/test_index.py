"""VectorIndex checked against brute-force numpy search: exact, IVF, HNSW, filtered, saved,
loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.config import IndexSettings
from core.embedding.embedder import l2_normalise
from core.search import index as index_module
from core.search.index import VectorIndex, ivf_lists, kind_for

N, DIM, K = 2000, 32, 10
EXACT = IndexSettings(approximate_above=50_000)
# HNSW with the shipped graph settings (hnsw_m 32, ef_search 128), forced on at any size.
HNSW = IndexSettings(approximate_above=0, approximate="hnsw", hnsw_m=32, hnsw_ef_search=128)
# The shipped IVF settings, forced on at any size (no PCA at 32 dimensions).
IVF = IndexSettings(approximate_above=0)
KINDS = ["exact", "ivf", "hnsw"]
APPROXIMATE = ["ivf", "hnsw"]
# 8-bit codes of unit vectors: each coordinate within about 1/255 of its range.
CODE_TOLERANCE = 0.02


def structured(count: int, dim: int, seed: int = 3) -> np.ndarray:
    """Unit vectors in families with a falling spectrum: what PCA is for (embeddings are)."""
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, dim + 1) + 2.0) ** -1.5
    centres = rng.standard_normal((count // 20, dim))
    families = rng.integers(0, len(centres), count)
    noise = 0.3 * rng.standard_normal((count, dim))
    return l2_normalise((centres[families] + noise) * scale + 0.2)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors shaped like embeddings under scattered (non-contiguous) keys, and queries
    from the same families (new look-alikes, not copies)."""
    rng = np.random.default_rng(42)
    keys = rng.choice(10**9, size=N, replace=False).astype(np.int64)
    drawn = structured(N + 50, DIM)
    return keys, drawn[:N], drawn[N:]


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, ...]) -> dict[str, VectorIndex]:
    """Every kind over the same data, built once: building HNSW is the slow part."""
    keys, vectors, _ = data
    return {
        "exact": VectorIndex.build(keys, vectors, EXACT),
        "ivf": VectorIndex.build(keys, vectors, IVF),
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


@pytest.mark.parametrize("kind", APPROXIMATE)
def test_approximate_recall_against_brute_force(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], kind: str
) -> None:
    keys, vectors, queries = data
    index = built[kind]

    scores, found = index.search(queries, K)

    want_scores, want_keys = brute_force(keys, vectors, queries, K)
    assert index.kind == kind
    assert recall(found, want_keys) >= 0.95
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    # Scores are cosines whatever the kind (IVF ranks by L2 and converts).
    np.testing.assert_allclose(scores[:, 0], want_scores[:, 0], atol=CODE_TOLERANCE)


@pytest.mark.parametrize("kind", KINDS)
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


@pytest.mark.parametrize("kind", KINDS)
def test_very_selective_filter(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], kind: str
) -> None:
    """Fewer allowed keys than k: every one of them comes back, best first, then -1."""
    keys, vectors, queries = data
    index = built[kind]
    chosen = np.array([3, 500, 1999])

    scores, found = index.search(queries, K, allowed=keys[chosen])

    want_scores, want = brute_force(keys[chosen], vectors[chosen], queries, 3)
    assert (found[:, 3:] == -1).all()
    if kind == "ivf":  # compared on 8-bit codes: near ties may swap
        assert (np.sort(found[:, :3], axis=1) == np.sort(want, axis=1)).all()
        np.testing.assert_allclose(scores[:, :3], want_scores, atol=CODE_TOLERANCE)
        return
    np.testing.assert_array_equal(found[:, :3], want)
    np.testing.assert_allclose(scores[:, :3], want_scores, atol=1e-5)


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


@pytest.mark.parametrize("kind", KINDS)
def test_vector_lookup(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], kind: str
) -> None:
    keys, vectors, _ = data
    index = built[kind]

    tolerance = CODE_TOLERANCE if kind == "ivf" else 1e-7
    np.testing.assert_allclose(index.vector(int(keys[17])), vectors[17], atol=tolerance)  # type: ignore[arg-type]
    assert index.vector(-1) is None


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(
    tmp_path: Path, data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], kind: str
) -> None:
    keys, _, queries = data
    index = built[kind]
    path = tmp_path / "nested" / "index.faiss"

    index.save(path)
    loaded = VectorIndex.load(path, IVF if kind == "ivf" else HNSW)

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


def test_ivf_with_pca_keeps_recall_and_survives_a_round_trip(tmp_path: Path) -> None:
    vectors = structured(3000, 64)
    keys = np.arange(3000, dtype=np.int64) * 5 + 1
    queries = l2_normalise(vectors[:40] + 0.01)
    settings = IndexSettings(approximate_above=1000, pca_dim=16)
    index = VectorIndex.build(keys, vectors, settings)

    scores, found = index.search(queries, K)

    assert index.kind == "ivf" and index.lists == ivf_lists(3000)
    _, want = brute_force(keys, vectors, queries, K)
    assert recall(found, want) >= 0.95
    index.save(tmp_path / "ivf.faiss")
    loaded = VectorIndex.load(tmp_path / "ivf.faiss", settings)
    again_scores, again = loaded.search(queries, K)
    np.testing.assert_array_equal(again, found)
    np.testing.assert_allclose(again_scores, scores)


def test_ivf_filter_through_the_probe_and_its_fallback(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past EXACT_FILTER_MIN keys the filter rides the IVF probe; when the probed lists hold
    fewer allowed keys than asked for, every allowed key is compared instead."""
    keys, vectors, queries = data
    index = built["ivf"]
    monkeypatch.setattr(index_module, "EXACT_FILTER_MIN", 0)
    rng = np.random.default_rng(11)
    wide = rng.choice(N, size=N // 2, replace=False)
    narrow = rng.choice(N, size=12, replace=False)

    _, found_wide = index.search(queries, K, allowed=keys[wide])
    _, found_narrow = index.search(queries, K, allowed=keys[narrow])

    assert set(found_wide.ravel().tolist()) <= set(keys[wide].tolist())
    assert recall(found_wide, brute_force(keys[wide], vectors[wide], queries, K)[1]) >= 0.95
    _, want_narrow = brute_force(keys[narrow], vectors[narrow], queries, K)
    assert (found_narrow >= 0).all()
    assert recall(found_narrow, want_narrow) >= 0.95


def test_ivf_add_is_searchable_and_filterable(data: tuple[np.ndarray, ...]) -> None:
    keys, vectors, queries = data
    index = VectorIndex.build(keys[:1500], vectors[:1500], IVF)

    index.add(keys[1500:], vectors[1500:])

    assert len(index) == N and index.holds(int(keys[-1]))
    _, found = index.search(queries, K)
    assert recall(found, brute_force(keys, vectors, queries, K)[1]) >= 0.95
    _, only_new = index.search(queries, 3, allowed=keys[-3:])
    assert (np.sort(only_new, axis=1) == np.sort(keys[-3:])).all()


def test_the_kind_and_ivf_lists_follow_the_size() -> None:
    settings = IndexSettings(approximate_above=50_000)
    assert kind_for(50_000, settings) == "exact"
    assert kind_for(50_001, settings) == "ivf"
    assert kind_for(50_001, settings.model_copy(update={"approximate": "hnsw"})) == "hnsw"
    assert ivf_lists(1_000_000) == 4096 and ivf_lists(250_000) == 2048
    assert ivf_lists(1) == 1 and ivf_lists(100) == 2
    sizes = [10**3, 10**4, 10**5, 10**6, 10**7]
    lists = [ivf_lists(n) for n in sizes]
    assert lists == sorted(lists)
    # Every list trains on enough points.
    per_list = index_module.TRAIN_PER_LIST
    assert all(n >= held * per_list for n, held in zip(sizes, lists, strict=True))


def test_an_ivf_index_suits_its_size_until_it_needs_more_lists(
    data: tuple[np.ndarray, ...],
) -> None:
    keys, vectors, _ = data
    settings = IndexSettings(approximate_above=100)
    index = VectorIndex.build(keys[:500], vectors[:500], settings)

    assert index.kind == "ivf" and index.suits(500, settings)
    assert index.suits(600, settings)  # a sync's additions: add, do not rebuild
    assert not index.suits(4 * 500, settings)  # grown 4×: more lists, rebuild
    assert not index.suits(50, settings)  # shrunk below the threshold: exact
    assert not index.suits(500, settings.model_copy(update={"approximate": "hnsw"}))


def test_a_small_filter_ranks_tight_look_alikes_like_float_search() -> None:
    """A collection of near-duplicates (nearest-neighbour cosine 0.995) filtered inside an
    IVF index is compared on 8-bit codes. Ranked by L2 it keeps most of the true top 10
    (0.93 here); ranking by inner product of the decoded codes kept about half."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((30, 256))
    family = rng.integers(0, 30, 3000)
    vectors = l2_normalise(centres[family] + 0.08 * rng.standard_normal((3000, 256)))
    keys = np.arange(3000, dtype=np.int64)
    index = VectorIndex.build(keys, vectors, IndexSettings(approximate_above=100, pca_dim=64))
    members = np.flatnonzero(family == 0)
    queries = l2_normalise(centres[np.zeros(50, int)] + 0.08 * rng.standard_normal((50, 256)))

    _, found = index.search(queries, K, allowed=keys[members])

    _, want = brute_force(keys[members], vectors[members], queries, K)
    assert recall(found, want) >= 0.9


def test_keys_the_index_lacks_do_not_send_a_filter_to_the_full_comparison(
    data: tuple[np.ndarray, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection filter naming tokens not embedded yet is not "short" when the probe
    found every embedded one: the slow full comparison is for real shortfalls only."""
    keys, vectors, queries = data
    index = VectorIndex.build(keys, vectors, IVF)
    monkeypatch.setattr(index_module, "EXACT_FILTER_MIN", 0)
    scans: list[int] = []
    real_scan = index._filtered_scan

    def counting_scan(queries: np.ndarray, k: int, positions: np.ndarray) -> object:
        scans.append(len(positions))
        return real_scan(queries, k, positions)

    monkeypatch.setattr(index, "_filtered_scan", counting_scan)
    query = queries[:1]
    present = brute_force(keys, vectors, query, 3)[1][0]  # the probe reaches these
    absent = np.arange(-100, 0, dtype=np.int64)  # no token has these

    _, found = index.search(query, K, allowed=np.concatenate([present, absent]))

    assert scans == []
    assert sorted(found[0, :3].tolist()) == sorted(present.tolist())
    assert (found[0, 3:] == -1).all()


@pytest.mark.parametrize("settings", [EXACT, IVF], ids=["exact", "ivf"])
def test_an_index_built_from_batches_equals_one_built_at_once(
    data: tuple[np.ndarray, ...], settings: IndexSettings
) -> None:
    keys, vectors, queries = data
    batches = [(keys[i : i + 300], vectors[i : i + 300]) for i in range(0, N, 300)]
    at_once = VectorIndex.build(keys, vectors, settings)

    streamed = VectorIndex.build_from(keys, batches, lambda rows: vectors[rows], DIM, settings)

    assert (streamed.kind, len(streamed)) == (at_once.kind, N)
    want_scores, want = at_once.search(queries, K)
    got_scores, got = streamed.search(queries, K)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_scores, want_scores)


@pytest.mark.parametrize("count", [1, 5, 101])
def test_an_ivf_index_of_fewer_vectors_than_pca_dimensions_still_builds(count: int) -> None:
    """A low approximate_above can make an IVF index of a handful of 512-d vectors: PCA then
    keeps as many dimensions as it has vectors to learn from."""
    rng = np.random.default_rng(count)
    vectors = l2_normalise(rng.standard_normal((count, 512)))
    keys = np.arange(count, dtype=np.int64)
    settings = IndexSettings(approximate_above=0)

    index = VectorIndex.build(keys, vectors, settings)

    assert index.kind == "ivf" and index.reduced == min(count, 256)
    assert index.suits(count, settings)
    _, found = index.search(vectors[:1], 1)
    assert found[0, 0] == 0


def test_a_new_pca_dim_makes_the_index_unsuitable(data: tuple[np.ndarray, ...]) -> None:
    keys, vectors, _ = data
    settings = IndexSettings(approximate_above=100, pca_dim=16)
    index = VectorIndex.build(keys, vectors, settings)

    assert index.reduced == 16 and index.suits(N, settings)
    assert not index.suits(N, settings.model_copy(update={"pca_dim": 24}))


@pytest.mark.parametrize("allowed", [None, "small"], ids=["unfiltered", "filtered"])
def test_a_query_of_nans_matches_nothing(
    data: tuple[np.ndarray, ...], built: dict[str, VectorIndex], allowed: str | None
) -> None:
    keys, _, _ = data
    query = np.full(DIM, np.nan, np.float32)

    scores, found = built["ivf"].search(query, K, keys[:50] if allowed else None)

    assert (found == -1).all() and np.isneginf(scores).all()


def test_ivf_lists_stop_where_the_training_sample_does() -> None:
    per_list = index_module.TRAIN_PER_LIST
    assert ivf_lists(5_000_000) * per_list <= index_module.MAX_TRAIN
    assert ivf_lists(5_000_000) == ivf_lists(1_000_000) == 4096
