"""Point-in-time features for many (token, time) queries at once, by as-of joins.

For a token at time t only what was known strictly before t is used: the sales before t
(never a sale at t itself, so sales sharing a timestamp never see each other), the floor of
the days before t's day, and the static facts (traits, rarity, the image's embedding).
Windows are counted in sales, not days: they held up better when activity jumped.

Feature groups (the ablations drop one group at a time):
- market: the collection's level (median log price of the last 50 sales), its short-window
  level, trend, spread and activity, and the floor against the level;
- own: the token's last sale relative to the level then (its premium), how long ago, and
  how many times it sold;
- traits: premiums learnt from earlier sales of tokens sharing each trait (shrunk towards 0
  while few), and OpenRarity score and rank;
- visual: the token's embedding, reduced to a few principal components;
- comps: the premiums of the token's nearest visual neighbours at their last sales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.pricing.history import DAY_S, History

LEVEL_WINDOW = 50
SHORT_WINDOW = 20
# Fewer earlier sales than this and there is no level to speak of.
MIN_HISTORY = 10
# A trait premium is its sales' mean premium shrunk as if SHRINK sales at premium 0 were
# added: one lucky sale does not make a trait valuable.
SHRINK = 10.0
# Premiums move (a boom lifts rare traits first): the last RECENT sales of each trait give a
# second, recent premium, shrunk by RECENT_SHRINK.
RECENT = 10
RECENT_SHRINK = 3.0
NEIGHBOURS = 20
COMPS = 5
ROUND_TO = 9

GROUPS: dict[str, tuple[str, ...]] = {
    "market": (
        "level_short",
        "trend",
        "spread",
        "sales_7d",
        "sales_30d",
        "floor_vs_level",
    ),
    "own": ("own_premium", "own_days", "own_sales", "own_moved"),
    "traits": (
        "trait_mean",
        "trait_max",
        "trait_min",
        "trait_sum",
        "trait_known",
        "recent_mean",
        "recent_max",
        "recent_min",
        "rarity_score",
        "rarity_pct",
    ),
    "visual": tuple(f"pc{i}" for i in range(8)),
    "comps": ("comp_mean", "comp_median", "comp_best_sim", "comp_found", "comp_age"),
}
ALL_FEATURES: tuple[str, ...] = tuple(name for names in GROUPS.values() for name in names)


@dataclass(frozen=True)
class Prepared:
    """Everything about a history that does not depend on the queries, computed once."""

    ts: np.ndarray
    logp: np.ndarray
    # Indexed by k = the number of sales strictly before a time (0..n).
    level_at_k: np.ndarray
    short_at_k: np.ndarray
    spread_at_k: np.ndarray
    # Per sale: its premium over the level just before it (NaN when there was none).
    premium: np.ndarray
    # Sales with their premium and running count per token, for as-of joins by token.
    by_token: pd.DataFrame
    # (trait key, ts) with running sums of premiums, for as-of joins by trait.
    by_trait: pd.DataFrame
    # The tokens that ever sold and their unit embeddings (for comps).
    sold_ids: np.ndarray
    sold_vectors: np.ndarray
    vector_of: dict[str, int]
    rarity_rank_max: int


def prepare(history: History) -> Prepared:
    sales = history.sales
    ts = sales["ts"].to_numpy(dtype=np.int64)
    logp = sales["logp"].to_numpy(dtype=np.float64)
    series = pd.Series(logp)
    level = series.rolling(LEVEL_WINDOW, min_periods=MIN_HISTORY).median().to_numpy()
    short = series.rolling(SHORT_WINDOW, min_periods=MIN_HISTORY).median().to_numpy()
    q75 = series.rolling(LEVEL_WINDOW, min_periods=MIN_HISTORY).quantile(0.75).to_numpy()
    q25 = series.rolling(LEVEL_WINDOW, min_periods=MIN_HISTORY).quantile(0.25).to_numpy()
    nan = np.array([np.nan])
    level_at_k = np.concatenate([nan, level])
    short_at_k = np.concatenate([nan, short])
    spread_at_k = np.concatenate([nan, q75 - q25])
    # The level a sale is measured against is the one just before its timestamp.
    k_of_sale = np.searchsorted(ts, ts, side="left")
    premium = logp - level_at_k[k_of_sale]
    by_token = pd.DataFrame(
        {
            "ts": ts,
            "token_id": sales["token_id"].to_numpy(),
            "price": sales["price"].to_numpy(dtype=np.float64),
            "logp": logp,
            "premium": premium,
        }
    )
    by_token["sales"] = by_token.groupby("token_id").cumcount() + 1
    rows = [
        (key, t, p)
        for token, t, p in zip(by_token["token_id"], ts, premium, strict=True)
        if np.isfinite(p)
        for key in history.traits.get(token, ())
    ]
    by_trait = pd.DataFrame(rows, columns=["key", "ts", "premium"]).astype(
        {"key": "str", "ts": np.int64, "premium": np.float64}
    )
    by_trait = by_trait.sort_values(["key", "ts"], kind="stable")
    by_trait["sum"] = by_trait.groupby("key")["premium"].cumsum()
    by_trait["n"] = by_trait.groupby("key").cumcount() + 1
    rolling = by_trait.groupby("key")["premium"].rolling(RECENT, min_periods=1)
    by_trait["recent_sum"] = rolling.sum().reset_index(level=0, drop=True)
    by_trait["recent_n"] = np.minimum(by_trait["n"], RECENT)
    by_trait = by_trait.sort_values("ts", kind="stable").reset_index(drop=True)
    vector_of = {token: i for i, token in enumerate(history.embedded_ids)}
    sold = sorted({t for t in by_token["token_id"] if t in vector_of})
    sold_vectors = (
        history.embeddings[[vector_of[t] for t in sold]]
        if sold
        else np.empty((0, history.embeddings.shape[1] if history.embeddings.size else 0))
    )
    ranks = [r.rank for r in history.rarity.values()]
    return Prepared(
        ts=ts,
        logp=logp,
        level_at_k=level_at_k,
        short_at_k=short_at_k,
        spread_at_k=spread_at_k,
        premium=premium,
        by_token=by_token,
        by_trait=by_trait,
        sold_ids=np.array(sold, dtype=object),
        # float64: float32 products round differently with the batch's shape.
        sold_vectors=np.asarray(sold_vectors, dtype=np.float64),
        vector_of=vector_of,
        rarity_rank_max=max(ranks) if ranks else 1,
    )


def build(
    history: History,
    prepared: Prepared,
    tokens: Sequence[str],
    at: np.ndarray,
    components: np.ndarray | None = None,
    mean: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per (token, time) query, in order: ``level`` (the log level the premium is
    measured against; NaN when there is too little history) and every feature.

    ``components`` and ``mean`` project embeddings onto the model's principal components
    (the visual group is NaN without them, or for a token without an embedding).
    """
    at = np.asarray(at, dtype=np.int64)
    n = len(at)
    queries = pd.DataFrame({"q": np.arange(n), "token_id": list(tokens), "at": at})
    out = pd.DataFrame(index=np.arange(n))
    k = np.searchsorted(prepared.ts, at, side="left")
    level = prepared.level_at_k[k]
    out["level"] = level
    out["level_short"] = prepared.short_at_k[k] - level
    back = np.maximum(k - SHORT_WINDOW, 0)
    out["trend"] = prepared.short_at_k[k] - prepared.short_at_k[back]
    out["spread"] = prepared.spread_at_k[k]
    for days, name in ((7, "sales_7d"), (30, "sales_30d")):
        since = np.searchsorted(prepared.ts, at - days * DAY_S, side="left")
        out[name] = np.log1p(k - since)
    out["floor_vs_level"] = _floor_before(history, at) - level
    _own(out, queries, prepared)
    _traits(out, queries, history, prepared)
    _visual(out, tokens, history, prepared, components, mean)
    _comps(out, queries, history, prepared)
    # Matrix products and grouped sums round differently with the batch's shape; without
    # this, a row valued alone and in a batch of thousands could land on either side of a
    # tree's threshold and differ in the last digits.
    return out.astype(np.float64).round(ROUND_TO)


