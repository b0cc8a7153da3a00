"""The indexer with a fake embedder: embeds what is new, resumes after a kill, skips bad files."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.app import Engine
from core.config import Settings
from core.embedding.embedder import Embedder
from core.errors import IndexBusy, IndexNotReady, JobSkipped
from core.imaging.canonical import canonicalise
from core.imaging.workers import DecoderPool
from core.search.index import VectorIndex
from core.search.indexing import IndexCache, Indexer, IndexReport, index_path
from core.search.jobs import index_job
from core.storage import Storage
from tests.datasets import make_settings, moonbirds, punks
from tests.engines import engine_for
from tests.fakes import FakeEmbedder, Killed, KillingEmbedder

TOKENS = 20
BATCH = 4


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    assert settings.embedding.batch_size == BATCH
    return settings


@pytest.fixture
def engine(tmp_path: Path, settings: Settings, decoder: DecoderPool) -> Iterator[Engine]:
    with engine_for(settings, decoder) as engine:
        add(engine, punks(tmp_path / "punks", count=TOKENS))
        yield engine


@pytest.fixture
def store(engine: Engine) -> Storage:
    return engine.storage


def add(engine: Engine, dataset: Path) -> None:
    report = engine.ingester.ingest(dataset, progress=False)
    assert report.rejected == ()


def indexer_for(engine: Engine, embedder: Embedder) -> Indexer:
    """The engine's indexer, with this embedder."""
    return Indexer(
        catalog=engine.storage.catalog,
        vectors=engine.storage.vectors,
        images=engine.images,
        decoder=engine.decoder,
        embedder=embedder,
        settings=engine.settings,
    )


def build_index(engine: Engine, embedder: Embedder, collection: str | None = None) -> IndexReport:
    """One ``index`` run of the engine's indexer, with this embedder."""
    return indexer_for(engine, embedder).run(collection, progress=False)


def index_file(settings: Settings) -> Path:
    return index_path(settings.data_dir, FakeEmbedder.key)


def test_first_run_embeds_everything(engine: Engine, store: Storage, settings: Settings) -> None:
    embedder = FakeEmbedder()

    report = build_index(engine, embedder)

    assert (report.embedded, report.failed, report.indexed, report.kind) == (20, 0, 20, "exact")
    assert embedder.images == TOKENS
    assert embedder.calls == TOKENS // BATCH
    index = VectorIndex.load(index_file(settings))
    assert len(index) == TOKENS and index.dim == FakeEmbedder.dim
    assert set(np.asarray(store.vectors.vectors(FakeEmbedder.key)[0]).tolist()) == set(
        store.catalog.token_pks().tolist()
    )


def test_stored_vector_is_the_embedding_of_the_canonical_image(
    engine: Engine, store: Storage, settings: Settings
) -> None:
    build_index(engine, FakeEmbedder())
    token = store.catalog.token("cryptopunks", "5")

    stored = VectorIndex.load(index_file(settings)).vector(token.pk)

    canonical = canonicalise(
        Image.open(engine.images.path(token.image)), 32, settings.images.background_rgb
    )
    np.testing.assert_allclose(stored, FakeEmbedder().embed_batch(canonical[None])[0], atol=1e-6)  # type: ignore[arg-type]


def test_second_run_embeds_nothing(engine: Engine, store: Storage, settings: Settings) -> None:
    build_index(engine, FakeEmbedder())
    again = FakeEmbedder()

    report = build_index(engine, again)

    assert (report.embedded, report.failed, report.indexed) == (0, 0, TOKENS)
    assert again.calls == 0
    assert len(VectorIndex.load(index_file(settings))) == TOKENS


def test_second_run_leaves_a_complete_index_file_alone(
    engine: Engine, store: Storage, settings: Settings
) -> None:
    build_index(engine, FakeEmbedder())
    before = index_file(settings).stat().st_mtime_ns

    build_index(engine, FakeEmbedder())

    assert index_file(settings).stat().st_mtime_ns == before


