"""What a marketplace gives the sync: typed records, and the port each client implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from core.ingest.dataset import GENESIS, check_sale
from core.models import Attribute, Collection, Sale

# A sale stamped this far ahead of our clock is refused (clocks differ a little); the sync
# also never moves a checkpoint past its own start.
FUTURE_TOLERANCE = timedelta(days=1)
# Decimals a token amount may declare (18 for ETH, 9 for SOL).
MAX_DECIMALS = 36
# What parsing one record of a page may raise: the record is skipped, the page kept.
# (OSError: datetime.fromtimestamp of an absurd stamp raises EOVERFLOW on Linux.)
RECORD_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError)


@dataclass(frozen=True)
class TokenMeta:
    """A token's metadata as its marketplace serves it (the image URL is the minter's)."""

    token_id: str
    name: str | None
    image_url: str | None
    attributes: tuple[Attribute, ...]


@dataclass(frozen=True)
class SalesPage:
    """One page of sales, newest first, as parsed at the edge."""

    # Where the page sits ("page 3", "offset 1500"): errors and logs name it.
    position: str
    sales: tuple[Sale, ...]
    # One reason per record of the page that was not a usable sale.
    skipped: tuple[str, ...]
    # The oldest event time on the page (sales or not); None for an empty page.
    oldest: datetime | None


class MarketplaceSource(Protocol):
    """One marketplace, read through its public API."""

    name: str

    async def collection(self, slug: str) -> Collection:
        """The collection as the marketplace describes it; ``UnknownCollection`` if none."""
        ...

    async def floor(self, slug: str) -> float | None:
        """Its floor price now, in its currency, if it has one."""
        ...

    def sales(
        self, collection: Collection, since: datetime, before: datetime | None
    ) -> AsyncIterator[SalesPage]:
        """Pages of sales newest first, from ``before`` (or now) back to ``since``."""
        ...

    async def token(self, collection: Collection, token_id: str) -> TokenMeta:
        """A token's name, traits and image URL; ``UnknownToken`` if the marketplace has none."""
        ...


def sales_page(
    position: str,
    records: Sequence[Any],
    noun: str,
    read: Callable[[Any], tuple[datetime, Sale | None]],
    chain: str,
    latest: datetime,
) -> SalesPage:
    """A page from its raw records: ``read`` gives each record's time and its sale (None
    for other activity); a record that cannot be read, or whose sale ingest would refuse,
    is skipped with its reason."""
    sales: list[Sale] = []
    skipped: list[str] = []
    oldest: datetime | None = None
    genesis = GENESIS.get(chain, GENESIS["bitcoin"])
    for i, record in enumerate(records):
        try:
            moment, sale = read(record)
            # Only a plausible time says how far back the page reaches: one record stamped
            # 1970 must not end the paging (and move the checkpoint past unread pages).
            if genesis <= moment <= latest:
                oldest = moment if oldest is None else min(oldest, moment)
            if sale is None:
                continue
            check_sale(sale, chain, latest)
        except RECORD_ERRORS as exc:
            skipped.append(f"{position}, {noun} {i + 1}: {exc or type(exc).__name__}")
            continue
        sales.append(sale)
    return SalesPage(position, tuple(sales), tuple(skipped), oldest)