@dataclass(frozen=True)
class Comp:
    """A comparable sale: a visually near token's last sale before the query time."""

    token_id: str
    similarity: float
    price: float
    ts: int


def comps(
    history: History,
    prepared: Prepared,
    tokens: Sequence[str],
    at: np.ndarray,
    count: int = COMPS,
) -> list[list[Comp]]:
    """For each (token, time) query, the ``count`` most similar tokens that sold strictly
    before that time, each with its last sale then; all queries at once."""
    found_per_query: list[list[Comp]] = [[] for _ in tokens]
    queries = pd.DataFrame({"q": np.arange(len(tokens)), "token_id": list(tokens), "at": at})
    top = _comp_sales(queries, history, prepared, count)
    for row in top.itertuples():
        found_per_query[int(row.q)].append(
            Comp(str(row.token_id), float(row.sim), float(row.price), int(row.ts))
        )
    return found_per_query


def last_sales(
    prepared: Prepared, tokens: Sequence[str], at: np.ndarray
) -> list[tuple[int, float] | None]:
    """For each (token, time) query, its last sale strictly before then: (time, price)."""
    queries = pd.DataFrame({"q": np.arange(len(tokens)), "token_id": list(tokens), "at": at})
    merged = _last_sales(queries, prepared).set_index("q").sort_index()
    return [
        None if np.isnan(ts) else (int(ts), float(price))
        for ts, price in zip(merged["ts"], merged["price"], strict=True)
    ]


