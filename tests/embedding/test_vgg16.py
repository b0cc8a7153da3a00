"""VGG16 embedder: the real ImageNet weights find screenshots; configuration is checked."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.demo.samples import screenshot
from core.embedding.vgg16 import VGG16Embedder
from core.errors import ModelError
from core.imaging.canonical import canonicalise

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"
GREY = (128, 128, 128)
# (tile, page) pairs a marketplace and a chat app might show a token on.
FRAMES = [
    ((99, 133, 150), (255, 255, 255)),
    ((240, 240, 240), (32, 34, 37)),
    ((174, 139, 250), (246, 246, 246)),
    ((255, 204, 204), (18, 18, 18)),
]


@pytest.fixture(scope="module")
def real() -> VGG16Embedder:
    if not WEIGHTS.is_file():
        pytest.skip("the real VGG16 weights are not in ../shared/models")
    embedder = VGG16Embedder(str(WEIGHTS), input_size=128)
    embedder.warm_up()
    return embedder


def token_images(slug: str, ids: range) -> list[Image.Image]:
    folder = SHARED / "data" / slug / "images"
    return [Image.open(folder / f"{i}.png").convert("RGBA") for i in ids]


def shots_of(images: list[Image.Image]) -> list[Image.Image]:
    shots = []
    for n, image in enumerate(images):
        tile, page = FRAMES[n % len(FRAMES)]
        data = screenshot(
            image,
            tile,
            page,
            scale=240 / max(image.size),
            smooth=n % 2 == 0,
            margin=(0.15, 0.3, 0.1, 0.2),
            crop=(0.02, 0.0, 0.03, 0.01),
            quality=70,
        )
        shots.append(Image.open(io.BytesIO(data)))
    return shots


def embed(embedder: VGG16Embedder, images: list[Image.Image]) -> np.ndarray:
    return embedder.embed_batch(
        np.stack([canonicalise(im, embedder.input_size, GREY) for im in images])
    )


@pytest.mark.real_weights
@pytest.mark.parametrize("slug", ["cryptopunks", "moonbirds"])
def test_real_weights_find_each_token_from_its_screenshot(real: VGG16Embedder, slug: str) -> None:
    images = token_images(slug, range(100, 124))
    index = embed(real, images)
    queries = embed(real, shots_of(images))

    best = (queries @ index.T).argmax(axis=1)

    assert (best == np.arange(len(images))).mean() >= 0.95


@pytest.mark.real_weights
def test_real_vectors_are_unit_length_and_repeatable(real: VGG16Embedder) -> None:
    images = token_images("cryptopunks", range(3))
    first, second = embed(real, images), embed(real, images)

    assert first.shape == (3, 1024 + 8 * 8 * 3) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, second, atol=1e-5)


def test_the_model_key_changes_with_anything_that_changes_the_vectors() -> None:
    base = VGG16Embedder("none", 64)
    variants = [
        VGG16Embedder("none", 96),
        VGG16Embedder("none", 64, "avg"),
        VGG16Embedder("none", 64, layer="block5_conv3"),
        VGG16Embedder("none", 64, grid=2),
        VGG16Embedder("none", 64, projection_dim=0),
        VGG16Embedder("imagenet", 64),
        VGG16Embedder("none", 64, colour_weight=0.25),
        VGG16Embedder("none", 64, colour_grid=4),
    ]
    assert len({base.key, *(v.key for v in variants)}) == len(variants) + 1
    assert VGG16Embedder("none", 64).key == base.key
    assert VGG16Embedder("none", 64, projection_dim=0, grid=2, colour_weight=0).dim == 2048
    assert VGG16Embedder("none", 64, colour_grid=8).dim == 1024 + 8 * 8 * 3


def test_a_missing_weights_file_is_a_clear_model_error(tmp_path: Path) -> None:
    embedder = VGG16Embedder(str(tmp_path / "nope.weights.h5"), 64)

    with pytest.raises(ModelError, match="does not exist"):
        embedder.warm_up()


def test_a_grid_finer_than_the_feature_map_is_refused() -> None:
    embedder = VGG16Embedder("none", 32, layer="block5_pool", grid=4)

    with pytest.raises(ModelError, match="grid does not fit"):
        embedder.warm_up()


def test_the_colour_layout_tells_apart_images_the_same_but_for_colour() -> None:
    embedder = VGG16Embedder("none", 64, colour_grid=4, colour_weight=1.0)
    red = np.zeros((64, 64, 3), np.uint8)
    red[16:48, 16:48] = (200, 40, 40)
    blue = red[..., ::-1].copy()

    with_colour = embedder.embed_batch(np.stack([red, blue]))
    without = VGG16Embedder("none", 64, colour_weight=0).embed_batch(np.stack([red, blue]))

    assert with_colour[0] @ with_colour[1] < without[0] @ without[1] - 0.05
