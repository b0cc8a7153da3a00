"""Memory of rebuilding a large index: ``python -m core index`` over stored vectors.

    python -m bench.index_memory [--count 200000] [--baseline-checkout DIR]

Stores ``--count`` tokens with synthetic vectors shaped like the engine's (bench/search.py)
in a fresh SQLite data directory, under the model key ``index`` will use (random weights:
nothing is left to embed), then runs ``python -m core index`` as its own process with no
index file, so it rebuilds from every stored vector. Reports the peak resident memory of the
largest process, the wall time and the kind of index. With ``--baseline-checkout`` (a
checkout of an earlier version) the same rebuild also runs from there, on a copy of the
same data directory.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench.search import FAMILY, Shape, generate
from bench.shared import run_core
from core.app import make_embedder
from core.config import load_settings
from core.models import Collection, ImageRef
from core.storage import Storage, TokenWrite

ROOT = Path(__file__).resolve().parents[1]
ENV = {"NFTLENS_VGG16_WEIGHTS": "none"}


def fill(data_dir: Path, count: int) -> float:
    """Store ``count`` tokens and their vectors; the vectors' size in GB."""
    settings = load_settings(env={**ENV, "NFTLENS_DATA_DIR": str(data_dir)})
    data_dir.mkdir(parents=True)
    key = make_embedder(settings).key
    vectors, _ = generate(count, Shape(max(1, count // FAMILY)), seed=1)
    storage = Storage.open(f"sqlite:///{data_dir / 'nftlens.sqlite'}")
    try:
        pk, _ = storage.catalog.upsert_collection(Collection("synthetic", "Synthetic"))
        for start in range(0, count, 20_000):
            ids = range(start, min(count, start + 20_000))
            storage.catalog.upsert_tokens(
                pk, [TokenWrite(str(i), None, ImageRef(f"{i:064x}", ".png"), ()) for i in ids]
            )
            tokens = [storage.catalog.token("synthetic", str(i)) for i in ids]
            storage.vectors.save(key, tokens, vectors[start : start + 20_000])
    finally:
        storage.close()
    return vectors.nbytes / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--baseline-checkout", type=Path, default=None)
    args = parser.parse_args()
    versions = [("this version", ROOT)]
    if args.baseline_checkout:
        versions.insert(0, ("baseline", args.baseline_checkout.resolve()))
    rows = []
    with tempfile.TemporaryDirectory(prefix="nftlens-bench-") as tmp:
        filled = Path(tmp) / "filled"
        gigabytes = fill(filled, args.count)
        for label, checkout in versions:
            data_dir = Path(tmp) / label.replace(" ", "-")
            shutil.copytree(filled, data_dir)
            env = {**ENV, "NFTLENS_DATA_DIR": str(data_dir)}
            peak, seconds, out, status = run_core(checkout, ["index"], env)
            summary = out.strip().splitlines()[-1] if out.strip() else f"exit {status}"
            rows.append((label, peak, seconds, summary))
    print(
        f"\n`python -m bench.index_memory --count {args.count}` ({gigabytes:.2f} GB of vectors)\n"
    )
    print("| version | peak RSS MB | wall s | index |")
    print("|---|---:|---:|---|")
    for label, peak, seconds, summary in rows:
        print(f"| {label} | {np.round(peak):,.0f} | {seconds:.0f} | {summary} |")


if __name__ == "__main__":
    main()
