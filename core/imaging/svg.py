"""Draw untrusted SVG with resvg, after refusing what could crash, stall or leak through it."""

from __future__ import annotations

import base64
import binascii
import functools
import io
import math
import re
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple
from xml.etree import ElementTree
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser
from PIL import Image

from core.errors import BrokenImage, ImageTooLarge, NotAnImage


@dataclass(frozen=True)
class SvgLimits:
    """Caps checked on the parsed document, before resvg sees a byte of it."""

    max_elements: int = 20_000  # elements in the document
    max_depth: int = 48  # nesting depth, in the document and once references are followed
    max_expanded: int = 50_000  # elements drawn once internal references are followed
    max_filters: int = 16  # <filter> elements, and filters applied once references are followed
    max_filter_primitives: int = 64  # fe* elements, and fe* steps run once references are followed
    max_aspect: float = 64.0  # longer side / shorter side
    max_pixels: int = 40_000_000  # each embedded raster image, and all of them as drawn


_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
# Unqualified elements inside a namespaced SVG are not SVG, and resvg skips them; they are moved
# here so that serialising under a default SVG namespace does not turn them into SVG.
_FOREIGN_NS = "urn:nftlens:not-svg"

_EXTERNAL = "SVGs that load other files are not accepted; embed images as data."
_UNDRAWABLE = "The SVG file could not be drawn (invalid or unsupported SVG)."
_EMBEDDED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")

# CSS pixels per unit of the root's width and height, at the 96 dpi resvg is given below.
_PX_PER_UNIT = {
    "": 1.0,
    "px": 1.0,
    "pt": 4 / 3,
    "pc": 16.0,
    "mm": 96 / 25.4,
    "cm": 96 / 2.54,
    "in": 96.0,
}
_LENGTH = re.compile(
    r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf(?:inity)?))"
    r"(px|pt|pc|mm|cm|in|%|em|ex)?\s*",
    re.IGNORECASE,
)

# Measured with resvg 0.5.0 on a 614×614 filter region: the cost of feMorphology grows with
# the square of its radius (10 px: 1 s, 30 px: 8 s, 200 px: over a minute) and feConvolveMatrix
# with the square of its order (15: 1 s, 64: 17 s); feTurbulence grows by ~60 ms per octave
# (1e9 octaves never finish), yet octaves past the tenth add under 1/1024 of amplitude, which
# 8-bit output cannot show, so they are clamped rather than refused. feGaussianBlur is not
# capped: resvg switches to a box blur above σ=2, and σ=1e30 costs the same as σ=5 (66 ms).
# Transforms can still scale a radius up; the decoding worker's CPU cap is the backstop.
_MAX_MORPHOLOGY_PX = 16.0
_MAX_CONVOLVE_ORDER = 9
_MAX_OCTAVES = 10

# Not drawn where they stand, only where something references them (or never).
_NOT_DRAWN_IN_PLACE = frozenset(
    {"defs", "symbol", "pattern", "mask", "clipPath", "marker", "filter", "linearGradient"}
    | {"radialGradient", "style", "script", "title", "desc", "metadata", "foreignObject"}
)
# Colours, not drawings: a gradient used by every shape costs nothing per use, and resvg follows
# gradient href chains without recursing (5,000 deep measured fine), so they add no elements
# and no depth; they still take part in the loop check.
_PAINT_ONLY = frozenset({"linearGradient", "radialGradient", "stop"})

_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|(.))", re.DOTALL)
_CSS_LOAD = re.compile(r"@import|url\(\s*(['\"]?)\s*([^'\"\s)]*)", re.IGNORECASE)
_CSS_RULE = re.compile(r"([^{}]*)\{([^{}]*)\}")
_CSS_NOT_KEYS = re.compile(r"\[[^\]]*\]|::?[\w-]+(?:\([^)]*\))?")
_CSS_COMPOUND = re.compile(r"(\*|[A-Za-z_][\w-]*)?((?:[#.][\w-]+)*)")
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|jpg|gif|webp);base64,", re.IGNORECASE)
_PARSE_CHUNK = 64 * 1024


