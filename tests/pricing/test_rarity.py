"""Rarity matches OpenRarity's published examples (its tests/test_rarity_ranker.py)."""

from __future__ import annotations

import math

import pytest

from core.models import Attribute
from core.pricing.rarity import TRAIT_COUNT, rank_tokens, rarities, traits_of


def collection(*tokens: dict[str, str]) -> dict[str, tuple[Attribute, ...]]:
    return {str(i): tuple(Attribute(k, v) for k, v in t.items()) for i, t in enumerate(tokens)}


def order(ranked: dict[str, object]) -> list[tuple[str, int]]:
    return sorted(((t, r.rank) for t, r in ranked.items()), key=lambda item: (item[1], item[0]))  # type: ignore[attr-defined]


def test_one_token_scores_zero() -> None:
    (only,) = rarities(collection({"trait1": "value1"})).values()

    assert (only.score, only.rank) == (0.0, 1)


def test_equal_scores_share_a_rank_and_unique_traits_come_first() -> None:
    ranked = rarities(
        collection(
            {"trait1": "value1", "trait2": "value1", "trait3": "value2"},
            {"trait1": "value1", "trait2": "value2", "trait3": "value2"},
            {"trait1": "value1", "trait2": "value2", "trait3": "value3"},
            {"trait1": "value1", "trait2": "value2", "trait3": "value2", "trait4": "value1"},
        )
    )

    assert [rank for _, rank in order(ranked)] == [1, 2, 2, 4]
    assert ranked["3"].rank == 1 and ranked["1"].rank == 4
    assert ranked["0"].rank == ranked["2"].rank == 2


def test_unique_scores_rank_in_order() -> None:
    ranked = rarities(
        collection(
            {"trait1": "value1", "trait2": "value1", "trait3": "value2"},
            {"trait1": "value1", "trait2": "value2", "trait3": "value2"},
            {"trait1": "value1", "trait2": "value2", "trait3": "value3"},
            {"trait1": "value1", "trait2": "value4", "trait3": "value2", "trait4": "value1"},
        )
    )

    assert [token for token, _ in order(ranked)] == ["3", "2", "0", "1"]
    assert [rank for _, rank in order(ranked)] == [1, 2, 3, 4]


def test_same_scores_published_values() -> None:
    ranked = rarities(
        collection(
            {"trait1": "value1", "trait2": "value1", "trait3": "value1"},
            {"trait1": "value1", "trait2": "value1", "trait3": "value1"},
            {"trait1": "value2", "trait2": "value1", "trait3": "value3"},
            {"trait1": "value2", "trait2": "value2", "trait3": "value3"},
            {"trait1": "value3", "trait2": "value3", "trait3": "value3"},
        )
    )

    expected = {
        "4": (1, 1.3926137488801251),
        "3": (2, 1.1338031424711967),
        "0": (3, 0.8749925360622679),
        "1": (3, 0.8749925360622679),
        "2": (5, 0.7235980365241422),
    }
    for token, (rank, score) in expected.items():
        assert ranked[token].rank == rank
        assert ranked[token].score == pytest.approx(score, rel=1e-12)


def test_ranks_by_unique_traits_then_score_sharing_equal_neighbours() -> None:
    # OpenRarity's test_set_ranks_same_unique_different_ic_score.
    ranks = rank_tokens({"1": 1.5, "2": 1.5, "3": 0.2, "4": 7.0}, {"1": 1, "2": 2, "3": 3, "4": 0})

    assert ranks == {"3": 1, "2": 2, "1": 2, "4": 4}


def test_a_score_by_hand() -> None:
    # Three tokens; trait3 only on the last, so the others carry its Null (2 of 3), and the
    # trait counts are 2, 2 and 3. Every trait type splits 2:1, so the entropy is four
    # times H(2/3, 1/3).
    ranked = rarities(
        collection(
            {"trait1": "value1", "trait2": "value1"},
            {"trait1": "value1", "trait2": "value2"},
            {"trait1": "value2", "trait2": "value2", "trait3": " Value3 "},
        )
    )
    h = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    common, rare = math.log2(3 / 2), math.log2(3)

    assert ranked["0"].score == pytest.approx((common + rare + common + common) / (4 * h))
    assert ranked["2"].score == pytest.approx((rare + common + rare + rare) / (4 * h))
    assert ranked["2"].rank == 1


def test_repeated_trait_types_become_one_trait_per_value() -> None:
    traits = traits_of(
        (
            Attribute("type", "Human"),
            Attribute("accessory", "Earring"),
            Attribute("Accessory", "Cap "),
            Attribute("hat", "None"),
        )
    )

    assert traits == {
        "type": "human",
        "accessory: earring": "yes",
        "accessory: cap": "yes",
        "hat": "none",
        TRAIT_COUNT: "3",
    }
