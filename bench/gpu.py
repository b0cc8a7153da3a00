"""The GPU embedding path: 20,000 punks through Keras on the GPU, per batch size, and
whether the decode side keeps up.

    python -m bench.gpu [--n 20000] [--batches 64,256,1024,4096] [--decoders 1,2,4]

Run it on a machine with a GPU (TensorFlow must see it; the script says which device ran).
The canonical views are made first by ``--decoders`` processes (timed: the decode side must
feed the model, one process per few thousand punks a second), then embedded at each batch
size after a warm-up batch. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"
SIZE = 96


def _views(paths: list[str]) -> np.ndarray:
    from core.imaging.canonical import canonicalise

    return np.stack([canonicalise(Image.open(p), SIZE, (128, 128, 128)) for p in paths])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batches", default="64,256,1024,4096")
    parser.add_argument("--decoders", default="1,2,4")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    punks = sorted((SHARED / "data" / "cryptopunks" / "images").glob("*.png"))
    paths = [str(punks[i % len(punks)]) for i in range(args.n)]
    decode_rows = []
    views = np.empty((0, SIZE, SIZE, 3), np.uint8)
    for workers in (int(w) for w in args.decoders.split(",")):
        chunks = [paths[i : i + 500] for i in range(0, len(paths), 500)]
        started = time.perf_counter()
        with ProcessPoolExecutor(workers) as pool:
            views = np.concatenate(list(pool.map(_views, chunks)))
        decode_rows.append((workers, len(paths) / (time.perf_counter() - started)))

    from core.embedding.vgg16 import VGG16Embedder

    embedder = VGG16Embedder(str(WEIGHTS) if WEIGHTS.is_file() else "none", SIZE)
    embedder.warm_up()
    device = embedder.device
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        embedder.embed_batch(views[:batch])
        started = time.perf_counter()
        for start in range(0, len(views), batch):
            embedder.embed_batch(views[start : start + batch])
        rows.append((batch, len(views) / (time.perf_counter() - started)))

    print(f"\n`python -m bench.gpu` ({len(views):,} punks at {SIZE} px on {device})\n")
    print("| runtime | batch | images/s |\n|---|---:|---:|")
    for batch, speed in rows:
        print(f"| keras float32 | {batch} | {speed:,.0f} |")
    print("\n| decode processes | canonical views/s |\n|---:|---:|")
    for workers, speed in decode_rows:
        print(f"| {workers} | {speed:,.0f} |")


if __name__ == "__main__":
    main()
