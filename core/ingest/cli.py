"""CLI glue for ``python -m core ingest DATASET_DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Protocol

from core.ingest.service import Ingester


class IngestServices(Protocol):
    """What ``ingest`` needs from the engine."""

    @property
    def ingester(self) -> Ingester: ...


def add_commands(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "ingest", help="ingest a collection in the canonical dataset layout (idempotent)"
    )
    parser.add_argument("dataset_dir", type=Path, metavar="DATASET_DIR")
    parser.set_defaults(run=run_ingest)


def run_ingest(args: argparse.Namespace, engine: IngestServices) -> int:
    report = engine.ingester.ingest(args.dataset_dir)
    for rejected in report.rejected:
        print(f"rejected {rejected}", file=sys.stderr)
    hidden = report.rejected_total - len(report.rejected)
    if hidden > 0:
        print(f"... and {hidden} more rejected rows", file=sys.stderr)
    print(report.summary())
    return 0
