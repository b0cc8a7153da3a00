"""Magic Eden API v2 (Solana): collection stats, collection activities, token metadata.

Activities come newest first by ``offset``/``limit`` (at most 1,000), and only ``buyNow`` is
a sale. New activities land at the front while we page, which pushes items we have not read
yet to later offsets (so we see some twice: the natural key drops them), and removed ones pull
unread items to earlier offsets, past us. Pages therefore overlap by a few items, and a page
that does not begin inside what we have already read means items moved past us: we step back
and read again, so nothing is skipped.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from core.errors import MalformedResponse, UnknownCollection, UnknownToken, shown
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

LAMPORTS = 10**9
# Items each page repeats from the one before, to see whether anything moved past us.
OVERLAP_SHARE = 0.1
# Step-backs allowed in a row before the paging is declared unstable.
MAX_STEP_BACKS = 5
# Signatures remembered from recent pages, for the continuity check.
RECENT_PAGES = 3


class MagicEdenSource:
    """Reads one Solana collection's sales and tokens from Magic Eden."""

    name = "magiceden"

    def __init__(self, api: ApiClient, page_size: int = 500) -> None:
        self._api = api
        self._page_size = max(2, min(page_size, 1000))

    async def collection(self, slug: str) -> Collection:
        stats = await self._stats(slug)
        symbol = stats.get("symbol")
        name = symbol if isinstance(symbol, str) and symbol.strip() else slug
        return Collection(slug, name.strip()[:200], "solana", None, "SOL", "magiceden")

    async def floor(self, slug: str) -> float | None:
        value = (await self._stats(slug)).get("floorPrice")
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if not math.isfinite(value) or value <= 0:
            return None
        return float(value) / LAMPORTS

    async def sales(
        self, collection: Collection, since: datetime, before: datetime | None
    ) -> AsyncIterator[SalesPage]:
        # No time filter in this API: every run pages from the newest back to ``since``.
        path = f"/v2/collections/{path_segment(collection.slug)}/activities"
        limit = self._page_size
        step = max(1, limit - max(1, int(limit * OVERLAP_SHARE)))
        offset = 0
        recent: deque[frozenset[str]] = deque(maxlen=RECENT_PAGES)
        last_seen: tuple[datetime, str] | None = None
        step_backs = 0
        tail_checked = False
        while True:
            latest = datetime.now(UTC) + FUTURE_TOLERANCE
            position = f"offset {offset}"
            try:
                items = await self._api.get(
                    path,
                    {"offset": offset, "limit": limit},
                    _list,
                    what=f"activities page at {position}",
                )
            except NotFound as exc:
                raise UnknownCollection(
                    f"Magic Eden has no collection called '{shown(collection.slug)}'."
                ) from exc
            if not items:
                if last_seen is not None and not tail_checked:
                    # Past the end, or activities removed in front of us pulled the rest to
                    # offsets we have passed: read the last stretch once more to be sure.
                    tail_checked = True
                    offset = max(0, offset - step)
                    continue
                return
            first = _first_key(items)
            seen = any(first is not None and first[1] in sigs for sigs in recent)
            # Compared by time alone: within one second the order of signatures is arbitrary.
            if (
                last_seen is not None
                and first is not None
                and not seen
                and first[0] <= last_seen[0]
            ):
                # The page begins below what we read last, with nothing in common: items
                # moved to offsets we have passed. Read from further back again.
                step_backs += 1
                if step_backs > MAX_STEP_BACKS:
                    raise MalformedResponse(
                        f"Magic Eden's activities of '{collection.slug}' kept shifting at "
                        f"{position}; nothing past it was stored."
                    )
                offset = max(0, offset - step)
                continue
            step_backs = 0
            page = _activities_page(items, collection, latest, position)
            recent.append(frozenset(_signatures(items)))
            tail = _last_key(items)
            if tail is not None:
                last_seen = tail
            yield page
            if len(items) < limit or page.oldest is None or page.oldest < since:
                return
            offset += step

    async def token(self, collection: Collection, token_id: str) -> TokenMeta:
        try:
            raw = await self._api.get(
                f"/v2/tokens/{path_segment(token_id)}", None, json_object, what=f"token {token_id}"
            )
        except NotFound as exc:
            raise UnknownToken(f"Magic Eden has no token {token_id}.") from exc
        try:
            attributes = parse_attributes(raw.get("attributes") or [])
            name = checked_text(raw, "name", 200) or None
            image = checked_text(raw, "image", 2048) or None
        except ValueError as exc:
            raise UnknownToken(
                f"Magic Eden's metadata of token {token_id} is unusable: {exc}."
            ) from exc
        owner = raw.get("collection")
        if isinstance(owner, str) and owner and owner != collection.slug:
            raise UnknownToken(f"Token {token_id} belongs to '{shown(owner)}' on Magic Eden.")
        return TokenMeta(token_id, name, image, attributes)

    async def _stats(self, slug: str) -> dict[str, Any]:
        try:
            return await self._api.get(
                f"/v2/collections/{path_segment(slug)}/stats",
                None,
                json_object,
                what=f"'{slug}' stats",
            )
        except NotFound as exc:
            raise UnknownCollection(
                f"Magic Eden has no collection called '{shown(slug)}'."
            ) from exc