def looks_like_svg(data: bytes) -> bool:
    """Whether the bytes start like an SVG document (a cheap sniff; the parse decides)."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    starts = (b"<?xml", b"<svg", b"<!--", b"<!doctype svg")
    return head.startswith(starts) and b"<svg" in data[:4096].lower()


def rasterise_svg(data: bytes, side: int, limits: SvgLimits = SvgLimits()) -> bytes:
    """PNG bytes of the SVG drawn with its longer side `side` pixels.

    Raises ``NotAnImage``, ``BrokenImage`` or ``ImageTooLarge``; every check but the last
    (the size of the PNG resvg returns) runs before resvg is called.
    """
    if side < 1:
        raise ValueError(f"side must be at least 1 pixel, not {side}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BrokenImage("The SVG file is not valid UTF-8 text.") from exc
    root = _parse(text, limits)
    namespaced = _is_namespaced_svg(root)
    width, height, view_box = _root_size(root)
    if max(width, height) / min(width, height) > limits.max_aspect:
        raise ImageTooLarge(
            f"The SVG's longer side is more than {limits.max_aspect:g} times its shorter side."
        )
    canvas = _canvas(width, height, side)
    user_width, user_height = view_box or (width, height)
    px_per_unit = max(canvas[0] / user_width, canvas[1] / user_height)

    census = _take_census(root, namespaced, px_per_unit, side, limits)
    _check_drawing(root, _references(root, census, limits), census.pixels, limits)

    root.set("width", str(canvas[0]))
    root.set("height", str(canvas[1]))
    if view_box is None:
        # Without a viewBox resvg would draw the content at its own size in our corner.
        root.set("viewBox", f"0 0 {width!r} {height!r}")
    png = _draw(_serialise(root))
    if _png_size(png) != canvas:
        raise ImageTooLarge("The SVG could not be drawn at a safe size.")
    return png


def _canvas(width: float, height: float, side: int) -> tuple[int, int]:
    """Pixel width and height with the longer side `side`: resvg draws at exactly this size."""
    if width >= height:
        return side, max(1, round(side * height / width))
    return max(1, round(side * width / height)), side


def _parse(text: str, limits: SvgLimits) -> Element:
    target = _CappedTreeBuilder(limits)
    parser = _Parser(target)
    try:
        # Fed in chunks so that the caps in the target stop the parse before a huge tree exists.
        for start in range(0, len(text), _PARSE_CHUNK):
            parser.feed(text[start : start + _PARSE_CHUNK])
        root: Element = parser.close()
    except DefusedXmlException as exc:
        raise NotAnImage(
            "SVGs that declare XML entities or an inline DTD are not accepted."
        ) from exc
    except ParseError as exc:
        raise BrokenImage("The SVG file is not valid XML.") from exc
    return root


class _Parser(DefusedXMLParser):
    """defusedxml's parser (no entities, no external references), also refusing inline DTDs."""

    def __init__(self, target: _CappedTreeBuilder) -> None:
        super().__init__(target=target)
        self.parser.StartDoctypeDeclHandler = self._refuse_inline_dtd

    @staticmethod
    def _refuse_inline_dtd(name: str, sysid: str | None, pubid: str | None, inline: int) -> None:
        # The usual SVG 1.1 DOCTYPE only names an external DTD, which expat never fetches. An
        # internal subset can, besides entities, declare ATTLIST defaults that copy one long
        # value into every element: 20 MB × 20,000 elements, past the element cap's protection.
        if inline:
            raise DTDForbidden(name, sysid, pubid)


