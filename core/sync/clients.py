"""Opening the marketplace and price clients: one HTTP session per service, closed on exit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from core.config import Secrets, Settings
from core.imaging.fetch import ImageFetcher
from core.sync.http import ApiClient, api_client
from core.sync.magiceden import MagicEdenSource
from core.sync.opensea import OpenSeaSource
from core.sync.prices import UsdPrices
from core.sync.source import MarketplaceSource


@dataclass(frozen=True)
class OpenMarketplaces:
    """The clients one ``sync`` reads from, and the guarded fetcher for token images."""

    sources: Mapping[str, MarketplaceSource]
    prices: UsdPrices | None
    fetcher: ImageFetcher


@asynccontextmanager
async def open_marketplaces(
    settings: Settings, secrets: Secrets, fetcher: ImageFetcher
) -> AsyncIterator[OpenMarketplaces]:
    """OpenSea, Magic Eden and the price API, each with its own session and policy."""
    cfg = settings.marketplaces
    opensea_headers = {}
    if secrets.opensea_api_key is not None:
        opensea_headers["X-API-KEY"] = secrets.opensea_api_key.get_secret_value()
    async with AsyncExitStack() as stack:

        async def client(
            name: str, key: str, headers: Mapping[str, str], missing: frozenset[int]
        ) -> ApiClient:
            api = getattr(cfg, key)
            session = await stack.enter_async_context(ApiClient.session(cfg.timeout_s, headers))
            return api_client(session, name, api, cfg, missing)

        opensea = await client("OpenSea", "opensea", opensea_headers, frozenset({404}))
        # Magic Eden answers 400 for an unknown symbol or mint.
        magiceden = await client("Magic Eden", "magiceden", {}, frozenset({400, 404}))
        prices = await client("The USD price API", "prices", {}, frozenset({404}))
        yield OpenMarketplaces(
            sources={
                "opensea": OpenSeaSource(
                    opensea,
                    cfg.opensea.page_size,
                    needs_key=secrets.opensea_api_key is None,
                ),
                "magiceden": MagicEdenSource(magiceden, cfg.magiceden.page_size),
            },
            prices=UsdPrices(prices),
            fetcher=fetcher,
        )
