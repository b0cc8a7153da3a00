"""The composition root: every engine service built once, for the CLI and the bot alike.

Nothing in a feature package imports this module; it imports them, wires them, and hands the
``Engine`` to ``core/cli.py`` and to ``bot/app.py``. ``open_engine`` is for callers inside an
event loop (it also opens the HTTP session for URL queries); ``open_engine_blocking`` is for
long blocking commands (``ingest``, ``index``) that need no network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from yarl import URL

from core.config import Secrets, Settings
from core.digest.jobs import operator_job, subscriptions_job
from core.digest.service import DigestService
from core.embedding.embedder import Embedder
from core.embedding.runtime import choose_embedder
from core.embedding.vgg16 import VGG16Embedder
from core.errors import ConfigError
from core.imaging.fetch import FetchLimits, HttpImageFetcher, ImageFetcher
from core.imaging.workers import DecoderPool, ImageDecoder, WorkerLimits
from core.ingest.service import Ingester
from core.jobs import Job
from core.jobs.housekeeping import housekeeping_job
from core.posting import PostRouter
from core.pricing.jobs import train_job
from core.pricing.service import PriceService
from core.queries import QueryResolver
from core.search.indexing import IndexCache, Indexer
from core.search.jobs import index_job
from core.search.similar import SimilarService
from core.storage import Storage
from core.storage.images import ImageStore
from core.sync.clients import open_marketplaces
from core.sync.jobs import sync_job
from core.sync.service import Marketplaces, Syncer
from core.valuation import SalesValuer

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Engine:
    """Every core service, built once and shared."""

    settings: Settings
    storage: Storage
    images: ImageStore
    # Uploads, URLs and collage previews: what people wait for.
    decoder: ImageDecoder
    # Index and ingest: bulk work, in workers of its own, so hostile uploads cannot stall it
    # and its batches never queue in front of someone's query.
    background_decoder: ImageDecoder
    embedder: Embedder
    fetcher: ImageFetcher | None
    queries: QueryResolver
    indexes: IndexCache
    indexer: Indexer
    similar: SimilarService
    ingester: Ingester
    valuation: SalesValuer
    pricing: PriceService
    syncer: Syncer
    digests: DigestService
    # Where scheduled posts go; the bot registers each running platform's poster on it.
    router: PostRouter
    jobs: tuple[Job, ...]
    clock: Clock


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


def make_decoder(settings: Settings, *, background: bool = False) -> DecoderPool:
    """A pool of image-decoding worker processes (started on first use): the interactive
    one, or with ``background`` the one for index and ingest."""
    images = settings.images
    return DecoderPool(
        WorkerLimits(
            workers=images.background_workers if background else images.workers,
            memory_bytes=images.worker_memory_mb << 20,
            cpu_s=images.decode_cpu_s,
            timeout_s=images.decode_timeout_s,
        )
    )


def fetch_limits(settings: Settings) -> FetchLimits:
    """Fetch caps; the configured IPFS gateway is trusted even on a private address (a
    local IPFS node or a mirror the operator chose), but only for its ``/ipfs/`` paths."""
    roots: list[str] = []
    gateways = (settings.fetch.ipfs_gateway, *settings.fetch.ipfs_fallback_gateways)
    for gateway in gateways:
        roots.extend(_root(gateway, "/ipfs/"))
    # The marketplaces' own hosts serve their images too (tests and mirrors stand in for them
    # on loopback); only their configured roots are trusted, not other paths on the host.
    markets = settings.marketplaces
    for api in (markets.opensea, markets.magiceden):
        roots.extend(_root(api.api_root, "/"))
    return FetchLimits(
        max_bytes=min(settings.fetch.max_bytes, settings.images.max_bytes),
        timeout_s=settings.fetch.timeout_s,
        ipfs_gateway=settings.fetch.ipfs_gateway,
        ipfs_fallbacks=tuple(settings.fetch.ipfs_fallback_gateways),
        trusted_roots=tuple(roots),
    )


def _root(url: str, under: str) -> list[str]:
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return []
    base = parsed.with_user(None).with_query(None).with_fragment(None)
    return [f"{str(base).rstrip('/')}{under}"]


def build_engine(
    settings: Settings,
    storage: Storage,
    decoder: ImageDecoder,
    fetcher: ImageFetcher | None,
    *,
    background_decoder: ImageDecoder | None = None,
    embedder: Embedder | None = None,
    clock: Clock | None = None,
    marketplaces: Marketplaces | None = None,
) -> Engine:
    """Wire the services; nothing here touches the network, a file or the model.

    Without a ``background_decoder`` the one ``decoder`` serves everything (tests)."""
    clock = clock or (lambda: datetime.now(UTC))
    background = background_decoder or decoder
    embedder = embedder or make_embedder(settings)
    images = ImageStore(settings.data_dir)
    catalog = storage.catalog
    queries = QueryResolver(
        catalog, fetcher, min(settings.images.max_bytes, settings.fetch.max_bytes)
    )
    indexer = Indexer(
        catalog=catalog,
        vectors=storage.vectors,
        images=images,
        decoder=background,
        embedder=embedder,
        settings=settings,
    )
    indexes = IndexCache(indexer.path, settings.index)
    # How many embeddings (and index searches) run at once; the rest wait their turn.
    heavy = asyncio.Semaphore(settings.embedding.max_concurrent)
    similar = SimilarService(
        catalog=catalog,
        sales=storage.sales,
        images=images,
        decoder=decoder,
        embedder=embedder,
        indexes=indexes,
        queries=queries,
        settings=settings,
        heavy=heavy,
    )
    ingester = Ingester(
        catalog=catalog,
        sales=storage.sales,
        market=storage.market,
        images=images,
        decoder=background,
        settings=settings,
        clock=clock,
    )
    valuation = SalesValuer(catalog, storage.sales, settings.valuation, clock)
    pricing = PriceService(
        storage=storage,
        data_dir=settings.data_dir,
        model_key=embedder.key,
        settings=settings.valuation,
        clock=clock,
    )
    syncer = Syncer(
        storage=storage,
        images=images,
        decoder=background,
        indexer=indexer,
        settings=settings,
        clock=clock,
        marketplaces=marketplaces,
    )
    router = PostRouter()
    digests = DigestService(
        storage=storage,
        pricing=pricing,
        previews=similar.previews,
        model_key=embedder.key,
        settings=settings.digest,
        clock=clock,
    )
    jobs = (
        sync_job(syncer, settings.jobs.sync),
        subscriptions_job(digests, storage, router, settings.jobs.digests, clock),
        *(operator_job(digests, router, post) for post in settings.digest.posts),
        index_job(indexer, settings.jobs.index),
        train_job(pricing, storage.catalog, settings.jobs.train),
        housekeeping_job(settings.data_dir, settings.jobs.housekeeping),
    )
    return Engine(
        settings=settings,
        storage=storage,
        images=images,
        decoder=decoder,
        background_decoder=background,
        embedder=embedder,
        fetcher=fetcher,
        queries=queries,
        indexes=indexes,
        indexer=indexer,
        similar=similar,
        ingester=ingester,
        valuation=valuation,
        pricing=pricing,
        syncer=syncer,
        digests=digests,
        router=router,
        jobs=jobs,
        clock=clock,
    )


@dataclass(frozen=True)
class _Resources:
    storage: Storage
    decoder: ImageDecoder
    background_decoder: ImageDecoder


@contextmanager
def _resources(
    settings: Settings, decoder: ImageDecoder | None, upgrade: bool = True
) -> Iterator[_Resources]:
    """The database (migrated to the newest schema unless ``upgrade`` is false) and the
    decoding workers (two pools, or the one given)."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"The data directory {settings.data_dir} cannot be created ({exc.strerror})."
        ) from exc
    with ExitStack() as stack:
        storage = Storage.open(settings.db_url, upgrade=upgrade)
        stack.callback(storage.close)
        if decoder is not None:
            yield _Resources(storage, decoder, decoder)
            return
        pools = [make_decoder(settings), make_decoder(settings, background=True)]
        for pool in pools:
            stack.callback(pool.close)
        yield _Resources(storage, pools[0], pools[1])


