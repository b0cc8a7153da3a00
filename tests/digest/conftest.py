"""A constructed collection with three visual groups, known traits and known sales."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.app import Engine
from core.imaging.workers import DecoderPool
from core.models import Attribute, Collection, Sale
from core.storage import TokenWrite
from tests.datasets import make_settings
from tests.engines import engine_for
from tests.fakes import FakeEmbedder

SLUG = "critters"
END = datetime(2026, 1, 15, tzinfo=UTC)
GROUP_SIZE = 12
COLOURS = [(210, 40, 40), (40, 70, 220), (40, 170, 60)]
HATS = ["Hoodie", "Cap", "None"]


@dataclass(frozen=True)
class Built:
    engine: Engine
    # group of each token id
    groups: dict[str, int]


def png(colour: tuple[int, int, int], seed: int) -> bytes:
    image = Image.new("RGB", (24, 24), colour)
    image.putpixel((seed % 24, seed // 24 % 24), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def group_vectors(group: int, count: int, rng: np.random.Generator) -> np.ndarray:
    base = np.zeros(FakeEmbedder.dim, np.float32)
    base[group * 10 : group * 10 + 10] = 1.0
    vectors = base + rng.normal(0, 0.05, (count, FakeEmbedder.dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def add_tokens(
    engine: Engine,
    group: int,
    ids: list[str],
    rng: np.random.Generator,
    *,
    traits: bool = True,
) -> None:
    storage = engine.storage
    pk = storage.catalog.collection_pk(SLUG)
    writes = []
    for n, token_id in enumerate(ids):
        image = engine.images.put(png(COLOURS[group], int(token_id) + n), ".png")
        attributes = (
            (Attribute("Hat", HATS[group]), Attribute("Type", ["Cat", "Dog"][int(token_id) % 2]))
            if traits
            else ()
        )
        writes.append(TokenWrite(token_id, None, image, attributes))
    storage.catalog.upsert_tokens(pk, writes)
    tokens = [storage.catalog.token(SLUG, token_id) for token_id in ids]
    storage.vectors.save(FakeEmbedder.key, tokens, group_vectors(group, len(ids), rng))


def sale(token_id: str, price: float, days_before_end: float, n: int) -> Sale:
    return Sale(SLUG, token_id, END - timedelta(days=days_before_end), price, "ETH", f"0x{n:04x}")


@pytest.fixture
def built(tmp_path: Path, decoder: DecoderPool) -> Iterator[Built]:
    yield from build(tmp_path, decoder)


def build(
    tmp_path: Path,
    decoder: DecoderPool,
    *,
    traits: bool = True,
    clock: Callable[[], datetime] | None = None,
    posts: Sequence[dict[str, str]] = (),
) -> Iterator[Built]:
    digest = {"k": 0, "k_min": 2, "k_max": 6, "min_sales": 3, "montage_tokens": 4}
    settings = make_settings(tmp_path, digest={**digest, "posts": list(posts)})
    with engine_for(settings, decoder, clock=clock or (lambda: END)) as engine:
        engine.storage.catalog.upsert_collection(Collection(SLUG, "Critters"))
        rng = np.random.default_rng(0)
        groups: dict[str, int] = {}
        for group in range(3):
            ids = [str(group * GROUP_SIZE + i) for i in range(GROUP_SIZE)]
            add_tokens(engine, group, ids, rng, traits=traits)
            groups.update(dict.fromkeys(ids, group))
        sales = [
            # Group 0: four sales at 1.0 the week before, four at 1.5 this week (+50%).
            *(sale(str(i), 1.0, 10, i) for i in range(4)),
            *(sale(str(i + 4), 1.5, 3, 10 + i) for i in range(4)),
            # Group 1: three at 2.0, then three at 1.8 (-10%).
            *(sale(str(12 + i), 2.0, 9, 20 + i) for i in range(3)),
            *(sale(str(15 + i), 1.8, 2, 30 + i) for i in range(3)),
            # Group 2: one sale this week only (not a mover: too few).
            sale("24", 5.0, 1, 40),
        ]
        pk = engine.storage.catalog.collection_pk(SLUG)
        engine.storage.sales.add(pk, sales)
        yield Built(engine, groups)
