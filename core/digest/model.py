"""A digest as the engine hands it to the CLI and the chat front ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.digest.labels import LabelTerm
from core.digest.numbers import WindowNumbers
from core.models import Collection, Picture


@dataclass(frozen=True)
class ClusterDigest:
    """One visual group in a digest: who it is, what it did, and what it looks like."""

    id: int
    label: str
    size: int
    # The traits behind the label (empty when it names colours).
    terms: tuple[LabelTerm, ...]
    numbers: WindowNumbers
    # Why it is in the digest: "mover" (its median moved most) or "largest".
    why: str
    # Its most representative tokens (nearest its centre), best first.
    representatives: tuple[str, ...]
    montage: Picture | None = None


@dataclass(frozen=True)
class Digest:
    """A collection's digest over ``[start, end)``, compared with ``[previous_start, start)``."""

    collection: Collection
    start: datetime
    end: datetime
    previous_start: datetime
    k: int
    clusters: tuple[ClusterDigest, ...]
    sales: int
    volume: float
    # Set when there is nothing to report: the one line to say instead.
    nothing: str | None = None
    # The silhouette of each k tried, when this digest re-clustered with k chosen.
    silhouettes: tuple[tuple[int, float], ...] = ()


def cluster_line(cluster: ClusterDigest, currency: str) -> str:
    """One plain line of a cluster's numbers, for any front end."""
    n = cluster.numbers
    parts = [f"{cluster.size} tokens"]
    if n.sales:
        parts.append(f"{n.sales} sales, {n.volume:.4g} {currency} ({n.share:.0%} of volume)")
        parts.append(
            f"median {n.median:.4g}" + (f" ({n.change:+.0%})" if n.change is not None else "")
        )
        parts.append(f"low {n.low:.4g}, top {n.top:.4g} (#{n.top_token})")
    else:
        parts.append("no sales this window")
    if n.below_model or n.above_model:
        parts.append(f"{n.below_model} below / {n.above_model} above the model's range")
    return " · ".join(parts)


def headline(digest: Digest) -> str:
    """The digest's first line."""
    if digest.nothing is not None:
        return digest.nothing
    return (
        f"{digest.collection.name}: {len(digest.clusters)} of {digest.k} visual groups, "
        f"{digest.start:%b %d} to {digest.end:%b %d}: {digest.sales} sales, "
        f"{digest.volume:.4g} {digest.collection.currency}"
    )
