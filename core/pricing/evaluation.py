"""Scoring estimates against what sold, and the baselines a model has to beat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.pricing.features import LEVEL_WINDOW, SHORT_WINDOW, Prepared
from core.pricing.history import History

SAME_TYPE_WINDOW = 20


@dataclass(frozen=True)
class Score:
    """How one method did on the evaluation sales (interval coverage where it has one)."""

    method: str
    sales: int
    mdape: float
    mean_abs_log: float
    within_25: float
    coverage: float | None
    top_mdape: float
    bottom_mdape: float
    # Interval coverage per calendar month ("2020-07": 0.81), where there is an interval.
    coverage_by_month: dict[str, float] | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "sales": self.sales,
            "mdape": round(self.mdape, 4),
            "mean_abs_log_ratio": round(self.mean_abs_log, 4),
            "within_25pct": round(self.within_25, 4),
            "interval_coverage": None if self.coverage is None else round(self.coverage, 4),
            "top_decile_mdape": round(self.top_mdape, 4),
            "bottom_decile_mdape": round(self.bottom_mdape, 4),
            "interval_coverage_by_month": None
            if self.coverage_by_month is None
            else {month: round(value, 4) for month, value in self.coverage_by_month.items()},
        }


def score(
    method: str,
    price: np.ndarray,
    estimate: np.ndarray,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    ts: np.ndarray | None = None,
) -> Score:
    """MdAPE, mean |log ratio|, share within ±25%, coverage (overall and, given ``ts``, per
    month), and MdAPE of the top and bottom price deciles (deciles of the actual prices)."""
    ape = np.abs(estimate - price) / price
    top, bottom = np.quantile(price, 0.9), np.quantile(price, 0.1)
    coverage = None
    by_month = None
    if low is not None and high is not None:
        inside = (low <= price) & (price <= high)
        coverage = float(np.mean(inside))
        if ts is not None:
            months = pd.to_datetime(ts, unit="s", utc=True).strftime("%Y-%m")
            by_month = {
                str(month): float(value)
                for month, value in pd.Series(inside).groupby(np.asarray(months)).mean().items()
            }
    return Score(
        method=method,
        sales=len(price),
        mdape=float(np.median(ape)),
        mean_abs_log=float(np.mean(np.abs(np.log(estimate / price)))),
        within_25=float(np.mean(ape <= 0.25)),
        coverage=coverage,
        top_mdape=float(np.median(ape[price >= top])),
        bottom_mdape=float(np.median(ape[price <= bottom])),
        coverage_by_month=by_month,
    )


def baselines(
    history: History, prepared: Prepared, rows: np.ndarray, own_premium: np.ndarray
) -> dict[str, np.ndarray]:
    """Point-in-time baseline estimates for the sales at ``rows`` (indexes into the sales)."""
    ts = prepared.ts
    k = np.searchsorted(ts, ts[rows], side="left")
    level = prepared.level_at_k[k]
    return {
        f"median of last {SHORT_WINDOW} sales": np.exp(prepared.short_at_k[k]),
        f"median of last {LEVEL_WINDOW} sales": np.exp(level),
        f"same-type median of last {SAME_TYPE_WINDOW}": _same_type(history, prepared, rows, level),
        "last sale, adjusted": np.exp(
            np.where(np.isfinite(own_premium), level + own_premium, level)
        ),
    }


def _same_type(
    history: History, prepared: Prepared, rows: np.ndarray, level: np.ndarray
) -> np.ndarray:
    """The median of the last 20 sales of the same type strictly before each sale (the
    collection level where the type is unknown or has no earlier sale)."""
    tokens = history.sales["token_id"].to_numpy()
    kinds = np.array([history.kinds.get(t, "") for t in tokens], dtype=object)
    out = np.exp(level.copy())
    for kind in {k for k in kinds[rows] if k}:
        members = np.where(kinds == kind)[0]
        medians = (
            pd.Series(prepared.logp[members])
            .rolling(SAME_TYPE_WINDOW, min_periods=1)
            .median()
            .to_numpy()
        )
        at_k = np.concatenate([[np.nan], medians])
        mine = np.where(kinds[rows] == kind)[0]
        k = np.searchsorted(prepared.ts[members], prepared.ts[rows[mine]], side="left")
        values = at_k[k]
        out[mine] = np.where(np.isfinite(values), np.exp(values), out[mine])
    return out
