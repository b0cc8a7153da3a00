"""The pricing service: train a collection's model, and value tokens point in time."""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from core.config import ValuationSettings
from core.errors import InputError, LensError, ModelError, UnknownToken
from core.models import Comparable, PriceEstimate, Sale
from core.pricing import features as F
from core.pricing.evaluation import Score, baselines, score
from core.pricing.history import History, epoch_s, from_epoch_s, load_history
from core.pricing.model import Calibration, PriceModel, fit, fit_projection
from core.storage import PriceModelRecord, Storage
from core.storage.files import atomic_path

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Ablations: the feature groups whose worth the study asks about.
ABLATIONS = ("visual", "comps", "traits")
GROUP_WORDS = {
    "market": "the market's recent moves",
    "own": "its own last sale",
    "traits": "its traits",
    "visual": "its look",
    "comps": "recent sales of tokens that look like it",
}


class NoPriceModel(InputError):
    """No model of the collection was trained before the time asked about."""


@dataclass(frozen=True)
class TrainReport:
    """What ``train`` did, and how the model and the baselines did after its cut."""

    record: PriceModelRecord
    seconds: float
    evaluated_from: datetime | None
    evaluated_to: datetime | None
    scores: tuple[Score, ...]

    @property
    def model(self) -> Score | None:
        return next((s for s in self.scores if s.method == "model"), None)


@dataclass
class _Context:
    """A collection's history and everything derived from it, cached until it changes."""

    stamp: tuple[float, ...]
    history: History
    prepared: F.Prepared
    calibrations: dict[str, Calibration]


