"""Randomised marketplace screenshots of a token: the queries real users paste into chat."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from core.demo.samples import screenshot

# Page colours of marketplaces and chat apps (light, dark and tinted themes).
PAGE_COLOURS = [
    (255, 255, 255),
    (246, 246, 246),
    (229, 232, 235),
    (32, 34, 37),
    (18, 18, 18),
    (54, 57, 63),
    (21, 27, 34),
    (240, 244, 250),
]
# What a marketplace puts behind transparent art: OpenSea's CryptoPunks blue, greys, tints.
TILE_COLOURS = [
    (99, 133, 150),
    (255, 255, 255),
    (240, 240, 240),
    (38, 38, 38),
    (229, 225, 210),
    (174, 139, 250),
    (255, 204, 204),
]


def make_screenshot(token: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The token on a tile and page colour (a quarter of tiles random), scaled 6–16× (as a
    24-pixel punk), margins 5–40%, up to 5% cropped from each edge, JPEG quality 60–91."""
    tile = TILE_COLOURS[rng.integers(len(TILE_COLOURS))]
    if rng.random() < 0.25:
        tile = tuple(int(c) for c in rng.integers(0, 256, 3))
    page = PAGE_COLOURS[rng.integers(len(PAGE_COLOURS))]
    scale = float(rng.uniform(6, 16)) * 24 / max(token.size)
    margin = tuple(float(m) for m in rng.uniform(0.0, 0.4, 4))
    crop = tuple(float(c) for c in rng.uniform(0.0, 0.05, 4))
    data = screenshot(
        token,
        tile,
        page,
        scale,
        margin,
        crop,  # type: ignore[arg-type]
        quality=int(rng.integers(60, 92)),
        smooth=bool(rng.random() < 0.5),
    )
    return Image.open(io.BytesIO(data)).convert("RGB")
