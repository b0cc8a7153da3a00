"""Clusters, labels, window numbers and digests on a constructed collection."""

from __future__ import annotations

import json
from argparse import Namespace
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from core.digest.cli import run_digest
from core.digest.clustering import fit, keep_ids
from core.digest.jobs import digest_post
from core.digest.numbers import window_numbers
from core.imaging.workers import DecoderPool
from core.models import Sale
from tests.digest.conftest import END, SLUG, Built, add_tokens, build, sale


def _by_group(built: Built, members: dict[int, int]) -> dict[int, set[int]]:
    """group -> the cluster ids its tokens landed in."""
    tokens = built.engine.storage.catalog.tokens_by_pk(list(members))
    found: dict[int, set[int]] = {}
    for pk, cid in members.items():
        found.setdefault(built.groups[tokens[pk].token_id], set()).add(cid)
    return found


def test_every_token_is_in_one_cluster_and_the_same_data_gives_the_same_clusters(
    built: Built,
) -> None:
    service = built.engine.digests
    first = service.cluster(SLUG, force=True)
    again = service.cluster(SLUG, force=True)

    assert len(first.members) == 36
    assert first.members == again.members
    groups = _by_group(built, first.members)
    # k chosen by silhouette finds the three constructed groups, one cluster each.
    assert len(first.centroids) == 3
    assert all(len(cids) == 1 for cids in groups.values())
    assert len({next(iter(c)) for c in groups.values()}) == 3
    scores = dict(first.silhouettes)
    assert set(scores) == {2, 3, 4, 5, 6} and max(scores, key=scores.__getitem__) == 3


def test_a_cluster_keeps_its_id_across_re_clusterings(built: Built, tmp_path: Path) -> None:
    service = built.engine.digests
    before = _by_group(built, service.cluster(SLUG, force=True).members)
    # Three more tokens of group 1 arrive: they join its cluster without a re-clustering...
    add_tokens(built.engine, 1, [str(100 + i) for i in range(3)], np.random.default_rng(5))
    built.groups.update({str(100 + i): 1 for i in range(3)})
    joined = service.cluster(SLUG)
    assert not joined.reclustered
    assert _by_group(built, joined.members) == before
    # ...and a full re-clustering (k-means starts afresh) gives each group its old id back.
    after = service.cluster(SLUG, force=True)
    assert after.reclustered
    assert _by_group(built, after.members) == before


def test_growth_since_the_last_fit_brings_a_re_clustering(built: Built) -> None:
    """recluster_growth (20%) counts from the tokens the clustering was fitted on, not from
    its members: tokens that joined in between must not push the threshold away."""
    service = built.engine.digests
    assert service.cluster(SLUG, force=True).reclustered  # fitted on 36
    rng = np.random.default_rng(9)
    add_tokens(built.engine, 0, [str(200 + i) for i in range(5)], rng)
    assert not service.cluster(SLUG).reclustered  # 41 of 36 fitted: they join
    add_tokens(built.engine, 2, [str(300 + i) for i in range(5)], rng)

    grown = service.cluster(SLUG)  # 46 > 36 × 1.2

    assert grown.reclustered and len(grown.members) == 46
    stored = built.engine.storage.digests.clustering(
        built.engine.storage.catalog.collection_pk(SLUG), built.engine.embedder.key
    )
    assert stored.fitted_tokens == 46


def test_matching_by_shared_tokens_renames_permuted_clusters_and_numbers_new_ones() -> None:
    old = {1: 7, 2: 7, 3: 9, 4: 9, 5: 9}
    # The same two groups under swapped labels, plus a new group of unseen tokens.
    new = {1: 1, 2: 1, 3: 0, 4: 0, 5: 0, 6: 2, 7: 2}
    assert keep_ids(old, new, 3) == {0: 9, 1: 7, 2: 10}


def test_fit_with_a_fixed_k_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    a, b = fit(vectors, 4, 2, 6), fit(vectors, 4, 2, 6)
    assert a.k == 4 and a.silhouettes == {}
    np.testing.assert_array_equal(a.labels, b.labels)


async def test_labels_name_the_traits_with_the_highest_lift(built: Built) -> None:
    digest = await built.engine.digests.digest(SLUG)

    by_label = {c.label: c for c in digest.clusters}
    assert set(by_label) == {"Hoodie", "Cap", "None"}
    hoodie = by_label["Hoodie"].terms[0]
    # Every token of the group has it, against a third of the collection: lift 3.
    assert (hoodie.trait, hoodie.share, hoodie.lift) == ("Hat", 1.0, pytest.approx(3.0))
    # "Type" is spread evenly over every group: it names none of them.
    assert all(t.trait == "Hat" for c in digest.clusters for t in c.terms)


