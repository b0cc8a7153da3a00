"""The sales-based value answer: windows, medians, trend, currency, and reading sales back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.config import ValuationSettings
from core.errors import UnknownCollection, UnknownToken
from core.models import Collection, ImageRef, Sale
from core.storage import Storage, TokenWrite
from core.valuation import SALES_ONLY_NOTE, SalesValuer, value_from_sales
from core.valuation.sales import MIN_SALES_FOR_TREND

APES = Collection("apes", "Apes", currency="ETH")
END = datetime(2024, 6, 30, tzinfo=UTC)


def sale(token: str, days_before_end: float, price: float, currency: str = "ETH") -> Sale:
    moment = END - timedelta(days=days_before_end)
    return Sale("apes", token, moment, price, currency, f"0x{token}-{days_before_end}")


def test_median_and_trend_over_the_two_latest_windows() -> None:
    recent = [sale("1", d, p) for d, p in [(1, 2.0), (5, 3.0), (9, 4.0), (20, 100.0)]]
    earlier = [sale("2", d, p) for d, p in [(31, 1.0), (40, 2.0), (50, 3.0)]]
    ancient = [sale("3", 90, 50.0)]

    value = value_from_sales(APES, "1", END, recent + earlier + ancient, recent[:2], 30)

    assert value.window_end == END - timedelta(days=1)
    assert (value.recent_median, value.sales_count) == (3.5, 4)
    assert (value.previous_median, value.previous_count) == (2.0, 3)
    assert value.trend == pytest.approx(0.75)
    assert value.last_sale == recent[0]
    assert value.note == SALES_ONLY_NOTE


def test_the_window_ends_at_the_latest_sale_not_at_today() -> None:
    old = [sale("1", 400 + n, 1.0 + n) for n in range(3)]

    value = value_from_sales(APES, "1", END, old, [], 30)

    assert value.window_end == END - timedelta(days=400)
    assert value.sales_count == 3 and value.recent_median == 2.0
    assert value.last_sale is None


def test_sales_after_the_moment_asked_about_are_ignored() -> None:
    sales = [sale("1", 10, 1.0), sale("1", 2, 9.0)]

    value = value_from_sales(APES, "1", END - timedelta(days=5), sales, sales, 30)

    assert value.last_sale == sales[0]
    assert value.recent_median == 1.0 and value.sales_count == 1


def test_no_trend_from_too_few_sales() -> None:
    sales = [sale("1", d, 1.0) for d in range(MIN_SALES_FOR_TREND)]
    sales += [sale("2", 35 + d, 2.0) for d in range(MIN_SALES_FOR_TREND - 1)]

    value = value_from_sales(APES, "1", END, sales, [], 30)

    assert value.recent_median == 1.0 and value.previous_median == 2.0
    assert value.trend is None


def test_other_currencies_are_left_out_of_the_median() -> None:
    sales = [sale("1", 1, 1.0), sale("1", 2, 500.0, currency="USDC")]

    value = value_from_sales(APES, "1", END, sales, [], 30)

    assert value.sales_count == 1 and value.recent_median == 1.0


def test_no_sales_at_all() -> None:
    value = value_from_sales(APES, "1", END, [], [], 30)

    assert value.window_end is None and value.window_start is None
    assert value.recent_median is None and value.trend is None and value.sales_count == 0


def test_valuer_reads_stored_sales_and_checks_the_token(database_url: str) -> None:
    store = Storage.open(database_url)
    try:
        pk, _ = store.catalog.upsert_collection(APES)
        store.catalog.upsert_tokens(
            pk, [TokenWrite(t, None, ImageRef(t * 64, ".png"), ()) for t in ("1", "2")]
        )
        sales = [sale("1", 3, 2.0), sale("2", 4, 4.0), sale("1", 200, 1.0)]
        store.sales.add(pk, sales)
        valuer = SalesValuer(
            store.catalog,
            store.sales,
            ValuationSettings(window_days=30, chart_days=90),
            clock=lambda: END,
        )

        value = valuer.value("apes", "1")

        assert value.at == END and value.last_sale == sales[0]
        assert (value.recent_median, value.sales_count) == (3.0, 2)
        # The chart shows chart_days of collection history; the token's own sales all count.
        assert [s.price for s in value.history] == [4.0, 2.0]
        assert [s.price for s in value.token_sales] == [1.0, 2.0]
        assert store.sales.latest("apes") == sales[0]
        recent = store.sales.sales("apes", since=END - timedelta(days=3.5))
        assert [s.price for s in recent] == [2.0]
        with pytest.raises(UnknownToken):
            valuer.value("apes", "3")
        with pytest.raises(UnknownCollection):
            valuer.value("nope", "1")
    finally:
        store.close()
