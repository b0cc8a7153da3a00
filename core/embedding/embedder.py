"""The embedder interface: canonical uint8 images in, L2-normalised float32 vectors out."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Maps a batch of ``input_size``×``input_size`` RGB images to unit vectors."""

    @property
    def key(self) -> str:
        """Identifies model, weights and preprocessing; vectors with other keys are stale."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def input_size(self) -> int: ...

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        """``images`` is (n, size, size, 3) uint8; returns (n, dim) float32 with unit rows."""
        ...

    def warm_up(self) -> None:
        """Get ready to embed (build the model, load weights) so first use is not slow."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (rows of zeros stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
