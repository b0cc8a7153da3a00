"""Turn untrusted bytes into one RGBA frame, with byte, pixel and format guards."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageSequence, UnidentifiedImageError

from core.errors import BrokenImage, ImageTooLarge, NotAnImage
from core.imaging.svg import SvgLimits, looks_like_svg, rasterise_svg

# Formats NFT art actually ships in; anything else Pillow could open (EPS, ICNS, ...) is refused
# so that exotic decoders never see untrusted bytes.
RASTER_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")

# SVG art is rasterised so its longer side has this many pixels: large enough for VGG16 at any
# supported input size, small enough that a hostile viewBox cannot allocate a giant canvas.
SVG_RASTER_SIDE = 512


@dataclass(frozen=True)
class ImageLimits:
    """Caps applied before any pixel is decoded."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


def decode_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Decode PNG/JPEG/WebP/GIF/BMP (first frame) or SVG bytes into a loaded RGBA image."""
    if not data:
        raise NotAnImage("The file is empty, not an image.")
    if len(data) > limits.max_bytes:
        raise too_large(len(data), limits.max_bytes)
    if looks_like_svg(data):
        data = rasterise_svg(data, SVG_RASTER_SIDE, SvgLimits(max_pixels=limits.max_pixels))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageTooLarge(
                    f"The image is {width}×{height} pixels; the limit is "
                    f"{limits.max_pixels / 1e6:.0f} megapixels."
                )
            frame = next(iter(ImageSequence.Iterator(image)))
            frame.load()
            return frame.convert("RGBA")
    except ImageTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge("The image decompresses to far more pixels than allowed.") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage("That is not an image (PNG, JPEG, WebP, GIF or SVG expected).") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BrokenImage("The image file is damaged or truncated.") from exc


def format_size(n_bytes: int) -> str:
    """A byte count as people read it: '20 MB', '1.5 MB', '900 KB', '12 bytes'."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n_bytes} bytes"


def too_large(size: int, limit: int, what: str = "The image") -> ImageTooLarge:
    """The one wording of "over the byte cap", for files, uploads and downloads alike."""
    return ImageTooLarge(f"{what} is {format_size(size)}; the limit is {format_size(limit)}.")
