"""The price model: bagged gradient boosting on the premium over the collection level, with
a bias and an 80% interval recalibrated from its own recent errors.

Why this shape (measured in bench/RESULTS.md, chosen on the first half of 2020, reported on
the second half):
- the target is log(price) minus the log level (median of the last 50 sales), so the trees
  learn premiums, not market moves, and never need to extrapolate a price they never saw;
- absolute-error loss: the median premium, which is what MdAPE rewards and outliers (wash
  sales, fat fingers) cannot drag;
- five models on bootstrap samples, averaged: steadier on the rare, expensive tokens;
- a frozen model drifts in a boom, so before each estimate it is corrected by the median of
  its own errors on the last 50 sales before t, and its interval is the 10th to 90th
  percentile of those errors over the last 100 and the last 400 sales (whichever is wider),
  separately for tokens it prices above and below its typical premium. The errors before the
  model's training cut come from the last 300 training sales, predicted by a model that did
  not see them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingRegressor

# scikit-learn is imported where a model is fitted: loading it costs every command about a
# second of start-up, and a stored model brings it along when unpickled.

from core.pricing.features import ALL_FEATURES, GROUPS

BAGS = 5
PARAMS = {
    "loss": "absolute_error",
    "learning_rate": 0.05,
    "max_iter": 300,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
}
PCA_DIMS = len(GROUPS["visual"])
# The last training sales held out to measure the model's errors before its cut.
CALIBRATION_TAIL = 300
BIAS_WINDOW = 50
INTERVAL_WINDOWS = (100, 400)
INTERVAL = (0.10, 0.90)
# With fewer recent errors than this, an estimate gets no bias correction and a wide interval.
MIN_ERRORS = 10
FALLBACK_SPREAD = math.log(2.0)


@dataclass
class Calibration:
    """The model's errors (actual minus predicted log premium) on sales, by time and segment,
    and rolling statistics over them, for as-of lookups strictly before a time."""

    ts: dict[bool, np.ndarray] = field(default_factory=dict)
    bias: dict[bool, np.ndarray] = field(default_factory=dict)
    low: dict[bool, np.ndarray] = field(default_factory=dict)
    high: dict[bool, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, ts: np.ndarray, errors: np.ndarray, upper: np.ndarray) -> Calibration:
        calibration = cls()
        order = np.argsort(ts, kind="stable")
        ts, errors, upper = ts[order], errors[order], upper[order]
        nan = np.array([np.nan])
        for segment in (False, True):
            keep = (upper == segment) & np.isfinite(errors)
            values = pd.Series(errors[keep])
            calibration.ts[segment] = ts[keep]
            calibration.bias[segment] = np.concatenate(
                [nan, values.rolling(BIAS_WINDOW, min_periods=MIN_ERRORS).median().to_numpy()]
            )
            lows, highs = [], []
            for window in INTERVAL_WINDOWS:
                rolling = values.rolling(window, min_periods=MIN_ERRORS)
                lows.append(rolling.quantile(INTERVAL[0]).to_numpy())
                highs.append(rolling.quantile(INTERVAL[1]).to_numpy())
            calibration.low[segment] = np.concatenate([nan, np.fmin(*lows)])
            calibration.high[segment] = np.concatenate([nan, np.fmax(*highs)])
        return calibration

    def at(self, at: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bias, low, high) in log units for queries at ``at``, from errors strictly before."""
        bias = np.zeros(len(at))
        low = np.full(len(at), -FALLBACK_SPREAD)
        high = np.full(len(at), FALLBACK_SPREAD)
        for segment in (False, True):
            rows = np.where(upper == segment)[0]
            if not len(rows):
                continue
            k = np.searchsorted(self.ts[segment], at[rows], side="left")
            b, lo, hi = self.bias[segment][k], self.low[segment][k], self.high[segment][k]
            known = np.isfinite(b) & np.isfinite(lo) & np.isfinite(hi)
            bias[rows[known]] = b[known]
            # The interval is around the corrected estimate, so centre it on the bias.
            low[rows[known]] = lo[known] - b[known]
            high[rows[known]] = hi[known] - b[known]
        return bias, low, high


