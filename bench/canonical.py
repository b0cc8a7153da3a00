"""The canonical view on large art: speed per core, and screenshot recall kept.

    python -m bench.canonical [--n 300] [--repeat 10]

Compares the mask work at the old working sides (images reduced only above 1,024 px; then
reduced to 256 px) with today's (``REDUCE_ABOVE`` and ``WORK_SIDE``) in one run: images/s
on one core for 512 and 1,000 px art (opaque on a flat backdrop, and transparent), and
screenshot recall@1
(bench/screenshots.py, Keras float32 at 96 px with the real weights) on ``--n`` punks and
``--n`` Moonbirds.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"
OLD_WORK_SIDE = 1024
CANON_V3_WORK_SIDE = 256


def art(side: int, transparent: bool, token_id: int = 7) -> Image.Image:
    """A Moonbird scaled up to ``side`` (Lanczos, as large art is drawn), on a flat backdrop
    saved as JPEG, or kept transparent."""
    path = SHARED / "data" / "moonbirds" / "images" / f"{token_id}.png"
    bird = Image.open(path).convert("RGBA")
    big = bird.resize((side, side), Image.Resampling.LANCZOS)
    if transparent:
        return big
    page = Image.new("RGBA", big.size, (229, 225, 210, 255))
    page.alpha_composite(big)
    out = io.BytesIO()
    page.convert("RGB").save(out, "JPEG", quality=85)
    return Image.open(io.BytesIO(out.getvalue()))


def speed(canonical: object, image: Image.Image, repeat: int) -> float:
    run = canonical.canonicalise  # type: ignore[attr-defined]
    run(image, 96, (128, 128, 128))
    started = time.perf_counter()
    for _ in range(repeat):
        run(image, 96, (128, 128, 128))
    return repeat / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import core.imaging.canonical as canonical
    from bench.screenshots import make_screenshot
    from core.embedding.vgg16 import VGG16Embedder

    today = (canonical.REDUCE_ABOVE, canonical.WORK_SIDE)
    cases = [(side, transparent) for side in (512, 1000) for transparent in (False, True)]
    images = {case: art(*case) for case in cases}
    embedder = VGG16Embedder(str(WEIGHTS), 96)
    rng = np.random.default_rng(0)
    sets = {}
    for slug in ("cryptopunks", "moonbirds"):
        paths = sorted((SHARED / "data" / slug / "images").glob("*.png"))
        chosen = [paths[i] for i in sorted(rng.choice(len(paths), args.n, replace=False))]
        originals = [Image.open(p).convert("RGBA") for p in chosen]
        shots_rng = np.random.default_rng(1)
        sets[slug] = (originals, [make_screenshot(o, shots_rng) for o in originals])

    rows = []
    settings = (
        (
            f"above {OLD_WORK_SIDE} px to {OLD_WORK_SIDE} (canon-v2)",
            (OLD_WORK_SIDE, OLD_WORK_SIDE),
        ),
        (
            f"above {today[0]} px to {CANON_V3_WORK_SIDE} (canon-v3)",
            (today[0], CANON_V3_WORK_SIDE),
        ),
        (f"above {today[0]} px to {today[1]} (today)", today),
    )
    for label, (above, side) in settings:
        canonical.REDUCE_ABOVE, canonical.WORK_SIDE = above, side
        speeds = [speed(canonical, images[case], args.repeat) for case in cases]
        recalls = []
        for originals, shots in sets.values():
            index = embedder.embed_batch(
                np.stack([canonical.canonicalise(o, 96, (128,) * 3) for o in originals])
            )
            queries = embedder.embed_batch(
                np.stack([canonical.canonicalise(s, 96, (128,) * 3) for s in shots])
            )
            hits = np.argmax(queries @ index.T, axis=1) == np.arange(len(queries))
            recalls.append(float(hits.mean()))
        rows.append((label, speeds, recalls))
    canonical.REDUCE_ABOVE, canonical.WORK_SIDE = today

    print(f"\n`python -m bench.canonical` (one core; recall on {args.n} screenshots each)\n")
    print("| reduced | 512 px opaque img/s | 512 px transparent | 1,000 px opaque "
          "| 1,000 px transparent | recall@1 punks | recall@1 Moonbirds |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, speeds, recalls in rows:
        cells = " | ".join(f"{s:.0f}" for s in speeds)
        print(f"| {label} | {cells} | {recalls[0]:.3f} | {recalls[1]:.3f} |")


if __name__ == "__main__":
    main()
