"""What each cluster did over a window, against the window before it."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.models import Sale


@dataclass(frozen=True)
class WindowNumbers:
    """One cluster's sales in the window (prices in the collection's currency)."""

    sales: int = 0
    volume: float = 0.0
    median: float | None = None
    # The median of the window before, and the change from it (0.12 is +12%).
    previous_median: float | None = None
    previous_sales: int = 0
    change: float | None = None
    # The cheapest sale (a floor-like low) and the dearest, with its token.
    low: float | None = None
    top: float | None = None
    top_token: str | None = None
    # This cluster's share of the collection's volume in the window.
    share: float = 0.0
    # Sales below / above the price model's 80% interval (None: no model to compare with).
    below_model: int | None = None
    above_model: int | None = None


def window_numbers(
    now: Sequence[Sale],
    before: Sequence[Sale],
    cluster_of: Mapping[str, int],
    bands: Mapping[tuple[str, str], tuple[float, float]] | None = None,
) -> dict[int, WindowNumbers]:
    """Per cluster id: the numbers of ``now`` against ``before``. Sales of tokens in no
    cluster (not embedded yet) count toward the collection's volume only. ``bands`` holds
    the model's (low, high) for a sale, keyed by (tx, token id)."""
    current: dict[int, list[Sale]] = defaultdict(list)
    previous: dict[int, list[float]] = defaultdict(list)
    for sale in now:
        if sale.token_id in cluster_of:
            current[cluster_of[sale.token_id]].append(sale)
    for sale in before:
        if sale.token_id in cluster_of:
            previous[cluster_of[sale.token_id]].append(sale.price)
    total = sum(sale.price for sale in now)
    results: dict[int, WindowNumbers] = {}
    for cid in set(current) | set(previous):
        sales = current.get(cid, [])
        prices = [sale.price for sale in sales]
        prior = previous.get(cid, [])
        median = statistics.median(prices) if prices else None
        prior_median = statistics.median(prior) if prior else None
        change = median / prior_median - 1 if median is not None and prior_median else None
        top = max(sales, key=lambda s: s.price) if sales else None
        below = above = None
        if bands is not None:
            below = above = 0
            for sale in sales:
                band = bands.get((sale.tx, sale.token_id))
                if band is None:
                    continue
                below += sale.price < band[0]
                above += sale.price > band[1]
        results[cid] = WindowNumbers(
            sales=len(sales),
            volume=sum(prices),
            median=median,
            previous_median=prior_median,
            previous_sales=len(prior),
            change=change,
            low=min(prices) if prices else None,
            top=top.price if top else None,
            top_token=top.token_id if top else None,
            share=sum(prices) / total if total else 0.0,
            below_model=below,
            above_model=above,
        )
    return results
