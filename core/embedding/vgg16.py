"""VGG16 (ImageNet) convolutional features, pooled into a retrieval vector, on Keras 3.

The default vector was chosen by measurement (bench/retrieval.py): GeM pooling of
block4_conv3 over a 4×4 grid of cells keeps *where* things are, which global pooling of
block5 throws away and which tells one punk from its near-twin; a fixed random projection
then brings the 8,192 numbers down to 1,024 with inner products kept (Johnson–Lindenstrauss),
so the index stays small. Global avg/max/GeM of any layer remain available for comparison.

Keras is imported only when the model is first used, so commands that never embed start fast,
and ``KERAS_BACKEND`` (tensorflow, jax or torch) is honoured as Keras reads it at import.
On TensorFlow the model runs on the GPU whenever TensorFlow sees one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.embedding.embedder import l2_normalise
from core.errors import ModelError

log = logging.getLogger(__name__)

Pooling = Literal["avg", "max", "gem"]
Precision = Literal["float32", "bfloat16"]

# GeM exponent: p=3 is the value Radenović et al. found best for VGG16 retrieval; p=1 is
# average pooling and p→∞ max pooling.
GEM_P = 3.0
# Caffe-style preprocessing that VGG16's ImageNet weights expect: BGR order, mean subtracted.
_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
# Schema of our preprocessing; bump when canonicalisation changes so old vectors go stale.
PREPROCESS_VERSION = "canon-v4"
# Seed of the projection matrix: part of the model, so it never changes silently.
PROJECTION_SEED = 20261125


class VGG16Embedder:
    """VGG16 without its classifier, cut at ``layer``; features pooled per grid cell."""

    def __init__(
        self,
        weights: str = "imagenet",
        input_size: int = 96,
        pooling: Pooling = "gem",
        precision: Precision = "float32",
        preprocess_tag: str = PREPROCESS_VERSION,
        layer: str = "block4_conv3",
        grid: int = 4,
        projection_dim: int = 1024,
        colour_grid: int = 8,
        colour_weight: float = 0.15,
    ) -> None:
        if input_size < 32:
            raise ModelError("VGG16 needs an input size of at least 32 pixels.")
        self._weights = weights
        self._input_size = input_size
        self._pooling = pooling
        self._precision = precision
        self._layer = layer
        self._grid = grid
        self._projection_dim = projection_dim
        self._colour_grid = colour_grid
        self._colour_weight = colour_weight
        self._key = self._make_key(preprocess_tag)
        self._model: Any = None
        self._lock = threading.Lock()
        self._call_lock = threading.Lock()

    @property
    def key(self) -> str:
        return self._key

    @property
    def dim(self) -> int:
        shape = self._projection_dim or pooled_dim(self._grid)
        return shape + (3 * self._colour_grid**2 if self._colour_weight else 0)

    @property
    def input_size(self) -> int:
        return self._input_size

    @property
    def device(self) -> str:
        """Where the model runs, for logs and benchmarks."""
        self._ensure_model()
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_logical_devices("GPU")
            return f"tensorflow:{gpus[0].name}" if gpus else "tensorflow:CPU"
        return backend

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        model = self._ensure_model()
        batch = preprocess(images)
        # predict_on_batch runs the compiled graph: ~40% faster than an eager call on this
        # CPU (bench/speed.py); it returns NumPy on every backend. One call at a time: the
        # model already uses every core, and Keras builds its predict function lazily.
        with self._call_lock:
            features = model.predict_on_batch(batch)
        return l2_normalise(np.asarray(features, dtype=np.float32))

    def warm_up(self) -> None:
        """Build the model and run it once, so the first real query is not slow."""
        blank = np.zeros((1, self._input_size, self._input_size, 3), dtype=np.uint8)
        self.embed_batch(blank)

    def _ensure_model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._build()
            return self._model

    def _build(self) -> Any:
        import keras

        if self._precision == "bfloat16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        weights = _resolve_weights(self._weights)
        if weights is None:
            # Random weights for tests: seeded so that runs agree with each other.
            keras.utils.set_random_seed(1234)
        size = self._input_size
        try:
            base = keras.applications.VGG16(
                include_top=False,
                weights=None if weights is None else weights,
                input_shape=(size, size, 3),
            )
        except (OSError, ValueError) as exc:
            raise ModelError(_weights_message(self._weights, exc)) from exc
        except Exception as exc:  # download failures surface as many exception types
            raise ModelError(_weights_message(self._weights, exc)) from exc
        try:
            features = base.get_layer(self._layer).output
        except ValueError as exc:
            raise ModelError(f"VGG16 has no layer called '{self._layer}'.") from exc
        if self._grid > min(features.shape[1], features.shape[2]):
            raise ModelError(
                f"A {self._grid}×{self._grid} grid does not fit {self._layer} "
                f"at input size {size}."
            )
        pooled = self._head(keras, features, base.input)
        model = keras.Model(base.input, pooled, name=f"vgg16_{self._layer}_{self._pooling}")
        log.info(
            "VGG16 ready: input %d, %s, %s pooling on a %d×%d grid, %d-d, %s",
            size,
            self._layer,
            self._pooling,
            self._grid,
            self._grid,
            self.dim,
            self._precision,
        )
        return model

    def parts(self) -> tuple[Any, Any]:
        """The model in two Keras models: the convolutional trunk (preprocessed images in,
        ``layer``'s feature map out) and the head (feature map and preprocessed images in,
        vector out), so another runtime can run the trunk in INT8 and the head in float32.
        ``head(trunk(x), x)`` is ``embed_batch``'s model before normalisation."""
        import keras

        model = self._ensure_model()
        trunk = keras.Model(model.input, model.get_layer(self._layer).output, name="trunk")
        shape = tuple(int(d) for d in trunk.output.shape[1:])
        features = keras.Input(shape=shape, name="features")
        image = keras.Input(shape=(self._input_size, self._input_size, 3), name="image")
        head = keras.Model([features, image], self._head(keras, features, image), name="head")
        return trunk, head

    def _head(self, keras: Any, features: Any, image: Any) -> Any:
        """Pooling per grid cell, the fixed projection and the colour layout."""
        pooled = _pool_grid(keras, features, self._pooling, self._grid)
        if self._projection_dim:
            projection = keras.layers.Dense(
                self._projection_dim, use_bias=False, trainable=False, name="projection"
            )
            pooled = projection(pooled)
            projection.set_weights(
                [projection_matrix(pooled_dim(self._grid), self._projection_dim)]
            )
        if self._colour_weight:
            if self._input_size % self._colour_grid:
                raise ModelError(
                    f"The colour grid ({self._colour_grid}) must divide the input size "
                    f"({self._input_size})."
                )
            pooled = _with_colour(keras, image, pooled, self._colour_grid, self._colour_weight)
        return pooled

    def _make_key(self, preprocess_tag: str) -> str:
        weights = self._weights
        path = Path(weights)
        if weights not in ("imagenet", "none") and path.is_file():
            # The same file under another path is the same model; a changed file is not.
            stat = path.stat()
            weights = f"file:{path.name}:{stat.st_size}"
        raw = "|".join(
            str(part)
            for part in (
                weights,
                self._input_size,
                self._layer,
                self._pooling,
                self._grid,
                self._projection_dim,
                PROJECTION_SEED,
                self._colour_grid,
                self._colour_weight,
                self._precision,
                preprocess_tag,
            )
        )
        digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
        return f"vgg16-{self._pooling}{self._grid}-{self._input_size}-{digest}"


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 RGB batch → the float32 BGR mean-centred batch VGG16 was trained on."""
    batch = np.asarray(images, dtype=np.float32)[..., ::-1]
    return batch - _BGR_MEAN


def pooled_dim(grid: int) -> int:
    return 512 * grid * grid


def projection_matrix(rows: int, cols: int) -> np.ndarray:
    """The fixed Gaussian projection: scaled so inner products are kept in expectation."""
    rng = np.random.default_rng(PROJECTION_SEED)
    return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)


def _with_colour(keras: Any, image: Any, features: Any, grid: int, weight: float) -> Any:
    """Append the image's colour layout (grid×grid cell means) to the features.

    VGG16 features barely register absolute colour, yet colour is much of what tells NFTs
    apart (a punk's skin tone, a bird's feathers); most screenshot misses left were near-twin
    punks of another skin tone. Each part is unit length before weighting; a small weight
    fixes those misses, a large one makes neighbours share colour rather than accessories
    (bench/retrieval.py).
    """
    ops = keras.ops
    cells = keras.layers.AveragePooling2D(pool_size=int(image.shape[1]) // grid)(image)
    colour = ops.reshape(cells, (-1, grid * grid * 3))
    return ops.concatenate([_unit(ops, features), weight * _unit(ops, colour)], axis=-1)


def _unit(ops: Any, x: Any) -> Any:
    return x / ops.maximum(ops.sqrt(ops.sum(x * x, axis=-1, keepdims=True)), 1e-12)


def _pool_grid(keras: Any, features: Any, pooling: Pooling, grid: int) -> Any:
    """Pool each cell of a grid×grid split of the feature map; cells concatenated row-major."""
    height, width = int(features.shape[1]), int(features.shape[2])
    cells = []
    for row in range(grid):
        for col in range(grid):
            cell = features[
                :,
                row * height // grid : (row + 1) * height // grid,
                col * width // grid : (col + 1) * width // grid,
                :,
            ]
            cells.append(_pool(keras, cell, pooling))
    return cells[0] if len(cells) == 1 else keras.ops.concatenate(cells, axis=-1)


def _pool(keras: Any, features: Any, pooling: Pooling) -> Any:
    ops = keras.ops
    if pooling == "avg":
        return ops.mean(features, axis=(1, 2))
    if pooling == "max":
        return ops.max(features, axis=(1, 2))
    clipped = ops.maximum(ops.cast(features, "float32"), 1e-6)
    return ops.power(ops.mean(ops.power(clipped, GEM_P), axis=(1, 2)), 1.0 / GEM_P)


def _resolve_weights(weights: str) -> str | None:
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(
            f"VGG16 weights file {weights!r} does not exist; set NFTLENS_VGG16_WEIGHTS to "
            "'imagenet', a local .weights.h5 file, or 'none'."
        )
    return str(path)


def _weights_message(weights: str, exc: Exception) -> str:
    if weights == "imagenet":
        return (
            "Could not load the ImageNet VGG16 weights (downloading them needs internet); "
            "set NFTLENS_VGG16_WEIGHTS to a local .weights.h5 file."
        )
    return f"Could not load VGG16 weights from {weights!r}: {type(exc).__name__}."
