"""Running ``python -m core`` in a child process against a throwaway data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.datasets import PUNKS, ROOT, copy_collection, write_config

TOKENS = [str(n) for n in range(10)]  # punks 0 and 1 have three sales each


@dataclass(frozen=True)
class Cli:
    """A data directory, config and environment for running the CLI against."""

    root: Path
    dataset: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def make_cli(root: Path) -> Cli:
    """Ten punks copied under ``root``; config and env for a small, random-weight VGG16."""
    config = write_config(root / "config.yaml", {"embedding": {"input_size": 32, "batch_size": 8}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("NFTLENS_")}
    env.update(
        NFTLENS_DATA_DIR=str(root / "data"),
        NFTLENS_CONFIG=str(config),
        NFTLENS_VGG16_WEIGHTS="none",
    )
    dataset = copy_collection(PUNKS, root / "punks", TOKENS)
    return Cli(root, dataset, env)