class _CappedTreeBuilder:
    """A parser target that builds the tree and stops at the first element past a cap.

    Comments and processing instructions are dropped, so the real root is the document element.
    """

    def __init__(self, limits: SvgLimits) -> None:
        self._builder = TreeBuilder()
        self._limits = limits
        self._elements = 0
        self._depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._elements += 1
        self._depth += 1
        if self._elements > self._limits.max_elements:
            raise ImageTooLarge(f"The SVG has more than {self._limits.max_elements:,} elements.")
        if self._depth > self._limits.max_depth:
            raise _too_deep(self._limits)
        return self._builder.start(tag, attrs)

    def end(self, tag: str) -> Element:
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, data: str) -> None:
        self._builder.data(data)

    def close(self) -> Element:
        return self._builder.close()


def _too_deep(limits: SvgLimits) -> ImageTooLarge:
    # Measured: resvg 0.5.0 dies with SIGSEGV past ~250 levels, nested or through references.
    return ImageTooLarge(f"The SVG nests elements more than {limits.max_depth} levels deep.")


def _is_namespaced_svg(root: Element) -> bool:
    if root.tag == f"{{{_SVG_NS}}}svg":
        return True
    if root.tag == "svg":  # resvg draws a root without a namespace as SVG (checked)
        return False
    raise NotAnImage("The file is XML but not an SVG image.")


def _root_size(root: Element) -> tuple[float, float, tuple[float, float] | None]:
    """The root's width and height in px, and its viewBox's width and height if it has one."""
    view_box = None
    numbers = _numbers(root.get("viewBox", ""))
    if len(numbers) == 4:  # resvg ignores a viewBox it cannot read, and so do we
        if not all(map(math.isfinite, numbers)) or min(numbers[2:]) <= 0:
            raise _bad_size()
        view_box = (numbers[2], numbers[3])
    width = _length(root.get("width"), view_box[0] if view_box else None)
    height = _length(root.get("height"), view_box[1] if view_box else None)
    if width is None or height is None:
        raise BrokenImage("The SVG has no size (it needs width and height or a viewBox).")
    if not all(math.isfinite(side) and side > 0 for side in (width, height)):
        raise _bad_size()
    return width, height, view_box


def _bad_size() -> BrokenImage:
    return BrokenImage("The SVG's width, height or viewBox is zero, negative or not a number.")


def _length(value: str | None, box_side: float | None) -> float | None:
    """A root width or height in px; the viewBox side for %, em, ex or an unreadable value."""
    match = _LENGTH.fullmatch(value) if value is not None else None
    if match is None:
        return box_side
    number, unit = float(match[1]), match[2] or ""
    if unit == "%":  # resvg takes a percentage of the viewBox
        return None if box_side is None else box_side * number / 100
    if unit in ("em", "ex"):
        return box_side
    return number * _PX_PER_UNIT[unit]


def _numbers(text: str) -> list[float]:
    """The numbers in a list such as a viewBox or a radius; an unreadable list gives none."""
    try:
        return [float(part) for part in re.split(r"[\s,]+", text.strip()) if part]
    except ValueError:
        return []


@dataclass
class _Census:
    """What one walk over the document found: ids, references, embedded images, stylesheets."""

    ids: dict[str, list[Element]] = field(default_factory=dict)
    references: dict[Element, list[str]] = field(default_factory=dict)
    pixels: dict[Element, int] = field(default_factory=dict)
    stylesheet: dict[str, set[str]] = field(default_factory=dict)  # see _stylesheet_ids


