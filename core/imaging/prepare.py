"""What a decoding worker does with untrusted bytes: decode once, then derive what is needed.

Runs inside the worker processes of ``core.imaging.workers`` (never in the bot or CLI
process): the canonical view for the embedder and a small preview for collages come from one
decode, so each upload is drawn once.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.imaging.canonical import canonicalise
from core.imaging.decode import ImageLimits, decode_image


@dataclass(frozen=True)
class PrepareSpec:
    """What to derive from an image, within which limits."""

    limits: ImageLimits
    # Side of the canonical view for the embedder; ``None``: none wanted.
    canonical_size: int | None = None
    background: tuple[int, int, int] = (128, 128, 128)
    # Longest side of the preview PNG; ``None``: none wanted. Smaller images keep their size
    # (the collage scales pixel art up with nearest-neighbour itself).
    preview_side: int | None = None


@dataclass(frozen=True)
class PreparedImage:
    """An image's size, and what was asked for: its canonical view and a preview PNG."""

    width: int
    height: int
    canonical: np.ndarray | None = None
    preview: bytes | None = None


def prepare_image(data: bytes, spec: PrepareSpec) -> PreparedImage:
    """Decode ``data`` (raising the engine's image errors) and derive what ``spec`` asks."""
    image = decode_image(data, spec.limits)
    canonical = None
    if spec.canonical_size is not None:
        canonical = canonicalise(image, spec.canonical_size, spec.background)
    preview = None
    if spec.preview_side is not None:
        preview = preview_png(image, spec.preview_side)
    return PreparedImage(image.width, image.height, canonical, preview)


def preview_png(image: Image.Image, side: int) -> bytes:
    """The image as an RGBA PNG whose longer side is at most ``side``."""
    small = image.convert("RGBA")
    if max(small.size) > side:
        small = small.copy()
        small.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "PNG")
    return out.getvalue()