def runtime_embedder(settings: Settings, held: _Resources, *, convert: bool) -> Embedder:
    """The configured embedding runtime over this engine's data. Only commands that embed
    (``convert``) may run the one-time INT8 conversion; the others use what it left, so
    every command agrees on the model key."""
    images = ImageStore(settings.data_dir)
    return choose_embedder(
        settings,
        make_embedder(settings),
        held.storage,
        images,
        held.background_decoder,
        embeds=convert,
    )


@contextmanager
def open_engine_blocking(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    decoder: ImageDecoder | None = None,
    clock: Clock | None = None,
    upgrade: bool = True,
    convert: bool = False,
) -> Iterator[Engine]:
    """The engine without an HTTP session, for blocking commands; closed on exit. With
    ``upgrade`` false the database schema is left as it is (read-only commands)."""
    with _resources(settings, decoder, upgrade) as held:
        yield build_engine(
            settings,
            held.storage,
            held.decoder,
            None,
            background_decoder=held.background_decoder,
            embedder=embedder or runtime_embedder(settings, held, convert=convert),
            clock=clock,
        )


@asynccontextmanager
async def open_engine(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    decoder: ImageDecoder | None = None,
    fetcher: ImageFetcher | None = None,
    clock: Clock | None = None,
    secrets: Secrets | None = None,
    convert: bool = False,
) -> AsyncIterator[Engine]:
    """The engine with its HTTP session; everything opened here is closed on exit."""
    stack = ExitStack()
    try:
        # Opening the database runs any pending migration, and closing the workers waits for
        # them: blocking work, kept off the event loop.
        held = await asyncio.to_thread(stack.enter_context, _resources(settings, decoder))
        if embedder is None:
            embedder = await asyncio.to_thread(runtime_embedder, settings, held, convert=convert)
        async with AsyncExitStack() as sessions:
            if fetcher is None:
                limits = fetch_limits(settings)
                session = await sessions.enter_async_context(HttpImageFetcher.session(limits))
                fetcher = HttpImageFetcher(session, limits)
            marketplaces = await sessions.enter_async_context(
                open_marketplaces(settings, secrets or Secrets.from_env(), fetcher)
            )
            yield build_engine(
                settings,
                held.storage,
                held.decoder,
                fetcher,
                background_decoder=held.background_decoder,
                embedder=embedder,
                clock=clock,
                marketplaces=marketplaces,
            )
    finally:
        await asyncio.to_thread(stack.close)