def _take_census(
    root: Element, namespaced: bool, px_per_unit: float, side: int, limits: SvgLimits
) -> _Census:
    census = _Census()
    filters = primitives = 0
    for element in root.iter():
        local = _local(element.tag)
        if namespaced and not element.tag.startswith("{"):
            element.tag = f"{{{_FOREIGN_NS}}}{local}"
        if local == "filter":
            filters += 1
            _check_filter_costs(element, px_per_unit, side)
        elif local.startswith("fe"):
            primitives += 1
        elif local == "style":
            for key, named in _stylesheet_ids("".join(element.itertext())).items():
                census.stylesheet.setdefault(key, set()).update(named)
        for key, value in element.attrib.items():
            name = _local(key)
            if name == "id":
                census.ids.setdefault(value, []).append(element)
            elif name == "href":
                target = value.strip()
                if target.startswith("#"):
                    census.references.setdefault(element, []).append(target[1:])
                elif target[:5].lower() == "data:":
                    census.pixels[element] = _embedded_pixels(target, limits)
                else:
                    # resvg would read the file from this machine's disk and draw it into the
                    # picture we send back; only self-contained SVGs are drawn.
                    raise NotAnImage(_EXTERNAL)
            if ids := _css_ids(value):
                census.references.setdefault(element, []).extend(ids)
    if filters > limits.max_filters or primitives > limits.max_filter_primitives:
        raise _too_many_filters(limits)
    return census


def _local(name: str) -> str:
    return name.rpartition("}")[2]


def _check_filter_costs(filter_element: Element, px_per_unit: float, side: int) -> None:
    # A radius in objectBoundingBox units is a fraction of the element, at most the picture.
    scale = side if filter_element.get("primitiveUnits") == "objectBoundingBox" else px_per_unit
    for primitive in filter_element:
        local = _local(primitive.tag)
        if local == "feTurbulence":
            octaves = _numbers(primitive.get("numOctaves", ""))
            if octaves and not octaves[0] <= _MAX_OCTAVES:
                primitive.set("numOctaves", str(_MAX_OCTAVES))
        elif local == "feMorphology":
            radius = max(_numbers(primitive.get("radius", "")), default=0.0)
            if not radius * scale <= _MAX_MORPHOLOGY_PX:
                raise ImageTooLarge("The SVG uses a filter effect too costly to draw.")
        elif local == "feConvolveMatrix":
            order = max(_numbers(primitive.get("order", "")), default=3.0)
            if not order <= _MAX_CONVOLVE_ORDER:
                raise ImageTooLarge("The SVG uses a filter effect too costly to draw.")


def _too_many_filters(limits: SvgLimits) -> ImageTooLarge:
    return ImageTooLarge(
        f"The SVG uses too many filters; the limit is {limits.max_filters} filters "
        f"with {limits.max_filter_primitives} steps in all."
    )


def _embedded_pixels(uri: str, limits: SvgLimits) -> int:
    """Width × height of a data: URI raster image, read from its header alone."""
    head = _DATA_IMAGE.match(uri)
    if head is None:
        if uri[:18].lower() == "data:image/svg+xml":
            raise NotAnImage("SVGs that embed other SVGs are not accepted.")
        raise NotAnImage("The SVG embeds data other than PNG, JPEG, GIF or WebP images.")
    try:
        # Not validated: whitespace and line breaks inside the data are common, and skipped.
        raw = base64.b64decode(uri[head.end() :])
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=_EMBEDDED_FORMATS) as image:
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(
            "An image embedded in the SVG has far more pixels than allowed."
        ) from exc
    except (binascii.Error, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BrokenImage(
            "An image embedded in the SVG is damaged or not a PNG, JPEG, GIF or WebP."
        ) from exc
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"An image embedded in the SVG is {width}×{height} pixels; "
            f"the limit is {limits.max_pixels / 1e6:g} megapixels."
        )
    return width * height


def _css_ids(text: str) -> list[str]:
    """Ids named by url(#id) in CSS or an attribute; anything loading from outside is refused."""
    if "\\" in text:
        # An escape can spell url( or @import in a way no plain search would see.
        text = _CSS_ESCAPE.sub(_unescape, text)
    ids = []
    for match in _CSS_LOAD.finditer(text):
        target = match[2]
        if target is None or not target.startswith("#"):
            raise NotAnImage(_EXTERNAL)
        ids.append(target[1:])
    return ids