def _comp_sales(
    queries: pd.DataFrame,
    history: History,
    prepared: Prepared,
    count: int,
    *,
    with_premium: bool = False,
) -> pd.DataFrame:
    """Per query (column ``q``), its ``count`` most similar neighbours that sold before its
    time (``with_premium``: at a time with a known level), most similar first, with their
    last sale (ts, price, premium) and similarity."""
    pairs = _neighbours(prepared, list(queries["token_id"]), history)
    if pairs.empty:
        return pd.DataFrame(columns=["q", "token_id", "sim", "ts", "price", "premium", "at"])
    expanded = queries.merge(pairs, on="token_id")
    expanded = expanded.drop(columns=["token_id"]).rename(columns={"neighbour": "token_id"})
    found = _last_sales(expanded, prepared)
    found = found[found["premium"].notna()] if with_premium else found[found["ts"].notna()]
    found = found.sort_values(["q", "sim"], ascending=[True, False], kind="stable")
    return found.groupby("q").head(count)


def _floor_before(history: History, at: np.ndarray) -> np.ndarray:
    """The log floor of the last day before each query's day (NaN if none known)."""
    if not len(history.floor_days):
        return np.full(len(at), np.nan)
    days = at // DAY_S
    i = np.searchsorted(history.floor_days, days, side="left") - 1
    logs = np.log(history.floors)
    return np.where(i >= 0, logs[np.maximum(i, 0)], np.nan)


def _last_sales(queries: pd.DataFrame, prepared: Prepared) -> pd.DataFrame:
    """Each query row with its token's last sale strictly before its time (NaN if none)."""
    left = queries.sort_values("at", kind="stable")
    right = prepared.by_token.rename(columns={"ts": "sale_ts"})
    right = right.assign(ts=right["sale_ts"])
    merged = pd.merge_asof(
        left,
        right.drop(columns=["sale_ts"]),
        left_on="at",
        right_on="ts",
        by="token_id",
        allow_exact_matches=False,
        direction="backward",
    )
    return merged


def _own(out: pd.DataFrame, queries: pd.DataFrame, prepared: Prepared) -> None:
    merged = _last_sales(queries, prepared).set_index("q").sort_index()
    out["own_premium"] = merged["premium"].to_numpy()
    age = (queries["at"].to_numpy() - merged["ts"].to_numpy()) / DAY_S
    out["own_days"] = np.log1p(age)
    out["own_sales"] = merged["sales"].fillna(0).to_numpy()
    # The last price against today's level: the premium plus how the collection moved since.
    out["own_moved"] = merged["logp"].to_numpy() - out["level"].to_numpy()


def _traits(
    out: pd.DataFrame, queries: pd.DataFrame, history: History, prepared: Prepared
) -> None:
    rows = [
        (q, at, key)
        for q, token, at in zip(queries["q"], queries["token_id"], queries["at"], strict=True)
        for key in history.traits.get(token, ())
    ]
    exploded = pd.DataFrame(rows, columns=["q", "at", "key"]).sort_values("at", kind="stable")
    if len(prepared.by_trait) and len(exploded):
        merged = pd.merge_asof(
            exploded,
            prepared.by_trait[["key", "ts", "sum", "n", "recent_sum", "recent_n"]],
            left_on="at",
            right_on="ts",
            by="key",
            allow_exact_matches=False,
            direction="backward",
        )
    else:
        merged = exploded.assign(sum=np.nan, n=np.nan, recent_sum=np.nan, recent_n=np.nan)
    merged["premium"] = merged["sum"].fillna(0.0) / (merged["n"].fillna(0.0) + SHRINK)
    merged["recent"] = merged["recent_sum"].fillna(0.0) / (
        merged["recent_n"].fillna(0.0) + RECENT_SHRINK
    )
    grouped = merged.groupby("q")["premium"]
    recent = merged.groupby("q")["recent"]
    stats = pd.DataFrame(
        {
            "trait_mean": grouped.mean(),
            "trait_max": grouped.max(),
            "trait_min": grouped.min(),
            "trait_sum": grouped.sum(),
            "trait_known": merged.groupby("q")["n"].count(),
            "recent_mean": recent.mean(),
            "recent_max": recent.max(),
            "recent_min": recent.min(),
        }
    ).reindex(np.arange(len(out)))
    for name in stats.columns:
        out[name] = stats[name].to_numpy()
    rarity = [history.rarity.get(token) for token in queries["token_id"]]
    out["rarity_score"] = [r.score if r else np.nan for r in rarity]
    out["rarity_pct"] = [r.rank / prepared.rarity_rank_max if r else np.nan for r in rarity]