class PriceService:
    """Trains and applies price models; blocking (pandas, scikit-learn, SQL), so callers in
    an event loop run it in a worker thread."""

    def __init__(
        self,
        *,
        storage: Storage,
        data_dir: Path,
        model_key: str,
        settings: ValuationSettings,
        clock: Clock | None = None,
    ) -> None:
        self._storage = storage
        self._dir = data_dir / "models"
        self._data_dir = data_dir
        self._model_key = model_key
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._contexts: dict[str, _Context] = {}
        self._models: dict[str, PriceModel] = {}
        self._lock = threading.Lock()

    # Training -------------------------------------------------------------------------------

    def train(
        self, slug: str, until: datetime | None = None, *, ablations: bool = True
    ) -> TrainReport:
        """Fit on the sales before ``until`` (default: all), save the artefact, and score the
        model, the baselines and (with ``ablations``) the models without each feature group
        on the sales at or after ``until``."""
        started = time.perf_counter()
        context = self._context(slug)
        history, prepared = context.history, context.prepared
        cut = epoch_s(until) if until else int(prepared.ts[-1]) + 1 if len(prepared.ts) else 0
        ts = prepared.ts
        before = ts < cut
        if before.sum() < self._settings.min_sales:
            raise InputError(
                f"A price model for '{slug}' needs at least {self._settings.min_sales} sales "
                f"before {_day(cut)}; there are {int(before.sum())}."
            )
        components, mean = fit_projection(history.embeddings)
        tokens = history.sales["token_id"].tolist()
        frame = F.build(history, prepared, tokens, ts, components, mean)
        target = prepared.logp - frame["level"].to_numpy()
        train_target = np.where(before, target, np.nan)
        model = fit(frame, train_target, ts, components, mean)
        after = np.where(~before & np.isfinite(target))[0]
        scores: list[Score] = []
        if len(after):
            price = history.sales["price"].to_numpy()
            scores.append(_score_model("model", model, frame, target, after, price, ts))
            for group in ABLATIONS if ablations else ():
                reduced = fit(frame, train_target, ts, components, mean, drop=(group,))
                scores.append(
                    _score_model(f"without {group}", reduced, frame, target, after, price, ts)
                )
            own = frame["own_premium"].to_numpy()[after]
            for name, estimate in baselines(history, prepared, after, own).items():
                scores.append(score(name, price[after], estimate))
        record = self._save(slug, model, cut, int(before.sum()), scores)
        self._prune(slug)
        return TrainReport(
            record=record,
            seconds=time.perf_counter() - started,
            evaluated_from=from_epoch_s(cut) if len(after) else None,
            evaluated_to=from_epoch_s(int(ts[after[-1]])) if len(after) else None,
            scores=tuple(scores),
        )

    # Valuing --------------------------------------------------------------------------------

    def value(self, slug: str, token_id: str, at: datetime | None = None) -> PriceEstimate:
        """The estimate for one token at ``at`` (default now), from the newest model trained
        before it and what was known strictly before it."""
        results = self.value_many([(slug, token_id, at)])
        result = results[0]
        if isinstance(result, LensError):
            raise result
        return result

    def has_model(self, slug: str, at: datetime | None = None) -> bool:
        return self._storage.price_models.latest(slug, trained_until=at) is not None

    def value_many(
        self, rows: Sequence[tuple[str, str, datetime | None]]
    ) -> list[PriceEstimate | LensError]:
        """Estimates for many (collection, token, time) rows at once; a row that cannot be
        valued gets its error in its place."""
        results: list[PriceEstimate | LensError] = [LensError("not valued")] * len(rows)
        by_slug: dict[str, list[int]] = {}
        for i, (slug, _, _) in enumerate(rows):
            by_slug.setdefault(slug, []).append(i)
        for slug, indexes in by_slug.items():
            try:
                context = self._context(slug)
            except LensError as exc:
                for i in indexes:
                    results[i] = exc
                continue
            self._value_collection(context, rows, indexes, results)
        return results

    def _value_collection(
        self,
        context: _Context,
        rows: Sequence[tuple[str, str, datetime | None]],
        indexes: list[int],
        results: list[PriceEstimate | LensError],
    ) -> None:
        history = context.history
        slug = history.collection.slug
        now = self._clock()
        by_model: dict[str, list[tuple[int, str, int]]] = {}
        records: dict[str, PriceModelRecord] = {}
        # Newest training window first: a row's model is the first trained before its time.
        trained = self._storage.price_models.all(slug)
        for i in indexes:
            _, token_id, at = rows[i]
            moment = (at or now).astimezone(UTC)
            if token_id not in history.traits:
                results[i] = UnknownToken(f"Token {token_id} is not in collection '{slug}'.")
                continue
            record = next((r for r in trained if r.trained_until <= moment), None)
            if record is None:
                results[i] = NoPriceModel(
                    f"No price model of '{slug}' was trained before {moment:%Y-%m-%d}; run "
                    f"'python -m core train --until {moment:%Y-%m-%d}' (or without --until)."
                )
                continue
            records[record.version] = record
            by_model.setdefault(record.version, []).append((i, token_id, epoch_s(moment)))
        for version, queries in by_model.items():
            record = records[version]
            try:
                model = self._model(record)
                calibration = self._calibration(context, record, model)
            except LensError as exc:
                for i, _, _ in queries:
                    results[i] = exc
                continue
            tokens = [token for _, token, _ in queries]
            times = np.array([t for _, _, t in queries], dtype=np.int64)
            frame = F.build(history, context.prepared, tokens, times, model.components, model.mean)
            predicted = model.predict(frame)
            bias, low, high = calibration.at(times, predicted > model.split)
            level = frame["level"].to_numpy()
            reasons = _reasons(model, frame, predicted, level, history.collection.currency)
            comps = F.comps(history, context.prepared, tokens, times)
            last = F.last_sales(context.prepared, tokens, times)
            for row, (i, token, seconds) in enumerate(queries):
                if not np.isfinite(level[row]):
                    results[i] = InputError(
                        f"'{slug}' had too few sales before {_day(seconds)} to value a token."
                    )
                    continue
                centre = float(level[row] + predicted[row] + bias[row])
                results[i] = self._estimate(
                    history, record, token, seconds, centre, float(level[row]),
                    (float(low[row]), float(high[row])), reasons[row], comps[row], last[row],
                )  # fmt: skip

    def _estimate(
        self,
        history: History,
        record: PriceModelRecord,
        token: str,
        moment: int,
        centre: float,
        level: float,
        spread: tuple[float, float],
        reason: str,
        comps: list[F.Comp],
        last: tuple[int, float] | None,
    ) -> PriceEstimate:
        currency = history.collection.currency.upper()
        estimate = math.exp(centre)
        at = from_epoch_s(moment)
        rate = history.rate_on(at)
        rarity = history.rarity.get(token)
        slug = history.collection.slug
        return PriceEstimate(
            collection=slug,
            token_id=token,
            at=at,
            estimate=estimate,
            low=math.exp(centre + spread[0]),
            high=math.exp(centre + spread[1]),
            currency=currency,
            level=math.exp(level),
            reason=reason,
            model=record.version,
            usd=estimate * rate if rate else None,
            usd_rate=rate,
            last_sale=None
            if last is None
            else Sale(slug, token, from_epoch_s(last[0]), last[1], currency, ""),
            rarity_rank=rarity.rank if rarity else None,
            supply=history.supply,
            comps=tuple(
                Comparable(
                    collection=slug,
                    token_id=comp.token_id,
                    similarity=comp.similarity,
                    price=comp.price,
                    currency=currency,
                    timestamp=from_epoch_s(comp.ts),
                )
                for comp in comps
            ),
        )

    # Caches ---------------------------------------------------------------------------------

    def _context(self, slug: str) -> _Context:
        # Anything the features read changes this: sales, traits, vectors, floors, rates.
        storage = self._storage
        currency = storage.catalog.collection(slug).currency
        stamp = (
            *storage.sales.stamp(slug),
            *storage.catalog.tokens_stamp(slug),
            storage.vectors.counts(self._model_key).get(slug, 0),
            *storage.market.stamp(slug, currency),
        )
        with self._lock:
            cached = self._contexts.get(slug)
            if cached is not None and cached.stamp == stamp:
                return cached
        history = load_history(self._storage, slug, self._model_key)
        context = _Context(stamp, history, F.prepare(history), {})
        with self._lock:
            self._contexts[slug] = context
        return context

    def _model(self, record: PriceModelRecord) -> PriceModel:
        with self._lock:
            cached = self._models.get(record.version)
        if cached is not None:
            return cached
        path = self._data_dir / record.path
        try:
            model = joblib.load(path)
        except (OSError, EOFError, ValueError) as exc:
            raise ModelError(
                f"The price model {record.version} cannot be read; train again."
            ) from exc
        if not isinstance(model, PriceModel):
            raise ModelError(f"The price model {record.version} is not a price model.")
        with self._lock:
            self._models[record.version] = model
        return model

    def _calibration(
        self, context: _Context, record: PriceModelRecord, model: PriceModel
    ) -> Calibration:
        cached = context.calibrations.get(record.version)
        if cached is not None:
            return cached
        cut = epoch_s(record.trained_until)
        prepared = context.prepared
        later = np.where(prepared.ts >= cut)[0]
        if len(later):
            tokens = context.history.sales["token_id"].to_numpy()[later].tolist()
            frame = F.build(
                context.history, prepared, tokens, prepared.ts[later], model.components,
                model.mean,
            )  # fmt: skip
            predicted = model.predict(frame)
            errors = prepared.logp[later] - frame["level"].to_numpy() - predicted
            calibration = model.calibration(prepared.ts[later], errors, predicted)
        else:
            empty = np.empty(0)
            calibration = model.calibration(empty.astype(np.int64), empty, empty)
        context.calibrations[record.version] = calibration
        return calibration

    # Artefacts ------------------------------------------------------------------------------

    def _save(
        self, slug: str, model: PriceModel, cut: int, sales: int, scores: Sequence[Score]
    ) -> PriceModelRecord:
        created = self._clock().astimezone(UTC)
        version = f"{created:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        relative = Path("models") / slug / f"{version}.joblib"
        path = self._data_dir / relative
        with atomic_path(path) as tmp:
            joblib.dump(model, tmp)
        record = PriceModelRecord(
            version=version,
            collection=slug,
            trained_until=from_epoch_s(cut),
            created_at=created,
            path=relative.as_posix(),
            sales_used=sales,
            features=model.features,
            metrics={"scores": [s.as_dict() for s in scores]},
        )
        self._storage.price_models.add(self._storage.catalog.collection_pk(slug), record)
        return record

    def _prune(self, slug: str) -> None:
        """Keep the newest ``keep_models`` artefacts of a collection."""
        for old in self._storage.price_models.all(slug)[self._settings.keep_models :]:
            (self._data_dir / old.path).unlink(missing_ok=True)
            self._storage.price_models.remove(old.version)


