"""What a hostile or odd marketplace page cannot do: end paging early, push the checkpoint
into the future, crash the run, or mix two marketplaces under one slug."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputError
from core.imaging.workers import DecoderPool
from core.models import Collection, Sale
from core.sync.source import sales_page
from tests.sync.conftest import SLUG, add_apes, sync_engine, sync_settings
from tests.sync.fake_market import FakeMarket, FakeSale

NOW = datetime(2026, 1, 1, tzinfo=UTC)
APES = Collection(SLUG, "Apes")


def _read(record: dict[str, Any]) -> tuple[datetime, Sale | None]:
    moment = datetime.fromtimestamp(record["t"], UTC)
    if not record.get("sale"):
        return moment, None
    return moment, Sale(SLUG, record["id"], moment, 1.0, "ETH", record["tx"])


def test_an_absurd_time_on_one_record_does_not_say_how_far_the_page_reaches() -> None:
    good = int((NOW - timedelta(days=1)).timestamp())
    records = [
        {"t": good, "sale": True, "id": "1", "tx": "0x1"},
        {"t": 1},  # 1970: a listing with a broken clock
        {"t": -1e17},  # fromtimestamp raises OSError for this one
        {"t": good - 60, "sale": True, "id": "2", "tx": "0x2"},
    ]
    page = sales_page("page 1", records, "event", _read, "ethereum", NOW)

    assert [s.token_id for s in page.sales] == ["1", "2"]
    assert page.oldest == datetime.fromtimestamp(good - 60, UTC)
    assert len(page.skipped) == 1 and "page 1, event 3" in page.skipped[0]


async def test_a_sale_stamped_ahead_of_our_clock_does_not_move_the_checkpoint_past_now(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=5, sales=5)
    ahead = int(time.time()) + 20 * 3600
    market.add_sales(SLUG, [FakeSale("1", ahead, 1.0, "0x" + "f" * 64, "0xs", "0xb")])
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        started = datetime.now(UTC)
        await engine.syncer.sync(SLUG, "opensea")
        state = engine.storage.sync.state(SLUG)

    assert state is not None and state.checkpoint is not None
    assert state.checkpoint <= started + timedelta(seconds=5)


async def test_a_chat_that_cannot_hear_progress_does_not_stop_the_sync(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=5, sales=8)

    async def gone(text: str) -> None:
        raise ConnectionError("the chat is gone")

    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        await engine.syncer.track(SLUG, "opensea")
        report = await engine.syncer.sync(SLUG, notify=gone)

    assert report.collections[0].error is None and report.collections[0].sales_added == 8


async def test_a_slug_followed_on_one_marketplace_is_not_taken_over_by_the_other(
    tmp_path: Path, market: FakeMarket, decoder: DecoderPool
) -> None:
    add_apes(market, tokens=3, sales=3)
    async with sync_engine(sync_settings(tmp_path, market), decoder) as engine:
        await engine.syncer.track(SLUG, "opensea")
        with pytest.raises(InputError, match="already tracked from opensea"):
            await engine.syncer.track(SLUG, "magiceden")
        assert engine.storage.catalog.collection(SLUG).marketplace == "opensea"