def _unescape(match: re.Match[str]) -> str:
    if match[1] is None:
        return "" if match[2] == "\n" else match[2]
    code = int(match[1], 16)
    return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def _stylesheet_ids(css: str) -> dict[str, set[str]]:
    """Ids that stylesheet rules reference, keyed by one thing an element needs to match them.

    The key is the rightmost compound selector's id, else a class, else its type; everything
    else a selector asks for is ignored, so an element gets the references of every rule that
    could apply to it and possibly more. That errs towards refusing, never towards resvg
    following a reference we did not count.
    """
    ids = _css_ids(css)
    if not ids:
        return {}
    if "\\" in css:
        return {"*": set(ids)}  # escapes could hide a selector from the rough reading below
    keyed: dict[str, set[str]] = {}

    def take(rule: re.Match[str]) -> str:
        if found := _css_ids(rule[2]):
            for selector in rule[1].split(","):
                keyed.setdefault(_selector_key(selector), set()).update(found)
        return ""

    if leftover := _css_ids(_CSS_RULE.sub(take, css)):
        keyed.setdefault("*", set()).update(leftover)  # a rule we could not read: all elements
    return keyed


def _selector_key(selector: str) -> str:
    compound = re.split(r"[\s>+~]+", _CSS_NOT_KEYS.sub("", selector).strip())[-1]
    match = _CSS_COMPOUND.fullmatch(compound)
    if match is None:
        return "*"
    if found := re.search(r"#([\w-]+)", match[2]):
        return "#" + found[1]
    if found := re.search(r"\.([\w-]+)", match[2]):
        return "." + found[1]
    if match[1] and match[1] != "*":
        return "<" + match[1].lower()
    return "*"


def _element_keys(element: Element) -> Iterator[str]:
    """The keys of `_stylesheet_ids` whose rules may apply to the element."""
    yield "*"
    yield "<" + _local(element.tag).lower()
    if element_id := element.get("id"):
        yield "#" + element_id
    for name in element.get("class", "").split():
        yield "." + name


def _references(root: Element, census: _Census, limits: SvgLimits) -> dict[Element, list[Element]]:
    """Each element's referenced elements: href="#id", url(#id), and stylesheet rules."""
    stylesheet = census.stylesheet
    graph: dict[Element, list[Element]] = {}
    edges = 0
    for element in root.iter():
        groups: list[Iterable[str]] = [census.references.get(element, ())]
        if stylesheet:
            groups.extend(stylesheet.get(key, ()) for key in _element_keys(element))
        for group in groups:
            for target_id in group:
                # resvg ignores references to missing ids; every element with the id counts.
                for target in census.ids.get(target_id, ()):
                    graph.setdefault(element, []).append(target)
                    edges += 1
                    # Each reference draws at least one element: stop before a huge graph.
                    if edges > limits.max_expanded:
                        raise _too_expanded(limits)
    return graph


def _too_expanded(limits: SvgLimits) -> ImageTooLarge:
    return ImageTooLarge(
        f"The SVG draws more than {limits.max_expanded:,} elements once its references "
        "are followed."
    )


class _Drawn(NamedTuple):
    """What drawing one element costs once its references are followed."""

    elements: int
    filters: int
    primitives: int
    pixels: int
    depth: int


def _check_drawing(
    root: Element,
    graph: dict[Element, list[Element]],
    pixels: dict[Element, int],
    limits: SvgLimits,
) -> None:
    """Refuse reference loops, and drawings past the caps once references are followed.

    A depth-first walk with its own stack (a chain of 20,000 references must not reach
    Python's recursion limit), memoised so that a reference used twice is measured once.
    """
    drawn: dict[Element, _Drawn] = {}
    on_path = {root}
    stack: list[tuple[Element, Iterator[Element]]] = [(root, _next_to(root, graph))]
    while stack:
        element, pending = stack[-1]
        for following in pending:
            if following in on_path:
                raise BrokenImage("The SVG has elements that refer to each other in a loop.")
            if following not in drawn:
                on_path.add(following)
                stack.append((following, _next_to(following, graph)))
                break
        else:
            stack.pop()
            on_path.discard(element)
            drawn[element] = _measure(element, graph, pixels, drawn, limits)
    total = drawn[root]
    if total.elements > limits.max_expanded:
        raise _too_expanded(limits)
    if total.depth > limits.max_depth:
        raise _too_deep(limits)
    if total.filters > limits.max_filters or total.primitives > limits.max_filter_primitives:
        raise _too_many_filters(limits)
    if total.pixels > limits.max_pixels:
        raise ImageTooLarge(
            f"The SVG's embedded images add up to more than {limits.max_pixels / 1e6:g} "
            "megapixels as drawn."
        )


