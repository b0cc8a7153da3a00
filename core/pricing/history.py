"""What the price model may know about a collection, loaded once as arrays and frames.

Times are whole seconds since the epoch (int64) everywhere: pandas 3 keeps datetimes in
microseconds, and window arithmetic written for nanoseconds would be silently 1,000× off.
Sales are sorted by time; "before t" always means strictly before t, so sales sharing a
timestamp never see each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from core.models import Collection
from core.pricing.rarity import Rarity, rarities, traits_of
from core.storage import Storage

DAY_S = 86_400


@dataclass(frozen=True)
class History:
    """A collection's sales, traits, rarity, market data and embeddings, as of loading."""

    collection: Collection
    # ts (int64 s), token_id (str), price (float), logp (float); sorted by ts.
    sales: pd.DataFrame
    # token_id -> its trait keys ("type=alien", "accessory: earring=yes", ...)
    traits: dict[str, tuple[str, ...]]
    rarity: dict[str, Rarity]
    # The 'type' of each token where the collection has one (the same-type baseline).
    kinds: dict[str, str]
    # Daily floors and USD rates: day (int, days since the epoch) and value, sorted.
    floor_days: np.ndarray
    floors: np.ndarray
    rate_days: np.ndarray
    rates: np.ndarray
    # Unit embedding vectors of the collection's tokens, where they have one.
    embedded_ids: tuple[str, ...]
    embeddings: np.ndarray

    @property
    def supply(self) -> int:
        return len(self.traits)

    def rate_on(self, moment: datetime) -> float | None:
        """The USD rate on the UTC day of ``moment``, if known for that day."""
        day = epoch_day(moment)
        i = int(np.searchsorted(self.rate_days, day))
        if i < len(self.rate_days) and self.rate_days[i] == day:
            return float(self.rates[i])
        return None


def load_history(storage: Storage, slug: str, model_key: str | None) -> History:
    """Read everything the model may use about ``slug`` (blocking: SQL)."""
    collection = storage.catalog.collection(slug)
    sales = storage.sales.sales(slug)
    frame = pd.DataFrame(
        {
            "ts": np.array([epoch_s(s.timestamp) for s in sales], dtype=np.int64),
            "token_id": [s.token_id for s in sales],
            "price": np.array([s.price for s in sales], dtype=np.float64),
        }
    )
    # Other currencies (a sale in USDC in an ETH collection) and zero prices carry no level.
    currency = collection.currency.upper()
    keep = np.array([s.currency.upper() == currency for s in sales], dtype=bool)
    frame = frame[keep & (frame["price"].to_numpy() > 0)]
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    frame["logp"] = np.log(frame["price"].to_numpy())
    pks = storage.catalog.token_pks(slug)
    tokens = storage.catalog.tokens_by_pk(pks.tolist())
    attributes = storage.catalog.attributes(pks.tolist())
    by_token = {tokens[pk].token_id: attributes.get(pk, ()) for pk in tokens}
    traits = {
        token: tuple(f"{name}={value}" for name, value in traits_of(attrs).items())
        for token, attrs in by_token.items()
    }
    kinds = {
        token: next((a.value.strip().lower() for a in attrs if a.trait_type.lower() == "type"), "")
        for token, attrs in by_token.items()
    }
    floor_days, floors = _daily(storage.market.floors(slug))
    rate_days, rates = _daily(storage.market.rates(currency))
    embedded_ids: tuple[str, ...] = ()
    embeddings = np.empty((0, 0), dtype=np.float32)
    if model_key is not None:
        keys, vectors = storage.vectors.vectors(model_key, pks.tolist())
        if len(keys):
            embedded_ids = tuple(tokens[int(pk)].token_id for pk in keys)
            embeddings = vectors
    return History(
        collection=collection,
        sales=frame,
        traits=traits,
        rarity=rarities(by_token),
        kinds=kinds,
        floor_days=floor_days,
        floors=floors,
        rate_days=rate_days,
        rates=rates,
        embedded_ids=embedded_ids,
        embeddings=embeddings,
    )


def epoch_s(moment: datetime) -> int:
    """Whole seconds since the epoch (naive means UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp())


def epoch_day(moment: datetime) -> int:
    return epoch_s(moment) // DAY_S


def from_epoch_s(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def _daily(days: list[tuple[date, float]]) -> tuple[np.ndarray, np.ndarray]:
    epoch = date(1970, 1, 1)
    return (
        np.array([(d - epoch).days for d, _ in days], dtype=np.int64),
        np.array([v for _, v in days], dtype=np.float64),
    )
