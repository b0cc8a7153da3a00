"""The ``../shared`` files benchmarks read (never the running product), and a small dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"
PUNKS = SHARED / "data" / "cryptopunks"


def punk_dataset(target: Path, tokens: int) -> Path:
    """An ``ingest`` directory of the first ``tokens`` CryptoPunks (no sales)."""
    (target / "images").mkdir(parents=True)
    shutil.copy(PUNKS / "collection.json", target)
    lines = (PUNKS / "tokens.jsonl").read_text().splitlines()[:tokens]
    (target / "tokens.jsonl").write_text("\n".join(lines) + "\n")
    for i in range(tokens):
        shutil.copy(PUNKS / "images" / f"{i}.png", target / "images")
    return target
