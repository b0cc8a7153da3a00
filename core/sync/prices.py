"""Today's USD rate of ETH and SOL from a CoinGecko-style price API."""

from __future__ import annotations

import math
from typing import Any

from core.sync.http import ApiClient, Malformed

# Our currency code -> the price API's coin id.
COIN_IDS = {"ETH": "ethereum", "SOL": "solana"}


class UsdPrices:
    """Reads spot USD prices; the sync stores one per currency and UTC day."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    async def rates(self, currencies: set[str]) -> dict[str, float]:
        """The USD price of each currency the API knows; others are left out."""
        wanted = {c: COIN_IDS[c] for c in sorted(currencies) if c in COIN_IDS}
        if not wanted:
            return {}
        params = {"ids": ",".join(wanted.values()), "vs_currencies": "usd"}

        def parse(data: Any) -> dict[str, float]:
            if not isinstance(data, dict):
                raise Malformed("the answer is not a JSON object")
            found: dict[str, float] = {}
            for currency, coin in wanted.items():
                entry = data.get(coin)
                usd = entry.get("usd") if isinstance(entry, dict) else None
                if (
                    isinstance(usd, int | float)
                    and not isinstance(usd, bool)
                    and math.isfinite(usd)
                    and usd > 0
                ):
                    found[currency] = float(usd)
            return found

        return await self._api.get("/api/v3/simple/price", params, parse, what="USD prices")
