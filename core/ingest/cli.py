"""CLI glue for ``python -m core ingest DATASET_DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.app import open_store
from core.config import Settings
from core.imaging.decode import ImageLimits
from core.ingest.service import ingest

# Rejected rows printed in full; past this only the count is shown.
MAX_LISTED = 50


def add_commands(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "ingest", help="ingest a collection in the canonical dataset layout (idempotent)"
    )
    parser.add_argument("dataset_dir", type=Path, metavar="DATASET_DIR")
    parser.set_defaults(run=run_ingest)


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    try:
        limits = ImageLimits(settings.images.max_bytes, settings.images.max_pixels)
        report = ingest(args.dataset_dir, store, settings.data_dir, limits)
    finally:
        store.close()
    for rejected in report.rejected[:MAX_LISTED]:
        print(f"rejected {rejected}", file=sys.stderr)
    if len(report.rejected) > MAX_LISTED:
        print(f"... and {len(report.rejected) - MAX_LISTED} more rejected rows", file=sys.stderr)
    print(report.summary())
    return 0
