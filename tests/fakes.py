"""Hand-written fakes for the engine's external boundaries, shared by the test suite."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np

from core.embedding.embedder import l2_normalise
from core.errors import FetchError
from core.posting import Post


class FakeImageFetcher:
    """An ``ImageFetcher`` serving canned bytes per URL; unknown URLs fail like a 404."""

    def __init__(self, images: Mapping[str, bytes] | None = None) -> None:
        self.images: dict[str, bytes] = dict(images or {})
        self.requested: list[str] = []

    async def fetch(self, url: str) -> bytes:
        """Return the canned bytes for ``url`` and remember that it was asked for."""
        self.requested.append(url)
        try:
            return self.images[url]
        except KeyError:
            raise FetchError("The server answered HTTP 404.") from None


class FakeEmbedder:
    """An ``Embedder`` that is deterministic and instant: 8×8 block means of a 32×32 image.

    Each vector is the 192 block means (8×8×3) minus their mean, scaled to unit length, so
    the same picture always gets the same vector and different pictures get different ones.
    ``calls`` and ``images`` count the batches and images embedded, so tests can assert how
    much work a run did or redid.
    """

    key = "fake-8x8-v1"
    dim = 192
    input_size = 32

    def __init__(self) -> None:
        self.calls = 0
        self.images = 0
        self.warmed = False

    def warm_up(self) -> None:
        self.warmed = True

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        """``images`` is (n, 32, 32, 3) uint8; returns (n, 192) float32 unit rows."""
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
            raise ValueError(f"expected (n, 32, 32, 3) uint8, got {images.shape} {images.dtype}")
        self.calls += 1
        self.images += len(images)
        blocks = images.astype(np.float32).reshape(len(images), 8, 4, 8, 4, 3).mean(axis=(2, 4))
        flat = blocks.reshape(len(images), self.dim)
        return l2_normalise(flat - flat.mean(axis=1, keepdims=True))


class Killed(Exception):
    """Stands in for the process being killed in the middle of a job."""


class WrappingEmbedder:
    """Base for test embedders that wrap a ``FakeEmbedder`` and add one behaviour."""

    def __init__(self, inner: FakeEmbedder) -> None:
        self.inner = inner

    @property
    def key(self) -> str:
        return self.inner.key

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def input_size(self) -> int:
        return self.inner.input_size

    def warm_up(self) -> None:
        self.inner.warm_up()

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        return self.inner.embed_batch(images)


class KillingEmbedder(WrappingEmbedder):
    """Wraps an embedder and raises ``Killed`` once ``after_batches`` batches have succeeded."""

    def __init__(self, inner: FakeEmbedder, after_batches: int) -> None:
        super().__init__(inner)
        self.after_batches = after_batches
        self.batches = 0

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        """Embed like the wrapped embedder until the budget of batches is spent, then die."""
        if self.batches >= self.after_batches:
            raise Killed(f"killed after {self.batches} batches")
        self.batches += 1
        return self.inner.embed_batch(images)


class RecordingPoster:
    """A ``Poster`` that keeps what it was asked to send, per chat."""

    def __init__(self, platform: str = "console") -> None:
        self.platform = platform
        self.sent: list[tuple[str, Post]] = []

    async def post(self, chat: str, post: Post) -> None:
        self.sent.append((chat, post))


class FakeClock:
    """A wall clock (aware UTC datetimes) that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