async def test_window_numbers_match_the_hand_computed_ones(built: Built) -> None:
    digest = await built.engine.digests.digest(SLUG)

    assert (digest.start, digest.end) == (END - timedelta(days=7), END)
    assert digest.sales == 8 and digest.volume == pytest.approx(4 * 1.5 + 3 * 1.8 + 5.0)
    movers = [c for c in digest.clusters if c.why == "mover"]
    assert [c.label for c in movers] == ["Hoodie", "Cap"]  # +50% moved more than -10%
    hoodie, cap = (c.numbers for c in movers)
    assert (hoodie.sales, hoodie.median, hoodie.previous_median) == (4, 1.5, 1.0)
    assert hoodie.change == pytest.approx(0.5)
    assert hoodie.share == pytest.approx(6.0 / 16.4)
    assert (cap.low, cap.top, cap.change) == (1.8, 1.8, pytest.approx(-0.1))
    assert hoodie.below_model is None  # no price model for this collection
    largest = [c for c in digest.clusters if c.why == "largest"]
    assert [(c.label, c.size, c.numbers.top, c.numbers.top_token) for c in largest] == [
        ("None", 12, 5.0, "24")
    ]


def test_window_numbers_count_sales_outside_the_models_range() -> None:
    now = [sale("1", 1.0, 1, 1), sale("2", 3.0, 1, 2), sale("3", 2.0, 1, 3)]
    before = [sale("1", 2.0, 9, 4)]
    bands = {(s.tx, s.token_id): (1.5, 2.5) for s in now}
    numbers = window_numbers(now, before, {"1": 0, "2": 0, "3": 1}, bands)

    assert (numbers[0].below_model, numbers[0].above_model) == (1, 1)
    assert (numbers[1].below_model, numbers[1].above_model) == (0, 0)
    assert numbers[0].change == pytest.approx(2.0 / 2.0 - 1)
    assert numbers[0].share == pytest.approx(4.0 / 6.0)


async def test_an_empty_window_says_so_in_one_line(built: Built) -> None:
    digest = await built.engine.digests.digest(SLUG, now=END + timedelta(days=60))

    assert digest.clusters == ()
    assert digest.nothing is not None and "no sales between" in digest.nothing
    assert digest_post(digest).text == digest.nothing
    assert digest_post(digest).pictures == ()


async def test_each_group_gets_a_montage_of_its_most_central_tokens(built: Built) -> None:
    digest = await built.engine.digests.digest(SLUG)

    for cluster in digest.clusters:
        assert cluster.montage is not None and cluster.montage.data.startswith(b"\x89PNG")
        assert len(cluster.representatives) == 4
        assert {built.groups[t] for t in cluster.representatives} == {
            built.groups[cluster.representatives[0]]
        }


async def test_a_collection_without_traits_is_named_by_its_colours(
    tmp_path: Path, decoder: DecoderPool
) -> None:
    for built in build(tmp_path, decoder, traits=False):
        digest = await built.engine.digests.digest(SLUG)
        labels = {c.label for c in digest.clusters}
    assert labels == {"mostly red", "mostly blue", "mostly green"}


async def test_the_cli_writes_montages_and_prints_the_product_json(
    built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "digests"
    args = Namespace(collection=SLUG, out=out, json=True, at=None, days=None, recluster=False)
    assert await run_digest(args, built.engine) == 0

    line = json.loads(capsys.readouterr().out)
    assert line["collection"] == SLUG
    assert set(line["window"]) >= {"start", "end"}
    assert line["window"]["end"] == "2026-01-15T00:00:00Z"
    for cluster in line["clusters"]:
        assert {"id", "label", "size", "image"} <= set(cluster)
        assert Path(cluster["image"]).is_file() and Path(cluster["image"]).parent == out
    assert Counter(c["why"] for c in line["clusters"]) == {"mover": 2, "largest": 1}


async def test_sales_in_another_currency_are_left_out_of_the_numbers(built: Built) -> None:
    storage = built.engine.storage
    usdc = Sale(SLUG, "4", END - timedelta(days=1), 3000.0, "USDC", "0xff")
    storage.sales.add(storage.catalog.collection_pk(SLUG), [usdc])

    digest = await built.engine.digests.digest(SLUG)

    assert digest.sales == 8 and digest.volume == pytest.approx(16.4)
