"""Canonical view of an NFT for embedding: the art itself, on a fixed background, squared.

Why: people query with screenshots (the token on a marketplace's coloured page, scaled up,
cropped a little, saved as JPEG). Plain VGG16 features are dominated by the background colour
and the framing, so a screenshot lands far from its own token. Both the indexed image and
the query therefore go through the same steps:

1. find the background: transparency if the image has any, otherwise flat backdrops found
   from the border and peeled one inside the other (the page, then the marketplace tile or
   the token's own background); JPEG ringing is smoothed away first, for this step only;
2. clean the art mask: compression specks, the thin frame left where two backdrops blended,
   and leftovers of the page far from the art are dropped;
3. restore the art's edge: resampling blends an outline with the backdrop into a halo of
   colours the original never had, so edge pixels take the colour just inside them;
4. replace the background with one fixed colour and crop to the art's bounding box;
5. pad to a square with a small margin and resize to the model's input size, with
   nearest-neighbour upscaling so that pixel art stays crisp instead of blurring.

Every threshold below was tuned on synthetic screenshots of real punks and moonbirds
(bench/screenshots.py) and checked not to hurt the originals.
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
# Share of border pixels that the (one or two) dominant colours must cover to be backdrops.
UNIFORM_BORDER_SHARE = 0.45
# A peel that would leave less than this share of the image is not a backdrop but the art.
MIN_ART_SHARE = 0.02
MAX_PEELS = 2
# Share of its box that what is left after the first peel must fill to be a tile.
TILE_FILL = 0.85
# A second border colour (page on some edges, tile on others) must cover this much border;
# art touching one edge (a body at the bottom) covers less.
SECOND_COLOUR_SHARE = 0.3
# Only screenshots have two backdrops; an original at its native size (pixel art is tiny)
# has one, and its art touching the edge must not be taken for a second.
TWO_COLOUR_SIDE = 128
# Connected bits of "art" smaller than this share of the image are compression specks.
SPECK_SHARE = 0.001
# A component filling less than this share of its own bounding box is a frame, not art.
FRAME_FILL = 0.08
# Detached parts of the art count if they lie within this share of the main part's size.
NEAR_SHARE = 0.25
MARGIN = 0.06
# Large images are reduced first: the mask work (median filter, labelling, erosion, distance
# transform) grows with the pixel count, and detail much finer than the output cannot survive
# the final resize anyway. An image longer than REDUCE_ABOVE (or four times the output) is
# reduced to WORK_SIDE (or twice the output); smaller ones, most screenshots among them, are
# worked on as they are. Measured with bench/canonical.py: screenshot recall@1 on punks and
# Moonbirds is what it was at 1,024 (and at 256, canon-v3), and 1,000 px art is about twenty
# times cheaper than at 1,024.
REDUCE_ABOVE = 384
WORK_SIDE = 192


def canonicalise(image: Image.Image, size: int, background: tuple[int, int, int]) -> np.ndarray:
    """Return a ``size``×``size``×3 uint8 array: the art cropped, on ``background``, squared."""
    reduced = max(image.size) > max(REDUCE_ABOVE, 4 * size)
    if reduced:
        # Reduced before converting (RGB and RGBA resample as they are; a palette image must
        # be converted first): converting a 1,000 px image costs more than reducing it.
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA")
        work = max(WORK_SIDE, 2 * size)
        # A box filter by a whole factor first (cheap), then Lanczos to the working side.
        factor = max(image.size) // work
        if factor >= 2:
            image = image.reduce(factor)
        scale = work / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(target, Image.Resampling.LANCZOS)
    image = image.convert("RGBA")
    rgba = np.asarray(image, dtype=np.uint8)
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    if float(alpha.min()) < 0.98:
        art = alpha > 0.06
    else:
        art = _clean(~_backdrop_mask(_denoise(image, reduced)))
        rgb = _defringe(rgb, art)
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
    previous: list[np.ndarray] = []
    for peel in range(MAX_PEELS):
        top, bottom, left, right = window
        # A second backdrop (a marketplace tile, or the token's own flat background inside
        # a page) is a filled rectangle once the first is gone. Art is not: peeling again
        # inside the art's box would take its outline for a backdrop.
        if peel and (~backdrop[top:bottom, left:right]).mean() < TILE_FILL:
            break
        if peel:
            top, bottom, left, right = top + inset, bottom - inset, left + inset, right - inset
            if bottom - top < 3 or right - left < 3:
                break
        region = rgb[top:bottom, left:right].astype(np.int16)
        known = backdrop[top:bottom, left:right]
        ring = _ring(region.shape[0], region.shape[1]) & ~known
        if not ring.any():
            break
        # A cropped screenshot can show the page on some edges and the tile on others, so
        # up to two colours may share the border.
        colours = _border_colours(region[ring], allow_two=min(height, width) >= TWO_COLOUR_SIDE)
        near = np.zeros(region.shape[:2], dtype=bool)
        for colour, tolerance in colours:
            near |= np.abs(region - colour).max(axis=-1) <= tolerance
        if not colours or near[ring].mean() < UNIFORM_BORDER_SHARE:
            break
        passable = near | known
        labels, _ = ndimage.label(passable)
        edge_labels = np.unique(labels[_ring(*labels.shape) & passable])
        peeled = np.isin(labels, edge_labels[edge_labels > 0])
        if (~peeled).sum() < MIN_ART_SHARE * height * width:
            break
        current = [colour for colour, _ in colours]
        inner = backdrop.copy()
        if peel:
            # The band between two backdrops holds mixtures of their colours (resampling
            # and JPEG blend them); such pixels are backdrop, anything else there is art.
            outer = rgb[window[0] : window[1], window[2] : window[3]].astype(np.float32)
            mixes = [_segment_distance(outer, a, b) for a in previous for b in current]
            inner[window[0] : window[1], window[2] : window[3]] |= (
                np.minimum.reduce(mixes) <= MAX_TOLERANCE
            )
        inner[top:bottom, left:right] = peeled
        backdrop = inner
        previous = current
        box = _bounding_box(_clean(~backdrop))
        if box is None or box == window:
            break
        window = box
    return backdrop


def _denoise(image: Image.Image, reduced: bool = False) -> np.ndarray:
    """RGB pixels with JPEG ringing smoothed away, for finding backdrops only.

    A median filter keeps edges sharp but flattens the ringing that compression leaves next
    to them; it is sized to the image so that pixel art scaled 6× or more keeps every pixel.
    An image reduced by ``canonicalise`` had its ringing averaged away by the reduction, and
    the small filter is enough.
    """
    rgb = image.convert("RGB")
    side = min(rgb.size)
    if side >= 192 and not reduced:
        rgb = rgb.filter(ImageFilter.MedianFilter(5))
    elif side >= 96:
        rgb = rgb.filter(ImageFilter.MedianFilter(3))
    return np.asarray(rgb, dtype=np.uint8)


def _segment_distance(pixels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel max-channel distance to the nearest mixture of colours ``a`` and ``b``."""
    a = a.astype(np.float32)
    span = b.astype(np.float32) - a
    length = float(span @ span)
    if length == 0:
        return np.abs(pixels - a).max(axis=-1)
    t = np.clip(((pixels - a) @ span) / length, 0.0, 1.0)
    return np.abs(pixels - (a + t[..., None] * span)).max(axis=-1)


