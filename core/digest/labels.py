"""Names people understand for clusters: the traits over-represented in them, or their colours.

A trait's lift in a cluster is its share there over its share in the whole collection; a
label names the one or two traits with the highest lift among those that at least
``MIN_SHARE`` of the cluster has ("Zombie · Hoodie"). A collection without traits (or a
cluster no trait stands out in) is named by its dominant colours instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.models import Attribute

# Measured on CryptoPunks (bench/clusters.py): groups there are "a quarter mohawks" at lift
# 5-6, so a third would leave most unnamed; a lift of 2 still means twice as common as usual.
MIN_SHARE = 0.15
MIN_LIFT = 2.0
MAX_TERMS = 2
# Named colours a label may use (RGB), chosen to be told apart at a glance.
PALETTE: Mapping[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "red": (200, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 50),
    "green": (60, 170, 60),
    "teal": (40, 160, 160),
    "blue": (50, 90, 210),
    "purple": (130, 60, 180),
    "pink": (240, 140, 190),
    "brown": (120, 80, 40),
}


@dataclass(frozen=True)
class LabelTerm:
    """One trait behind a label: its share in the cluster and its lift over the collection."""

    trait: str
    value: str
    share: float
    lift: float

    @property
    def text(self) -> str:
        # A bare number ("3") means nothing without its trait's name.
        return f"{self.trait} {self.value}" if _numeric(self.value) else self.value


def trait_terms(
    members: Sequence[int], attributes: Mapping[int, Sequence[Attribute]]
) -> dict[int, Counter[tuple[str, str]]]:
    """Per token, the set of (trait, value) it has, counted once each."""
    return {
        pk: Counter({(a.trait_type, a.value) for a in attributes.get(pk, ())}) for pk in members
    }


def label_terms(
    cluster: Sequence[int],
    everyone: Counter[tuple[str, str]],
    total: int,
    terms: Mapping[int, Counter[tuple[str, str]]],
) -> tuple[LabelTerm, ...]:
    """The traits that stand out in ``cluster`` (token ids) against the whole collection
    (``everyone``: how many of its ``total`` tokens have each trait)."""
    if not cluster or not total:
        return ()
    inside: Counter[tuple[str, str]] = Counter()
    for pk in cluster:
        inside.update(terms.get(pk, Counter()))
    found = []
    for (trait, value), count in inside.items():
        share = count / len(cluster)
        lift = share / (everyone[(trait, value)] / total)
        if share >= MIN_SHARE and lift >= MIN_LIFT:
            found.append(LabelTerm(trait, value, share, lift))
    found.sort(key=lambda t: (-t.lift, -t.share, t.trait, t.value))
    return tuple(found[:MAX_TERMS])


def colour_label(colours: np.ndarray) -> str:
    """Up to two named colours for a cluster, from its tokens' mean colours (rows of RGB)."""
    if not len(colours):
        return "unnamed"
    names = list(PALETTE)
    palette = np.array([PALETTE[name] for name in names], dtype=np.float32)
    distance = ((colours[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)
    votes = Counter(names[int(i)] for i in np.argmin(distance, axis=1))
    top = [name for name, count in votes.most_common(2) if count >= 0.25 * len(colours)]
    return "mostly " + " · ".join(top or [votes.most_common(1)[0][0]])


def _numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
