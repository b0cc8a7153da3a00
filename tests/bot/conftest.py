"""Fixtures for the bot tests: one small indexed library per session, lenses over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import pytest

from bot.commands import LensCommands
from core.app import build_engine
from core.config import BotSettings, JobsSettings, Settings
from core.embedding.embedder import Embedder
from core.imaging.workers import DecoderPool
from core.storage import Storage
from tests.bot.fakes import Library, WatchedEmbedder, build_library
from tests.datasets import make_settings
from tests.fakes import FakeImageFetcher


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory, decoder: DecoderPool) -> Library:
    return build_library(tmp_path_factory.mktemp("library"), decoder)


@pytest.fixture
def base_settings(library: Library) -> Settings:
    return make_settings(library.root)


class LensFactory(Protocol):
    async def __call__(
        self,
        bot: Mapping[str, Any] | None = None,
        embedder: Embedder | None = None,
        images: Mapping[str, bytes] | None = None,
        embedding: Mapping[str, Any] | None = None,
        jobs: Mapping[str, Any] | None = None,
    ) -> LensCommands: ...


@pytest.fixture
async def make_lens(base_settings: Settings, decoder: DecoderPool) -> AsyncIterator[LensFactory]:
    """Build ``LensCommands`` over the shared library with a fake embedder and fetcher."""
    with ExitStack() as stack:

        async def make(
            bot: Mapping[str, Any] | None = None,
            embedder: Embedder | None = None,
            images: Mapping[str, bytes] | None = None,
            embedding: Mapping[str, Any] | None = None,
            jobs: Mapping[str, Any] | None = None,
        ) -> LensCommands:
            settings = base_settings.model_copy(
                update={
                    "bot": BotSettings.model_validate(
                        {**base_settings.bot.model_dump(), **(bot or {})}
                    ),
                    "embedding": base_settings.embedding.model_copy(update=dict(embedding or {})),
                    "jobs": JobsSettings.model_validate(
                        {**base_settings.jobs.model_dump(), **(jobs or {})}
                    ),
                }
            )
            storage = Storage.open(settings.db_url)
            stack.callback(storage.close)
            engine = build_engine(
                settings,
                storage,
                decoder,
                FakeImageFetcher(images),
                embedder=embedder or WatchedEmbedder(),
            )
            return LensCommands(engine)

        yield make


@pytest.fixture
async def lens(make_lens: LensFactory) -> LensCommands:
    return await make_lens()


Clock = Callable[[], float]


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def data_dir(library: Library) -> Path:
    return library.root / "data"
