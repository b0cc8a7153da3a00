"""A collage PNG: the query beside its matches, each tile labelled."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from core.models import Match

TILE = 192
LABEL_HEIGHT = 44
PADDING = 8
COLUMNS = 6
BACKGROUND = (24, 26, 31)
TILE_BACKGROUND = (99, 133, 150)
TEXT = (235, 235, 235)
ACCENT = (255, 196, 0)


def render_collage(
    query: bytes | None, matches: Sequence[Match], previews: Sequence[bytes | None]
) -> bytes:
    """PNG bytes: the query tile (if any), then one tile per match, in rows of six.

    ``query`` and ``previews`` (one per match, ``None`` where there is none) are the small
    PNGs the image workers drew; untrusted originals are never decoded here.
    """
    tiles: list[tuple[bytes | None, list[str], bool]] = []
    if query is not None:
        tiles.append((query, ["query"], True))
    for rank, (match, preview) in enumerate(zip(matches, previews, strict=True), start=1):
        sale = match.last_sale
        price = f"last {sale.price:g} {sale.currency}" if sale else "no sales"
        lines = [f"#{rank} {match.collection} {match.token_id}", f"{match.score:.3f} · {price}"]
        tiles.append((preview, lines, False))
    return render_tiles(tiles)


def render_strip(items: Sequence[tuple[bytes | None, Sequence[str]]]) -> bytes:
    """PNG bytes: a row of labelled tiles (the comparable sales behind an estimate)."""
    return render_tiles([(preview, list(lines), False) for preview, lines in items])


def render_tiles(tiles: Sequence[tuple[bytes | None, list[str], bool]]) -> bytes:
    """PNG bytes: tiles in rows of six, each a picture (or a blank) with its label lines;
    the highlighted ones framed."""
    columns = min(COLUMNS, max(1, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    width = PADDING + columns * (TILE + PADDING)
    height = PADDING + rows * (TILE + LABEL_HEIGHT + PADDING)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    for i, (picture, lines, is_query) in enumerate(tiles):
        x = PADDING + (i % columns) * (TILE + PADDING)
        y = PADDING + (i // columns) * (TILE + LABEL_HEIGHT + PADDING)
        canvas.paste(_tile(picture), (x, y))
        if is_query:
            draw.rectangle((x - 2, y - 2, x + TILE + 1, y + TILE + 1), outline=ACCENT, width=2)
        for j, line in enumerate(lines):
            draw.text(
                (x + 2, y + TILE + 4 + 18 * j), line, fill=ACCENT if is_query else TEXT, font=font
            )
    out = io.BytesIO()
    canvas.save(out, "PNG", optimize=True)
    return out.getvalue()


def _tile(picture: bytes | None) -> Image.Image:
    tile = Image.new("RGBA", (TILE, TILE), (*TILE_BACKGROUND, 255))
    if picture is None:
        return tile.convert("RGB")
    image = Image.open(io.BytesIO(picture), formats=["PNG"]).convert("RGBA")
    scale = TILE / max(image.size)
    # Pixel art is scaled with nearest neighbour so it stays crisp.
    resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.LANCZOS
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, resample)
    tile.alpha_composite(image, ((TILE - size[0]) // 2, (TILE - size[1]) // 2))
    return tile.convert("RGB")
