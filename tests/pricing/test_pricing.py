"""The price model on a market with known premiums: it learns them, beats the baselines,
never reads the future, and its artefacts, batch answers and errors behave."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError, UnknownCollection, UnknownToken
from core.imaging.workers import DecoderPool
from core.pricing import features as F
from core.pricing.history import History, epoch_s, load_history
from core.pricing.service import NoPriceModel, PriceService
from tests.datasets import make_settings, punks
from tests.engines import engine_for
from tests.pricing.conftest import Market
from tests.pricing.synthetic import CUT, SLUG, START

LATER = CUT + timedelta(days=60)


def tokens_with(market: Market, **traits: str) -> list[str]:
    catalog = market.engine.storage.catalog
    pks = catalog.token_pks(SLUG).tolist()
    attributes = catalog.attributes(pks)
    tokens = catalog.tokens_by_pk(pks)
    return [
        tokens[pk].token_id
        for pk in pks
        if all(
            any(a.trait_type == k and a.value == v for a in attributes.get(pk, ()))
            for k, v in traits.items()
        )
    ]


def test_training_scores_the_model_against_baselines_and_ablations(market: Market) -> None:
    scores = {s.method: s for s in market.report.scores}
    model = scores["model"]

    assert market.report.record.sales_used == sum(
        1 for row in (market.dataset / "sales.csv").read_text().splitlines()[1:]
        if datetime.fromisoformat(row.split(",")[1]) < CUT
    )  # fmt: skip
    assert set(scores) >= {
        "model",
        "without visual",
        "without comps",
        "without traits",
        "median of last 20 sales",
        "median of last 50 sales",
        "same-type median of last 20",
        "last sale, adjusted",
    }
    for name, baseline in scores.items():
        if name.startswith(("median", "same-type", "last sale")):
            assert model.mdape < baseline.mdape, name
            assert model.top_mdape < baseline.top_mdape, name
            assert baseline.coverage is None
        if name.startswith(("median", "same-type")):
            # The expensive tokens are the premium ones, which a median cannot see.
            assert model.top_mdape < baseline.top_mdape / 2, name
    assert model.coverage is not None and 0.6 <= model.coverage <= 0.95


def test_the_model_prices_known_premiums(market: Market) -> None:
    rich = tokens_with(market, Body="Plum", Hat="None")
    plain = tokens_with(market, Body="Mint", Hat="None")
    assert rich and plain
    pricing = market.engine.pricing

    rich_values = [pricing.value(SLUG, token, LATER).estimate for token in rich]
    plain_values = [pricing.value(SLUG, token, LATER).estimate for token in plain]

    # The rule is 3 times; shrinkage towards the level takes a little off.
    ratio = float(np.median(rich_values) / np.median(plain_values))
    assert 2.0 < ratio < 4.0


def test_an_estimate_carries_what_the_contract_promises(market: Market) -> None:
    token = tokens_with(market, Body="Sky")[0]

    estimate = market.engine.pricing.value(SLUG, token, LATER)

    assert estimate.collection == SLUG and estimate.token_id == token
    assert estimate.at == LATER and estimate.currency == "ETH"
    day = (LATER.date() - START.date()).days
    assert estimate.usd_rate == 2000 + day
    assert estimate.usd == pytest.approx(estimate.estimate * (2000 + day))
    assert estimate.model == market.report.record.version
    assert 3 <= len(estimate.comps) <= 5
    assert all(c.timestamp < LATER and c.token_id != token for c in estimate.comps)
    assert estimate.rarity_rank is not None and 1 <= estimate.rarity_rank <= estimate.supply
    assert estimate.reason.startswith("The collection level is ")
    assert estimate.level > 0


def test_rewritten_market_data_reaches_the_next_estimate(market: Market) -> None:
    # The bot keeps a collection's history in memory; a rate corrected in place (another
    # process re-ingesting usd_daily.csv) must not leave it answering with the old one.
    token = tokens_with(market, Body="Sky")[0]
    pricing, storage = market.engine.pricing, market.engine.storage
    day = LATER.date()
    before = pricing.value(SLUG, token, LATER)
    assert before.usd_rate is not None

    storage.market.save_rates("ETH", [(day, 1234.5)])
    try:
        after = pricing.value(SLUG, token, LATER)
    finally:
        storage.market.save_rates("ETH", [(day, before.usd_rate)])

    assert after.usd_rate == 1234.5
    assert after.usd == pytest.approx(after.estimate * 1234.5)
    assert pricing.value(SLUG, token, LATER).usd_rate == before.usd_rate


def test_a_sale_never_sees_itself_or_the_future(market: Market) -> None:
    history = load_history(market.engine.storage, SLUG, market.engine.embedder.key)
    sales = history.sales
    # A sale inside a sweep (several sales in one block), so same-time sales are covered too.
    same_time = sales["ts"].duplicated(keep=False).to_numpy()
    j = int(np.where(same_time)[0][len(np.where(same_time)[0]) // 2])
    t = int(sales["ts"].iloc[j])
    token = str(sales["token_id"].iloc[j])
    before = F.build(history, F.prepare(history), [token], np.array([t]))

    # Rewrite the sale itself, the ones sharing its time, and everything after it.
    changed = sales.copy()
    later = changed["ts"].to_numpy() >= t
    changed.loc[later, "price"] = 1000.0
    changed.loc[later, "logp"] = math.log(1000.0)
    altered = History(**{**history.__dict__, "sales": changed})
    after = F.build(altered, F.prepare(altered), [token], np.array([t]))

    assert np.isfinite(before["level"].iloc[0])
    np.testing.assert_array_equal(before.to_numpy(), after.to_numpy())


def test_a_point_in_time_value_uses_the_newest_model_trained_before_it(market: Market) -> None:
    pricing = market.engine.pricing
    later = pricing.train(SLUG, CUT + timedelta(days=30), ablations=False)
    token = tokens_with(market, Body="Mint")[0]

    between = pricing.value(SLUG, token, CUT + timedelta(days=10))
    after = pricing.value(SLUG, token, CUT + timedelta(days=40))

    assert between.model == market.report.record.version
    assert after.model == later.record.version


def test_without_a_model_before_the_time_the_error_says_what_to_run(market: Market) -> None:
    with pytest.raises(NoPriceModel, match=r"python -m core train --until 2021-03-01"):
        market.engine.pricing.value(SLUG, "1", datetime(2021, 3, 1, tzinfo=UTC))


def test_unknown_collections_and_tokens_are_clear_errors(market: Market) -> None:
    with pytest.raises(UnknownToken, match="Token 9999 is not in collection"):
        market.engine.pricing.value(SLUG, "9999", LATER)
    with pytest.raises(UnknownCollection, match="'nope'"):
        market.engine.pricing.value("nope", "1", LATER)


def test_a_token_that_never_sold_is_valued_from_its_traits(market: Market) -> None:
    history = load_history(market.engine.storage, SLUG, None)
    sold = set(history.sales["token_id"])
    never = sorted(set(history.traits) - sold, key=int)
    assert never, "the synthetic market should leave some tokens unsold"

    estimate = market.engine.pricing.value(SLUG, never[0], LATER)

    assert estimate.last_sale is None and estimate.estimate > 0


def test_a_batch_answers_like_single_calls(market: Market) -> None:
    pricing = market.engine.pricing
    rows = [(SLUG, str(n), LATER - timedelta(days=n)) for n in range(0, 40, 3)]
    rows += [(SLUG, "9999", LATER), ("nope", "1", LATER)]

    batch = pricing.value_many(rows)

    for (slug, token, at), answer in zip(rows[:-2], batch, strict=False):
        single = pricing.value(slug, token, at)
        assert answer == single
    assert isinstance(batch[-2], UnknownToken) and isinstance(batch[-1], UnknownCollection)


def test_artefacts_are_saved_atomically_reloaded_and_pruned(market: Market) -> None:
    engine = market.engine
    record = market.report.record
    path = engine.settings.data_dir / record.path
    assert path.is_file() and not list(path.parent.glob("*.part"))
    fresh = PriceService(
        storage=engine.storage,
        data_dir=engine.settings.data_dir,
        model_key=engine.embedder.key,
        settings=engine.settings.valuation,
    )
    token = tokens_with(market, Hat="Halo")[0]
    at = CUT + timedelta(days=5)

    assert fresh.value(SLUG, token, at) == engine.pricing.value(SLUG, token, at)

    for _ in range(3):
        engine.pricing.train(SLUG, CUT + timedelta(days=1), ablations=False)
    kept = engine.storage.price_models.all(SLUG)
    assert len(kept) == engine.settings.valuation.keep_models
    files = sorted(p.name for p in path.parent.glob("*.joblib"))
    assert files == sorted(Path(r.path).name for r in kept)


def test_a_collection_with_too_few_sales_gets_a_plain_refusal(
    tmp_path: Path, decoder: DecoderPool
) -> None:
    settings = make_settings(tmp_path)
    with engine_for(settings, decoder) as engine:
        engine.ingester.ingest(punks(tmp_path / "punks", count=20), progress=False)

        with pytest.raises(InputError, match=r"needs at least 200 sales .* there are 9"):
            engine.pricing.train("cryptopunks")
        with pytest.raises(NoPriceModel):
            engine.pricing.value("cryptopunks", "1")


def test_the_level_needs_history(market: Market) -> None:
    first = epoch_s(START) + 60
    history = load_history(market.engine.storage, SLUG, None)
    frame = F.build(history, F.prepare(history), ["1"], np.array([first]))

    assert np.isnan(frame["level"].iloc[0])
