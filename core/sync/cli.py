"""CLI glue for ``python -m core sync [--collection SLUG] [--marketplace M] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Protocol

from core.sync.service import MARKETPLACES, Syncer, SyncReport


class SyncServices(Protocol):
    """What ``sync`` needs from the engine."""

    @property
    def syncer(self) -> Syncer: ...


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "sync", help="pull new sales and tokens from OpenSea and Magic Eden, and index them"
    )
    parser.add_argument(
        "--collection", metavar="SLUG", help="only this collection (Magic Eden: its symbol)"
    )
    parser.add_argument(
        "--marketplace",
        choices=MARKETPLACES,
        help="where to find a collection that is not tracked yet; it is followed from now on",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.set_defaults(run=run_sync, embeds=True)


async def run_sync(args: argparse.Namespace, engine: SyncServices) -> int:
    if args.marketplace and not args.collection:
        raise SystemExit("error: --marketplace needs --collection")
    report = await engine.syncer.sync(
        args.collection, args.marketplace, progress=not args.json and sys.stderr.isatty()
    )
    if args.json:
        print(json.dumps(report_json(report)))
    else:
        print(report.summary())
    return 1 if report.failed else 0


def report_json(report: SyncReport) -> dict[str, Any]:
    return {
        "collections": [
            {
                "collection": c.slug,
                "marketplace": c.marketplace,
                "pages": c.pages,
                "sales_read": c.sales_seen,
                "sales_added": c.sales_added,
                "skipped": c.skipped,
                "skipped_reasons": list(c.reasons),
                "tokens_added": c.tokens_added,
                "tokens_failed": c.tokens_failed,
                "more_tokens_waiting": c.more_tokens_waiting,
                "floor": c.floor,
                "checkpoint": c.checkpoint.isoformat() if c.checkpoint else None,
                "error": c.error,
            }
            for c in report.collections
        ],
        "index": None
        if report.index is None
        else {"embedded": report.index.embedded, "indexed": report.index.indexed,
              "failed": report.index.failed, "kind": report.index.kind},
        "index_note": report.index_note,
        "usd_rates": dict(report.rates),
    }  # fmt: skip