def _score_model(
    name: str,
    model: PriceModel,
    frame: pd.DataFrame,
    target: np.ndarray,
    rows: np.ndarray,
    price: np.ndarray,
    ts: np.ndarray,
) -> Score:
    """Score a model on the sales at ``rows`` as it would have answered each at its time:
    recalibrated from its errors on the sales strictly before."""
    predicted = model.predict(frame.iloc[rows])
    calibration = model.calibration(ts[rows], target[rows] - predicted, predicted)
    bias, low, high = calibration.at(ts[rows], predicted > model.split)
    centre = frame["level"].to_numpy()[rows] + predicted + bias
    return score(
        name,
        price[rows],
        np.exp(centre),
        np.exp(centre + low),
        np.exp(centre + high),
        ts[rows],
    )


def _reasons(
    model: PriceModel,
    frame: pd.DataFrame,
    predicted: np.ndarray,
    level: np.ndarray,
    currency: str,
) -> list[str]:
    """One sentence per row: the level, and the feature group that moves the estimate most
    (the prediction with that group unknown, against the prediction with it)."""
    effects: dict[str, np.ndarray] = {}
    for group, names in F.GROUPS.items():
        present = [n for n in names if n in model.features]
        if not present:
            continue
        blank = frame.copy()
        blank.loc[:, present] = np.nan
        effects[group] = predicted - model.predict(blank)
    reasons = []
    for row in range(len(frame)):
        if not np.isfinite(level[row]):
            reasons.append("")
            continue
        base = f"The collection level is {math.exp(level[row]):.4g} {currency}"
        moves = {g: float(e[row]) for g, e in effects.items()}
        if not moves:
            reasons.append(base + ".")
            continue
        group, effect = max(moves.items(), key=lambda item: abs(item[1]))
        if abs(effect) < 0.05:
            reasons.append(base + ", and nothing about this token moves it much.")
            continue
        direction = "above" if effect > 0 else "below"
        reasons.append(
            f"{base}; {GROUP_WORDS[group]} put it {abs(math.expm1(effect)):.0%} {direction} "
            "what the model would say without them."
        )
    return reasons


def _day(seconds: int) -> str:
    return f"{from_epoch_s(seconds):%Y-%m-%d}"
