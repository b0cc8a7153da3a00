"""A generated collection whose prices follow known premiums, for the pricing tests.

Critters (core.demo.samples) whose Body and Hat carry multiplicative premiums over a market
level that random-walks and then booms; each sale is level × premiums × noise. Known rules,
so a test can check the model learned them, and a few sales share timestamps, as real ones do.
"""

from __future__ import annotations

import csv
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.demo.samples import BODIES, EYES, HATS, MOUTHS, draw_critter

SLUG = "synth-critters"
START = datetime(2021, 1, 1, tzinfo=UTC)
DAYS = 540
# The cut the tests train until; the boom starts shortly after it.
CUT = START + timedelta(days=420)
BODY_PREMIUM = {"Mint": 1.0, "Coral": 1.0, "Sky": 1.3, "Sand": 1.0, "Plum": 3.0}
UNSOLD = 10
HAT_PREMIUM = {"None": 1.0, "Cap": 1.1, "Crown": 2.5, "Beanie": 1.0, "Halo": 1.6}


def write_synthetic(directory: Path, tokens: int = 170, sales: int = 1200, seed: int = 3) -> Path:
    """Write the dataset (with daily floors and USD rates) into ``directory``; return it.

    The last ``UNSOLD`` tokens never sell.
    """
    rng = random.Random(seed)
    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)
    (directory / "collection.json").write_text(
        json.dumps(
            {
                "slug": SLUG,
                "name": "Synthetic Critters",
                "chain": "ethereum",
                "contract": "0x" + "5c" * 20,
                "currency": "ETH",
                "marketplace": "opensea",
            }
        )
    )
    premium: dict[str, float] = {}
    lines = []
    for token in range(tokens):
        traits = {
            "Body": rng.choices(list(BODIES), weights=[30, 30, 15, 20, 5])[0],
            "Eyes": rng.choice(EYES),
            "Hat": rng.choices(HATS, weights=[40, 20, 5, 25, 10])[0],
            "Mouth": rng.choice(MOUTHS),
        }
        draw_critter(traits).save(images / f"{token}.png")
        premium[str(token)] = BODY_PREMIUM[traits["Body"]] * HAT_PREMIUM[traits["Hat"]]
        attributes = [{"trait_type": k, "value": v} for k, v in traits.items()]
        lines.append(
            json.dumps(
                {"token_id": str(token), "image": f"images/{token}.png", "attributes": attributes}
            )
        )
    (directory / "tokens.jsonl").write_text("\n".join(lines) + "\n")
    with (directory / "sales.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["token_id", "timestamp", "price", "currency", "tx", "seller", "buyer"])
        moments = sorted(
            START + timedelta(seconds=rng.uniform(0, DAYS * 86_400)) for _ in range(sales)
        )
        for n, moment in enumerate(moments):
            if n % 40 == 1:
                moment = moments[n - 1]  # a sweep: several sales in one block
            token = str(rng.randrange(tokens - UNSOLD))
            price = level(moment) * premium[token] * math.exp(rng.gauss(0, 0.12))
            writer.writerow(
                [token, moment.isoformat(), f"{price:.5f}", "ETH", f"0x{n:064x}", "0xs", "0xb"]
            )
    with (directory / "floor_daily.csv").open("w", newline="") as handle:
        handle.write("date,floor\n")
        for day in range(DAYS):
            moment = START + timedelta(days=day)
            handle.write(f"{moment:%Y-%m-%d},{0.9 * level(moment):.5f}\n")
    with (directory / "usd_daily.csv").open("w", newline="") as handle:
        handle.write("date,usd\n")
        for day in range(DAYS):
            moment = START + timedelta(days=day)
            handle.write(f"{moment:%Y-%m-%d},{2000 + day}\n")
    return directory


def level(moment: datetime) -> float:
    """The market level: a gentle rise, then a boom after the cut."""
    days = (moment - START).total_seconds() / 86_400
    boom = max(0.0, days - 440) / 100
    return 1.0 * math.exp(0.001 * days + boom)