@dataclass
class PriceModel:
    """Fitted models, the embedding projection, and the held-out errors before the cut."""

    features: tuple[str, ...]
    models: list[HistGradientBoostingRegressor]
    components: np.ndarray | None
    mean: np.ndarray | None
    # Tokens predicted above this premium are calibrated separately from the rest.
    split: float
    # The held-out errors: times, errors and segments of the last training sales.
    tail_ts: np.ndarray
    tail_errors: np.ndarray
    tail_upper: np.ndarray

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The predicted log premium over the level, per row."""
        matrix = frame.loc[:, list(self.features)].to_numpy(dtype=np.float64)
        return np.mean([model.predict(matrix) for model in self.models], axis=0)

    def calibration(
        self, ts: np.ndarray, errors: np.ndarray, predicted: np.ndarray
    ) -> Calibration:
        """Calibration from the held-out tail plus errors on later sales (``ts`` after the
        cut, their actual-minus-predicted errors and predictions)."""
        return Calibration.of(
            np.concatenate([self.tail_ts, ts]),
            np.concatenate([self.tail_errors, errors]),
            np.concatenate([self.tail_upper, predicted > self.split]),
        )


def fit_projection(embeddings: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Principal components of a collection's embeddings (``None`` without enough of them)."""
    if embeddings.ndim != 2 or len(embeddings) <= PCA_DIMS:
        return None, None
    from sklearn.decomposition import PCA

    pca = PCA(PCA_DIMS, random_state=0).fit(embeddings)
    return pca.components_.astype(np.float32), pca.mean_.astype(np.float32)


def fit(
    frame: pd.DataFrame,
    target: np.ndarray,
    ts: np.ndarray,
    components: np.ndarray | None,
    mean: np.ndarray | None,
    *,
    drop: Sequence[str] = (),
    bags: int = BAGS,
    seed: int = 0,
) -> PriceModel:
    """Fit on rows with a finite target (oldest first); ``drop`` names feature groups to
    leave out (the ablations)."""
    rows = np.where(np.isfinite(target))[0]
    rows = rows[np.argsort(ts[rows], kind="stable")]
    wanted = [f for f in ALL_FEATURES if not any(f in GROUPS[g] for g in drop)]
    # A feature nobody has (no embeddings, no floors) or everybody shares carries nothing,
    # and an all-missing column trips scikit-learn's binning: leave those out.
    known = frame.iloc[rows]
    names = tuple(f for f in wanted if known[f].nunique(dropna=True) > 1)
    matrix = frame.loc[:, list(names)].to_numpy(dtype=np.float64)
    models = _bagged(matrix, target, rows, bags, seed)
    held = (
        rows[-CALIBRATION_TAIL:] if len(rows) > 2 * CALIBRATION_TAIL else rows[-len(rows) // 3 :]
    )
    early = rows[: len(rows) - len(held)]
    held_models = _bagged(matrix, target, early, bags, seed + 1000)
    held_pred = np.mean([m.predict(matrix[held]) for m in held_models], axis=0)
    full_pred = np.mean([m.predict(matrix[rows]) for m in models], axis=0)
    split = float(np.median(full_pred))
    return PriceModel(
        features=names,
        models=models,
        components=components,
        mean=mean,
        split=split,
        tail_ts=ts[held],
        tail_errors=target[held] - held_pred,
        tail_upper=held_pred > split,
    )


def _bagged(
    matrix: np.ndarray, target: np.ndarray, rows: np.ndarray, bags: int, seed: int
) -> list[HistGradientBoostingRegressor]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)
    models = []
    for bag in range(bags):
        picked = rng.choice(rows, len(rows), replace=True) if bags > 1 else rows
        model = HistGradientBoostingRegressor(random_state=seed + bag, **PARAMS)
        models.append(model.fit(matrix[picked], target[picked]))
    return models
