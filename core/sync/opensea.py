"""OpenSea API v2: collections, stats, sale events by collection, and NFT metadata.

Field names and paging follow ../shared/specs/opensea-api-v2.openapi.json and the real pages
in ../shared/fixtures/opensea: events come newest first, ``next`` is an opaque cursor, and a
sale's price is ``payment.quantity / 10**payment.decimals`` in ``payment.symbol``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from core.errors import (
    MalformedResponse,
    MarketplaceAuthError,
    UnknownCollection,
    UnknownToken,
    shown,
)
from core.ingest.dataset import checked_text, parse_attributes
from core.models import Collection, Sale
from core.sync.http import ApiClient, Malformed, NotFound, json_object, path_segment
from core.sync.source import (
    FUTURE_TOLERANCE,
    MAX_DECIMALS,
    SalesPage,
    TokenMeta,
    sales_page,
)

# Wrapped and blended ETH trade one to one with ETH: a sale paid in them is an ETH sale.
ETH_LIKE = frozenset({"ETH", "WETH", "BETH"})
# Chains whose collections trade in ETH; others are refused with a sentence.
ETH_CHAINS = frozenset({"ethereum", "base", "arbitrum", "optimism", "zora", "blast"})
# Stale repeats of a page tolerated in a row before the run stops.
MAX_STALE = 3


class OpenSeaSource:
    """Reads one collection's sales and tokens from OpenSea."""

    name = "opensea"

    def __init__(self, api: ApiClient, page_size: int = 200, *, needs_key: bool = False) -> None:
        self._api = api
        self._page_size = page_size
        # No OPENSEA_API_KEY is set: a refusal says so rather than "check its key".
        self._needs_key = needs_key

    async def collection(self, slug: str) -> Collection:
        raw = await self._get(f"/api/v2/collections/{path_segment(slug)}", None, json_object, slug)
        name = _text(raw, "name", 200) or slug
        contracts = raw.get("contracts") or []
        contract, chain = None, "ethereum"
        if isinstance(contracts, list) and contracts and isinstance(contracts[0], dict):
            contract = _text(contracts[0], "address", 100)
            chain = (_text(contracts[0], "chain", 40) or "ethereum").lower()
        if chain not in ETH_CHAINS:
            raise UnknownCollection(
                f"'{shown(slug)}' is on {shown(chain)}; NFT Lens follows Ethereum collections "
                "on OpenSea and Solana collections on Magic Eden."
            )
        return Collection(slug, name, chain, contract, "ETH", "opensea")

    async def floor(self, slug: str) -> float | None:
        raw = await self._get(
            f"/api/v2/collections/{path_segment(slug)}/stats", None, json_object, slug
        )
        total = raw.get("total")
        value = total.get("floor_price") if isinstance(total, dict) else None
        symbol = total.get("floor_price_symbol") if isinstance(total, dict) else None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if not math.isfinite(value) or value <= 0:
            return None
        if isinstance(symbol, str) and symbol.upper() not in ETH_LIKE | {""}:
            return None
        return float(value)

    async def sales(
        self, collection: Collection, since: datetime, before: datetime | None
    ) -> AsyncIterator[SalesPage]:
        path = f"/api/v2/events/collection/{path_segment(collection.slug)}"
        params: dict[str, str | int] = {
            "event_type": "sale",
            "after": int(since.timestamp()),
            "limit": self._page_size,
        }
        if before is not None:
            params["before"] = int(before.timestamp())
        cursor: str | None = None
        previous: frozenset[tuple[str, str]] = frozenset()
        number = 0
        stale = 0
        while True:
            number += 1
            asked_cursor = cursor
            asked = dict(params, next=cursor) if cursor else params
            parse = functools.partial(
                _events_page,
                collection=collection,
                latest=datetime.now(UTC) + FUTURE_TOLERANCE,
                position=f"page {number}",
                asked_cursor=cursor,
            )
            page, cursor = await self._get(
                path, asked, parse, collection.slug, what=f"sale events page {number}"
            )
            keys = frozenset((s.tx, s.token_id) for s in page.sales)
            if keys and keys == previous and cursor is not None:
                # A stale cached copy of the page before: ask for the same cursor again
                # rather than follow it, so nothing is skipped.
                stale += 1
                if stale > MAX_STALE:
                    raise MalformedResponse(
                        f"OpenSea kept repeating sale events page {number - 1} of "
                        f"'{collection.slug}'; nothing past it was stored."
                    )
                cursor, number = asked_cursor, number - 1
                continue
            stale = 0
            previous = keys
            yield page
            if cursor is None or page.oldest is None or page.oldest < since:
                return

    async def token(self, collection: Collection, token_id: str) -> TokenMeta:
        if collection.contract is None:
            raise UnknownToken(f"'{collection.slug}' has no contract address to look tokens up.")
        path = (
            f"/api/v2/chain/{path_segment(collection.chain)}/contract/"
            f"{path_segment(collection.contract)}/nfts/{path_segment(token_id)}"
        )
        try:
            raw = await self._api.get(path, None, json_object, what=f"token {token_id}")
        except NotFound as exc:
            raise UnknownToken(f"OpenSea has no token {token_id} in '{collection.slug}'.") from exc
        nft = raw.get("nft")
        if not isinstance(nft, dict):
            raise UnknownToken(f"OpenSea's answer for token {token_id} has no nft object.")
        return _nft(nft, token_id)

    async def _get(
        self,
        path: str,
        params: dict[str, str | int] | None,
        parse: Any,
        slug: str,
        *,
        what: str | None = None,
    ) -> Any:
        try:
            return await self._api.get(path, params, parse, what=what or f"'{slug}'")
        except MarketplaceAuthError as exc:
            if self._needs_key:
                raise MarketplaceAuthError(
                    "OpenSea needs an API key: set OPENSEA_API_KEY in the environment."
                ) from exc
            raise
        except NotFound as exc:
            raise UnknownCollection(f"OpenSea has no collection called '{shown(slug)}'.") from exc