def test_a_damaged_index_file_is_rebuilt_even_with_nothing_to_embed(
    engine: Engine, store: Storage, settings: Settings
) -> None:
    build_index(engine, FakeEmbedder())
    index_file(settings).write_bytes(b"not a faiss index")

    report = build_index(engine, FakeEmbedder())

    assert report.indexed == TOKENS
    assert len(VectorIndex.load(index_file(settings))) == TOKENS


def test_rerun_after_a_kill_redoes_at_most_one_batch(
    engine: Engine, store: Storage, settings: Settings
) -> None:
    killer = KillingEmbedder(FakeEmbedder(), after_batches=2)

    with pytest.raises(Killed):
        build_index(engine, killer)

    assert killer.inner.images == 2 * BATCH
    assert len(store.vectors.vectors(FakeEmbedder.key)[0]) == 2 * BATCH
    assert not index_file(settings).exists()

    resumed = FakeEmbedder()
    report = build_index(engine, resumed)

    assert resumed.images == TOKENS - 2 * BATCH
    assert (report.embedded, report.indexed) == (TOKENS - 2 * BATCH, TOKENS)
    assert len(VectorIndex.load(index_file(settings))) == TOKENS


def test_a_corrupt_stored_image_fails_alone(
    engine: Engine, store: Storage, settings: Settings
) -> None:
    broken = store.catalog.token("cryptopunks", "6")
    engine.images.path(broken.image).write_bytes(b"not a png any more")

    report = build_index(engine, FakeEmbedder())

    assert (report.embedded, report.failed, report.indexed) == (TOKENS - 1, 1, TOKENS - 1)
    index = VectorIndex.load(index_file(settings))
    assert index.vector(broken.pk) is None
    assert [t.token_id for t in store.vectors.tokens_to_embed(FakeEmbedder.key)] == ["6"]


def test_a_missing_stored_image_fails_alone(
    engine: Engine, store: Storage, settings: Settings
) -> None:
    gone = store.catalog.token("cryptopunks", "11")
    engine.images.path(gone.image).unlink()

    report = build_index(engine, FakeEmbedder())

    assert (report.embedded, report.failed, report.indexed) == (TOKENS - 1, 1, TOKENS - 1)


def test_changed_image_is_embedded_again_and_not_duplicated(
    tmp_path: Path, engine: Engine, store: Storage, settings: Settings
) -> None:
    build_index(engine, FakeEmbedder())
    dataset = tmp_path / "punks"
    (dataset / "images" / "3.png").write_bytes((dataset / "images" / "4.png").read_bytes())
    add(engine, dataset)
    token = store.catalog.token("cryptopunks", "3")
    redo = FakeEmbedder()

    report = build_index(engine, redo)

    assert redo.images == 1
    assert (report.embedded, report.indexed) == (1, TOKENS)
    index = VectorIndex.load(index_file(settings))
    twin = store.catalog.token("cryptopunks", "4")
    np.testing.assert_allclose(index.vector(token.pk), index.vector(twin.pk), atol=1e-6)  # type: ignore[arg-type]


def test_one_collection_at_a_time(
    tmp_path: Path, engine: Engine, store: Storage, settings: Settings
) -> None:
    add(engine, moonbirds(tmp_path / "birds", count=6))
    birds_only = FakeEmbedder()

    first = build_index(engine, birds_only, "moonbirds")
    rest = build_index(engine, FakeEmbedder())

    assert (birds_only.images, first.indexed) == (6, 6)
    assert (rest.embedded, rest.indexed) == (TOKENS, TOKENS + 6)


