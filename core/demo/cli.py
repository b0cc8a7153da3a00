"""CLI glue for ``python -m core demo``: ingest, index, query and value a generated collection."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol

from PIL import Image

from core.config import Settings
from core.demo.samples import screenshot, write_sample_dataset
from core.errors import InputError
from core.ingest.service import Ingester
from core.pricing.cli import format_estimate, format_train
from core.pricing.service import PriceService
from core.render.collage import render_collage
from core.search.cli import format_result
from core.search.indexing import Indexer
from core.search.similar import SimilarService
from core.storage.files import atomic_write

# The demo queries token 5, so it needs at least six.
MIN_TOKENS = 6
SLUG = "lens-critters"
# The price model learns from the sales before this day and is scored on the ones after.
TRAIN_UNTIL = datetime(2024, 9, 1, tzinfo=UTC)


class DemoServices(Protocol):
    """What the demo needs from the engine."""

    @property
    def settings(self) -> Settings: ...

    @property
    def ingester(self) -> Ingester: ...

    @property
    def indexer(self) -> Indexer: ...

    @property
    def similar(self) -> SimilarService: ...

    @property
    def pricing(self) -> PriceService: ...


def add_commands(commands: Any) -> None:
    demo = commands.add_parser("demo", help="the whole flow on a generated sample collection")
    demo.add_argument("--count", type=int, default=48, help="how many sample tokens (default 48)")
    demo.set_defaults(run=run_demo, settings=demo_settings)


def demo_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """The demo keeps its own database and index so it never mixes with real collections."""
    return settings.model_copy(
        update={"data_dir": settings.data_dir / "demo", "database_url": None}
    )


async def run_demo(args: argparse.Namespace, engine: DemoServices) -> int:
    demo_dir = engine.settings.data_dir
    count = max(MIN_TOKENS, args.count)
    dataset = await asyncio.to_thread(write_sample_dataset, demo_dir / "dataset", count)
    print(f"1. generated {count} sample tokens in {dataset}")

    report = await asyncio.to_thread(engine.ingester.ingest, dataset)
    print("2. ingest: " + report.summary().replace("\n", "\n   "))
    index = await asyncio.to_thread(engine.indexer.run)
    print(
        f"3. index: embedded {index.embedded} images ({index.images_per_second:.1f} img/s); "
        f"{index.indexed} vectors ({index.kind})"
    )

    shot_path = demo_dir / "screenshot-of-token-5.jpg"
    with Image.open(dataset / "images" / "5.png") as token_image:
        shot = screenshot(
            token_image, tile=(99, 133, 150), page=(32, 34, 37), scale=11, smooth=True
        )
    atomic_write(shot_path, shot)

    print("4. similar:")
    for query in (f"{SLUG}:5", str(shot_path)):
        result = await engine.similar.similar(query, k=5, allow_files=True, preview=True)
        print("   " + format_result(result).replace("\n", "\n   "))
    previews = await engine.similar.previews([match.image for match in result.matches])
    collage_path = demo_dir / "collage.png"
    atomic_write(collage_path, render_collage(result.preview, result.matches, previews))
    print(f"5. collage of the screenshot query's matches: {collage_path}")

    try:
        trained = await asyncio.to_thread(engine.pricing.train, SLUG, TRAIN_UNTIL, ablations=False)
    except InputError as exc:
        # Too few sales (a small --count): say so rather than pretend.
        print(f"6. price model: {exc}")
        return 0
    print("6. price model: " + format_train(trained).replace("\n", "\n   "))
    estimate = await asyncio.to_thread(engine.pricing.value, SLUG, "5")
    print("7. value: " + format_estimate(estimate).replace("\n", "\n   "))
    return 0
