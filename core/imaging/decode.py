"""Turn untrusted bytes into one RGBA frame, with byte, pixel and format guards."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageSequence, UnidentifiedImageError

from core.errors import BrokenImage, ImageTooLarge, NotAnImage

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
    if _looks_like_svg(data):
        data = _rasterise_svg(data)
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


# href / xlink:href / url(...) pointing anywhere but inside the document or at inline data.
_EXTERNAL_REFERENCE = re.compile(
    r"""(?:href\s*=\s*["']|url\(\s*["']?)\s*(?!#|data:)[^"')\s]""", re.IGNORECASE
)
_SVG_TAG = re.compile(r"<svg\b[^>]*>", re.IGNORECASE | re.DOTALL)


def _svg_aspect(text: str) -> tuple[float, float]:
    """The root element's width and height (attributes, else viewBox); 1×1 if unknown."""
    tag = _SVG_TAG.search(text)
    attrs = tag.group(0) if tag else ""
    # resvg sizes the canvas by width/height when given (they override the viewBox).
    width = re.search(r"\swidth\s*=\s*[\"']\s*([0-9.eE+-]+)\s*(?:px)?[\"']", attrs)
    height = re.search(r"\sheight\s*=\s*[\"']\s*([0-9.eE+-]+)\s*(?:px)?[\"']", attrs)
    if width and height:
        return _positive(width.group(1)), _positive(height.group(1))
    box = re.search(r"viewBox\s*=\s*[\"']([^\"']*)[\"']", attrs)
    if box:
        parts = re.split(r"[\s,]+", box.group(1).strip())
        if len(parts) == 4:
            return _positive(parts[2]), _positive(parts[3])
    return 1.0, 1.0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def format_size(n_bytes: int) -> str:
    """A byte count as people read it: '20 MB', '1.5 MB', '900 KB', '12 bytes'."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n_bytes} bytes"


def too_large(size: int, limit: int, what: str = "The image") -> ImageTooLarge:
    """The one wording of "over the byte cap", for files, uploads and downloads alike."""
    return ImageTooLarge(f"{what} is {format_size(size)}; the limit is {format_size(limit)}.")


def _looks_like_svg(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    starts = (b"<?xml", b"<svg", b"<!--", b"<!doctype svg")
    return head.startswith(starts) and b"<svg" in data[:4096].lower()


def _rasterise_svg(data: bytes) -> bytes:
    import resvg_py  # imported lazily: only SVG queries pay for it

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BrokenImage("The SVG file is not valid UTF-8 text.") from exc
    if _EXTERNAL_REFERENCE.search(text):
        # resvg would read referenced files from this machine's disk and draw them into
        # the picture we send back; only self-contained SVGs are rasterised.
        raise NotAnImage("SVGs that load other files are not accepted; embed images as data.")
    width, height = _svg_aspect(text)
    # Fix the longer side: fixing only the width would let a 1:1000 viewBox ask for a
    # canvas gigabytes tall before any pixel cap could look at it.
    try:
        if width >= height:
            png = resvg_py.svg_to_bytes(svg_string=text, width=SVG_RASTER_SIDE)
        else:
            png = resvg_py.svg_to_bytes(svg_string=text, height=SVG_RASTER_SIDE)
    except Exception as exc:  # resvg raises plain Exception subclasses for parse errors
        raise BrokenImage("The SVG file could not be drawn (invalid or unsupported SVG).") from exc
    return bytes(png)
