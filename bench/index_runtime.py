"""``python -m core index`` end to end per runtime, against plain Keras decode + embed.

    python -m bench.index_runtime [--punks 2000] [--art 300] [--repeat 3]

Two datasets: ``--punks`` CryptoPunks (24 px), and ``--art`` Moonbirds drawn at 512 px
(Lanczos), each ingested into fresh data directories. For each, in one run on this machine:

- the reference: plain Keras float32 in this process, decoding each PNG, making its canonical
  view and embedding in batches of 64 (no workers, no overlap);
- ``python -m core index`` as its own process with ``embedding.runtime: keras``;
- the same with ``openvino-int8``, timed after the one-time conversion (the first run
  converts and embeds; its vectors are then dropped and the index removed), ``--repeat``
  times, the median reported (runs on this shared machine vary by up to a quarter).

Wall times include process start-up and TensorFlow's import; the ratio column is the
reference's time over the command's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"


def write_dataset(target: Path, slug: str, images: list[Image.Image]) -> Path:
    (target / "images").mkdir(parents=True)
    (target / "collection.json").write_text(json.dumps({"slug": slug, "name": slug}))
    with (target / "tokens.jsonl").open("w") as out:
        for i, image in enumerate(images):
            image.save(target / "images" / f"{i}.png")
            out.write(json.dumps({"token_id": str(i), "image": f"images/{i}.png"}) + "\n")
    return target


def cli(root: Path, runtime: str, *args: str) -> float:
    config = root / "config.yaml"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump({"embedding": {"runtime": runtime, "batch_size": 64}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NFTLENS_")}
    env.update(NFTLENS_CONFIG=str(config), NFTLENS_DATA_DIR=str(root / "data"),
               NFTLENS_VGG16_WEIGHTS=str(WEIGHTS), TF_CPP_MIN_LOG_LEVEL="3")  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{args} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def drop_vectors(root: Path) -> None:
    with sqlite3.connect(root / "data" / "nftlens.sqlite") as db:
        db.execute("DELETE FROM embeddings")
    shutil.rmtree(root / "data" / "index", ignore_errors=True)


def reference(dataset: Path) -> float:
    from core.embedding.vgg16 import VGG16Embedder
    from core.imaging.canonical import canonicalise

    embedder = VGG16Embedder(str(WEIGHTS), 96)
    embedder.warm_up()
    files = sorted((dataset / "images").glob("*.png"))
    started = time.perf_counter()
    for start in range(0, len(files), 64):
        batch = [
            canonicalise(Image.open(f), 96, (128, 128, 128)) for f in files[start : start + 64]
        ]
        embedder.embed_batch(np.stack(batch))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--punks", type=int, default=2000)
    parser.add_argument("--art", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    punk_files = sorted((SHARED / "data" / "cryptopunks" / "images").glob("*.png"),
                        key=lambda p: int(p.stem))[: args.punks]  # fmt: skip
    bird_files = sorted((SHARED / "data" / "moonbirds" / "images").glob("*.png"),
                        key=lambda p: int(p.stem))[: args.art]  # fmt: skip
    datasets = {
        f"{len(punk_files):,} punks (24 px)": [Image.open(p).convert("RGBA") for p in punk_files],
        f"{len(bird_files):,} Moonbirds at 512 px": [
            Image.open(p).convert("RGBA").resize((512, 512), Image.Resampling.LANCZOS)
            for p in bird_files
        ],
    }
    rows = []
    spread: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="nftlens-bench-index-") as tmp:
        for n, (label, images) in enumerate(datasets.items()):
            dataset = write_dataset(Path(tmp) / f"set{n}", f"set{n}", images)
            base = reference(dataset)
            times: dict[str, float] = {}
            for runtime in ("keras", "openvino-int8"):
                root = Path(tmp) / f"{runtime}-{n}"
                cli(root, runtime, "ingest", str(dataset))
                if runtime == "keras":
                    times[runtime] = cli(root, runtime, "index")
                    continue
                cli(root, runtime, "index")  # converts once, then embeds
                runs = []
                for _ in range(args.repeat):
                    drop_vectors(root)
                    runs.append(cli(root, runtime, "index"))
                times[runtime] = statistics.median(runs)
                spread[label] = (min(runs), max(runs))
            rows.append((label, base, times["keras"], times["openvino-int8"]))

    print("\n`python -m bench.index_runtime` (2 cores; wall seconds, ratio = reference / time)\n")
    print(
        "| images | plain Keras decode + embed | index, keras | ratio "
        "| index, INT8 (median; range) | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, base, keras, int8 in rows:
        low, high = spread[label]
        print(f"| {label} | {base:.1f} | {keras:.1f} | {base / keras:.2f}× | {int8:.1f} "
              f"({low:.1f}–{high:.1f}) | {base / int8:.2f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
