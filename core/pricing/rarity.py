"""Rarity by OpenRarity's documented formula: information content over collection entropy.

The ``open-rarity`` package pins pydantic below 2.3, which this project cannot take, so the
formula is implemented here and tested against OpenRarity's published examples
(tests/pricing/test_rarity.py):

- every trait type is a categorical distribution over its values, with "Null" for tokens
  that lack it, plus a meta trait counting each token's (non-"none") traits;
- a token's information content is the sum over all trait types of log2(N / count) of its
  value (or of Null);
- its score is that divided by the collection's entropy, the sum over all trait types and
  values of -p log2 p; higher is rarer;
- ranks sort by the number of traits the token alone has, then by score, and tokens whose
  scores are equal share a rank (1, 2, 2, 4).

Names and values are compared lower-cased and trimmed, as OpenRarity does. Where ERC-721
metadata repeats a trait type (a punk's several "accessory" entries), each value becomes a
trait type of its own ("accessory: earring", present or Null), since OpenRarity's model holds
one value per type. Values arrive as text (numbers included), so all of them are scored.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.models import Attribute

TRAIT_COUNT = "meta_trait:trait_count"
NULL = "Null"


@dataclass(frozen=True)
class Rarity:
    """One token's OpenRarity score (higher is rarer) and rank (1 is the rarest)."""

    score: float
    rank: int


def traits_of(attributes: Sequence[Attribute]) -> dict[str, str]:
    """A token's traits as OpenRarity sees them: one value per (normalised) trait type."""
    names = Counter(_normal(a.trait_type) for a in attributes)
    traits: dict[str, str] = {}
    for attribute in attributes:
        name, value = _normal(attribute.trait_type), _normal(attribute.value)
        if names[name] > 1:
            # A repeated type (several accessories): each value is present-or-Null.
            traits[f"{name}: {value}"] = "yes"
        else:
            traits[name] = value
    counted = sum(1 for value in traits.values() if value not in ("none", ""))
    traits[TRAIT_COUNT] = str(counted)
    return traits


def rarities(tokens: Mapping[str, Sequence[Attribute]]) -> dict[str, Rarity]:
    """Score and rank every token of a collection (the whole collection, for the counts)."""
    traits = {token: traits_of(attributes) for token, attributes in tokens.items()}
    total = len(traits)
    if total == 0:
        return {}
    counts: dict[str, Counter[str]] = {}
    for token_traits in traits.values():
        for name, value in token_traits.items():
            counts.setdefault(name, Counter())[value] += 1
    # Tokens without a trait type carry its Null value.
    for values in counts.values():
        missing = total - sum(values.values())
        if missing > 0:
            values[NULL] += missing
    entropy = -sum(
        (n / total) * math.log2(n / total) for values in counts.values() for n in values.values()
    )
    normaliser = entropy or 1.0  # a collection of one token has no entropy
    scores: dict[str, float] = {}
    unique: dict[str, int] = {}
    for token, token_traits in traits.items():
        information = 0.0
        for name, values in counts.items():
            n = values[token_traits.get(name, NULL)]
            information += math.log2(total / n)
        scores[token] = information / normaliser
        unique[token] = sum(
            1
            for name, value in token_traits.items()
            if name != TRAIT_COUNT and counts[name][value] == 1
        ) + (1 if counts[TRAIT_COUNT][token_traits[TRAIT_COUNT]] == 1 else 0)
    ranks = rank_tokens(scores, unique)
    return {token: Rarity(scores[token], ranks[token]) for token in traits}


def rank_tokens(scores: Mapping[str, float], unique: Mapping[str, int]) -> dict[str, int]:
    """Ranks by (traits the token alone has, score), both descending; a token whose score
    equals the one ranked just before it shares that rank."""
    order = sorted(scores, key=lambda token: (unique[token], scores[token]), reverse=True)
    ranks: dict[str, int] = {}
    for position, token in enumerate(order, start=1):
        previous = order[position - 2] if position > 1 else None
        if previous is not None and math.isclose(scores[token], scores[previous]):
            ranks[token] = ranks[previous]
        else:
            ranks[token] = position
    return ranks


def _normal(text: str) -> str:
    return text.strip().lower()
