"""The ``../shared`` files benchmarks read (never the running product), and a small dataset."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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


def run_core(
    checkout: Path, args: list[str], env: dict[str, str]
) -> tuple[float, float, str, int]:
    """``python -m core ARGS`` from ``checkout`` as its own process: (peak RSS MB of the
    largest of it and its workers, wall seconds, stdout, exit code). ``env`` is added to
    this environment without its NFTLENS_ variables."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("NFTLENS_")}
    full.update(env)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "core", *args],
        cwd=checkout,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    out = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    # ru_maxrss (KB on Linux): the largest of the process and the children it waited for.
    return usage.ru_maxrss / 1024, seconds, out, os.waitstatus_to_exitcode(status)
