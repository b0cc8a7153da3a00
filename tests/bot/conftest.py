"""Fixtures for the bot tests: one small indexed library per session, lenses over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol

import pytest

from bot.app import lens_over
from bot.commands import LensCommands
from core.app import build_engine
from core.config import BotSettings, Settings
from core.embedding.embedder import Embedder
from core.storage import Store
from tests.bot.fakes import Library, WatchedEmbedder, build_library
from tests.datasets import make_settings
from tests.fakes import FakeImageFetcher


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    return build_library(tmp_path_factory.mktemp("library"))


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
    ) -> LensCommands: ...


@pytest.fixture
async def make_lens(base_settings: Settings) -> AsyncIterator[LensFactory]:
    """Build ``LensCommands`` over the shared library with a fake embedder and fetcher."""
    async with AsyncExitStack() as stack:

        async def make(
            bot: Mapping[str, Any] | None = None,
            embedder: Embedder | None = None,
            images: Mapping[str, bytes] | None = None,
            embedding: Mapping[str, Any] | None = None,
        ) -> LensCommands:
            settings = base_settings.model_copy(
                update={
                    "bot": BotSettings.model_validate(
                        {**base_settings.bot.model_dump(), **(bot or {})}
                    ),
                    "embedding": base_settings.embedding.model_copy(update=dict(embedding or {})),
                }
            )
            store = Store.open(settings.db_url)
            stack.callback(store.close)
            engine = build_engine(
                settings, store, FakeImageFetcher(images), embedder or WatchedEmbedder()
            )
            return await stack.enter_async_context(lens_over(engine))

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