def test_a_large_index_is_ivf_and_grows_by_adding_until_it_needs_more_lists(
    tmp_path: Path, settings: Settings, decoder: DecoderPool
) -> None:
    """Past ``approximate_above`` the index is IVF; a sync's few new tokens are added to it,
    and only growth that calls for more lists retrains it."""
    settings = settings.model_copy(
        update={"index": settings.index.model_copy(update={"approximate_above": 10})}
    )
    with engine_for(settings, decoder) as engine:
        add(engine, punks(tmp_path / "punks", count=TOKENS))
        embedder = FakeEmbedder()

        first = build_index(engine, embedder)
        add(engine, moonbirds(tmp_path / "birds", count=10))
        grown = build_index(engine, embedder)
        add(engine, punks(tmp_path / "more", count=90))  # 20 → 100 tokens: 2 lists
        retrained = build_index(engine, embedder)

        assert (first.kind, first.mode, first.indexed) == ("ivf", "rebuilt", TOKENS)
        assert (grown.kind, grown.mode, grown.indexed) == ("ivf", "added", TOKENS + 10)
        index = VectorIndex.load(index_file(settings), settings.index)
        assert (retrained.mode, len(index), index.lists) == ("rebuilt", 100, 2)
        bird = engine.storage.catalog.token("moonbirds", "3")
        _, found = index.search(index.vector(bird.pk), 1)  # type: ignore[arg-type]
        assert found[0, 0] == bird.pk


def test_index_cache_follows_the_file(engine: Engine, store: Storage, settings: Settings) -> None:
    cache = IndexCache(index_file(settings), settings.index)
    with pytest.raises(IndexNotReady, match="python -m core index"):
        cache.get()

    build_index(engine, FakeEmbedder())
    first = cache.get()
    assert len(first) == TOKENS
    assert cache.get() is first  # loaded once while the file stays the same

    VectorIndex.build(
        np.arange(3, dtype=np.int64),
        np.eye(3, FakeEmbedder.dim, dtype=np.float32),
        settings.index,
    ).save(index_file(settings))

    assert len(cache.get()) == 3


class GatedEmbedder(FakeEmbedder):
    """Holds its first batch until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.Event()
        self.gate = threading.Event()

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        self.inside.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        return super().embed_batch(images)


def test_two_index_runs_at_once_embed_each_token_once(engine: Engine) -> None:
    first, second = GatedEmbedder(), FakeEmbedder()
    reports: dict[str, IndexReport] = {}
    running = threading.Thread(target=lambda: reports.update(a=build_index(engine, first)))
    running.start()
    assert first.inside.wait(timeout=30)
    waiting = threading.Thread(target=lambda: reports.update(b=build_index(engine, second)))
    waiting.start()

    # The second run waits on the lock; the scheduled job does not wait at all.
    with pytest.raises(IndexBusy, match="in progress"):
        indexer_for(engine, FakeEmbedder()).run(progress=False, wait=False)
    assert waiting.is_alive()
    first.gate.set()
    running.join(timeout=60)
    waiting.join(timeout=60)

    assert (reports["a"].embedded, reports["b"].embedded) == (TOKENS, 0)
    assert second.images == 0
    assert reports["b"].indexed == TOKENS


async def test_the_index_job_skips_its_turn_while_a_run_holds_the_lock(engine: Engine) -> None:
    gated = GatedEmbedder()
    running = threading.Thread(target=lambda: build_index(engine, gated))
    running.start()
    assert gated.inside.wait(timeout=30)
    job = index_job(indexer_for(engine, FakeEmbedder()), engine.settings.jobs.index)
    try:
        with pytest.raises(JobSkipped, match="another index run"):
            await job.work()
    finally:
        gated.gate.set()
        running.join(timeout=60)

    assert (await job.work()).startswith("embedded 0 images")


async def test_a_cancelled_index_job_stops_its_thread_after_the_batch(engine: Engine) -> None:
    gated = GatedEmbedder()
    job = index_job(indexer_for(engine, gated), engine.settings.jobs.index)
    task = asyncio.create_task(job.work())
    assert await asyncio.to_thread(gated.inside.wait, 30)

    task.cancel()
    gated.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The thread has ended (the lock is free) after the one batch it was in, and left the
    # index file for the next run to build.
    assert gated.images == BATCH
    assert not index_file(engine.settings).exists()
    report = indexer_for(engine, FakeEmbedder()).run(progress=False, wait=False)
    assert (report.embedded, report.indexed) == (TOKENS - BATCH, TOKENS)
