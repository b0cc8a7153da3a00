"""Sync against the fake marketplaces: exact, idempotent, resumable, polite."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import UnknownCollection
from core.imaging.workers import DecoderPool
from core.status.cli import format_report, report_json
from core.status.report import gather_status
from tests.sync.conftest import (
    SLUG,
    START,
    SYMBOL,
    add_apes,
    add_birds,
    served_sales,
    snapshot,
    stored_sales,
    sync_engine,
    sync_settings,
)
from tests.sync.fake_market import FakeMarket, FakeNft, make_nfts, make_sales


async def test_a_full_sync_stores_exactly_what_is_served_and_a_second_adds_nothing(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market)
    settings = sync_settings(tmp_path, market)
    async with sync_engine(settings, decoder) as engine:
        first = await engine.syncer.sync(SLUG, "opensea")
        snap = snapshot(engine, SLUG)
        second = await engine.syncer.sync(SLUG)
        again = snapshot(engine, SLUG)

    served = market.sales_of(SLUG)
    assert stored_sales(snap) == served_sales(market, SLUG, "ETH")
    assert {price for *_, price, _ in snap.sales} == {round(s.price, 9) for s in served}
    sold = {s.token_id for s in served}
    assert {token for token, _, _ in snap.tokens} == sold
    assert snap.embedded == sold
    assert snap.checkpoint == datetime.fromtimestamp(max(s.timestamp for s in served), UTC)
    assert snap.resume == (None, None)
    result = first.collections[0]
    assert (result.sales_added, result.tokens_added, result.error) == (
        len(served),
        len(sold),
        None,
    )
    assert first.index is not None and first.index.indexed == len(sold)

    assert again == snap
    repeat = second.collections[0]
    assert (repeat.sales_added, repeat.tokens_added) == (0, 0)
    assert second.index is not None and second.index.mode == "unchanged"


async def test_traits_names_floor_and_usd_rates_are_stored(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=10, sales=20)
    market.set_prices(eth=3210.5, sol=151.25)
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        report = await engine.syncer.sync(SLUG, "opensea")
        storage = engine.storage
        collection = storage.catalog.collection(SLUG)
        token = market.sales_of(SLUG)[0].token_id
        stored = storage.catalog.token(SLUG, token)
        attributes = storage.catalog.attributes([stored.pk])[stored.pk]
        floors = storage.market.floors(SLUG)
        rates = storage.market.rates("ETH")

    nft = next(n for n in market.nfts_of(SLUG) if n.token_id == token)
    assert (collection.name, collection.currency, collection.chain) == ("Apes", "ETH", "ethereum")
    assert stored.name == nft.name
    assert [(a.trait_type, a.value) for a in attributes] == list(nft.traits)
    assert [value for _, value in floors] == [0.5]
    assert [value for _, value in rates] == [3210.5]
    assert report.rates == {"ETH": 3210.5}


async def test_new_sales_later_add_only_new_tokens_to_the_index_and_similar_finds_them(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    nfts = make_nfts(40, 3)
    early, late = nfts[:25], nfts[25:]
    market.add_opensea_collection(SLUG, "Apes", nfts, make_sales(early, 60, START, 3))
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        await engine.syncer.sync(SLUG, "opensea")
        sold_before = len({s.token_id for s in market.sales_of(SLUG)})
        newest = market.sales_of(SLUG)[-1].timestamp
        market.add_sales(SLUG, make_sales(late, 30, newest + 60, 4))
        report = await engine.syncer.sync(SLUG)
        newcomer = late[0]
        found = await engine.similar.similar_image(newcomer.image, "upload", k=1)

    result = report.collections[0]
    assert result.sales_added == 30
    assert result.tokens_added == len({s.token_id for s in market.sales_of(SLUG)}) - sold_before
    assert report.index is not None and report.index.mode == "added"
    assert report.index.indexed == len({s.token_id for s in market.sales_of(SLUG)})
    assert [(m.collection, m.token_id) for m in found.matches] == [(SLUG, newcomer.token_id)]


async def test_magic_eden_sync_survives_activities_arriving_and_vanishing_mid_paging(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    nfts = make_nfts(40, 1, base58=True)
    sales = make_sales(nfts, 300, START, 1, symbol="SOL", signature=True)
    market.add_magiceden_collection(SYMBOL, nfts, sales[:250])
    market.arrive_during_paging(SYMBOL, sales[250:280], after_requests=2)
    market.remove_during_paging(SYMBOL, 12, after_requests=4)
    market.arrive_during_paging(SYMBOL, sales[280:], after_requests=6)
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        first = await engine.syncer.sync(SYMBOL, "magiceden")
        after_first = snapshot(engine, SYMBOL)
        offsets = [int(r.query["offset"]) for r in market.requests_for("magiceden")
                   if r.path.endswith("/activities")]  # fmt: skip
        second = await engine.syncer.sync(SYMBOL)
        snap = snapshot(engine, SYMBOL)
        third = await engine.syncer.sync(SYMBOL)

    # Nothing below the front was skipped, though offsets moved both ways under the paging
    # (the removal made the run step back, visible in the offsets it asked for).
    assert {sale.tx for sale in sales[:250]} <= {tx for tx, *_ in after_first.sales}
    assert any(later < earlier for earlier, later in itertools.pairwise(offsets))
    # What arrived at the front behind the first run is the second run's; the removed
    # activities stay stored (a sale that happened stays a sale).
    assert first.collections[0].error is None
    assert second.collections[0].sales_added == len(snap.sales) - len(after_first.sales) > 0
    assert served_sales(market, SYMBOL, "SOL") <= stored_sales(snap)
    assert third.collections[0].sales_added == 0
    assert all(currency == "SOL" for *_, currency in snap.sales)
    prices = {(tx, token): price for tx, token, _, price, _ in snap.sales}
    for sale in market.sales_of(SYMBOL):
        assert prices[(sale.tx, sale.token_id)] == pytest.approx(sale.price, abs=1e-9)


@pytest.mark.parametrize(
    ("kind", "times"),
    [
        ("rate_limit", 2),
        ("server_error", 2),
        ("bad_gateway", 1),
        ("timeout", 1),
        ("truncated", 2),
        ("reset", 2),
        ("duplicate_page", 1),
    ],
)
async def test_a_misbehaving_marketplace_loses_and_duplicates_nothing(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool, kind: str, times: int
) -> None:
    add_apes(market, tokens=30, sales=160)
    settings = sync_settings(tmp_path, market)
    async with sync_engine(settings, decoder) as engine:
        await engine.syncer.track(SLUG, "opensea")
        # A page in the middle of the paging, once the cursor is in use.
        market.fail_next(
            "opensea", "/events/", kind, times=times, retry_after=0.3, delay_s=3.0, skip=1
        )
        report = await engine.syncer.sync(SLUG)
        snap = snapshot(engine, SLUG)

    assert report.collections[0].error is None
    assert stored_sales(snap) == served_sales(market, SLUG, "ETH")
    if kind == "rate_limit":
        asked = [r for r in market.requests_for("opensea") if "/events/" in r.path]
        limited = [i for i, r in enumerate(asked) if r.status == 429]
        # Each answer after a 429 came at least Retry-After later.
        assert limited and all(asked[i + 1].time - asked[i].time >= 0.29 for i in limited)


async def test_a_page_that_stays_malformed_stops_the_run_without_moving_the_checkpoint(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=30, sales=160)
    settings = sync_settings(tmp_path, market)
    async with sync_engine(settings, decoder) as engine:
        await engine.syncer.track(SLUG, "opensea")
        # Page 1 is good; page 2 stays truncated through every retry (1 + max_retries 3).
        market.fail_next("opensea", "/events/", "truncated", times=4, skip=1)
        failed = await engine.syncer.sync(SLUG)
        broken = snapshot(engine, SLUG)
        state = engine.storage.sync.state(SLUG)
        rerun = await engine.syncer.sync(SLUG)
        healed = snapshot(engine, SLUG)

    error = failed.collections[0].error
    assert error is not None and "page 2" in error and "malformed" in error
    assert broken.checkpoint is None
    assert state is not None and state.last_status == "failed"
    assert state.resume_before is not None  # page 1 is stored and says so
    assert 0 < len(broken.sales) < len(market.sales_of(SLUG))
    assert rerun.collections[0].error is None
    assert stored_sales(healed) == served_sales(market, SLUG, "ETH")


async def test_one_malformed_record_is_skipped_and_counted(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=20, sales=40)
    market.fail_next("opensea", "/events/", "malformed_record")
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        report = await engine.syncer.sync(SLUG, "opensea")
        snap = snapshot(engine, SLUG)

    result = report.collections[0]
    assert result.skipped == 1
    assert "page 1, event 1" in result.reasons[0] and "quantity" in result.reasons[0]
    assert len(stored_sales(snap)) == len(market.sales_of(SLUG)) - 1


async def test_requests_stay_under_the_configured_rate(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=25, sales=120)
    settings = sync_settings(
        tmp_path, market, marketplaces={"opensea": {"requests_per_s": 20, "page_size": 20}}
    )
    async with sync_engine(settings, decoder) as engine:
        await engine.syncer.sync(SLUG, "opensea")

    times = sorted(r.time for r in market.requests_for("opensea") if "/api/" in r.path)
    assert len(times) > 30
    # In any one-second window, at most the configured 20 (+1 for the window's edge).
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 21


async def test_a_bad_api_key_and_an_unknown_collection_get_clear_sentences(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=5, sales=5)
    settings = sync_settings(tmp_path, market)
    async with sync_engine(settings, decoder, key="wrong") as engine:
        with pytest.raises(Exception, match="API key") as refused:
            await engine.syncer.sync(SLUG, "opensea")
    async with sync_engine(settings, decoder, key=None) as engine:
        with pytest.raises(Exception, match="set OPENSEA_API_KEY"):
            await engine.syncer.sync(SLUG, "opensea")
    async with sync_engine(settings, decoder) as engine:
        with pytest.raises(UnknownCollection, match="no collection called 'nope'"):
            await engine.syncer.sync("nope", "opensea")
        with pytest.raises(UnknownCollection, match="Magic Eden has no collection"):
            await engine.syncer.sync("nope", "magiceden")
    assert "401" in str(refused.value)


async def test_hostile_metadata_images_are_refused_and_retried_later(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    nfts = make_nfts(6, 5)
    bad = FakeNft(nfts[0].token_id, nfts[0].name, nfts[0].traits, nfts[0].image, "elsewhere:x.png")
    via_ipfs = FakeNft(
        nfts[1].token_id,
        nfts[1].name,
        nfts[1].traits,
        nfts[1].image,
        "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/1.png",
    )
    nfts = [bad, via_ipfs, *nfts[2:]]
    market.add_opensea_collection(SLUG, "Apes", nfts, make_sales(nfts, 30, START, 5))
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    settings = sync_settings(tmp_path, market, sync={"retry_hours": 2})
    async with sync_engine(settings, decoder, clock=lambda: now[0]) as engine:
        report = await engine.syncer.sync(SLUG, "opensea")
        snap = snapshot(engine, SLUG)
        soon = await engine.syncer.sync(SLUG)
        now[0] += timedelta(hours=3)
        later = await engine.syncer.sync(SLUG)
        failures = engine.storage.sync.failures(engine.storage.catalog.collection_pk(SLUG))

    assert report.collections[0].tokens_failed == 1
    assert bad.token_id not in {token for token, _, _ in snap.tokens}
    assert via_ipfs.token_id in {token for token, _, _ in snap.tokens}
    # The sales of the refused token are kept: a sale happened whatever its picture.
    assert stored_sales(snap) == served_sales(market, SLUG, "ETH")
    assert soon.collections[0].tokens_failed == 0  # still backing off
    assert later.collections[0].tokens_failed == 1  # tried again, refused again
    assert failures == 1
    elsewhere = [r for r in market.requests_for("elsewhere")]
    assert elsewhere == []  # refused before connecting: a loopback address


async def test_an_ipfs_image_falls_back_to_the_next_gateway(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    nfts = make_nfts(3, 6)
    cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    nfts = [FakeNft(n.token_id, n.name, n.traits, n.image, f"ipfs://{cid}/{n.token_id}.png")
            for n in nfts]  # fmt: skip
    market.add_opensea_collection(SLUG, "Apes", nfts, make_sales(nfts, 6, START, 6))
    # The first gateway (the OpenSea stand-in: trusted, but it has no /ipfs/) answers 404.
    settings = sync_settings(
        tmp_path,
        market,
        fetch={"ipfs_gateway": market.opensea_root, "ipfs_fallback_gateways": [market.ipfs_root]},
    )
    async with sync_engine(settings, decoder) as engine:
        report = await engine.syncer.sync(SLUG, "opensea")

    assert report.collections[0].tokens_added == 3
    assert report.collections[0].tokens_failed == 0


async def test_untrack_keeps_the_data_and_the_job_syncs_only_what_is_due(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=8, sales=12)
    add_birds(market, tokens=8, sales=12)
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    settings = sync_settings(
        tmp_path,
        market,
        sync={"every_minutes": 30, "collections": [{"slug": SLUG, "marketplace": "opensea"}]},
    )
    async with sync_engine(settings, decoder, clock=lambda: now[0]) as engine:
        await engine.syncer.track(SYMBOL, "magiceden", every_minutes=120)
        first = await engine.syncer.sync_due()
        now[0] += timedelta(minutes=31)
        second = await engine.syncer.sync_due()
        now[0] += timedelta(minutes=100)
        third = await engine.syncer.sync_due()
        assert engine.syncer.untrack(SYMBOL)
        now[0] += timedelta(hours=5)
        fourth = await engine.syncer.sync_due()
        kept = engine.storage.sales.counts()[SYMBOL]
        job = next(job for job in engine.jobs if job.name == "sync")

    assert {c.slug for c in first.collections} == {SLUG, SYMBOL}
    assert {c.slug for c in second.collections} == {SLUG}
    assert {c.slug for c in third.collections} == {SLUG, SYMBOL}
    assert {c.slug for c in fourth.collections} == {SLUG}
    assert kept == len(market.sales_of(SYMBOL))
    assert job.trigger == settings.jobs.sync


async def test_the_sync_job_reports_a_failed_collection_as_a_failed_run(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=5, sales=5)
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        await engine.syncer.track(SLUG, "opensea")
        market.fail_next("opensea", "/events/", "server_error", times=10)
        job = next(job for job in engine.jobs if job.name == "sync")
        with pytest.raises(Exception, match="HTTP 500"):
            await job.work()
        state = engine.storage.sync.state(SLUG)

    assert (
        state is not None
        and state.last_status == "failed"
        and "HTTP 500" in (state.last_error or "")
    )


async def test_status_shows_each_synced_collection_and_when_it_is_next_due(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=5, sales=8)
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    settings = sync_settings(tmp_path, market, sync={"every_minutes": 45})
    async with sync_engine(settings, decoder, clock=lambda: now) as engine:
        await engine.syncer.sync(SLUG, "opensea")
        report = gather_status(
            engine.storage, engine.embedder.key, engine.indexer.path, engine.jobs, 45
        )
        text = format_report(report, now)
        as_json = report_json(report)

    (apes,) = as_json["collections"]
    assert apes["sync"]["following"] and apes["sync"]["last_status"] == "ok"
    assert apes["sync"]["next_due"] == "2026-01-01T12:45:00Z"
    assert as_json["last_sync"] == "2026-01-01T12:00:00Z"
    newest = datetime.fromtimestamp(market.sales_of(SLUG)[-1].timestamp, UTC)
    assert (
        f"sync: following on opensea; last ok 2026-01-01 12:00 UTC; complete to "
        f"{newest:%Y-%m-%d %H:%M} UTC; next 2026-01-01 12:45 UTC"
    ) in text


async def test_full_size_pages_of_a_quarter_megabyte_are_read_whole(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    # 200 events are ~230 KB, which arrive in many TCP reads.
    add_apes(market, tokens=20, sales=450)
    settings = sync_settings(tmp_path, market, marketplaces={"opensea": {"page_size": 200}})
    async with sync_engine(settings, decoder) as engine:
        report = await engine.syncer.sync(SLUG, "opensea")

    result = report.collections[0]
    assert (result.pages, result.sales_added, result.error) == (3, 450, None)


async def test_a_configured_collection_the_marketplace_does_not_know_is_reported_not_fatal(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=5, sales=6)
    settings = sync_settings(
        tmp_path,
        market,
        sync={"collections": [{"slug": "gone", "marketplace": "opensea"},
                              {"slug": SLUG, "marketplace": "opensea"}]},
    )  # fmt: skip
    async with sync_engine(settings, decoder) as engine:
        report = await engine.syncer.sync_due()
        idle = await engine.syncer.sync_due()

    results = {c.slug: c for c in report.collections}
    assert "no collection called 'gone'" in (results["gone"].error or "")
    assert results[SLUG].error is None and results[SLUG].sales_added == 6
    # Nothing due a moment later: no index run, no price request.
    assert (idle.index, idle.rates) == (None, {})
    assert [c.slug for c in idle.collections] == ["gone"]


async def test_syncing_an_unknown_slug_says_how_to_follow_it(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        with pytest.raises(UnknownCollection, match="add --marketplace opensea"):
            await engine.syncer.sync("apes")


async def test_a_marketplace_down_for_metadata_stops_the_run_without_blaming_the_tokens(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=6, sales=10)
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        await engine.syncer.track(SLUG, "opensea")
        market.fail_next("opensea", "/nfts/", "server_error", times=100)
        report = await engine.syncer.sync(SLUG)
        pk = engine.storage.catalog.collection_pk(SLUG)
        blamed = engine.storage.sync.failures(pk)
        stored = engine.storage.sales.counts()[SLUG]
        market.clear_faults()  # the marketplace is back
        healed = await engine.syncer.sync(SLUG)

    assert "HTTP 500" in (report.collections[0].error or "")
    assert blamed == 0 and stored == 10  # the sales are kept; no token is marked broken
    assert healed.collections[0].tokens_added == len({s.token_id for s in market.sales_of(SLUG)})
