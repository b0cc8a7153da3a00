"""CLI glue for ``python -m core index`` and ``python -m core similar``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
from pathlib import Path
from typing import Any, Protocol

from core.config import Settings
from core.errors import LensError
from core.models import Match, SimilarResult
from core.queries import parse_slug
from core.render.collage import render_collage
from core.search.indexing import Indexer
from core.search.similar import SimilarService
from core.storage import Storage
from core.storage.files import atomic_write
from core.storage.images import ImageStore

log = logging.getLogger(__name__)


class SearchServices(Protocol):
    """What ``index`` and ``similar`` need from the engine."""

    @property
    def settings(self) -> Settings: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def images(self) -> ImageStore: ...

    @property
    def indexer(self) -> Indexer: ...

    @property
    def similar(self) -> SimilarService: ...


def add_commands(commands: Any) -> None:
    index = commands.add_parser("index", help="embed what is missing and update the index")
    index.add_argument("--collection", metavar="SLUG", help="only embed this collection")
    index.set_defaults(run=run_index, embeds=True)

    similar = commands.add_parser("similar", help="find the NFTs that look most alike")
    similar.add_argument(
        "queries",
        nargs="+",
        metavar="QUERY",
        help="image file, http(s)/ipfs URL, SLUG:TOKEN_ID or a marketplace item URL",
    )
    similar.add_argument("--k", type=int, default=None, help="how many matches (default 5)")
    similar.add_argument("--collection", metavar="SLUG", help="only match this collection")
    similar.add_argument("--json", action="store_true", help="one JSON object per query")
    similar.add_argument(
        "--collage",
        type=Path,
        metavar="PNG",
        help="also write a collage of the first query's matches",
    )
    similar.set_defaults(run=run_similar, embeds=True)


def run_index(args: argparse.Namespace, engine: SearchServices) -> int:
    collection = parse_slug(args.collection) if args.collection else None
    report = engine.indexer.run(collection)
    print(report.summary())
    return 0


async def run_similar(args: argparse.Namespace, engine: SearchServices) -> int:
    max_k = engine.settings.search.max_k
    if args.k is not None and not 1 <= args.k <= max_k:
        problem = f"--k must be between 1 and {max_k}."
        if not args.json:
            print(f"error: {problem}", file=sys.stderr)
        for query in args.queries if args.json else ():
            _emit_error(query, problem, as_json=True)
        return 2
    collection = None
    if args.collection:
        try:
            collection = parse_slug(args.collection)
            await asyncio.to_thread(engine.storage.catalog.collection, collection)
        except LensError as exc:
            if not args.json:
                raise
            for query in args.queries:
                _emit_error(query, str(exc), as_json=True)
            return 1
    failures = 0
    for number, query in enumerate(args.queries):
        collage = args.collage is not None and number == 0
        try:
            result = await engine.similar.similar(
                query, args.k, collection, allow_files=True, preview=collage
            )
            if collage:
                previews = await engine.similar.previews([m.image for m in result.matches])
                picture = render_collage(result.preview, result.matches, previews)
                atomic_write(args.collage, picture)
                print(f"collage written to {args.collage}", file=sys.stderr)
        except LensError as exc:
            failures += 1
            _emit_error(query, str(exc), args.json)
            continue
        except OSError as exc:
            failures += 1
            _emit_error(query, f"Cannot write the collage: {exc.strerror}.", args.json)
            continue
        except Exception:
            # A fault of ours, not of the query: logged with an id, and the other queries
            # still run.
            failures += 1
            incident = secrets.token_hex(4)
            log.exception("[%s] similar failed for %r", incident, query)
            _emit_error(query, f"Something went wrong on our side (ref {incident}).", args.json)
            continue
        if args.json:
            print(json.dumps(result_json(result, engine.images)), flush=True)
        else:
            print(format_result(result), flush=True)
    return 1 if failures else 0


def result_json(result: SimilarResult, images: ImageStore) -> dict[str, Any]:
    """The contract's JSON shape for one ``similar`` answer."""
    return {"query": result.query, "matches": [match_json(m, images) for m in result.matches]}


def match_json(match: Match, images: ImageStore) -> dict[str, Any]:
    sale = match.last_sale
    return {
        "collection": match.collection,
        "token_id": match.token_id,
        "score": round(match.score, 6),
        "image": str(images.path(match.image)) if match.image else None,
        "last_sale": None
        if sale is None
        else {
            "price": sale.price,
            "currency": sale.currency,
            "timestamp": sale.timestamp.isoformat().replace("+00:00", "Z"),
            "tx": sale.tx,
        },
    }


def format_result(result: SimilarResult) -> str:
    lines = [f"{result.query}:"]
    if not result.matches:
        lines.append("  no matches (is the collection indexed?)")
    for rank, match in enumerate(result.matches, start=1):
        sale = match.last_sale
        price = (
            f"last sale {sale.price:g} {sale.currency} on {sale.timestamp:%Y-%m-%d}"
            if sale
            else "no sales"
        )
        name = f"{match.collection} {match.token_id:<8}"
        lines.append(f"  {rank:>2}. {name} similarity {match.score:.3f}  {price}")
    return "\n".join(lines)


def _emit_error(query: str, message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"query": query, "error": message}), flush=True)
    else:
        print(f"{query}: error: {message}", file=sys.stderr)
