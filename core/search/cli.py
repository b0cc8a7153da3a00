"""CLI glue for ``python -m core index`` and ``python -m core similar``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from core.app import make_embedder, open_engine, open_store
from core.config import Settings
from core.errors import LensError
from core.models import Match, SimilarResult
from core.search.indexing import build_index


def add_commands(commands: Any) -> None:
    index = commands.add_parser("index", help="embed what is missing and update the index")
    index.add_argument("--collection", metavar="SLUG", help="only embed this collection")
    index.set_defaults(run=run_index)

    similar = commands.add_parser("similar", help="find the NFTs that look most alike")
    similar.add_argument(
        "queries",
        nargs="+",
        metavar="QUERY",
        help="image file, http(s)/ipfs URL, or SLUG:TOKEN_ID",
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
    similar.set_defaults(run=run_similar)


def run_index(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    try:
        report = build_index(store, make_embedder(settings), settings, args.collection)
    finally:
        store.close()
    print(
        f"embedded {report.embedded} images ({report.images_per_second:.1f} img/s), "
        f"{report.failed} failed; index holds {report.indexed} vectors ({report.kind})"
    )
    return 0


def run_similar(args: argparse.Namespace, settings: Settings) -> int:
    if args.k is not None and not 1 <= args.k <= settings.search.max_k:
        print(f"error: --k must be between 1 and {settings.search.max_k}.", file=sys.stderr)
        return 2
    return asyncio.run(_similar(args, settings))


async def _similar(args: argparse.Namespace, settings: Settings) -> int:
    failures = 0
    async with open_engine(settings) as engine:
        if args.collection:
            try:
                engine.store.collection(args.collection)
            except LensError as exc:
                if not args.json:
                    raise
                for query in args.queries:
                    _emit_error(query, str(exc), as_json=True)
                return 1
        for number, query in enumerate(args.queries):
            try:
                result = await engine.similar.similar(query, args.k, args.collection)
            except LensError as exc:
                failures += 1
                _emit_error(query, str(exc), args.json)
                continue
            if args.json:
                print(json.dumps(result_json(result)), flush=True)
            else:
                print(format_result(result), flush=True)
            if args.collage and number == 0:
                write_collage(args.collage, query, result, settings)
    return 1 if failures else 0


def result_json(result: SimilarResult) -> dict[str, Any]:
    """The contract's JSON shape for one ``similar`` answer."""
    return {"query": result.query, "matches": [match_json(m) for m in result.matches]}


def match_json(match: Match) -> dict[str, Any]:
    sale = match.last_sale
    return {
        "collection": match.collection,
        "token_id": match.token_id,
        "score": round(match.score, 6),
        "image": match.image,
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


def write_collage(path: Path, query: str, result: SimilarResult, settings: Settings) -> None:
    from core.imaging.decode import ImageLimits, decode_image
    from core.render.collage import render_collage

    limits = ImageLimits(settings.images.max_bytes, settings.images.max_pixels)
    query_image = None
    source = Path(query)
    if source.is_file():
        query_image = decode_image(source.read_bytes(), limits)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_collage(query_image, result.matches, limits))
    print(f"collage written to {path}", file=sys.stderr)


def _emit_error(query: str, message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"query": query, "error": message}), flush=True)
    else:
        print(f"{query}: error: {message}", file=sys.stderr)
