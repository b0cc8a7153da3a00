"""The market fake itself: response shapes, paging, key checks and every fault kind."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from itertools import pairwise
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.sync.fake_market import FakeMarket, FakeSale, make_nfts, make_sales

KEY = {"X-API-KEY": "test-opensea-key"}
START = 1_700_000_000


@pytest.fixture
def market() -> Iterator[FakeMarket]:
    """A running fake with one OpenSea collection ("apes") and one Magic Eden one ("sols")."""
    with FakeMarket() as fake:
        nfts = make_nfts(20, seed=1)
        fake.add_opensea_collection("apes", "Fake Apes", nfts, make_sales(nfts, 45, START, 1))
        mints = make_nfts(15, seed=2, base58=True)
        sales = make_sales(mints, 30, START, 2, symbol="SOL", signature=True)
        fake.add_magiceden_collection("sols", mints, sales)
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200, **kwargs: Any) -> Any:
    async with http.get(url, **kwargs) as response:
        assert response.status == status, await response.text()
        return await response.json()


def natural_keys(sales: list[FakeSale]) -> list[tuple[str, str]]:
    return [(s.tx, s.token_id) for s in sales]


def test_generators_are_deterministic_distinct_and_fast() -> None:
    began = time.perf_counter()
    nfts = make_nfts(1000, seed=3)
    assert time.perf_counter() - began < 2.0
    assert nfts == make_nfts(1000, seed=3)
    assert len({n.image for n in nfts}) == 1000
    assert all(2 <= len(n.traits) <= 4 for n in nfts)
    assert Image.open(io.BytesIO(nfts[0].image)).size == (24, 24)
    mints = make_nfts(5, base58=True)
    assert all(len(m.token_id) == 44 for m in mints)

    sales = make_sales(nfts, 300, START, seed=3)
    assert len(sales) == 300 and sales == make_sales(nfts, 300, START, seed=3)
    assert len(set(natural_keys(sales))) == 300
    assert len({s.tx for s in sales}) < 300  # some transactions sell two tokens
    assert all(b.timestamp > a.timestamp for a, b in pairwise(sales) if a.tx != b.tx)
    assert all(len(s.tx) == 66 for s in sales)
    signed = make_sales(mints, 5, START, signature=True, symbol="SOL")
    assert all(len(s.tx) == 88 and s.symbol == "SOL" for s in signed)


async def test_opensea_cursor_pages_every_sale_once_newest_first(
    market: FakeMarket, http: aiohttp.ClientSession
) -> None:
    url = f"{market.opensea_root}/api/v2/events/collection/apes"
    params: dict[str, str] = {"event_type": "sale", "limit": "10"}
    events: list[dict[str, Any]] = []
    while True:
        page = await get_json(http, url, params=params, headers=KEY)
        events += page["asset_events"]
        if len(events) == 10:  # a newer sale lands while the client is paging
            newer = FakeSale("3", START + 10**6, 2.5, "0x" + "ab" * 32, "0x" + "1" * 40, "0xb")
            market.add_sales("apes", [newer])
        if not page.get("next"):
            assert "next" not in page
            break
        params["next"] = page["next"]
    keys = [(e["transaction"], e["nft"]["identifier"]) for e in events]
    assert keys == natural_keys(market.sales_of("apes")[:-1][::-1])
    first = events[0]
    assert first["event_type"] == "sale" and first["chain"] == "ethereum"
    assert first["payment"]["decimals"] == 18 and first["nft"]["collection"] == "apes"
    oldest = market.sales_of("apes")[0]
    assert int(events[-1]["payment"]["quantity"]) / 10**18 == oldest.price

    window = {"after": str(oldest.timestamp), "before": str(START + 10**6), "limit": "200"}
    page = await get_json(http, url, params=window, headers=KEY)
    assert len(page["asset_events"]) == 45 - sum(
        s.timestamp == oldest.timestamp for s in market.sales_of("apes")
    )


async def test_opensea_limits_key_and_lookups(
    market: FakeMarket, http: aiohttp.ClientSession
) -> None:
    root = market.opensea_root
    events = f"{root}/api/v2/events/collection/apes"
    body = await get_json(http, events, 400, params={"limit": "201"}, headers=KEY)
    assert body["errors"]
    assert await get_json(http, events, 401) == {"detail": "Invalid API key"}
    await get_json(http, events, 401, headers={"X-API-KEY": "wrong"})
    await get_json(http, f"{root}/api/v2/collections/nope", 404, headers=KEY)

    collection = await get_json(http, f"{root}/api/v2/collections/apes", headers=KEY)
    contract = collection["contracts"][0]["address"]
    stats = await get_json(http, f"{root}/api/v2/collections/apes/stats", headers=KEY)
    assert stats["total"]["floor_price"] == 0.5
    nft_url = f"{root}/api/v2/chain/ethereum/contract/{contract}/nfts/7"
    nft = (await get_json(http, nft_url, headers=KEY))["nft"]
    truth = market.nfts_of("apes")[7]
    assert [(t["trait_type"], t["value"]) for t in nft["traits"]] == list(truth.traits)
    async with http.get(nft["image_url"]) as response:
        assert response.content_type == "image/png"
        assert await response.read() == truth.image


async def test_images_on_ipfs_and_elsewhere(
    market: FakeMarket, http: aiohttp.ClientSession
) -> None:
    base = make_nfts(2, seed=4)
    nfts = [
        replace(base[0], image_path="ipfs://QmCid/0.png"),
        replace(base[1], image_path="elsewhere:evil.png"),
    ]
    market.add_opensea_collection("mixed", "Mixed", nfts, [])
    contract = (
        await get_json(http, f"{market.opensea_root}/api/v2/collections/mixed", headers=KEY)
    )["contracts"][0]["address"]
    urls = []
    for token in ("0", "1"):
        url = f"{market.opensea_root}/api/v2/chain/ethereum/contract/{contract}/nfts/{token}"
        urls.append((await get_json(http, url, headers=KEY))["nft"]["image_url"])
    assert urls == ["ipfs://QmCid/0.png", f"{market.elsewhere_root}/evil.png"]
    for url, nft in zip([market.gateway_url(urls[0]), urls[1]], nfts, strict=True):
        async with http.get(url) as response:
            assert await response.read() == nft.image


async def me_page(
    market: FakeMarket, http: aiohttp.ClientSession, offset: int, limit: int
) -> list[dict[str, Any]]:
    url = f"{market.magiceden_root}/v2/collections/sols/activities"
    page: list[dict[str, Any]] = await get_json(
        http, url, params={"offset": str(offset), "limit": str(limit)}
    )
    return page


async def test_magiceden_activities_page_by_offset_and_only_buy_now_sells(
    market: FakeMarket, http: aiohttp.ClientSession
) -> None:
    activities: list[dict[str, Any]] = []
    while page := await me_page(market, http, len(activities), 7):
        activities += page
    assert len(activities) == 60  # each sale has one non-sale activity beside it
    times = [a["blockTime"] for a in activities]
    assert times == sorted(times, reverse=True)
    assert {a["type"] for a in activities} <= {"buyNow", "list", "delist", "bid", "cancelBid"}
    sales = [a for a in activities if a["type"] == "buyNow"]
    keys = [(a["signature"], a["tokenMint"]) for a in sales]
    assert keys == natural_keys(market.sales_of("sols")[::-1])
    with_info = [a for a in sales if "priceInfo" in a]
    assert 0 < len(with_info) < len(sales)
    sol = with_info[0]["priceInfo"]["solPrice"]
    assert int(sol["rawAmount"]) / 10**9 == with_info[0]["price"] and sol["decimals"] == 9

    url = f"{market.magiceden_root}/v2/collections"
    assert (await get_json(http, f"{url}/sols/activities", 400, params={"limit": "1001"}))[
        "errors"
    ]
    await get_json(http, f"{url}/sols/activities", 400, params={"limit": "0"})
    await get_json(http, f"{url}/nope/activities", 400)
    await get_json(http, f"{url}/nope/stats", 404)
    stats = await get_json(http, f"{url}/sols/stats")
    assert stats["symbol"] == "sols" and stats["floorPrice"] == 2_500_000_000
    mint = market.nfts_of("sols")[0]
    token = await get_json(http, f"{market.magiceden_root}/v2/tokens/{mint.token_id}")
    assert token["attributes"] == [{"trait_type": t, "value": v} for t, v in mint.traits]
    async with http.get(token["image"]) as response:
        assert await response.read() == mint.image
    await get_json(http, f"{market.magiceden_root}/v2/tokens/unknown", 400)


async def test_arrivals_and_removals_shift_offsets(
    market: FakeMarket, http: aiohttp.ClientSession
) -> None:
    mints = market.nfts_of("sols")
    newer = make_sales(mints, 3, START + 10**6, seed=9, symbol="SOL", signature=True)
    market.arrive_during_paging("sols", newer, after_requests=1)
    first = await me_page(market, http, 0, 10)
    second = await me_page(market, http, 10, 10)
    assert second[:6] == first[4:]  # six new activities pushed everything down by six
    assert len(market.sales_of("sols")) == 30 + len(newer)

    market.remove_during_paging("sols", 5, after_requests=1)
    before = await me_page(market, http, 0, 20)
    after = await me_page(market, http, 0, 20)
    assert after[:15] == before[5:]
    assert len(market.sales_of("sols")) < 30 + len(newer)


async def test_prices(market: FakeMarket, http: aiohttp.ClientSession) -> None:
    url = f"{market.prices_root}/api/v3/simple/price"
    market.set_prices(eth=2500.0, sol=99.5)
    both = await get_json(http, url, params={"ids": "ethereum,solana", "vs_currencies": "usd"})
    assert both == {"ethereum": {"usd": 2500.0}, "solana": {"usd": 99.5}}
    one = await get_json(http, url, params={"ids": "solana", "vs_currencies": "usd"})
    assert one == {"solana": {"usd": 99.5}}


async def test_faults_then_normal_service(market: FakeMarket, http: aiohttp.ClientSession) -> None:
    events = f"{market.opensea_root}/api/v2/events/collection/apes"
    ten = {"limit": "10"}
    activities = f"{market.magiceden_root}/v2/collections/sols/activities"

    market.fail_next("opensea", "/events/", "rate_limit", times=2, retry_after=1.5)
    for _ in range(2):
        async with http.get(events, params=ten, headers=KEY) as response:
            assert response.status == 429 and response.headers["Retry-After"] == "1.5"
            assert await response.json() == {"detail": "Request was throttled."}
    good = await get_json(http, events, params=ten, headers=KEY)
    market.fail_next("opensea", "/events/", "rate_limit", retry_after=3.0)
    async with http.get(events, params=ten, headers=KEY) as response:
        assert response.headers["Retry-After"] == "3"

    market.fail_next("magiceden", "/activities", "server_error")
    async with http.get(activities) as response:
        assert response.status == 500 and await response.text() == "internal error"
    market.fail_next("magiceden", "/activities", "bad_gateway")
    async with http.get(activities) as response:
        assert response.status == 502 and response.content_type == "text/html"

    market.fail_next("opensea", "/events/", "truncated")
    async with http.get(events, params=ten, headers=KEY) as response:
        assert response.status == 200 and response.content_type == "application/json"
        with pytest.raises(json.JSONDecodeError):
            json.loads(await response.read())

    # aiohttp itself resends a GET once after a dropped connection: it takes two to surface.
    prices = f"{market.prices_root}/api/v3/simple/price?ids=solana&vs_currencies=usd"
    market.fail_next("prices", "/simple/price", "reset")
    assert await get_json(http, prices) == {"solana": {"usd": 150.0}}
    market.fail_next("prices", "/simple/price", "reset", times=2)
    with pytest.raises(aiohttp.ClientError):
        await get_json(http, prices)
    assert [r.status for r in market.requests_for("prices")] == [0, 200, 0, 0]

    market.fail_next("opensea", "/events/", "duplicate_page")
    stale = await get_json(http, events, params={**ten, "next": good["next"]}, headers=KEY)
    assert stale == good

    market.fail_next("opensea", "/events/", "malformed_record")
    broken = await get_json(http, events, params=ten, headers=KEY)
    assert broken["asset_events"][0]["payment"]["quantity"] == "not-a-number"
    assert broken["asset_events"][1:] == good["asset_events"][1:]
    market.fail_next("magiceden", "/activities", "malformed_record")
    records = await get_json(http, activities)
    buy = next(r for r in records if r["type"] == "buyNow")
    assert buy["price"] == "x" and "priceInfo" not in buy

    assert await get_json(http, events, params=ten, headers=KEY) == good


async def test_timeout_fault_and_stop_does_not_wait_for_it(http: aiohttp.ClientSession) -> None:
    market = FakeMarket().start()
    url = f"{market.prices_root}/api/v3/simple/price?ids=ethereum&vs_currencies=usd"
    market.fail_next("prices", "/simple/", "timeout", delay_s=0.5)
    with pytest.raises(TimeoutError):
        await http.get(url, timeout=aiohttp.ClientTimeout(total=0.1))
    market.fail_next("prices", "/simple/", "timeout", delay_s=60)
    with pytest.raises(TimeoutError):
        await http.get(url, timeout=aiohttp.ClientTimeout(total=0.1))
    began = time.monotonic()
    market.stop()
    assert time.monotonic() - began < 5


async def test_request_log(market: FakeMarket, http: aiohttp.ClientSession) -> None:
    market.reset_log()
    await get_json(http, f"{market.opensea_root}/api/v2/collections/apes", headers=KEY)
    await get_json(http, f"{market.magiceden_root}/v2/collections/nope/stats", 404)
    market.fail_next("ipfs", "", "rate_limit")
    async with http.get(f"{market.ipfs_root}/ipfs/cid/x.png") as response:
        assert response.status == 429
    logged = [(r.service, r.path, r.status) for r in market.requests]
    assert logged == [
        ("opensea", "/api/v2/collections/apes", 200),
        ("magiceden", "/v2/collections/nope/stats", 404),
        ("ipfs", "/ipfs/cid/x.png", 429),
    ]
    assert [r.service for r in market.requests_for("ipfs")] == ["ipfs"]
