"""Canonical view of an NFT for embedding: the art itself, on a fixed background, squared.

Why: people query with screenshots (the token on a marketplace's coloured page, scaled up,
cropped a little, saved as JPEG). Plain VGG16 features are dominated by the background colour
and the framing, so a screenshot lands far from its own token. Both the indexed image and
the query therefore go through the same steps:

1. find the background: transparency if the image has any, otherwise a uniform border colour,
   peeled repeatedly (the page colour first, then the token's own flat backdrop);
2. replace the background with one fixed colour and crop to the art's bounding box;
3. pad to a square with a small margin and resize to the model's input size, with
   nearest-neighbour upscaling so that pixel art stays crisp instead of blurring.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

# Bounds on the per-channel difference for a pixel to count as "the backdrop colour". The
# tolerance itself follows the noise measured on the border: a lossless original needs almost
# none, a JPEG more; a loose bound would let dark pages swallow black outlines.
MIN_TOLERANCE = 8
MAX_TOLERANCE = 20
# Share of border pixels that must match the border's median colour for it to be a backdrop.
UNIFORM_BORDER_SHARE = 0.45
# A peel that would leave less than this share of the image is not a backdrop but the art.
MIN_ART_SHARE = 0.02
MAX_PEELS = 3
# Connected bits of "art" smaller than this share of the image are compression specks.
SPECK_SHARE = 0.001
# A component filling less than this share of its own bounding box is a frame, not art.
FRAME_FILL = 0.08
MARGIN = 0.06


def canonicalise(
    image: Image.Image, size: int, background: tuple[int, int, int]
) -> np.ndarray:
    """Return a ``size``×``size``×3 uint8 array: the art cropped, on ``background``, squared."""
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    if float(alpha.min()) < 0.98:
        art = alpha > 0.06
    else:
        art = _clean(~_backdrop_mask(_denoise(image)))
        alpha = art.astype(np.float32)
    bg = np.asarray(background, dtype=np.float32)
    composed = rgb * alpha[..., None] + bg * (1.0 - alpha[..., None])
    box = _bounding_box(art)
    if box is not None:
        top, bottom, left, right = box
        composed = composed[top:bottom, left:right]
    square = _pad_square(composed.clip(0, 255).astype(np.uint8), bg)
    return _resize(square, size)


def _backdrop_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels that belong to flat backdrops reachable from the image border."""
    height, width = rgb.shape[:2]
    backdrop = np.zeros((height, width), dtype=bool)
    # Scaled-up screenshots blend neighbouring backdrops into a band a few pixels wide; the
    # ring that samples a backdrop's colour starts inside that band.
    inset = min(8, min(height, width) // 32)
    window = (0, height, 0, width)
    for peel in range(MAX_PEELS):
        top, bottom, left, right = window
        if peel:
            top, bottom, left, right = top + inset, bottom - inset, left + inset, right - inset
            if bottom - top < 3 or right - left < 3:
                break
        region = rgb[top:bottom, left:right].astype(np.int16)
        known = backdrop[top:bottom, left:right]
        ring = _ring(region.shape[0], region.shape[1]) & ~known
        if not ring.any():
            break
        colour, tolerance = _dominant_colour(region[ring])
        near = np.abs(region - colour).max(axis=-1) <= tolerance
        if near[ring].mean() < UNIFORM_BORDER_SHARE:
            break
        # An inner backdrop (a marketplace tile, the token's own flat background) fills the
        # corners of its window; once the backdrops are gone the window hugs the art, whose
        # corners are already peeled, and its outline must not be taken for a backdrop.
        if peel and _corners(near & ~known) < 3:
            break
        passable = near | known
        labels, _ = ndimage.label(passable)
        edge_labels = np.unique(labels[_ring(*labels.shape) & passable])
        peeled = np.isin(labels, edge_labels[edge_labels > 0])
        if (~peeled).sum() < MIN_ART_SHARE * height * width:
            break
        inner = backdrop.copy()
        outer = rgb[window[0] : window[1], window[2] : window[3]].astype(np.int16)
        inner[window[0] : window[1], window[2] : window[3]] |= (
            np.abs(outer - colour).max(axis=-1) <= MAX_TOLERANCE
        )
        inner[top:bottom, left:right] = peeled
        backdrop = inner
        box = _bounding_box(_clean(~backdrop))
        if box is None or box == window:
            break
        window = box
    return backdrop


def _denoise(image: Image.Image) -> np.ndarray:
    """RGB pixels with JPEG ringing smoothed away, for finding backdrops only.

    A median filter keeps edges sharp but flattens the ringing that compression leaves next
    to them; it is sized to the image so that pixel art scaled 6× or more keeps every pixel.
    """
    rgb = image.convert("RGB")
    side = min(rgb.size)
    if side >= 192:
        rgb = rgb.filter(ImageFilter.MedianFilter(5))
    elif side >= 96:
        rgb = rgb.filter(ImageFilter.MedianFilter(3))
    return np.asarray(rgb, dtype=np.uint8)


def _dominant_colour(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """The most common colour among ``pixels`` and how far JPEG noise spreads it."""
    bins = (pixels // 16).astype(np.int32)
    codes = bins[:, 0] * 256 + bins[:, 1] * 16 + bins[:, 2]
    mode = np.bincount(codes).argmax()
    members = pixels[codes == mode]
    colour = np.median(members, axis=0)
    loose = pixels[np.abs(pixels - colour).max(axis=-1) <= MAX_TOLERANCE]
    spread = float(np.percentile(np.abs(loose - colour).max(axis=-1), 90))
    return colour, float(np.clip(2 * spread + 4, MIN_TOLERANCE, MAX_TOLERANCE))


def _clean(art: np.ndarray) -> np.ndarray:
    """Drop JPEG specks and colour fringes that are not art, scaled to the image's size.

    A 24-pixel original has no specks and loses nothing here; a screenshot of it scaled 10×
    has ringing around edges a few pixels wide, which an opening removes, and isolated
    blotches in flat areas, which the component filter removes.
    """
    height, width = art.shape
    radius = min(height, width) // 128
    if radius:
        art = ndimage.binary_opening(art, iterations=radius)
    labels, count = ndimage.label(art)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        drop = sizes < SPECK_SHARE * height * width
        # Thin frames (the blended edge of a peeled tile) span a large box with few pixels.
        for index, found in enumerate(ndimage.find_objects(labels), start=1):
            if found is not None and index != sizes[1:].argmax() + 1:
                box_area = (found[0].stop - found[0].start) * (found[1].stop - found[1].start)
                drop[index] |= sizes[index] < FRAME_FILL * box_area
        drop[0] = False
        art = art & ~drop[labels]
    return art


def _corners(mask: np.ndarray) -> int:
    """How many of the four corner pixels of ``mask`` are set."""
    return int(mask[0, 0]) + int(mask[0, -1]) + int(mask[-1, 0]) + int(mask[-1, -1])


def _ring(height: int, width: int) -> np.ndarray:
    ring = np.zeros((height, width), dtype=bool)
    ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
    return ring


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _pad_square(art: np.ndarray, bg: np.ndarray) -> np.ndarray:
    height, width = art.shape[:2]
    side = int(round(max(height, width) * (1 + 2 * MARGIN)))
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[:] = bg.astype(np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = art
    return canvas


def _resize(square: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(square)
    resample = Image.Resampling.NEAREST if square.shape[0] * 2 <= size else Image.Resampling.LANCZOS
    return np.asarray(image.resize((size, size), resample), dtype=np.uint8)
