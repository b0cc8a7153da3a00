"""A hostile corpus, generated (no stored binaries): what an attacker in a public server sends.

Each case is bytes to upload (or a file to query) and the words the answer must contain. The
end-to-end tests push every case through the CLI, the console and the real Telegram client
and check the process is still alive afterwards; ``tests/imaging`` checks the rules case by
case.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

NS = 'xmlns="http://www.w3.org/2000/svg"'
XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'


def svg(body: str = "", size: str = 'width="10" height="10"') -> bytes:
    return f"<svg {NS} {XLINK} {size}>{body}</svg>".encode()


def nested(levels: int) -> bytes:
    """``levels`` nested groups: resvg crashed (SIGSEGV) past about 256."""
    return svg("<g>" * levels + '<rect width="1" height="1"/>' + "</g>" * levels)


def use_bomb(levels: int) -> bytes:
    """Each level draws the previous one twice: 2**levels rectangles from a few KB."""
    defs = '<rect id="u0" width="1" height="1"/>' + "".join(
        f'<g id="u{i}"><use href="#u{i - 1}"/><use xlink:href="#u{i - 1}"/></g>'
        for i in range(1, levels + 1)
    )
    return svg(f'<defs>{defs}</defs><use href="#u{levels}"/>')


def blur_filters(count: int) -> bytes:
    """``count`` blur filters, each applied once: minutes of CPU at 200."""
    filters = "".join(
        f'<filter id="f{i}"><feGaussianBlur stdDeviation="{i}"/></filter>' for i in range(count)
    )
    rects = "".join(f'<rect width="10" height="10" filter="url(#f{i})"/>' for i in range(count))
    return svg(filters + rects)


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">']
    for i in range(1, 10):
        entities.append(f'<!ENTITY lol{i} "' + f"&lol{i - 1};" * 10 + '">')
    return f"<!DOCTYPE svg [{''.join(entities)}]>".encode() + svg("<text>&lol9;</text>")


def comment_before_root() -> bytes:
    """A harmless size in a comment, the real root 200,000 px tall (SIGABRT before)."""
    return b'<?xml version="1.0"?><!-- <svg width="1" height="1"> -->' + svg(
        '<rect width="1" height="1"/>', 'width="1" height="200000"'
    )


def slow_filters() -> bytes:
    """Sixteen cheap-looking morphology filters: within every static SVG cap, yet about 18 s
    of CPU in resvg. Only the workers' CPU and wall-clock caps stop it."""
    filters = "".join(
        f'<filter id="m{i}"><feMorphology operator="dilate" radius="3"/></filter>'
        for i in range(16)
    )
    shapes = "".join(
        f'<rect width="100" height="100" fill="#{i:02x}0000" filter="url(#m{i})"/>'
        for i in range(16)
    )
    return svg(filters + shapes, 'width="100" height="100"')


def png_header(width: int, height: int, color_type: int = 6) -> bytes:
    """A PNG whose IHDR claims ``width``×``height``, with no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def png_zip_bomb() -> bytes:
    """A real, complete PNG of 6,400×6,400 grey pixels (41 megapixels) in about 40 KB."""
    image = Image.new("L", (6400, 6400), 0)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def gif_screen_bomb() -> bytes:
    """A GIF whose logical screen claims 65,535×65,535 pixels."""
    out = io.BytesIO()
    Image.new("P", (8, 8)).save(out, "GIF")
    data = bytearray(out.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def truncated_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()[:-40]


def animated_gif() -> bytes:
    """A harmless animated GIF: its first frame is what gets matched."""
    frames = [Image.new("P", (24, 24), i) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], loop=0)
    return out.getvalue()


@dataclass(frozen=True)
class Case:
    """One hostile upload: its bytes, a file name, and words every answer must contain."""

    name: str
    make: Callable[[], bytes]
    answer: str
    suffix: str = ".svg"


CORPUS = (
    Case("1000-nested-groups", lambda: nested(1000), "levels deep"),
    Case("comment-before-the-real-root", comment_before_root, "longer side"),
    Case("200-blur-filters", lambda: blur_filters(200), "too many filters"),
    Case("billion-laughs", billion_laughs, "XML entities"),
    Case(
        "external-entity",
        lambda: (
            b'<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + svg("<text>&x;</text>")
        ),
        "XML entities",
    ),
    Case(
        "local-file-reference",
        lambda: svg('<image href="file:///etc/passwd" width="5" height="5"/>'),
        "load other files",
    ),
    Case("use-expansion-bomb", lambda: use_bomb(24), "more than 50,000 elements"),
    Case("slow-filters-within-the-caps", slow_filters, "could not be read safely"),
    Case("png-header-bomb", lambda: png_header(100_000, 100_000), "far more pixels", ".png"),
    Case("png-zip-bomb", png_zip_bomb, "megapixels", ".png"),
    Case("gif-screen-bomb", gif_screen_bomb, "far more pixels", ".gif"),
    Case("truncated-png", truncated_png, "damaged or truncated", ".png"),
    Case("not-an-image", lambda: b"#!/bin/sh\nrm -rf /\n", "not an image", ".png"),
)
# Twice the shipped 5 s decoding deadline: the slowest case is stopped by the 4 s CPU cap or
# that deadline, so an answer later than this means a worker was not stopped.
ANSWER_WITHIN_S = 10.0


def write_corpus(directory: Path) -> list[tuple[Case, Path]]:
    """Every case as a file in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for case in CORPUS:
        path = directory / f"{case.name}{case.suffix}"
        path.write_bytes(case.make())
        files.append((case, path))
    return files
