"""A small generated pixel-art collection ("Lens Critters") and marketplace-style screenshots.

Generated rather than shipped: no binary files in the repository, and the same seed always
gives the same critters, traits and sales.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw

SIDE = 24
BODIES = {
    "Mint": (126, 214, 163),
    "Coral": (245, 130, 110),
    "Sky": (120, 170, 240),
    "Sand": (222, 196, 140),
    "Plum": (160, 100, 190),
}
EYES = ["Dots", "Wide", "Sleepy", "Shades"]
HATS = ["None", "Cap", "Crown", "Beanie", "Halo"]
MOUTHS = ["Smile", "Flat", "Open"]
# What the market pays for a trait, as a multiple of the collection's level: the demo's price
# model has something real to learn.
PREMIUMS = {"Crown": 3.0, "Halo": 2.2, "Shades": 1.6, "Plum": 1.4}
SALES_PER_TOKEN = 6
OUTLINE = (20, 20, 24, 255)


def write_sample_dataset(directory: Path, count: int = 48, seed: int = 7) -> Path:
    """Write a canonical-layout dataset of ``count`` critters with sales; returns the dir."""
    rng = random.Random(seed)
    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)
    (directory / "collection.json").write_text(
        json.dumps(
            {
                "slug": "lens-critters",
                "name": "Lens Critters (demo)",
                "chain": "ethereum",
                "contract": None,
                "currency": "ETH",
                "marketplace": "opensea",
            },
            indent=1,
        )
    )
    lines = []
    premium = []
    for token in range(count):
        traits = {
            "Body": rng.choice(list(BODIES)),
            "Eyes": rng.choice(EYES),
            "Hat": rng.choice(HATS),
            "Mouth": rng.choice(MOUTHS),
        }
        premium.append(math.prod(PREMIUMS.get(v, 1.0) for v in traits.values()))
        draw_critter(traits).save(images / f"{token}.png")
        lines.append(
            json.dumps(
                {
                    "token_id": str(token),
                    "image": f"images/{token}.png",
                    "attributes": [{"trait_type": k, "value": v} for k, v in traits.items()],
                }
            )
        )
    (directory / "tokens.jsonl").write_text("\n".join(lines) + "\n")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    days = 300
    moments = sorted(rng.randrange(24 * days) for _ in range(count * SALES_PER_TOKEN))
    with (directory / "sales.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["token_id", "timestamp", "price", "currency", "tx", "seller", "buyer"])
        for n, hours in enumerate(moments):
            token = rng.randrange(count)
            # A level that doubles over the period, the token's trait premium, and noise.
            level = 0.3 * 2 ** (hours / (24 * days))
            price = level * premium[token] * math.exp(rng.gauss(0, 0.15))
            writer.writerow(
                [
                    token,
                    (start + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    round(price, 3),
                    "ETH",
                    f"0x{n:064x}",
                    f"0x{rng.getrandbits(160):040x}",
                    f"0x{rng.getrandbits(160):040x}",
                ]
            )
    return directory


def draw_critter(traits: dict[str, str]) -> Image.Image:
    """One 24×24 transparent critter with the given traits."""
    image = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    body = (*BODIES[traits["Body"]], 255)
    draw.ellipse((4, 6, 19, 23), fill=body, outline=OUTLINE)
    eyes = traits["Eyes"]
    if eyes == "Shades":
        draw.rectangle((7, 11, 16, 13), fill=OUTLINE)
    else:
        height = {"Dots": 1, "Wide": 2, "Sleepy": 0}[eyes]
        for x in (8, 14):
            draw.rectangle((x, 12, x + 1, 12 + height), fill=(255, 255, 255, 255), outline=OUTLINE)
    mouth = traits["Mouth"]
    if mouth == "Smile":
        draw.arc((9, 14, 14, 19), 20, 160, fill=OUTLINE)
    elif mouth == "Flat":
        draw.line((9, 18, 14, 18), fill=OUTLINE)
    else:
        draw.ellipse((10, 16, 13, 19), fill=(120, 30, 40, 255), outline=OUTLINE)
    hat = traits["Hat"]
    if hat == "Cap":
        draw.rectangle((5, 4, 17, 7), fill=(200, 40, 40, 255), outline=OUTLINE)
        draw.rectangle((15, 7, 20, 8), fill=(200, 40, 40, 255))
    elif hat == "Crown":
        draw.polygon(
            [(6, 7), (6, 2), (9, 5), (12, 1), (15, 5), (18, 2), (18, 7)],
            fill=(250, 210, 60, 255),
            outline=OUTLINE,
        )
    elif hat == "Beanie":
        draw.pieslice((5, 1, 18, 13), 180, 360, fill=(60, 90, 200, 255), outline=OUTLINE)
    elif hat == "Halo":
        draw.ellipse((7, 0, 16, 3), outline=(250, 230, 120, 255))
    return image


Sides = tuple[float, float, float, float]


def screenshot(
    image: Image.Image,
    tile: tuple[int, int, int],
    page: tuple[int, int, int],
    scale: float,
    margin: Sides = (0.2, 0.2, 0.2, 0.2),
    crop: Sides = (0.03, 0.03, 0.03, 0.03),
    quality: int = 75,
    smooth: bool = False,
) -> bytes:
    """JPEG bytes of ``image`` as a marketplace shows it: on a tile, on a page, scaled up,
    cropped a little. ``margin`` and ``crop`` are (left, top, right, bottom) shares of the
    scaled art's width; a crop larger than the margin cuts into the art."""
    art = Image.new("RGBA", image.size, (*tile, 255))
    art.alpha_composite(image.convert("RGBA"))
    size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
    resample = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    art_rgb = art.convert("RGB").resize(size, resample)
    left, top, right, bottom = (round(m * size[0]) for m in margin)
    canvas = Image.new("RGB", (size[0] + left + right, size[1] + top + bottom), page)
    canvas.paste(art_rgb, (left, top))
    cl, ct, cr, cb = (round(c * size[0]) for c in crop)
    canvas = canvas.crop((cl, ct, canvas.width - cr, canvas.height - cb))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=quality)
    return out.getvalue()
