"""CLI glue for ``python -m core demo``: ingest, index and query a generated collection."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path
from typing import Any

from PIL import Image

from core.app import make_embedder, open_engine, open_store
from core.config import Settings
from core.demo.samples import screenshot, write_sample_dataset
from core.imaging.decode import ImageLimits
from core.ingest.service import ingest
from core.render.collage import render_collage
from core.search.cli import format_result
from core.search.indexing import build_index

# The demo queries token 5, so it needs at least six.
MIN_TOKENS = 6


def add_commands(commands: Any) -> None:
    demo = commands.add_parser("demo", help="the whole flow on a generated sample collection")
    demo.add_argument("--count", type=int, default=48, help="how many sample tokens (default 48)")
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    # The demo keeps its own database and index so it never mixes with real collections.
    demo_dir = settings.data_dir / "demo"
    settings = settings.model_copy(update={"data_dir": demo_dir, "database_url": None})
    count = max(MIN_TOKENS, args.count)
    dataset = write_sample_dataset(demo_dir / "dataset", count=count)
    print(f"1. generated {count} sample tokens in {dataset}")

    store = open_store(settings)
    try:
        limits = ImageLimits(settings.images.max_bytes, settings.images.max_pixels)
        report = ingest(dataset, store, settings.data_dir, limits)
        print("2. ingest: " + report.summary().replace("\n", "\n   "))
        index = build_index(store, make_embedder(settings), settings)
        print(
            f"3. index: embedded {index.embedded} images ({index.images_per_second:.1f} img/s); "
            f"{index.indexed} vectors ({index.kind})"
        )
    finally:
        store.close()

    shot_path = demo_dir / "screenshot-of-token-5.jpg"
    token_image = Image.open(dataset / "images" / "5.png")
    shot_path.write_bytes(
        screenshot(token_image, tile=(99, 133, 150), page=(32, 34, 37), scale=11, smooth=True)
    )
    collage_path = demo_dir / "collage.png"
    asyncio.run(_queries(settings, shot_path, collage_path))
    print(f"5. collage of the screenshot query's matches: {collage_path}")
    return 0


async def _queries(settings: Settings, shot: Path, collage: Path) -> None:
    async with open_engine(settings) as engine:
        print("4. similar:")
        for query in ("lens-critters:5", str(shot)):
            result = await engine.similar.similar(query, k=5)
            print("   " + format_result(result).replace("\n", "\n   "))
        limits = ImageLimits(settings.images.max_bytes, settings.images.max_pixels)
        query_image = Image.open(io.BytesIO(shot.read_bytes()))
        collage.write_bytes(render_collage(query_image, result.matches, limits))
