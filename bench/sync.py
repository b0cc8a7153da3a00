"""Speed and memory of ``python -m core sync`` against the loopback fake marketplaces.

    python -m bench.sync [--sales 10000] [--tokens 1000] [--weights PATH|none]

Serves a generated OpenSea collection (``--tokens`` small 24 px images, ``--sales`` sales)
from ``tests/sync/fake_market.py`` and runs ``python -m core sync`` on it as its own process
in a fresh data directory: sales paging, token metadata and images, decoding, VGG16 embedding
(the configured 96 px path, real ImageNet weights when ../shared has them) and the index
update, end to end. Then the same with 4× the sales and few tokens, so paging dominates: peak
memory should not grow with the number of sales. Prints a Markdown table.

The bench allows 100 requests/s; real OpenSea allows a few per second per key, so against the
real API the 1,000 metadata requests alone take minutes (that is the API's budget, not ours).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "models" / "vgg16_imagenet_notop.weights.h5"
sys.path.insert(0, str(ROOT))

from tests.sync.fake_market import FakeMarket, make_nfts, make_sales  # noqa: E402

KEY = "bench-key"
# Runs the command and reports the largest resident size any process under it reached (the
# CLI or one of its image workers): ru_maxrss of waited-for descendants, for this run alone.
MEASURE = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print('maxrss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
    "file=sys.stderr); sys.exit(code)"
)
START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())


def run_sync(market: FakeMarket, slug: str, weights: str) -> dict[str, object]:
    """One ``sync`` in a fresh data directory; its report, wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="nftlens-bench-sync-") as tmp:
        root = Path(tmp)
        config = {
            "fetch": {"ipfs_gateway": market.ipfs_root, "ipfs_fallback_gateways": []},
            "marketplaces": {
                "opensea": {"api_root": market.opensea_root, "requests_per_s": 100},
                "prices": {"api_root": market.prices_root},
            },
            "sync": {"history_days": 0, "token_concurrency": 16},
        }
        (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NFTLENS_")}
        env.update(
            NFTLENS_CONFIG=str(root / "config.yaml"),
            NFTLENS_DATA_DIR=str(root / "data"),
            NFTLENS_VGG16_WEIGHTS=weights,
            OPENSEA_API_KEY=KEY,
        )
        command = [sys.executable, "-m", "core", "sync", "--collection", slug,
                   "--marketplace", "opensea", "--json"]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, *command],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"sync failed:\n{done.stderr[-3000:]}")
        peak_kb = int(done.stderr.strip().splitlines()[-1].split()[-1])
        return {"report": json.loads(done.stdout), "seconds": seconds, "peak_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=1_000)
    default = str(WEIGHTS) if WEIGHTS.is_file() else "none"
    parser.add_argument("--weights", default=default)
    args = parser.parse_args()

    rows = []
    with FakeMarket(api_key=KEY) as market:
        cases = [
            ("full", args.sales, args.tokens),
            ("paging only", args.sales, 50),
            ("paging only, 4× sales", args.sales * 4, 50),
        ]
        for name, sales, tokens in cases:
            slug = f"bench-{len(rows)}"
            nfts = make_nfts(tokens, seed=len(rows))
            market.add_opensea_collection(slug, slug, nfts, make_sales(nfts, sales, START, 1))
            result = run_sync(market, slug, args.weights)
            line = result["report"]["collections"][0]  # type: ignore[index]
            index = result["report"]["index"] or {}  # type: ignore[index]
            rows.append(
                (
                    name,
                    line["sales_added"],
                    line["tokens_added"],
                    index.get("embedded", 0),
                    result["seconds"],
                    result["peak_mb"],
                )
            )
    weights = "ImageNet" if args.weights != "none" else "random"
    print(f"\n`python -m bench.sync` ({weights} weights, 96 px, fake OpenSea at 100 req/s)\n")
    print("| run | sales stored | new tokens | embedded | wall s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, sales, tokens, embedded, seconds, peak in rows:
        print(f"| {name} | {sales:,} | {tokens:,} | {embedded:,} | {seconds:.1f} | {peak:,.0f} |")


if __name__ == "__main__":
    main()
