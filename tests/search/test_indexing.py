"""build_index with a fake embedder: embeds what is new, resumes after a kill, skips bad files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.app import open_store
from core.config import Settings
from core.errors import IndexNotReady
from core.imaging.canonical import canonicalise
from core.imaging.decode import ImageLimits
from core.ingest.service import ingest
from core.search.index import VectorIndex
from core.search.indexing import IndexCache, build_index, index_path
from core.storage import Store
from tests.datasets import make_settings, moonbirds, punks
from tests.fakes import FakeEmbedder, Killed, KillingEmbedder

TOKENS = 20
BATCH = 4


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    assert settings.embedding.batch_size == BATCH
    return settings


@pytest.fixture
def store(tmp_path: Path, settings: Settings) -> Iterator[Store]:
    store = open_store(settings)
    add(store, settings, punks(tmp_path / "punks", count=TOKENS))
    yield store
    store.close()


def add(store: Store, settings: Settings, dataset: Path) -> None:
    report = ingest(dataset, store, settings.data_dir, ImageLimits())
    assert report.rejected == ()


def index_file(settings: Settings) -> Path:
    return index_path(settings.data_dir, FakeEmbedder.key)


def test_first_run_embeds_everything(store: Store, settings: Settings) -> None:
    embedder = FakeEmbedder()

    report = build_index(store, embedder, settings, progress=False)

    assert (report.embedded, report.failed, report.indexed, report.kind) == (20, 0, 20, "exact")
    assert embedder.images == TOKENS
    assert embedder.calls == TOKENS // BATCH
    index = VectorIndex.load(index_file(settings))
    assert len(index) == TOKENS and index.dim == FakeEmbedder.dim
    assert set(np.asarray(store.embeddings(FakeEmbedder.key)[0]).tolist()) == set(
        store.token_pks().tolist()
    )


def test_stored_vector_is_the_embedding_of_the_canonical_image(
    store: Store, settings: Settings
) -> None:
    build_index(store, FakeEmbedder(), settings, progress=False)
    token = store.token("cryptopunks", "5")

    stored = VectorIndex.load(index_file(settings)).vector(token.pk)

    canonical = canonicalise(
        Image.open(settings.data_dir / token.image_path), 32, settings.images.background_rgb
    )
    np.testing.assert_allclose(stored, FakeEmbedder().embed_batch(canonical[None])[0], atol=1e-6)  # type: ignore[arg-type]


def test_second_run_embeds_nothing(store: Store, settings: Settings) -> None:
    build_index(store, FakeEmbedder(), settings, progress=False)
    again = FakeEmbedder()

    report = build_index(store, again, settings, progress=False)

    assert (report.embedded, report.failed, report.indexed) == (0, 0, TOKENS)
    assert again.calls == 0
    assert len(VectorIndex.load(index_file(settings))) == TOKENS


def test_second_run_leaves_a_complete_index_file_alone(store: Store, settings: Settings) -> None:
    build_index(store, FakeEmbedder(), settings, progress=False)
    before = index_file(settings).stat().st_mtime_ns

    build_index(store, FakeEmbedder(), settings, progress=False)

    assert index_file(settings).stat().st_mtime_ns == before


def test_a_damaged_index_file_is_rebuilt_even_with_nothing_to_embed(
    store: Store, settings: Settings
) -> None:
    build_index(store, FakeEmbedder(), settings, progress=False)
    index_file(settings).write_bytes(b"not a faiss index")

    report = build_index(store, FakeEmbedder(), settings, progress=False)

    assert report.indexed == TOKENS
    assert len(VectorIndex.load(index_file(settings))) == TOKENS


def test_rerun_after_a_kill_redoes_at_most_one_batch(store: Store, settings: Settings) -> None:
    killer = KillingEmbedder(FakeEmbedder(), after_batches=2)

    with pytest.raises(Killed):
        build_index(store, killer, settings, progress=False)

    assert killer.inner.images == 2 * BATCH
    assert len(store.embeddings(FakeEmbedder.key)[0]) == 2 * BATCH
    assert not index_file(settings).exists()

    resumed = FakeEmbedder()
    report = build_index(store, resumed, settings, progress=False)

    assert resumed.images == TOKENS - 2 * BATCH
    assert (report.embedded, report.indexed) == (TOKENS - 2 * BATCH, TOKENS)
    assert len(VectorIndex.load(index_file(settings))) == TOKENS


def test_a_corrupt_stored_image_fails_alone(store: Store, settings: Settings) -> None:
    broken = store.token("cryptopunks", "6")
    (settings.data_dir / broken.image_path).write_bytes(b"not a png any more")

    report = build_index(store, FakeEmbedder(), settings, progress=False)

    assert (report.embedded, report.failed, report.indexed) == (TOKENS - 1, 1, TOKENS - 1)
    index = VectorIndex.load(index_file(settings))
    assert index.vector(broken.pk) is None
    assert [t.token_id for t in store.tokens_to_embed(FakeEmbedder.key)] == ["6"]


def test_a_missing_stored_image_fails_alone(store: Store, settings: Settings) -> None:
    gone = store.token("cryptopunks", "11")
    (settings.data_dir / gone.image_path).unlink()

    report = build_index(store, FakeEmbedder(), settings, progress=False)

    assert (report.embedded, report.failed, report.indexed) == (TOKENS - 1, 1, TOKENS - 1)


def test_changed_image_is_embedded_again_and_not_duplicated(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    build_index(store, FakeEmbedder(), settings, progress=False)
    dataset = tmp_path / "punks"
    (dataset / "images" / "3.png").write_bytes((dataset / "images" / "4.png").read_bytes())
    add(store, settings, dataset)
    token = store.token("cryptopunks", "3")
    redo = FakeEmbedder()

    report = build_index(store, redo, settings, progress=False)

    assert redo.images == 1
    assert (report.embedded, report.indexed) == (1, TOKENS)
    index = VectorIndex.load(index_file(settings))
    twin = store.token("cryptopunks", "4")
    np.testing.assert_allclose(index.vector(token.pk), index.vector(twin.pk), atol=1e-6)  # type: ignore[arg-type]


def test_one_collection_at_a_time(tmp_path: Path, store: Store, settings: Settings) -> None:
    add(store, settings, moonbirds(tmp_path / "birds", count=6))
    birds_only = FakeEmbedder()

    first = build_index(store, birds_only, settings, "moonbirds", progress=False)
    rest = build_index(store, FakeEmbedder(), settings, progress=False)

    assert (birds_only.images, first.indexed) == (6, 6)
    assert (rest.embedded, rest.indexed) == (TOKENS, TOKENS + 6)


def test_index_cache_follows_the_file(store: Store, settings: Settings) -> None:
    cache = IndexCache(index_file(settings), settings.index.hnsw_ef_search)
    with pytest.raises(IndexNotReady, match="python -m core index"):
        cache.get()

    build_index(store, FakeEmbedder(), settings, progress=False)
    first = cache.get()
    assert len(first) == TOKENS
    assert cache.get() is first  # loaded once while the file stays the same

    VectorIndex.build(
        np.arange(3, dtype=np.int64),
        np.eye(3, FakeEmbedder.dim, dtype=np.float32),
        settings.index,
    ).save(index_file(settings))

    assert len(cache.get()) == 3
