"""canonicalise: the art alone, on the configured background, squared and crisp.

The screenshot checks compare canonical views pixel by pixel (mean absolute difference over
the three channels, 0–255). Measured over 60 screenshots (punks 0–19, each on the three
tile/page pairs below, scaled 10×, JPEG quality 75), a screenshot's canonical view is 5–22
away from its own punk's; the leftover is JPEG ringing at the art's edges and LANCZOS versus
nearest-neighbour resampling. Different punks are 27–80 apart (mean 43), and without
canonicalising, a screenshot is 58–100 away from its own punk. Hence the bound of 25 below.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.canonical import art
from core.demo.samples import screenshot
from core.imaging import canonical as canonical_module
from core.imaging.canonical import canonicalise
from core.imaging.decode import ImageLimits, decode_image
from tests.datasets import MOONBIRDS, PUNKS

GREY = (128, 128, 128)
GREEN = (10, 200, 30)
SIZE = 64
SAME_TOKEN_BOUND = 25.0

SHOTS = [
    pytest.param(0, (99, 133, 150), (255, 255, 255), id="punk0-blue-tile-white-page"),
    pytest.param(3, (255, 130, 160), (20, 20, 24), id="punk3-pink-tile-dark-page"),
    pytest.param(9, (200, 220, 90), (60, 0, 120), id="punk9-lime-tile-purple-page"),
]


def punk(token_id: int) -> Image.Image:
    return Image.open(PUNKS / "images" / f"{token_id}.png")


def canonical(image: Image.Image, size: int = SIZE) -> np.ndarray:
    return canonicalise(image, size, GREY)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def screenshot_of(
    token_id: int, tile: tuple[int, int, int], page: tuple[int, int, int]
) -> Image.Image:
    data = screenshot(punk(token_id), tile=tile, page=page, scale=10)
    return decode_image(data, ImageLimits())


@pytest.mark.parametrize("size", [32, 224])
def test_output_is_a_square_uint8_rgb_array(size: int) -> None:
    out = canonicalise(punk(0), size, GREY)

    assert out.shape == (size, size, 3)
    assert out.dtype == np.uint8


@pytest.mark.parametrize(("token_id", "tile", "page"), SHOTS)
def test_screenshot_lands_on_its_own_token(
    token_id: int, tile: tuple[int, int, int], page: tuple[int, int, int]
) -> None:
    page_image = screenshot_of(token_id, tile, page)
    assert page_image.width > 10 * 24  # really a scaled-up page, not the token itself
    shot = canonical(page_image)

    own = distance(shot, canonical(punk(token_id)))
    others = {n: distance(shot, canonical(punk(n))) for n in range(20) if n != token_id}

    assert own < SAME_TOKEN_BOUND
    assert own < min(others.values())
    # Punk 2 (light skin, wild hair) looks nothing like 0, 3 or 9.
    assert others[2] > 1.75 * own


@pytest.mark.parametrize(("token_id", "tile", "page"), SHOTS)
def test_without_canonicalising_a_screenshot_is_far_from_its_token(
    token_id: int, tile: tuple[int, int, int], page: tuple[int, int, int]
) -> None:
    """Why the canonical view exists: the plain resized screenshot is dominated by the page."""

    def plain(image: Image.Image) -> np.ndarray:
        base = Image.new("RGBA", image.size, (*GREY, 255))
        base.alpha_composite(image.convert("RGBA"))
        return np.asarray(base.convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS))

    shot = screenshot_of(token_id, tile, page)

    assert distance(plain(shot), plain(punk(token_id))) > 2 * SAME_TOKEN_BOUND


def test_transparency_becomes_the_background() -> None:
    out = canonicalise(punk(0), SIZE, GREEN)

    for corner in (out[0, 0], out[0, -1], out[-1, 0], out[-1, -1]):
        assert tuple(corner) == GREEN


@pytest.mark.parametrize("token_id", range(4))
def test_flat_backdrop_is_replaced_by_the_background(token_id: int) -> None:
    bird = Image.open(MOONBIRDS / "images" / f"{token_id}.png").convert("RGB")
    backdrop = np.asarray(bird)[0, 0]
    assert (np.asarray(bird) == backdrop).all(axis=-1).mean() > 0.5  # mostly backdrop

    out = canonicalise(bird, SIZE, GREEN)

    assert tuple(out[0, 0]) == GREEN
    assert tuple(out[-1, -1]) == GREEN
    assert (out == backdrop).all(axis=-1).sum() == 0


def test_pixel_art_is_upscaled_without_blur() -> None:
    image = punk(0)
    on_grey = Image.new("RGBA", image.size, (*GREY, 255))
    on_grey.alpha_composite(image.convert("RGBA"))
    palette = {tuple(p) for p in np.asarray(on_grey.convert("RGB")).reshape(-1, 3)}

    out = canonicalise(image, 224, GREY)

    colours = {tuple(p) for p in out.reshape(-1, 3)}
    # Nearest-neighbour upscaling invents no colours; any blur would add hundreds.
    assert colours <= palette
    assert len(colours) > 3


def test_art_is_cropped_and_centred() -> None:
    art = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    art.paste((200, 0, 0, 255), (150, 10, 190, 50))  # a 40×40 square in a corner

    out = canonicalise(art, 64, GREY)

    red = (out == (200, 0, 0)).all(axis=-1)
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    # The square fills the view apart from a small margin, and sits in the middle (within
    # one output pixel: an odd number of margin pixels cannot be split evenly).
    assert 50 <= len(rows) <= 64 and 50 <= len(cols) <= 64
    assert abs((rows[0] + rows[-1]) / 2 - 31.5) <= 1
    assert abs((cols[0] + cols[-1]) / 2 - 31.5) <= 1


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(Image.new("RGB", (50, 50), (10, 200, 30)), id="flat-colour"),
        pytest.param(Image.new("RGB", (1, 1), (10, 200, 30)), id="1x1"),
        pytest.param(Image.new("RGBA", (1, 1), (0, 0, 0, 0)), id="1x1-transparent"),
        pytest.param(Image.new("RGBA", (30, 30), (0, 0, 0, 0)), id="fully-transparent"),
        pytest.param(Image.new("RGB", (500, 2), (5, 5, 5)), id="thin-strip"),
        pytest.param(Image.new("L", (20, 20), 7), id="greyscale"),
    ],
)
def test_degenerate_images_do_not_crash(image: Image.Image) -> None:
    out = canonicalise(image, 32, GREY)

    assert out.shape == (32, 32, 3)
    assert out.dtype == np.uint8


def test_one_pixel_keeps_its_colour() -> None:
    out = canonicalise(Image.new("RGB", (1, 1), (10, 200, 30)), 32, GREY)

    assert tuple(out[16, 16]) == (10, 200, 30)


def test_nothing_visible_gives_a_plain_background() -> None:
    out = canonicalise(Image.new("RGBA", (30, 30), (255, 0, 0, 0)), 32, GREY)

    assert (out == GREY).all()


LARGE = [(bird, side, clear) for bird in (0, 7, 21) for side in (512, 1000) for clear in (0, 1)]


def test_large_art_worked_on_reduced_stays_within_a_same_token_distance_of_full_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large images are reduced before the mask work (for speed). On a fixed set, each
    reduced view is within SAME_TOKEN_BOUND of the full-size view (measured 2–18: crops
    shifted by a pixel or two) and nearer the full-size views of its own token than of any
    other token."""
    images = [art(side, bool(clear), bird) for bird, side, clear in LARGE]
    images += [
        screenshot_of(n, (99, 133, 150), (255, 255, 255)).resize((1290, 1290)) for n in (0, 3)
    ]
    reduced = [canonical(image, 96) for image in images]
    monkeypatch.setattr(canonical_module, "REDUCE_ABOVE", 10**6)
    full = [canonical(image, 96) for image in images]

    tokens = [f"bird{bird}" for bird, _, _ in LARGE] + ["punk0", "punk3"]
    for i, view in enumerate(reduced):
        distances = [distance(view, other) for other in full]
        assert distances[i] < SAME_TOKEN_BOUND, tokens[i]
        assert tokens[int(np.argmin(distances))] == tokens[i]
