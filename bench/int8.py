"""The INT8 runtime against Keras float32: conversion, vector quality, speed, screenshot recall.

    python -m bench.int8 --data-dir DIR [--n 300] [--throughput 1024]

``DIR`` is a data directory holding the CryptoPunks (the calibration images come from the
engine, as they do for users). Converts once (``embedding.runtime: openvino-int8``, timed),
then, in one run on this machine:

- model-only throughput of both runtimes on canonical 96 px punk views (batches of 64);
- screenshot recall@1 (bench/screenshots.py) of ``--n`` punks, ``--n`` Moonbirds, and both
  in one mixed index, each runtime searching its own vectors of the originals;
- the INT8 vectors against float32 ones: cosine and 10 nearest neighbours kept.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"


def views(paths: list[Path], size: int) -> np.ndarray:
    from core.imaging.canonical import canonicalise

    return np.stack([canonicalise(Image.open(p), size, (128, 128, 128)) for p in paths])


def screenshot_views(paths: list[Path], size: int, seed: int) -> np.ndarray:
    from bench.screenshots import make_screenshot
    from core.imaging.canonical import canonicalise

    rng = np.random.default_rng(seed)
    return np.stack(
        [canonicalise(make_screenshot(Image.open(p).convert("RGBA"), rng), size, (128,) * 3)
         for p in paths]
    )  # fmt: skip


def recall_at_1(index: np.ndarray, queries: np.ndarray) -> float:
    return float(np.mean(np.argmax(queries @ index.T, axis=1) == np.arange(len(queries))))


def throughput(embed: object, batch: np.ndarray) -> float:
    run = embed.embed_batch  # type: ignore[attr-defined]
    run(batch[:64])
    started = time.perf_counter()
    for start in range(0, len(batch), 64):
        run(batch[start : start + 64])
    return len(batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--throughput", type=int, default=1024)
    args = parser.parse_args()
    os.environ["NFTLENS_DATA_DIR"] = str(args.data_dir)
    os.environ.setdefault("NFTLENS_VGG16_WEIGHTS", str(WEIGHTS))

    from core.app import make_decoder, make_embedder
    from core.config import load_settings
    from core.embedding.runtime import choose_embedder
    from core.storage import Storage
    from core.storage.images import ImageStore

    settings = load_settings()
    settings = settings.model_copy(
        update={"embedding": settings.embedding.model_copy(update={"runtime": "openvino-int8"})}
    )
    reference = make_embedder(settings)
    reference.warm_up()
    storage = Storage.open(settings.db_url)
    decoder = make_decoder(settings, background=True)
    try:
        started = time.perf_counter()
        int8 = choose_embedder(
            settings, reference, storage, ImageStore(settings.data_dir), decoder
        )
        converted = time.perf_counter() - started
    finally:
        decoder.close()
        storage.close()
    if int8 is reference:
        raise SystemExit("the INT8 runtime was not chosen; see the log line above")
    int8.warm_up()
    size = reference.input_size

    punks = sorted((SHARED / "data" / "cryptopunks" / "images").glob("*.png"),
                   key=lambda p: int(p.stem))  # fmt: skip
    birds = sorted((SHARED / "data" / "moonbirds" / "images").glob("*.png"),
                   key=lambda p: int(p.stem))  # fmt: skip
    rng = np.random.default_rng(0)
    punks = [punks[i] for i in sorted(rng.choice(len(punks), args.n, replace=False))]
    birds = [birds[i] for i in sorted(rng.choice(len(birds), min(args.n, len(birds)),
                                                 replace=False))]  # fmt: skip
    sets = {"punks": punks, "moonbirds": birds}
    originals = {name: views(paths, size) for name, paths in sets.items()}
    shots = {name: screenshot_views(paths, size, 1) for name, paths in sets.items()}

    rows = []
    for runtime, embedder in (("keras float32", reference), ("openvino int8", int8)):
        speed = throughput(
            embedder, np.resize(originals["punks"], (args.throughput, size, size, 3))
        )
        index = {name: embedder.embed_batch(v) for name, v in originals.items()}
        query = {name: embedder.embed_batch(v) for name, v in shots.items()}
        mixed_index = np.concatenate([index["punks"], index["moonbirds"]])
        mixed_query = np.concatenate([query["punks"], query["moonbirds"]])
        rows.append((runtime, speed, recall_at_1(index["punks"], query["punks"]),
                     recall_at_1(index["moonbirds"], query["moonbirds"]),
                     recall_at_1(mixed_index, mixed_query), index))  # fmt: skip

    ref_all = np.concatenate([rows[0][5]["punks"], rows[0][5]["moonbirds"]])
    int_all = np.concatenate([rows[1][5]["punks"], rows[1][5]["moonbirds"]])
    cosine = np.sum(ref_all * int_all, axis=1)
    near = lambda v: np.argsort(-(v @ v.T - 2 * np.eye(len(v))), axis=1)[:, :10]  # noqa: E731
    kept = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(near(ref_all), near(int_all),
                                                                strict=True)])  # fmt: skip

    print(f"\n`python -m bench.int8` ({args.n} punks, {len(birds)} Moonbirds, 96 px, 2 cores; "
          f"conversion and calibration {converted:.0f} s, once)\n")  # fmt: skip
    print("| runtime | model images/s | recall@1 punks | recall@1 Moonbirds | recall@1 mixed |")
    print("|---|---:|---:|---:|---:|")
    for runtime, speed, r_p, r_b, r_m, _ in rows:
        print(f"| {runtime} | {speed:.0f} | {r_p:.3f} | {r_b:.3f} | {r_m:.3f} |")
    print(
        f"\nINT8 against float32 on these {len(ref_all)} originals: cosine min "
        f"{cosine.min():.4f}, mean {cosine.mean():.4f}; 10 nearest neighbours kept {kept:.3f}."
    )


if __name__ == "__main__":
    main()
