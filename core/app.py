"""The composition root: builds the engine's services once, for the CLI and both bots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from yarl import URL

from core.config import Settings
from core.embedding.embedder import Embedder
from core.embedding.vgg16 import VGG16Embedder
from core.imaging.fetch import FetchLimits, HttpImageFetcher, ImageFetcher
from core.search.indexing import IndexCache, index_path
from core.search.similar import SimilarService
from core.storage import Store


@dataclass(frozen=True)
class Engine:
    """Every core service, built once and shared."""

    settings: Settings
    store: Store
    embedder: Embedder
    indexes: IndexCache
    similar: SimilarService
    fetcher: ImageFetcher | None


def open_store(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store.open(settings.db_url)


def make_embedder(settings: Settings) -> VGG16Embedder:
    """The VGG16 embedder as configured; the model itself is built on first use."""
    cfg = settings.embedding
    return VGG16Embedder(
        cfg.weights,
        cfg.input_size,
        cfg.pooling,
        cfg.precision,
        layer=cfg.layer,
        grid=cfg.grid,
        projection_dim=cfg.projection_dim,
        colour_grid=cfg.colour_grid,
        colour_weight=cfg.colour_weight,
    )


def fetch_limits(settings: Settings) -> FetchLimits:
    """Fetch caps; the configured IPFS gateway is trusted even on a private address (a
    local IPFS node or a mirror the operator chose), every other host is checked."""
    gateway = URL(settings.fetch.ipfs_gateway)
    trusted = frozenset({f"{gateway.host}:{gateway.port}"} if gateway.host else ())
    return FetchLimits(
        max_bytes=min(settings.fetch.max_bytes, settings.images.max_bytes),
        timeout_s=settings.fetch.timeout_s,
        ipfs_gateway=settings.fetch.ipfs_gateway,
        allow_hosts=trusted,
    )


def build_engine(
    settings: Settings,
    store: Store,
    fetcher: ImageFetcher | None,
    embedder: Embedder | None = None,
) -> Engine:
    """Wire the services; nothing here touches the network or loads the model."""
    embedder = embedder or make_embedder(settings)
    indexes = IndexCache(
        index_path(settings.data_dir, embedder.key), settings.index.hnsw_ef_search
    )
    heavy = asyncio.Semaphore(settings.embedding.max_concurrent)
    similar = SimilarService(store, embedder, indexes, fetcher, settings, heavy)
    return Engine(settings, store, embedder, indexes, similar, fetcher)


@asynccontextmanager
async def open_engine(
    settings: Settings, embedder: Embedder | None = None
) -> AsyncIterator[Engine]:
    """The engine with its HTTP session; everything opened here is closed on exit."""
    store = open_store(settings)
    limits = fetch_limits(settings)
    try:
        async with HttpImageFetcher.session(limits) as session:
            yield build_engine(settings, store, HttpImageFetcher(session, limits), embedder)
    finally:
        store.close()