def _border_colours(pixels: np.ndarray, allow_two: bool) -> list[tuple[np.ndarray, float]]:
    """The one or two colours that cover most of a border, each with its noise tolerance."""
    bins = (pixels // 16).astype(np.int32)
    codes = bins[:, 0] * 256 + bins[:, 1] * 16 + bins[:, 2]
    counts = np.bincount(codes)
    found: list[tuple[np.ndarray, float]] = []
    taken = np.zeros(len(pixels), dtype=bool)
    for code in np.argsort(counts)[::-1][:4]:
        share = counts[code] / len(pixels)
        if share < (SECOND_COLOUR_SHARE if found else 0.1) or len(found) == (
            2 if allow_two else 1
        ):
            break
        members = pixels[(codes == code) & ~taken]
        if not len(members):
            continue
        colour = np.median(members, axis=0)
        close = np.abs(pixels - colour).max(axis=-1) <= MAX_TOLERANCE
        if taken[close].mean() > 0.5 if close.any() else True:
            continue  # a neighbouring bin of a colour already found
        spread = float(np.percentile(np.abs(pixels[close] - colour).max(axis=-1), 90))
        found.append((colour, float(np.clip(2 * spread + 4, MIN_TOLERANCE, MAX_TOLERANCE))))
        taken |= close
    return found


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
        art = _near_main_part(labels, count)
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


def _near_main_part(labels: np.ndarray, count: int) -> np.ndarray:
    """Keep the largest part of the art and the parts that touch its neighbourhood.

    Detached bits of art (a smoke puff, an earring) sit next to the main figure; leftovers
    of a page (a corner of a tile, a cursor, text) sit far away and would inflate the box.
    """
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    main = int(sizes.argmax())
    boxes = ndimage.find_objects(labels)
    rows, cols = boxes[main - 1]
    reach = int(NEAR_SHARE * max(rows.stop - rows.start, cols.stop - cols.start))
    top, bottom = rows.start - reach, rows.stop + reach
    left, right = cols.start - reach, cols.stop + reach
    keep = np.zeros(count + 1, dtype=bool)
    for index, found in enumerate(boxes, start=1):
        if found is None:
            continue
        r, c = found
        keep[index] = r.start < bottom and r.stop > top and c.start < right and c.stop > left
    return keep[labels]


def _defringe(rgb: np.ndarray, art: np.ndarray) -> np.ndarray:
    """Replace the art's outermost pixels by the colour of the art just inside them.

    Scaled screenshots blend a dark outline with the backdrop into a halo of in-between
    colours that the original never had; the original's edge pixels are its own colours.
    """
    radius = min(art.shape) // 48
    if not radius:
        return rgb
    core = ndimage.binary_erosion(art, iterations=radius)
    if not core.any():
        return rgb
    _, (rows, cols) = ndimage.distance_transform_edt(~core, return_indices=True)
    band = art & ~core
    fixed = rgb.copy()
    fixed[band] = rgb[rows[band], cols[band]]
    return fixed


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
    side = round(max(height, width) * (1 + 2 * MARGIN))
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[:] = bg.astype(np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = art
    return canvas


def _resize(square: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(square)
    resample = (
        Image.Resampling.NEAREST if square.shape[0] * 2 <= size else Image.Resampling.LANCZOS
    )
    return np.asarray(image.resize((size, size), resample), dtype=np.uint8)
