"""The sales-based ``value`` answer: last sale, the collection's recent median and its trend.

This is what ``/value`` says until the price model arrives. It reports recorded facts and
nothing more, and says so: a median of recent sales is not an estimate for one token.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from core.config import ValuationSettings
from core.models import Collection, Sale
from core.storage import Catalog, SalesBook

SALES_ONLY_NOTE = (
    "Read from recorded sales only; this is not a model estimate of this token's price."
)
# Fewer sales than this in either window and a change between them is noise, not a trend.
MIN_SALES_FOR_TREND = 3


@dataclass(frozen=True)
class SalesValue:
    """What the stored sales say about one token and its collection, as of ``at``.

    The "recent" window is the ``window_days`` up to the collection's latest sale at or before
    ``at`` (not up to ``at`` itself), so a collection whose data stops in the past still gets
    an answer; ``window_end`` says which days that was.
    """

    collection: str
    token_id: str
    at: datetime
    currency: str
    last_sale: Sale | None
    window_days: int
    window_end: datetime | None
    recent_median: float | None
    sales_count: int
    previous_median: float | None
    previous_count: int
    token_sales: tuple[Sale, ...] = field(default_factory=tuple)
    history: tuple[Sale, ...] = field(default_factory=tuple)
    note: str = SALES_ONLY_NOTE

    @property
    def window_start(self) -> datetime | None:
        return None if self.window_end is None else self.window_end - timedelta(self.window_days)

    @property
    def trend(self) -> float | None:
        """Relative change of the recent median against the window before it, or ``None``."""
        if (
            self.recent_median is None
            or not self.previous_median
            or self.sales_count < MIN_SALES_FOR_TREND
            or self.previous_count < MIN_SALES_FOR_TREND
        ):
            return None
        return self.recent_median / self.previous_median - 1.0


def value_from_sales(
    collection: Collection,
    token_id: str,
    at: datetime,
    collection_sales: Sequence[Sale],
    token_sales: Sequence[Sale],
    window_days: int,
) -> SalesValue:
    """Summarise sales (any order) of a collection and one of its tokens as of ``at``."""
    currency = collection.currency.upper()

    def usable(sale: Sale) -> bool:
        # Medians across currencies mean nothing; sales in other currencies are left out.
        return sale.timestamp <= at and sale.currency.upper() == currency

    history = sorted((s for s in collection_sales if usable(s)), key=lambda s: s.timestamp)
    own = sorted((s for s in token_sales if s.timestamp <= at), key=lambda s: s.timestamp)
    window = timedelta(days=window_days)
    end = history[-1].timestamp if history else None
    recent: list[float] = []
    previous: list[float] = []
    if end is not None:
        recent = [s.price for s in history if end - window < s.timestamp <= end]
        previous = [s.price for s in history if end - 2 * window < s.timestamp <= end - window]
    return SalesValue(
        collection=collection.slug,
        token_id=token_id,
        at=at,
        currency=currency,
        last_sale=own[-1] if own else None,
        window_days=window_days,
        window_end=end,
        recent_median=statistics.median(recent) if recent else None,
        sales_count=len(recent),
        previous_median=statistics.median(previous) if previous else None,
        previous_count=len(previous),
        token_sales=tuple(own),
        history=tuple(history),
    )


class SalesValuer:
    """Answers ``value`` from stored sales; blocking (SQL), so run it off the event loop."""

    def __init__(
        self,
        catalog: Catalog,
        sales: SalesBook,
        settings: ValuationSettings,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._catalog = catalog
        self._sales = sales
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))

    def value(self, slug: str, token_id: str, at: datetime | None = None) -> SalesValue:
        """The sales-based answer for one token; unknown collections and tokens raise."""
        collection = self._catalog.collection(slug)
        self._catalog.token(slug, token_id)
        at = (at or self._clock()).astimezone(UTC)
        # The chart and both median windows end at the latest sale before ``at``; find it
        # first so a collection whose data stops in the past still gets its recent history.
        latest = self._sales.latest(slug, until=at)
        end = latest.timestamp if latest else at
        reach = max(self._settings.chart_days, 2 * self._settings.window_days)
        collection_sales = self._sales.sales(slug, since=end - timedelta(days=reach), until=at)
        token_sales = self._sales.sales(slug, token_id=token_id, until=at)
        result = value_from_sales(
            collection, token_id, at, collection_sales, token_sales, self._settings.window_days
        )
        chart_start = end - timedelta(days=self._settings.chart_days)
        charted = tuple(sale for sale in result.history if sale.timestamp >= chart_start)
        return replace(result, history=charted)
