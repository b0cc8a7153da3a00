"""The embedding pipeline: order kept, bad items isolated, early close stops the decoder."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.embedding.pipeline import embed_stream
from core.errors import BrokenImage, LensError
from tests.fakes import FakeEmbedder


def image_for(item: int) -> np.ndarray:
    rng = np.random.default_rng(item)
    return rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)


def images_for(items: list[int]) -> list[np.ndarray | LensError]:
    return [image_for(item) for item in items]


def test_batches_come_back_in_order_with_the_same_vectors_as_direct_calls() -> None:
    embedder = FakeEmbedder()
    items = list(range(23))

    batches = list(embed_stream(embedder, items, images_for, batch_size=5))

    assert [b.items for b in batches] == [items[i : i + 5] for i in range(0, 23, 5)]
    vectors = np.concatenate([b.vectors for b in batches])
    expected = FakeEmbedder().embed_batch(np.stack([image_for(i) for i in items]))
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_an_item_that_fails_to_load_is_reported_and_the_rest_embedded() -> None:
    def load(items: list[int]) -> list[np.ndarray | LensError]:
        return [
            BrokenImage("The image file is damaged or truncated.")
            if item in (3, 7)
            else image_for(item)
            for item in items
        ]

    batches = list(embed_stream(FakeEmbedder(), list(range(10)), load, batch_size=4))

    done = [item for b in batches for item in b.items]
    failed = [item for b in batches for item, _ in b.failed]
    assert done == [0, 1, 2, 4, 5, 6, 8, 9]
    assert failed == [3, 7]
    assert all(len(b.vectors) == len(b.items) for b in batches)


def test_a_batch_where_everything_failed_yields_no_vectors() -> None:
    def load(items: list[int]) -> list[np.ndarray | LensError]:
        return [BrokenImage("The image file is damaged or truncated.") for _ in items]

    batches = list(embed_stream(FakeEmbedder(), [1, 2], load, batch_size=2))

    assert batches[0].vectors.shape == (0, FakeEmbedder().dim)


def test_an_unexpected_error_in_the_decoder_reaches_the_caller() -> None:
    def load(items: list[int]) -> list[np.ndarray | LensError]:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        list(embed_stream(FakeEmbedder(), [1, 2, 3], load, batch_size=2))


def test_closing_the_stream_early_stops_the_decoding_thread() -> None:
    loaded: list[int] = []

    def load(items: list[int]) -> list[np.ndarray | LensError]:
        loaded.extend(items)
        return images_for(items)

    stream = embed_stream(FakeEmbedder(), list(range(1000)), load, batch_size=4)
    next(stream)
    stream.close()

    assert not any(t.name == "embed-prefetch" and t.is_alive() for t in threading.enumerate())
    # The producer runs at most a few batches ahead, never through all 1,000 items.
    assert len(loaded) < 40
