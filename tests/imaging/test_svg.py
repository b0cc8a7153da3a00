"""rasterise_svg: hostile SVGs are refused before resvg runs; honest ones are drawn at our size."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from xml.etree import ElementTree

import pytest
import resvg_py
from PIL import Image

from core.errors import BrokenImage, ImageError, ImageTooLarge, NotAnImage
from core.imaging.svg import SvgLimits, looks_like_svg, rasterise_svg
from tests.hostile import (
    NS,
    XLINK,
    billion_laughs,
    blur_filters,
    nested,
    png_header,
    svg,
    use_bomb,
)

SIDE = 64
SVG_TAG = "{http://www.w3.org/2000/svg}svg"
LIMITS = SvgLimits()


def drawn(data: bytes, side: int = SIDE, limits: SvgLimits = LIMITS) -> Image.Image:
    return Image.open(io.BytesIO(rasterise_svg(data, side, limits))).convert("RGBA")


def data_uri(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def red_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def no_resvg(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if resvg is reached: the refusal under test must be a pre-check."""

    def forbidden(**_: object) -> bytes:
        pytest.fail("resvg was called for an SVG that should have been refused first")

    monkeypatch.setattr(resvg_py, "svg_to_bytes", forbidden)


@pytest.fixture
def resvg_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each SVG handed to resvg, and answer with a blank PNG of the root's size."""
    calls: list[str] = []

    def record(svg_string: str, **_: object) -> bytes:
        calls.append(svg_string)
        root = ElementTree.fromstring(svg_string)
        out = io.BytesIO()
        Image.new("RGBA", (int(root.get("width", 0)), int(root.get("height", 0)))).save(out, "PNG")
        return out.getvalue()

    monkeypatch.setattr(resvg_py, "svg_to_bytes", record)
    return calls


def refused(data: bytes, error: type[ImageError], limits: SvgLimits = LIMITS) -> str:
    with pytest.raises(ImageError) as caught:
        rasterise_svg(data, SIDE, limits)
    assert type(caught.value) is error
    message = str(caught.value)
    assert 0 < len(message) < 120 and "\n" not in message
    assert message[0].isupper() and message.endswith(".")
    assert not re.search(r"[.!?]\s+[A-Z]", message[:-1])  # one sentence
    return message


