"""Finding a collection's visual groups: k-means over its embeddings, kept stable over time.

The study behind the product asked the computer to find the groups rather than assume them.
k-means (scikit-learn, fixed seed, several starts) runs on the unit vectors the index holds;
k comes from config or from the silhouette score over a range. A cluster keeps its id across
re-clusterings: new clusters are matched to old ones by the tokens they share (Hungarian
assignment on the overlap), so week-on-week numbers describe the same group. Between full
re-clusterings, new tokens join the cluster whose centre is nearest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# scikit-learn and scipy.optimize are imported where they are used: loading them costs every
# command about 1.5 s of start-up (core.app builds the digest service), and only a
# re-clustering needs them.

SEED = 0
N_INIT = 4
# The silhouette is computed on at most this many tokens (it is quadratic).
SILHOUETTE_SAMPLE = 3000
# A new cluster inherits an old id when they share at least this share of the smaller one.
MIN_OVERLAP = 0.3


@dataclass(frozen=True)
class Fit:
    """A k-means fit: the label of each row, the centres, and how k was chosen."""

    labels: np.ndarray
    centroids: np.ndarray
    k: int
    # k -> silhouette, for each k tried (empty when k was given).
    silhouettes: Mapping[int, float]


def fit(vectors: np.ndarray, k: int, k_min: int, k_max: int) -> Fit:
    """Cluster ``vectors`` (rows, unit length) into ``k`` groups, or the best k in
    ``k_min..k_max`` by silhouette when ``k`` is 0. Same input, same output."""
    n = len(vectors)
    if n == 0:
        return Fit(np.empty(0, np.int64), np.empty((0, 0), np.float32), 0, {})
    if k:
        k = min(k, n)
        labels, centroids = _kmeans(vectors, k)
        return Fit(labels, centroids, k, {})
    from sklearn.metrics import silhouette_score

    scores: dict[int, float] = {}
    fits: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    sample = _sample(n)
    for candidate in range(max(2, k_min), min(k_max, n - 1) + 1):
        labels, centroids = _kmeans(vectors, candidate)
        fits[candidate] = (labels, centroids)
        if len(set(labels[sample].tolist())) < 2:
            continue
        scores[candidate] = float(
            silhouette_score(vectors[sample], labels[sample], metric="cosine")
        )
    if not scores:
        labels, centroids = _kmeans(vectors, min(n, max(1, k_min)))
        return Fit(labels, centroids, len(centroids), {})
    best = max(scores, key=lambda c: (scores[c], -c))
    labels, centroids = fits[best]
    return Fit(labels, centroids, best, scores)


def keep_ids(
    old: Mapping[int, int], new_labels: Mapping[int, int], new_count: int
) -> dict[int, int]:
    """Ids for the new clusters: ``old`` and ``new_labels`` map token -> cluster. A new
    cluster takes the id of the old one it shares most tokens with (one to one, at least
    ``MIN_OVERLAP`` of the smaller); the others get ids never used before."""
    from scipy.optimize import linear_sum_assignment

    old_ids = sorted(set(old.values()))
    if not old_ids:
        return {i: i for i in range(new_count)}
    index = {cid: j for j, cid in enumerate(old_ids)}
    overlap = np.zeros((new_count, len(old_ids)), dtype=np.int64)
    for token, label in new_labels.items():
        if token in old:
            overlap[label, index[old[token]]] += 1
    new_sizes = np.bincount(list(new_labels.values()), minlength=new_count)
    old_sizes = np.bincount([index[c] for c in old.values()], minlength=len(old_ids))
    rows, cols = linear_sum_assignment(-overlap)
    ids: dict[int, int] = {}
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        smaller = max(1, min(new_sizes[r], old_sizes[c]))
        if overlap[r, c] >= MIN_OVERLAP * smaller:
            ids[r] = old_ids[c]
    fresh = max(old_ids) + 1
    for r in range(new_count):
        if r not in ids:
            ids[r] = fresh
            fresh += 1
    return ids


def nearest(vectors: np.ndarray, centroids: Mapping[int, np.ndarray]) -> list[int]:
    """The id of the nearest centre (cosine) for each row."""
    ids = list(centroids)
    matrix = np.stack([centroids[i] for i in ids])
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    best = np.argmax(vectors @ matrix.T, axis=1)
    return [ids[int(i)] for i in best]


def _kmeans(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=N_INIT, random_state=SEED)
    labels = model.fit_predict(vectors.astype(np.float64))
    return labels.astype(np.int64), model.cluster_centers_.astype(np.float32)


def _sample(n: int) -> np.ndarray:
    if n <= SILHOUETTE_SAMPLE:
        return np.arange(n)
    return np.sort(np.random.default_rng(SEED).choice(n, SILHOUETTE_SAMPLE, replace=False))
