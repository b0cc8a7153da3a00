"""Fakes and factories for the bot tests: a watched embedder and a small tracked library."""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from core.demo.samples import draw_critter, write_sample_dataset
from core.imaging.workers import ImageDecoder
from tests.datasets import make_settings
from tests.engines import engine_for
from tests.fakes import FakeEmbedder, WrappingEmbedder

CRITTERS = "lens-critters"
CRITTERS_CONTRACT = "0x" + "ab" * 20
SOLANA = "sol-critters"
MINTS = (
    "7Ypu2Qz3vk8u5Q1AdG1hgDgS6PoP5KWyKqELMtpnrNBy",
    "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
    "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R",
)


class WatchedEmbedder(WrappingEmbedder):
    """Wraps ``FakeEmbedder``, counting how many ``embed_batch`` calls overlap.

    With ``gate`` set, each call waits for it, so a test can hold embeddings in flight while
    it checks that no more than the configured number ever run at once.
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__(FakeEmbedder())
        self.gate = gate
        self.active = 0
        self.max_active = 0
        self.calls = 0
        self._lock = threading.Condition()

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.max_active = max(self.max_active, self.active)
            self._lock.notify_all()
        try:
            if self.gate is not None and not self.gate.wait(timeout=30):
                raise TimeoutError("the test never opened the embedder's gate")
            return self.inner.embed_batch(images)
        finally:
            with self._lock:
                self.active -= 1
                self._lock.notify_all()

    def wait_active(self, count: int, timeout: float = 15.0) -> bool:
        """Block (in a worker thread) until ``count`` calls are inside ``embed_batch``."""
        with self._lock:
            return self._lock.wait_for(lambda: self.active >= count, timeout)


@dataclass(frozen=True)
class Library:
    """A data directory with two indexed collections, shared read-only by the bot tests."""

    root: Path
    critters: Path  # the dataset directory of lens-critters (its images are query pictures)


def critter_png(token: int, library: Library) -> bytes:
    return (library.critters / "images" / f"{token}.png").read_bytes()


def screenshot_png(token: int, library: Library, scale: int = 8) -> bytes:
    """A critter scaled up on a grey page, like a screenshot someone would upload."""
    art = Image.open(io.BytesIO(critter_png(token, library))).convert("RGBA")
    big = art.resize((art.width * scale, art.height * scale), Image.Resampling.NEAREST)
    page = Image.new("RGBA", (big.width + 40, big.height + 40), (40, 42, 48, 255))
    page.alpha_composite(big, (20, 20))
    out = io.BytesIO()
    page.convert("RGB").save(out, "PNG")
    return out.getvalue()


def build_library(root: Path, decoder: ImageDecoder) -> Library:
    """Generate, ingest and index 24 critters (ethereum) and 3 Solana critters."""
    settings = make_settings(root)
    critters = write_sample_dataset(root / "critters", count=24)
    meta = json.loads((critters / "collection.json").read_text())
    meta["contract"] = CRITTERS_CONTRACT
    (critters / "collection.json").write_text(json.dumps(meta))
    solana = _write_solana(root / "solana")
    with engine_for(settings, decoder, embedder=FakeEmbedder()) as engine:
        for dataset in (critters, solana):
            engine.ingester.ingest(dataset, progress=False)
        engine.indexer.run(progress=False)
    return Library(root, critters)


def _write_solana(directory: Path) -> Path:
    (directory / "images").mkdir(parents=True, exist_ok=True)
    (directory / "collection.json").write_text(
        json.dumps(
            {
                "slug": SOLANA,
                "name": "Sol Critters",
                "chain": "solana",
                "contract": None,
                "currency": "SOL",
                "marketplace": "magiceden",
            }
        )
    )
    lines = []
    for n, mint in enumerate(MINTS):
        traits = {
            "Body": "Plum",
            "Eyes": ["Dots", "Wide", "Shades"][n],
            "Hat": "Halo",
            "Mouth": "Smile",
        }
        draw_critter(traits).save(directory / "images" / f"{mint}.png")
        lines.append(
            json.dumps(
                {
                    "token_id": mint,
                    "image": f"images/{mint}.png",
                    "attributes": [{"trait_type": k, "value": v} for k, v in traits.items()],
                }
            )
        )
    (directory / "tokens.jsonl").write_text("\n".join(lines) + "\n")
    start = datetime(2024, 6, 1, tzinfo=UTC)
    with (directory / "sales.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["token_id", "timestamp", "price", "currency", "tx", "seller", "buyer"])
        for n in range(6):
            moment = start + timedelta(days=3 * n)
            writer.writerow(
                [
                    MINTS[n % 3],
                    moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    10 + n,
                    "SOL",
                    f"sig{n}",
                    "seller",
                    "buyer",
                ]
            )
    return directory