def _next_to(element: Element, graph: dict[Element, list[Element]]) -> Iterator[Element]:
    # Every child counts for loops, even one that is not drawn where it stands.
    yield from element
    yield from graph.get(element, ())


def _measure(
    element: Element,
    graph: dict[Element, list[Element]],
    pixels: dict[Element, int],
    drawn: dict[Element, _Drawn],
    limits: SvgLimits,
) -> _Drawn:
    parts = [drawn[child] for child in element if _local(child.tag) not in _NOT_DRAWN_IN_PLACE]
    parts.extend(drawn[target] for target in graph.get(element, ()))
    local = _local(element.tag)
    own = local not in _PAINT_ONLY
    # Sums saturate just past their cap: 2**20 copies need not become 2**20-sized integers.
    return _Drawn(
        elements=min(own + sum(p.elements for p in parts), limits.max_expanded + 1),
        filters=min((local == "filter") + sum(p.filters for p in parts), limits.max_filters + 1),
        primitives=min(
            local.startswith("fe") + sum(p.primitives for p in parts),
            limits.max_filter_primitives + 1,
        ),
        pixels=min(pixels.get(element, 0) + sum(p.pixels for p in parts), limits.max_pixels + 1),
        depth=min(own + max((p.depth for p in parts), default=0), limits.max_depth + 1),
    )


def _serialise(root: Element) -> str:
    _register_namespaces()
    return ElementTree.tostring(root, encoding="unicode")


@functools.cache
def _register_namespaces() -> None:
    # The output then reads like an ordinary SVG (xmlns="…/svg", xlink:href) instead of ns0:
    # and ns1: prefixes. ElementTree's prefix map is process-wide, hence once, on first use.
    ElementTree.register_namespace("", _SVG_NS)
    ElementTree.register_namespace("xlink", _XLINK_NS)


def _draw(svg: str) -> bytes:
    import resvg_py  # imported lazily: only SVG queries pay for it

    try:
        # dpi=96: resvg_py's default of 0 turns every mm, cm, in, pt and pc inside the art into 0.
        # System fonts stay on: Loot-style art is nothing but <text> in serif or monospace, and
        # resvg's generic families (Times New Roman, Courier New, ...) are missing on Linux, so
        # they point at DejaVu (Debian's fonts-dejavu-core). Measured per call at 512×512 on the
        # 2-core dev box (22 font files): shapes only, 12.0 ms with system fonts and 13.0 ms with
        # skip_system_fonts=True (the font scan is lost in the noise); eight Loot lines, 17.2 ms
        # with system fonts, 17.2 ms with one explicit font file, 6.0 ms skipped, with no text.
        png = resvg_py.svg_to_bytes(
            svg_string=svg,
            dpi=96.0,
            font_family="DejaVu Sans",
            serif_family="DejaVu Serif",
            sans_serif_family="DejaVu Sans",
            monospace_family="DejaVu Sans Mono",
            cursive_family="DejaVu Serif",
            fantasy_family="DejaVu Serif",
        )
    except Exception as exc:  # resvg_py raises ValueError, but any failure means the same
        raise BrokenImage(_UNDRAWABLE) from exc
    return bytes(png)


def _png_size(png: bytes) -> tuple[int, int] | None:
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", png[16:24])
    return width, height