# --- drawn at our size ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ('viewBox="0 0 20 10"', (SIDE, SIDE // 2)),
        ('viewBox="0 0 10 40"', (SIDE // 4, SIDE)),
        ('width="300" height="150"', (SIDE, SIDE // 2)),
        ('width="150px" height="300px"', (SIDE // 2, SIDE)),
        ('width="100%" height="100%" viewBox="0 0 50 50"', (SIDE, SIDE)),
    ],
)
def test_the_longer_side_is_the_side_asked_for(size: str, expected: tuple[int, int]) -> None:
    image = drawn(svg('<rect width="100%" height="100%" fill="#00ff00"/>', size))

    assert image.size == expected
    assert image.getpixel((expected[0] // 2, expected[1] // 2)) == (0, 255, 0, 255)


def test_content_is_scaled_to_fill_the_canvas_without_a_viewbox() -> None:
    image = drawn(svg('<rect x="5" width="5" height="10" fill="#f00"/>', 'width="10" height="10"'))

    assert image.getpixel((SIDE // 4, SIDE // 2))[3] == 0
    assert image.getpixel((3 * SIDE // 4, SIDE // 2)) == (255, 0, 0, 255)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ('width="1in" height="72pt"', (SIDE, SIDE)),  # 96 px both
        ('width="25.4mm" height="2in"', (SIDE // 2, SIDE)),
        ('width="6pc" height="2.54cm"', (SIDE, SIDE)),  # 96 px both
        ('width="10mm" height="10" viewBox="0 0 1 1"', (SIDE, 17)),  # 37.8 px by 10 px
    ],
)
def test_units_give_the_right_aspect(size: str, expected: tuple[int, int]) -> None:
    assert drawn(svg('<rect width="100%" height="100%"/>', size)).size == expected


def test_units_inside_the_art_are_drawn_at_96_dpi() -> None:
    image = drawn(
        svg('<rect width="0.5in" height="1in" fill="#f00"/>', 'width="1in" height="1in"')
    )

    assert image.getchannel("A").getbbox() == (0, 0, SIDE // 2, SIDE)


def test_the_document_handed_to_resvg_is_rewritten_to_our_size(resvg_calls: list[str]) -> None:
    rasterise_svg(svg('<image xlink:href="#x"/>', 'width="200" height="100" x="9"'), SIDE)

    root = ElementTree.fromstring(resvg_calls[0])
    assert root.tag == SVG_TAG
    assert (root.get("width"), root.get("height")) == (str(SIDE), str(SIDE // 2))
    assert root.get("viewBox") == "0 0 200.0 100.0"
    assert resvg_calls[0].startswith(f"<svg {NS} {XLINK}")  # no ns0: prefixes


def test_a_root_without_namespace_is_drawn_as_resvg_draws_it() -> None:
    data = b'<svg width="10" height="20"><rect width="10" height="20" fill="#f00"/></svg>'

    image = drawn(data)

    assert image.size == (SIDE // 2, SIDE)
    assert image.getpixel((5, 5)) == (255, 0, 0, 255)


def test_text_is_drawn_with_the_fonts_it_names() -> None:
    # The shape of Loot: nothing but <text> in a generic family, white on black.
    style = "<style>.base { fill: white; font-family: serif; font-size: 14px; }</style>"
    lines = "".join(
        f'<text x="10" y="{20 + 20 * i}" class="base">{word}</text>'
        for i, word in enumerate(["Grim Shout", "Hard Leather Armor", "Divine Hood"])
    )
    body = f'{style}<rect width="100%" height="100%" fill="black"/>{lines}'

    image = drawn(svg(body, 'viewBox="0 0 350 350" preserveAspectRatio="xMinYMin meet"'), 350)

    assert image.convert("L").point(lambda v: 255 if v > 128 else 0).getbbox() is not None


def test_comments_and_instructions_before_the_root_do_not_size_it() -> None:
    data = b'<?xml version="1.0"?><!-- <svg width="1" height="1"> --><?pi x?>' + svg(
        "", 'width="100000" height="200000"'
    )

    assert drawn(data).size == (SIDE // 2, SIDE)


def test_internal_references_and_embedded_images_are_drawn() -> None:
    body = (
        '<defs><linearGradient id="g"><stop offset="0" stop-color="#00f"/></linearGradient>'
        f'<image id="red" href="{data_uri(red_png())}" width="5" height="10"/></defs>'
        '<use href="#red"/><rect x="5" width="5" height="10" style="fill: url( \'#g\' )"/>'
        '<use href="#nowhere"/><rect fill="url(#nowhere)" width="1" height="1"/>'
    )

    image = drawn(svg(body))

    assert image.getpixel((SIDE // 4, SIDE // 2)) == (255, 0, 0, 255)
    assert image.getpixel((3 * SIDE // 4, SIDE // 2)) == (0, 0, 255, 255)


def test_stylesheet_references_to_gradients_are_drawn() -> None:
    # Illustrator writes every fill as a class rule.
    body = (
        "<style>.st0{fill:url(#SVGID_1_);} rect.st1 > * , .st2 { opacity: 1 }</style>"
        '<linearGradient id="SVGID_1_"><stop offset="0" stop-color="#0f0"/></linearGradient>'
        '<rect class="st0" width="10" height="10"/>'
    )

    assert drawn(svg(body)).getpixel((5, 5)) == (0, 255, 0, 255)


def test_a_doctype_naming_only_the_external_dtd_is_drawn() -> None:
    doctype = (
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">'
    )

    assert drawn(doctype + svg()).size == (SIDE, SIDE)


def test_huge_turbulence_octaves_are_clamped_not_run(resvg_calls: list[str]) -> None:
    # Octaves past the tenth are invisible in 8-bit output, and 1e9 of them never finish.
    body = '<filter id="f"><feTurbulence numOctaves="1e9"/></filter><rect filter="url(#f)"/>'

    rasterise_svg(svg(body), SIDE)

    assert 'numOctaves="10"' in resvg_calls[0]


def test_looks_like_svg() -> None:
    assert looks_like_svg(svg())
    assert looks_like_svg(b"\xef\xbb\xbf  <?xml version='1.0'?>\n" + svg())
    assert looks_like_svg(b"<!-- made by hand -->" + svg())
    assert not looks_like_svg(b"\x89PNG\r\n\x1a\n")
    assert not looks_like_svg(b"<html><body>no</body></html>")


# --- refused before resvg ------------------------------------------------------------------


HOSTILE: dict[str, tuple[Callable[[], bytes], type[ImageError], str]] = {
    "1000-deep-nesting": (lambda: nested(1000), ImageTooLarge, "levels deep"),
    # Stops where the cap is passed: the broken XML after it is never read.
    "deep-then-garbage": (lambda: nested(1000)[:-100] + b"<<<", ImageTooLarge, "levels deep"),
    "200-blur-filters": (lambda: blur_filters(200), ImageTooLarge, "too many filters"),
    "billion-laughs": (billion_laughs, NotAnImage, "XML entities"),
    "external-entity": (
        lambda: (
            b'<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + svg("<text>&x;</text>")
        ),
        NotAnImage,
        "XML entities",
    ),
    "internal-entity": (
        lambda: b'<!DOCTYPE svg [<!ENTITY x "harmless">]>' + svg("<text>&x;</text>"),
        NotAnImage,
        "XML entities",
    ),
    "attlist-defaults": (
        lambda: b'<!DOCTYPE svg [<!ATTLIST rect x CDATA "1">]>' + svg("<rect/>"),
        NotAnImage,
        "inline DTD",
    ),
    "comment-then-tall-root": (
        lambda: b'<!-- <svg width="1" height="1"> -->' + svg("", 'width="1" height="200000"'),
        ImageTooLarge,
        "64 times",
    ),
    "aspect-1-1000": (lambda: svg("", 'viewBox="0 0 1 1000"'), ImageTooLarge, "64 times"),
    "aspect-1000-1-units": (lambda: svg("", 'width="1000in" height="1in"'), ImageTooLarge, "64"),
    "zero-width": (lambda: svg("", 'width="0" height="10"'), BrokenImage, "zero"),
    "negative-height": (lambda: svg("", 'width="10" height="-5"'), BrokenImage, "negative"),
    "nan-width": (lambda: svg("", 'width="NaN" height="10"'), BrokenImage, "not a number"),
    "infinite-width": (lambda: svg("", 'width="1e999" height="10"'), BrokenImage, "zero"),
    "zero-viewbox": (lambda: svg("", 'viewBox="0 0 0 10"'), BrokenImage, "viewBox"),
    "nan-viewbox": (lambda: svg("", 'viewBox="0 0 nan 10"'), BrokenImage, "viewBox"),
    "no-size": (lambda: svg("", ""), BrokenImage, "no size"),
    "percent-without-viewbox": (lambda: svg("", 'width="50%" height="9"'), BrokenImage, "no size"),
    "href-file-path": (
        lambda: svg('<image href="/etc/secret.png" width="8" height="8"/>'),
        NotAnImage,
        "load other files",
    ),
    "href-http": (
        lambda: svg('<image href=" https://example.org/x.png"/>'),
        NotAnImage,
        "load other files",
    ),
    "xlink-href-file-scheme": (
        lambda: svg('<image xlink:href="file:///srv/x.png"/>'),
        NotAnImage,
        "load other files",
    ),
    "use-of-another-file": (
        lambda: svg('<use href="other.svg#g"/>'),
        NotAnImage,
        "load other files",
    ),
    "nested-svg-data": (
        lambda: svg(f'<image href="{data_uri(svg(), "image/svg+xml")}"/>'),
        NotAnImage,
        "other SVGs",
    ),
    "data-not-an-image-type": (
        lambda: svg('<image href="data:text/plain;base64,aGk="/>'),
        NotAnImage,
        "data other than",
    ),
    "style-import": (
        lambda: svg('<style>@import "https://example.org/x.css";</style>'),
        NotAnImage,
        "load other files",
    ),
    "style-url-file": (
        lambda: svg("<style>rect { fill: url(file:///x.svg#p) }</style>"),
        NotAnImage,
        "load other files",
    ),
    "style-escaped-url": (
        lambda: svg(r"<style>rect { fill: u\72 l(x.svg#p) }</style>"),
        NotAnImage,
        "load other files",
    ),
    "style-escaped-import": (
        lambda: svg(r"<style>@\69 mport 'x.css';</style>"),
        NotAnImage,
        "load other files",
    ),
    "style-font-face": (
        lambda: svg("<style>@font-face { src: url('/usr/share/fonts/x.ttf') }</style>"),
        NotAnImage,
        "load other files",
    ),
    "style-attribute-url": (
        lambda: svg('<rect style="fill: url(\'other.svg#g\')" width="1" height="1"/>'),
        NotAnImage,
        "load other files",
    ),
    "style-attribute-import": (
        lambda: svg('<rect style="@import url(#x)"/>'),
        NotAnImage,
        "load other files",
    ),
    "filter-attribute-url": (
        lambda: svg('<rect filter="url(x.svg#f)"/>'),
        NotAnImage,
        "load other files",
    ),
    "use-bomb": (lambda: use_bomb(20), ImageTooLarge, "once its references are followed"),
    "use-chain-too-deep": (
        lambda: svg(
            '<rect id="c0"/>'
            + "".join(f'<use id="c{i}" href="#c{i - 1}"/>' for i in range(1, 300))
        ),
        ImageTooLarge,
        "levels deep",
    ),
    "use-cycle": (
        lambda: svg('<g id="a"><rect/><use href="#a"/></g>'),
        BrokenImage,
        "loop",
    ),
    "use-self": (lambda: svg('<use id="a" href="#a"/>'), BrokenImage, "loop"),
    "use-cycle-indirect": (
        lambda: svg(
            '<g id="a"><use href="#b"/></g><g id="b"><use xlink:href="#c"/></g>'
            '<g id="c"><use href="#a"/></g>'
        ),
        BrokenImage,
        "loop",
    ),
    "pattern-cycle": (
        lambda: svg(
            '<pattern id="A" width="1" height="1"><rect fill="url(#B)" width="1" height="1"/>'
            '</pattern><pattern id="B" width="1" height="1"><rect style="fill:url(#A)"/>'
            '</pattern><rect fill="url(#A)" width="10" height="10"/>'
        ),
        BrokenImage,
        "loop",
    ),
    "pattern-cycle-through-stylesheet": (
        lambda: svg(
            "<style>.a { fill: url(#P) }</style>"
            '<pattern id="P" width="1" height="1"><rect class="a" width="1" height="1"/></pattern>'
        ),
        BrokenImage,
        "loop",
    ),
    "pattern-bomb-through-stylesheet": (
        lambda: svg(
            "<style>"
            + "".join(f".p{i} {{ fill: url(#p{i - 1}) }}" for i in range(1, 20))
            + "</style>"
            + '<pattern id="p0"><rect/></pattern>'
            + "".join(
                f'<pattern id="p{i}"><rect class="p{i}"/><rect class="p{i}"/></pattern>'
                for i in range(1, 20)
            )
            + '<rect fill="url(#p19)"/>'
        ),
        ImageTooLarge,
        "once its references are followed",
    ),
    "png-header-100000-square": (
        lambda: svg(f'<image href="{data_uri(png_header(100_000, 100_000))}"/>'),
        ImageTooLarge,
        "far more pixels",
    ),
    "png-header-over-our-cap": (
        lambda: svg(f'<image href="{data_uri(png_header(8_000, 8_000))}"/>'),
        ImageTooLarge,
        "8000×8000 pixels",
    ),
    "embedded-images-add-up": (
        lambda: svg(
            f'<defs><image id="i" href="{data_uri(png_header(5_000, 5_000))}"/></defs>'
            '<use href="#i"/><use href="#i"/>'
        ),
        ImageTooLarge,
        "add up",
    ),
    "embedded-garbage": (
        lambda: svg(f'<image href="{data_uri(b"not a picture at all")}"/>'),
        BrokenImage,
        "embedded",
    ),
    "embedded-bad-base64": (
        lambda: svg('<image href="data:image/png;base64,iVBORw0KGgo="/>'),
        BrokenImage,
        "embedded",
    ),
    "morphology-radius": (
        lambda: svg('<filter id="f"><feMorphology radius="1e6"/></filter>'),
        ImageTooLarge,
        "too costly",
    ),
    # A radius of 3 in a 10-unit viewBox is 19 px at SIDE=64 (and 154 px at 512).
    "morphology-radius-in-pixels": (
        lambda: svg('<filter id="f"><feMorphology radius="3"/></filter>', 'viewBox="0 0 10 10"'),
        ImageTooLarge,
        "too costly",
    ),
    "convolve-order": (
        lambda: svg(
            '<filter id="f"><feConvolveMatrix order="64" kernelMatrix="'
            + " ".join(["1"] * 64 * 64)
            + '"/></filter>'
        ),
        ImageTooLarge,
        "too costly",
    ),
    "one-filter-applied-17-times": (
        lambda: svg(
            '<filter id="f"><feOffset dx="1"/></filter>'
            + '<rect filter="url(#f)" width="1" height="1"/>' * 17
        ),
        ImageTooLarge,
        "too many filters",
    ),
    "not-utf8": (
        lambda: svg("<text>cafe</text>").replace(b"cafe", b"caf\xe9"),
        BrokenImage,
        "UTF-8",
    ),
    "invalid-xml": (lambda: b"<svg><rect width=", BrokenImage, "not valid XML"),
    "xml-but-not-svg": (
        lambda: b'<html xmlns="http://www.w3.org/1999/xhtml"><svg/></html>',
        NotAnImage,
        "not an SVG",
    ),
    "svg-root-in-another-namespace": (
        lambda: b'<svg xmlns="http://example.org/not-svg" width="9" height="9"/>',
        NotAnImage,
        "not an SVG",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
@pytest.mark.usefixtures("no_resvg")
def test_hostile_svg_is_refused_before_resvg_runs(case: str) -> None:
    make, error, wording = HOSTILE[case]

    assert wording in refused(make(), error)


# nested(n) is n + 2 levels deep: the root, n groups, and the rectangle.
def test_depth_at_the_cap_is_drawn() -> None:
    image = drawn(nested(LIMITS.max_depth - 2))

    assert image.size == (SIDE, SIDE)
    assert image.getpixel((0, 0))[3] == 255


@pytest.mark.usefixtures("no_resvg")
def test_depth_past_the_cap_is_refused() -> None:
    assert "more than 48 levels" in refused(nested(LIMITS.max_depth - 1), ImageTooLarge)
    assert "more than 6 levels" in refused(nested(5), ImageTooLarge, SvgLimits(max_depth=6))


@pytest.mark.usefixtures("no_resvg")
def test_element_cap_stops_the_parse() -> None:
    data = svg('<rect width="1" height="1"/>' * 100 + "<<< never read")

    assert "more than 99 elements" in refused(data, ImageTooLarge, SvgLimits(max_elements=99))


def test_use_expansion_just_under_the_cap_is_drawn(resvg_calls: list[str]) -> None:
    # 1,024 rectangles, 2,046 uses, 1,023 groups, the outer <use> and the root: 4,095 drawn.
    rasterise_svg(use_bomb(10), SIDE, SvgLimits(max_expanded=4_095))
    refused(use_bomb(10), ImageTooLarge, SvgLimits(max_expanded=4_094))
    assert len(resvg_calls) == 1


def test_sixteen_filter_applications_are_drawn(resvg_calls: list[str]) -> None:
    body = '<filter id="f"><feOffset dx="1"/></filter>' + '<rect filter="url(#f)"/>' * 16

    rasterise_svg(svg(body), SIDE)

    assert len(resvg_calls) == 1


def test_resvg_failure_is_a_broken_image(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(**_: object) -> bytes:
        raise ValueError("SVG data parsing failed")

    monkeypatch.setattr(resvg_py, "svg_to_bytes", fail)

    assert "could not be drawn" in refused(svg(), BrokenImage)


def test_a_png_of_another_size_from_resvg_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.BytesIO()
    Image.new("RGBA", (SIDE * 100, SIDE)).save(out, "PNG")
    monkeypatch.setattr(resvg_py, "svg_to_bytes", lambda **_: out.getvalue())

    assert "safe size" in refused(svg(), ImageTooLarge)