def _events_page(
    data: Any,
    collection: Collection,
    latest: datetime,
    position: str,
    asked_cursor: str | None,
) -> tuple[SalesPage, str | None]:
    if not isinstance(data, dict) or not isinstance(data.get("asset_events"), list):
        raise Malformed("no asset_events list")
    cursor = data.get("next")
    if cursor is not None and (not isinstance(cursor, str) or len(cursor) > 4096):
        raise Malformed("the next cursor is not a string")
    if cursor is not None and cursor == asked_cursor:
        raise Malformed("the page points back at itself")

    def read(event: Any) -> tuple[datetime, Sale | None]:
        moment = _time(event)
        is_sale = event.get("event_type") == "sale"
        return moment, _sale(event, collection, moment) if is_sale else None

    records = data["asset_events"]
    page = sales_page(position, records, "event", read, collection.chain, latest)
    return page, cursor or None


def _time(event: Any) -> datetime:
    if not isinstance(event, dict):
        raise ValueError("the event is not an object")
    stamp = event.get("event_timestamp", event.get("closing_date"))
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise ValueError("event_timestamp is not a number")
    return datetime.fromtimestamp(stamp, UTC)


def _sale(event: dict[str, Any], collection: Collection, moment: datetime) -> Sale:
    nft = event.get("nft") or event.get("asset")
    if not isinstance(nft, dict):
        raise ValueError("the sale has no nft")
    identifier = nft.get("identifier")
    if isinstance(identifier, int) and not isinstance(identifier, bool):
        identifier = str(identifier)
    if not isinstance(identifier, str):
        raise ValueError("nft.identifier is missing")
    slug = nft.get("collection")
    if slug is not None and slug != collection.slug:
        raise ValueError(f"the nft belongs to '{shown(str(slug))}'")
    payment = event.get("payment")
    if not isinstance(payment, dict):
        raise ValueError("the sale has no payment")
    quantity = payment.get("quantity")
    decimals = payment.get("decimals")
    symbol = payment.get("symbol")
    if not isinstance(quantity, str | int) or not str(quantity).isdigit():
        raise ValueError("payment.quantity is not a whole number")
    if not isinstance(decimals, int) or not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError("payment.decimals is not a small whole number")
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValueError("payment.symbol is missing")
    units = event.get("quantity", 1)
    if not isinstance(units, int) or isinstance(units, bool) or units < 1:
        raise ValueError("quantity is not a positive whole number")
    currency = symbol.strip().upper()
    if currency in ETH_LIKE:
        currency = "ETH"
    # Several units in one event (ERC-1155): the price of one.
    price = int(str(quantity)) / 10**decimals / units
    tx = event.get("transaction")
    if not isinstance(tx, str) or not tx.strip():
        raise ValueError("the sale has no transaction")
    return Sale(
        collection=collection.slug,
        token_id=identifier,
        timestamp=moment,
        price=price,
        currency=currency,
        tx=tx.strip().lower(),
        seller=_address(event, "seller"),
        buyer=_address(event, "buyer"),
        marketplace="opensea",
    )


def _nft(raw: dict[str, Any], token_id: str) -> TokenMeta:
    try:
        attributes = parse_attributes(raw.get("traits") or [])
        name = checked_text(raw, "name", 200) or None
        image = checked_text(raw, "image_url", 2048) or checked_text(
            raw, "display_image_url", 2048
        )
    except ValueError as exc:
        raise UnknownToken(f"OpenSea's metadata of token {token_id} is unusable: {exc}.") from exc
    return TokenMeta(token_id, name, image or None, attributes)


def _text(raw: dict[str, Any], key: str, limit: int) -> str | None:
    value = raw.get(key)
    if not isinstance(value, str):
        return None
    value = "".join(ch for ch in value if ch.isprintable()).strip()
    return value[:limit] or None


def _address(event: dict[str, Any], key: str) -> str | None:
    value = event.get(key)
    return value.strip().lower() if isinstance(value, str) and value.strip() else None