def _visual(
    out: pd.DataFrame,
    tokens: Sequence[str],
    history: History,
    prepared: Prepared,
    components: np.ndarray | None,
    mean: np.ndarray | None,
) -> None:
    names = GROUPS["visual"]
    values = np.full((len(out), len(names)), np.nan)
    if components is not None and mean is not None and history.embeddings.size:
        rows = [prepared.vector_of.get(token, -1) for token in tokens]
        have = np.array([r >= 0 for r in rows], dtype=bool)
        if have.any():
            picked = history.embeddings[[r for r in rows if r >= 0]].astype(np.float64)
            projected = (picked - mean.astype(np.float64)) @ components.T.astype(np.float64)
            values[have, : projected.shape[1]] = projected[:, : len(names)]
    for i, name in enumerate(names):
        out[name] = values[:, i]


def _neighbours(prepared: Prepared, tokens: Sequence[str], history: History) -> pd.DataFrame:
    """For each distinct token, its NEIGHBOURS most similar tokens that ever sold."""
    distinct = [t for t in dict.fromkeys(tokens) if t in prepared.vector_of]
    if not distinct or not len(prepared.sold_ids):
        return pd.DataFrame(columns=["token_id", "neighbour", "sim"])
    vectors = history.embeddings[[prepared.vector_of[t] for t in distinct]].astype(np.float64)
    frames = []
    # In slices, so a batch of thousands never builds one huge similarity matrix.
    for start in range(0, len(distinct), 512):
        sims = vectors[start : start + 512] @ prepared.sold_vectors.T
        chunk = distinct[start : start + 512]
        for row, token in enumerate(chunk):
            sims[row, prepared.sold_ids == token] = -np.inf  # never its own comp
        top = min(NEIGHBOURS, sims.shape[1])
        # Rounded, and ties broken by token (sold_ids is sorted): look-alikes with equal
        # similarity must come out in the same order whatever else is in the batch.
        sims = np.round(sims, ROUND_TO)
        best = np.argsort(-sims, axis=1, kind="stable")[:, :top]
        for row, token in enumerate(chunk):
            picked = best[row]
            frames.append(
                pd.DataFrame(
                    {
                        "token_id": token,
                        "neighbour": prepared.sold_ids[picked],
                        "sim": sims[row, picked],
                    }
                )
            )
    pairs = pd.concat(frames, ignore_index=True)
    return pairs[np.isfinite(pairs["sim"].to_numpy(dtype=np.float64))]


def _comps(out: pd.DataFrame, queries: pd.DataFrame, history: History, prepared: Prepared) -> None:
    names = GROUPS["comps"]
    for name in names:
        out[name] = np.nan
    out["comp_found"] = 0.0
    top = _comp_sales(queries, history, prepared, COMPS, with_premium=True)
    if top.empty:
        return
    weights = top["sim"].clip(lower=0.0) + 1e-6
    top = top.assign(weighted=top["premium"] * weights, weight=weights)
    top = top.assign(age=np.log1p((top["at"] - top["ts"]) / DAY_S))
    grouped = top.groupby("q")
    stats = pd.DataFrame(
        {
            "comp_mean": grouped["weighted"].sum() / grouped["weight"].sum(),
            "comp_median": grouped["premium"].median(),
            "comp_best_sim": grouped["sim"].max(),
            "comp_found": grouped["premium"].count(),
            "comp_age": grouped["age"].mean(),
        }
    ).reindex(np.arange(len(out)))
    for name in names:
        values = stats[name].to_numpy(dtype=np.float64)
        out[name] = np.where(np.isnan(values), 0.0, values) if name == "comp_found" else values
