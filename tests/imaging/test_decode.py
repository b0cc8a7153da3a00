"""decode_image: every format NFT art ships in, and a short clear error for everything else."""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from core.errors import BrokenImage, ImageError, ImageTooLarge, NotAnImage
from core.imaging.decode import SVG_RASTER_SIDE, ImageLimits, decode_image

LIMITS = ImageLimits()
RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def noise(size: int = 64) -> Image.Image:
    """Incompressible pixels, so that truncating the file cuts into the image data."""
    return Image.effect_noise((size, size), 60).convert("RGB")


def png_bomb(side: int) -> bytes:
    """A valid 1-bit ``side``×``side`` PNG of zeros: tiny on disk, huge once decoded.

    Written chunk by chunk because Pillow would need the whole canvas in memory to save it.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = bytes(1 + (side + 7) // 8)  # filter byte + packed bits
    squeeze = zlib.compressobj(9)
    idat = b"".join(squeeze.compress(row) for _ in range(side)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def svg(width: int, height: int, fill: str = "#00ff00") -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="{fill}"/></svg>'
    ).encode()


@pytest.mark.parametrize(
    ("fmt", "tolerance"), [("PNG", 0), ("BMP", 0), ("GIF", 0), ("WEBP", 4), ("JPEG", 4)]
)
def test_raster_formats_decode_to_rgba(fmt: str, tolerance: int) -> None:
    data = encode(Image.new("RGB", (16, 10), RED), fmt)

    image = decode_image(data, LIMITS)

    assert image.mode == "RGBA"
    assert image.size == (16, 10)
    pixel = image.getpixel((5, 5))
    assert isinstance(pixel, tuple)
    assert all(abs(got - want) <= tolerance for got, want in zip(pixel, (*RED, 255), strict=True))


def test_transparency_survives() -> None:
    art = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    art.putpixel((2, 3), (10, 20, 30, 255))

    image = decode_image(encode(art, "PNG"), LIMITS)

    assert image.getpixel((0, 0)) == (0, 0, 0, 0)
    assert image.getpixel((2, 3)) == (10, 20, 30, 255)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE, GREEN)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3

    image = decode_image(data, LIMITS)

    red, green, blue, alpha = image.getpixel((4, 4))  # type: ignore[misc]
    assert red > 250 and green < 5 and blue < 5 and alpha == 255


@pytest.mark.parametrize("prolog", [b"", b'<?xml version="1.0" encoding="UTF-8"?>\n'])
def test_svg_is_rasterised(prolog: bytes) -> None:
    image = decode_image(prolog + svg(20, 10), LIMITS)

    assert image.mode == "RGBA"
    assert image.size == (SVG_RASTER_SIDE, SVG_RASTER_SIDE // 2)
    assert image.getpixel((100, 100)) == (0, 255, 0, 255)


def test_tall_svg_is_bounded_by_the_raster_side() -> None:
    image = decode_image(svg(10, 40), LIMITS)

    assert max(image.size) <= SVG_RASTER_SIDE


# Built lazily, by name, so that collecting the tests does not build the bombs.
BAD_INPUTS: dict[str, tuple[Callable[[], bytes], type[ImageError]]] = {
    "empty": (lambda: b"", NotAnImage),
    "text": (lambda: b"hello, this is just text\n", NotAnImage),
    "random-bytes": (lambda: bytes(range(256)) * 8, NotAnImage),
    "pdf": (lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", NotAnImage),
    "eps": (lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", NotAnImage),
    "truncated-png": (lambda: encode(noise(), "PNG")[:400], BrokenImage),
    "truncated-jpeg": (lambda: encode(noise(), "JPEG")[:700], BrokenImage),
    "broken-svg": (lambda: b"<svg><rect width=", BrokenImage),
    "svg-not-utf8": (
        lambda: b"<svg xmlns='http://www.w3.org/2000/svg'>\xff\xfe</svg>",
        BrokenImage,
    ),
    "pixel-bomb-400M": (lambda: png_bomb(20_000), ImageTooLarge),
    "over-our-40M-cap": (lambda: png_bomb(7_000), ImageTooLarge),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gets_one_short_sentence(case: str) -> None:
    make, error = BAD_INPUTS[case]

    with pytest.raises(ImageError) as caught:
        decode_image(make(), ImageLimits(max_bytes=20 * 1024 * 1024, max_pixels=40_000_000))

    assert type(caught.value) is error
    assert_one_sentence(str(caught.value))


def test_pixel_bomb_is_small_on_disk() -> None:
    # The point of the bomb: the byte cap alone cannot catch it.
    assert len(png_bomb(20_000)) < 100_000


def test_pixel_cap_applies_before_decoding() -> None:
    data = encode(Image.new("RGB", (100, 60), RED), "PNG")

    with pytest.raises(ImageTooLarge, match="100×60 pixels"):
        decode_image(data, ImageLimits(max_pixels=5_999))
    assert decode_image(data, ImageLimits(max_pixels=6_000)).size == (100, 60)


def test_byte_cap() -> None:
    data = encode(noise(), "PNG")

    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))
    assert_one_sentence(str(caught.value))
    assert decode_image(data, ImageLimits(max_bytes=len(data))).size == (64, 64)


def test_byte_cap_message_states_a_real_limit() -> None:
    data = encode(noise(), "PNG")

    with pytest.raises(ImageTooLarge) as caught:
        decode_image(data, ImageLimits(max_bytes=1_000))

    assert "limit is 0 MB" not in str(caught.value)


def assert_one_sentence(message: str) -> None:
    assert 0 < len(message) < 200
    assert "\n" not in message
    assert "Traceback" not in message
    assert message[0].isupper()
    assert message.endswith(".")
    # No second sentence: no ". X" inside (decimals such as "20.0 MB" are fine).
    assert not re.search(r"[.!?]\s+[A-Z]", message[:-1])


@pytest.mark.parametrize(
    "reference",
    [
        '<image href="/etc/secret.png" width="8" height="8"/>',
        '<image xlink:href="file:///srv/x.png" width="8" height="8"/>',
        '<image href = \'https://example.org/x.png\' width="8" height="8"/>',
        '<rect width="8" height="8" style="fill:url(other.svg#g)"/>',
    ],
)
def test_an_svg_that_loads_other_files_is_refused(reference: str) -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="8" height="8">{reference}</svg>'
    )

    with pytest.raises(NotAnImage, match="load other files"):
        decode_image(svg.encode(), ImageLimits())


def test_an_svg_with_internal_references_and_a_doctype_is_drawn() -> None:
    svg = (
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">'
        '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
        '<defs><linearGradient id="g"><stop offset="0" stop-color="#f00"/></linearGradient>'
        '</defs><rect width="8" height="8" fill="url(#g)"/></svg>'
    )

    image = decode_image(svg.encode(), ImageLimits())

    assert image.getpixel((256, 256))[:3] == (255, 0, 0)
