"""SimilarService through the composition root, with a fake embedder and a fake fetcher."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from core.app import Engine, build_engine
from core.config import Settings
from core.demo.samples import screenshot
from core.errors import (
    FetchError,
    IndexNotReady,
    NotAnImage,
    QueryError,
    UnknownCollection,
    UnknownToken,
)
from core.imaging.workers import DecoderPool, ImageDecoder
from core.models import SimilarResult
from core.storage import Storage
from tests.datasets import make_settings, moonbirds, punks, sale_rows
from tests.fakes import FakeEmbedder, FakeImageFetcher

URL = "https://images.example/punk-5.png"
IPFS = "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/5.png"
SEARCH = {"default_k": 5, "max_k": 10}


def open_storage(settings: Settings) -> Storage:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Storage.open(settings.db_url)


def engine_over(
    settings: Settings,
    storage: Storage,
    decoder: ImageDecoder,
    fetcher: FakeImageFetcher | None = None,
    embedder: FakeEmbedder | None = None,
) -> Engine:
    return build_engine(settings, storage, decoder, fetcher, embedder=embedder or FakeEmbedder())


class World:
    """A data directory with 20 punks and 10 moonbirds ingested and indexed."""

    def __init__(self, root: Path, decoder: ImageDecoder) -> None:
        self.settings = make_settings(root, search=SEARCH)
        self.punks = punks(root / "punks", count=20)
        self.birds = moonbirds(root / "birds", count=10)
        self.storage = open_storage(self.settings)
        engine = engine_over(self.settings, self.storage, decoder)
        for dataset in (self.punks, self.birds):
            engine.ingester.ingest(dataset, progress=False)
        engine.indexer.run(progress=False)

    def punk_file(self, token_id: str) -> Path:
        return self.punks / "images" / f"{token_id}.png"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, decoder: DecoderPool) -> Iterator[World]:
    world = World(tmp_path_factory.mktemp("similar"), decoder)
    yield world
    world.storage.close()


@pytest.fixture
def fetcher(world: World) -> FakeImageFetcher:
    image = world.punk_file("5").read_bytes()
    return FakeImageFetcher({URL: image, IPFS: image})


@pytest.fixture
def engine(world: World, fetcher: FakeImageFetcher, decoder: DecoderPool) -> Engine:
    # Built per test: the engine's semaphore belongs to the test's event loop.
    return engine_over(world.settings, world.storage, decoder, fetcher)


async def similar(engine: Engine, query: str, **options: object) -> SimilarResult:
    """``similar`` as the CLI asks it: local files allowed."""
    return await engine.similar.similar(query, allow_files=True, **options)  # type: ignore[arg-type]


def ids(result: SimilarResult) -> list[tuple[str, str]]:
    return [(m.collection, m.token_id) for m in result.matches]


def assert_well_formed(result: SimilarResult) -> None:
    scores = [m.score for m in result.matches]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len(set(ids(result))) == len(result.matches)
    for match in result.matches:
        assert match.image is not None and len(match.image.sha256) == 64


async def test_own_image_comes_first(world: World, engine: Engine) -> None:
    query = str(world.punk_file("5"))

    result = await similar(engine, query)

    assert result.query == query
    assert len(result.matches) == SEARCH["default_k"]
    assert ids(result)[0] == ("cryptopunks", "5")
    assert result.matches[0].score == pytest.approx(1.0, abs=1e-5)
    assert result.matches[1].score < 0.99
    assert_well_formed(result)


async def test_matches_carry_the_latest_sale(world: World, engine: Engine) -> None:
    rows = sale_rows(world.punks, "0")
    latest = max(rows, key=lambda row: row["timestamp"])

    result = await similar(engine, str(world.punk_file("0")))

    sale = result.matches[0].last_sale
    assert ids(result)[0] == ("cryptopunks", "0")
    assert sale is not None
    assert sale.price == float(latest["price"])
    assert sale.tx == latest["tx"].lower()
    assert sale.timestamp == datetime.fromisoformat(latest["timestamp"])
    assert [m.last_sale for m in result.matches if m.token_id == "5"] in ([], [None])


@pytest.mark.parametrize("reference", ["cryptopunks:5", "cryptopunks 5"])
async def test_token_reference_excludes_the_token(
    world: World, engine: Engine, reference: str
) -> None:
    by_file = await similar(engine, str(world.punk_file("5")), k=6)

    result = await similar(engine, reference, k=5)

    assert ("cryptopunks", "5") not in ids(result)
    assert len(result.matches) == 5
    assert ids(result) == ids(by_file)[1:]
    assert_well_formed(result)


async def test_url_goes_through_the_fetcher(engine: Engine, fetcher: FakeImageFetcher) -> None:
    result = await similar(engine, URL)
    from_ipfs = await similar(engine, IPFS, k=1)

    assert fetcher.requested == [URL, IPFS]
    assert result.query == URL
    assert ids(result)[0] == ("cryptopunks", "5")
    assert ids(from_ipfs) == [("cryptopunks", "5")]


async def test_fetch_failure_is_a_fetch_error(engine: Engine) -> None:
    with pytest.raises(FetchError, match="404"):
        await similar(engine, "https://images.example/missing.png")


async def test_uploaded_screenshot_finds_its_token(world: World, engine: Engine) -> None:
    shot = screenshot(
        Image.open(world.punk_file("5")), tile=(99, 133, 150), page=(255, 255, 255), scale=10
    )

    result = await engine.similar.similar_image(shot, "upload.jpg")

    assert result.query == "upload.jpg"
    assert ids(result)[0] == ("cryptopunks", "5")
    assert result.matches[0].score > 0.9


async def test_collection_filter(world: World, engine: Engine) -> None:
    from_file = await similar(engine, str(world.punk_file("5")), collection="moonbirds")
    from_ref = await similar(engine, "cryptopunks:5", k=10, collection="moonbirds")

    assert {c for c, _ in ids(from_file)} == {"moonbirds"}
    assert len(from_file.matches) == 5
    assert sorted(t for _, t in ids(from_ref)) == sorted(str(n) for n in range(10))
    assert_well_formed(from_ref)


@pytest.mark.parametrize(("k", "expected"), [(1, 1), (3, 3), (None, 5), (25, 10)])
async def test_k_is_respected_and_capped(
    world: World, engine: Engine, k: int | None, expected: int
) -> None:
    result = await similar(engine, str(world.punk_file("2")), k=k)

    assert len(result.matches) == expected


async def test_concurrent_queries_agree_with_sequential_ones(world: World, engine: Engine) -> None:
    queries = [str(world.punk_file(str(n))) for n in (1, 2, 3)] + ["moonbirds:4", URL]
    sequential = [ids(await similar(engine, q)) for q in queries]

    together = await asyncio.gather(*(similar(engine, q) for q in queries))

    assert [ids(r) for r in together] == sequential


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ("cryptopunks:99999", UnknownToken, "Token 99999 is not in collection 'cryptopunks'"),
        ("nope:1", UnknownCollection, "'nope'"),
        ("what does this look like?", QueryError, "is not an image file"),
        ("   ", QueryError, "Give a picture"),
        ("ftp://images.example/5.png", QueryError, "is not an image file"),
    ],
)
async def test_bad_queries(
    engine: Engine, query: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        await similar(engine, query)
    assert type(caught.value) is error


async def test_unknown_collection_filter(world: World, engine: Engine) -> None:
    with pytest.raises(UnknownCollection, match="'nope'"):
        await similar(engine, str(world.punk_file("5")), collection="nope")


async def test_non_image_file(tmp_path: Path, engine: Engine) -> None:
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture", encoding="utf-8")

    with pytest.raises(NotAnImage):
        await similar(engine, str(notes))


async def test_no_index_yet(tmp_path: Path, world: World, decoder: DecoderPool) -> None:
    settings = make_settings(tmp_path)
    storage = open_storage(settings)
    try:
        engine = engine_over(settings, storage, decoder, FakeImageFetcher())
        engine.ingester.ingest(world.punks, progress=False)

        for query in (str(world.punk_file("5")), "cryptopunks:5"):
            with pytest.raises(IndexNotReady, match="python -m core index"):
                await similar(engine, query)
    finally:
        storage.close()


@pytest.fixture
def partly_indexed(
    tmp_path: Path, world: World, decoder: DecoderPool
) -> Iterator[tuple[Settings, Storage]]:
    """Punks indexed; moonbirds ingested afterwards and not yet indexed."""
    settings = make_settings(tmp_path, search=SEARCH)
    storage = open_storage(settings)
    engine = engine_over(settings, storage, decoder)
    engine.ingester.ingest(world.punks, progress=False)
    engine.indexer.run(progress=False)
    engine.ingester.ingest(world.birds, progress=False)
    yield settings, storage
    storage.close()


async def test_token_without_a_vector_is_embedded_on_the_fly(
    world: World, partly_indexed: tuple[Settings, Storage], decoder: DecoderPool
) -> None:
    settings, storage = partly_indexed
    embedder = FakeEmbedder()
    engine = build_engine(settings, storage, decoder, None, embedder=embedder)

    result = await similar(engine, "moonbirds:3", k=3)

    assert embedder.images == 1
    assert {c for c, _ in ids(result)} == {"cryptopunks"}  # only punks are indexed so far
    with pytest.raises(FetchError):  # no fetcher wired: URLs are refused politely
        await similar(engine, URL)

    engine_over(settings, storage, decoder).indexer.run(progress=False)
    refreshed = await similar(engine, str(world.birds / "images" / "3.png"), k=1)

    assert ids(refreshed) == [("moonbirds", "3")]  # the rebuilt index file was picked up
