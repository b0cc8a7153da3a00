"""The price model on CryptoPunks: the study's table, and the speed targets.

    python -m bench.pricing [--data-dir DIR] [--until 2020-07-01] [--batch 4000]

With ``--data-dir`` naming a data directory where the punks are already ingested and indexed
with the real weights, it is used as it is; otherwise the punks (with the daily floors and
ETH/USD rates from ../shared/data/market) are ingested and indexed into a temporary one first,
which takes several minutes on a CPU. Then it times, in this process:

1. ``train --until`` (features, the model, the baselines and three ablations), printing the
   evaluation on the sales after the cut (target: under 60 s);
2. a batch of ``--batch`` rows (random punks at random times after the cut) through
   ``value_many``, which ``value --batch`` uses (target: under 60 s);
3. single ``value`` calls with everything warm, as ``/value`` makes them (target: < 500 ms).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.app import open_engine_blocking
from core.config import load_settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "models" / "vgg16_imagenet_notop.weights.h5"
PUNKS = SHARED / "data" / "cryptopunks"
MARKET = SHARED / "data" / "market"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--until", default="2020-07-01")
    parser.add_argument("--batch", type=int, default=4000)
    args = parser.parse_args()
    work = None if args.data_dir else Path(tempfile.mkdtemp(prefix="nftlens-pricing-"))
    data_dir = args.data_dir or work / "data"  # type: ignore[operator]
    settings = load_settings(
        env={"NFTLENS_DATA_DIR": str(data_dir), "NFTLENS_VGG16_WEIGHTS": str(WEIGHTS)}
    )
    until = datetime.fromisoformat(args.until).replace(tzinfo=UTC)
    try:
        with open_engine_blocking(settings) as engine:
            if work is not None:
                dataset = work / "cryptopunks"
                shutil.copytree(PUNKS, dataset)
                shutil.copy(MARKET / "cryptopunks_floor_daily.csv", dataset / "floor_daily.csv")
                shutil.copy(MARKET / "eth_usd_daily.csv", dataset / "usd_daily.csv")
                engine.ingester.ingest(dataset)
                engine.indexer.run()
            started = time.perf_counter()
            report = engine.pricing.train("cryptopunks", until)
            train_s = time.perf_counter() - started
            print(f"## train --until {args.until}: {train_s:.1f} s\n")
            print("| method | MdAPE | mean abs log ratio | within ±25% | 80% coverage "
                  "| top decile MdAPE | bottom decile MdAPE |")  # fmt: skip
            print("|---|---|---|---|---|---|---|")
            for s in report.scores:
                cover = f"{s.coverage:.3f}" if s.coverage is not None else "—"
                print(
                    f"| {s.method} | {s.mdape:.3f} | {s.mean_abs_log:.3f} | {s.within_25:.3f} "
                    f"| {cover} | {s.top_mdape:.3f} | {s.bottom_mdape:.3f} |"
                )
            if report.model is not None and report.model.coverage_by_month:
                months = ", ".join(
                    f"{m} {v:.2f}" for m, v in report.model.coverage_by_month.items()
                )
                print(f"\nModel interval coverage by month: {months}")
            rng = random.Random(0)
            span = (datetime(2021, 1, 1, tzinfo=UTC) - until).total_seconds()
            rows = [
                ("cryptopunks", str(rng.randrange(10_000)),
                 until + timedelta(seconds=rng.uniform(0, span)))
                for _ in range(args.batch)
            ]  # fmt: skip
            started = time.perf_counter()
            answers = engine.pricing.value_many(rows)
            batch_s = time.perf_counter() - started
            valued = sum(1 for a in answers if not isinstance(a, Exception))
            times = []
            for token, at in ((r[1], r[2]) for r in rows[:30]):
                t = time.perf_counter()
                engine.pricing.value("cryptopunks", token, at)
                times.append((time.perf_counter() - t) * 1000)
            print("\n| what | result | target |\n|---|---|---|")
            print(f"| train, with baselines and 3 ablations | {train_s:.1f} s | < 60 s |")
            print(
                f"| value_many, {args.batch:,} rows ({valued:,} valued) | {batch_s:.1f} s "
                "| < 60 s |"
            )
            print(
                f"| value, warm | median {statistics.median(times):.0f} ms, "
                f"max {max(times):.0f} ms | < 500 ms |"
            )
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
