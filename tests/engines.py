"""Engines for tests: the real composition root over a test database, with fakes at the edges."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.app import Clock, Engine, build_engine
from core.config import Settings
from core.embedding.embedder import Embedder
from core.imaging.fetch import ImageFetcher
from core.imaging.workers import ImageDecoder
from core.storage import Storage
from tests.fakes import FakeEmbedder, FakeImageFetcher


@contextmanager
def engine_for(
    settings: Settings,
    decoder: ImageDecoder,
    *,
    embedder: Embedder | None = None,
    fetcher: ImageFetcher | None = None,
    clock: Clock | None = None,
) -> Iterator[Engine]:
    """``build_engine`` over ``settings``' database (migrated on open), a fake embedder and a
    fake fetcher unless others are given; the database is closed on exit."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    storage = Storage.open(settings.db_url)
    try:
        yield build_engine(
            settings,
            storage,
            decoder,
            fetcher if fetcher is not None else FakeImageFetcher(),
            embedder=embedder or FakeEmbedder(),
            clock=clock,
        )
    finally:
        storage.close()