def _activities_page(
    items: list[Any], collection: Collection, latest: datetime, position: str
) -> SalesPage:

    def read(item: Any) -> tuple[datetime, Sale | None]:
        moment = _time(item)
        is_sale = item.get("type") == "buyNow"
        return moment, _sale(item, collection, moment) if is_sale else None

    return sales_page(position, items, "activity", read, collection.chain, latest)


def _time(item: Any) -> datetime:
    if not isinstance(item, dict):
        raise ValueError("the activity is not an object")
    stamp = item.get("blockTime")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise ValueError("blockTime is not a number")
    return datetime.fromtimestamp(stamp, UTC)


def _sale(item: dict[str, Any], collection: Collection, moment: datetime) -> Sale:
    signature = item.get("signature")
    mint = item.get("tokenMint")
    if not isinstance(signature, str) or not signature.strip():
        raise ValueError("the sale has no signature")
    if not isinstance(mint, str) or not mint.strip():
        raise ValueError("the sale has no tokenMint")
    return Sale(
        collection=collection.slug,
        token_id=mint.strip(),
        timestamp=moment,
        price=_price(item),
        currency="SOL",
        # Base58 is case-sensitive: the signature is kept exactly as sent.
        tx=signature.strip(),
        seller=_text(item.get("seller")),
        buyer=_text(item.get("buyer")),
        marketplace="magiceden",
    )


def _price(item: dict[str, Any]) -> float:
    """SOL from ``priceInfo.solPrice`` (raw amount and decimals) where given, else ``price``."""
    info = item.get("priceInfo")
    sol = info.get("solPrice") if isinstance(info, dict) else None
    if isinstance(sol, dict):
        raw, decimals = sol.get("rawAmount"), sol.get("decimals")
        if isinstance(decimals, float) and decimals.is_integer():
            decimals = int(decimals)
        if (
            isinstance(raw, str | int)
            and str(raw).isdigit()
            and isinstance(decimals, int)
            and 0 <= decimals <= MAX_DECIMALS
        ):
            return int(str(raw)) / 10**decimals
    price = item.get("price")
    if not isinstance(price, int | float) or isinstance(price, bool):
        raise ValueError("price is not a number")
    return float(price)


def _key(item: Any) -> tuple[datetime, str] | None:
    try:
        signature = item.get("signature")
        return (_time(item), signature) if isinstance(signature, str) else None
    except (ValueError, AttributeError, OverflowError, OSError):
        return None


def _first_key(items: list[Any]) -> tuple[datetime, str] | None:
    return next((key for key in map(_key, items) if key is not None), None)


def _last_key(items: list[Any]) -> tuple[datetime, str] | None:
    return next((key for key in map(_key, reversed(items)) if key is not None), None)


def _signatures(items: list[Any]) -> list[str]:
    return [key[1] for key in map(_key, items) if key is not None]


def _list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise Malformed("the answer is not a JSON list")
    return data


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
