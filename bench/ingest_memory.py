"""Memory of ``ingest`` on large inputs: peak RSS stays flat in the size of the input.

    python -m bench.ingest_memory [--sales-mb 200] [--baseline-checkout DIR]

Generates, under a temporary directory, the 10,000 real CryptoPunks with (a) a junk
``sales.csv`` of random printable text and (b) a valid ``sales.csv`` of generated sales, both
about ``--sales-mb`` megabytes, and (c) the real 6,114 sales for scale; then runs
``python -m core ingest`` on each in a fresh data directory, as its own process, and reports
the peak resident memory of the largest process (the CLI or one of its image workers) and the
wall time. With ``--baseline-checkout`` (a checkout of an earlier version) each input is also
ingested by that version, in turn, for a side-by-side table.
"""

from __future__ import annotations

import argparse
import random
import shutil
import string
import tempfile
import time
from pathlib import Path

from bench.shared import PUNKS, run_core

ROOT = Path(__file__).resolve().parents[1]


def junk_csv(path: Path, megabytes: int) -> None:
    """A header, then lines of random printable junk: every row is rejected."""
    rng = random.Random(1)
    alphabet = string.ascii_letters + string.digits + ",.;:-_ "
    with path.open("w", encoding="utf-8") as out:
        out.write("token_id,timestamp,price,currency,tx,seller,buyer\n")
        while out.tell() < megabytes << 20:
            out.write("".join(rng.choices(alphabet, k=rng.randint(20, 400))) + "\n")


def valid_csv(path: Path, megabytes: int) -> int:
    """Plausible sales of the 10,000 punks from 2018 to 2020, each with its own tx."""
    rng = random.Random(2)
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("token_id,timestamp,price,currency,tx,seller,buyer\n")
        while out.tell() < megabytes << 20:
            day = 1_514_764_800 + rng.randrange(3 * 365 * 86_400)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(day))
            tx = f"0x{rows:064x}"
            out.write(
                f"{rng.randrange(10_000)},{stamp},{rng.uniform(0.1, 500):.4f},ETH,{tx},"
                f"0x{rng.getrandbits(160):040x},0x{rng.getrandbits(160):040x}\n"
            )
            rows += 1
    return rows


def dataset(root: Path, name: str) -> Path:
    """The punks' collection.json, tokens.jsonl and images (copied: a link out of the dataset
    directory is refused, as it should be)."""
    target = root / name
    target.mkdir(parents=True)
    shutil.copy(PUNKS / "collection.json", target)
    shutil.copy(PUNKS / "tokens.jsonl", target)
    shutil.copytree(PUNKS / "images", target / "images")
    return target


def ingest(checkout: Path, data: Path, data_dir: Path) -> tuple[float, float, str]:
    """Run ``python -m core ingest`` from ``checkout``; (peak RSS MB, seconds, summary)."""
    env = {"NFTLENS_DATA_DIR": str(data_dir), "NFTLENS_VGG16_WEIGHTS": "none"}
    peak, seconds, out, status = run_core(checkout, ["ingest", str(data)], env)
    summary = " / ".join(line.strip() for line in out.splitlines()[1:]) or f"exit {status}"
    return peak, seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales-mb", type=int, default=200)
    parser.add_argument("--baseline-checkout", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nftlens-ingest-bench-"))
    try:
        inputs: list[tuple[str, Path]] = []
        real = dataset(work, "real")
        shutil.copy(PUNKS / "sales.csv", real)
        inputs.append(("10,000 punks, real sales (6,114 rows, 0.8 MB)", real))
        junk = dataset(work, "junk")
        junk_csv(junk / "sales.csv", args.sales_mb)
        inputs.append((f"10,000 punks, junk sales.csv ({args.sales_mb} MB)", junk))
        valid = dataset(work, "valid")
        rows = valid_csv(valid / "sales.csv", args.sales_mb)
        inputs.append(
            (f"10,000 punks, valid sales.csv ({args.sales_mb} MB, {rows:,} rows)", valid)
        )
        versions = [("this version", ROOT)]
        if args.baseline_checkout:
            versions.insert(0, ("baseline", args.baseline_checkout.resolve()))
        print("| input | version | peak RSS | wall | ingest says |")
        print("|---|---|---|---|---|")
        for label, data in inputs:
            for version, checkout in versions:
                data_dir = work / f"data-{version.replace(' ', '-')}-{data.name}"
                rss, seconds, summary = ingest(checkout, data, data_dir)
                print(f"| {label} | {version} | {rss:,.0f} MB | {seconds:.0f} s | {summary} |")
                shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
