"""CLI glue for ``python -m core train`` and ``python -m core value``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core.errors import InputError, LensError, QueryError, shown
from core.models import PriceEstimate, is_token_id
from core.pricing.service import PriceService, TrainReport
from core.queries import parse_slug
from core.storage import Storage
from core.storage.files import read_capped

# A batch file larger than this is refused before it is read.
MAX_BATCH_BYTES = 64 << 20


class PricingServices(Protocol):
    """What ``train`` and ``value`` need from the engine."""

    @property
    def storage(self) -> Storage: ...

    @property
    def pricing(self) -> PriceService: ...


def add_commands(commands: Any) -> None:
    train = commands.add_parser(
        "train", help="fit the price model on sales before a date, and evaluate it after"
    )
    train.add_argument("--until", metavar="DATE", help="train on sales before this (ISO date)")
    train.add_argument(
        "--collection", metavar="SLUG", help="only this collection (default: every one)"
    )
    train.add_argument("--json", action="store_true", help="one JSON object per collection")
    train.set_defaults(run=run_train)

    value = commands.add_parser("value", help="what a token was worth, point in time")
    value.add_argument("slug", nargs="?", metavar="SLUG")
    value.add_argument("token_id", nargs="?", metavar="TOKEN_ID")
    value.add_argument("--at", metavar="TIMESTAMP", help="as of this time (default: now)")
    value.add_argument(
        "--batch", type=Path, metavar="FILE.csv", help="rows of collection,token_id,at"
    )
    value.add_argument("--json", action="store_true", help="one JSON object per token")
    value.set_defaults(run=run_value)


def run_train(args: argparse.Namespace, engine: PricingServices) -> int:
    until = parse_time(args.until, "--until") if args.until else None
    if args.collection:
        slugs = [parse_slug(args.collection)]
        engine.storage.catalog.collection(slugs[0])
    else:
        slugs = [c.slug for c in engine.storage.catalog.collections()]
        if not slugs:
            raise InputError("No collections are tracked yet; run 'python -m core ingest' first.")
    failures = 0
    for slug in slugs:
        try:
            report = engine.pricing.train(slug, until)
        except LensError as exc:
            failures += 1
            if args.json:
                print(json.dumps({"collection": slug, "error": str(exc)}), flush=True)
            else:
                print(f"{slug}: {exc}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(train_json(report)), flush=True)
        else:
            print(format_train(report), flush=True)
    return 1 if failures else 0


def run_value(args: argparse.Namespace, engine: PricingServices) -> int:
    if args.batch is not None:
        if args.slug or args.token_id or args.at:
            raise QueryError("Give either SLUG TOKEN_ID [--at T] or --batch FILE.csv, not both.")
        return _batch(args.batch, engine, args.json)
    if not args.slug or not args.token_id:
        raise QueryError("Say which token: 'python -m core value SLUG TOKEN_ID [--at T]'.")
    query = f"{args.slug} {args.token_id}"
    try:
        slug = parse_slug(args.slug)
        if not is_token_id(args.token_id):
            raise QueryError(f"'{shown(args.token_id)}' is not a token id.")
        at = parse_time(args.at, "--at") if args.at else None
        estimate = engine.pricing.value(slug, args.token_id, at)
    except LensError as exc:
        if not args.json:
            raise
        print(json.dumps({"query": query, "error": str(exc)}), flush=True)
        return 1
    if args.json:
        print(json.dumps(estimate_json(estimate)), flush=True)
    else:
        print(format_estimate(estimate), flush=True)
    return 0


def _batch(path: Path, engine: PricingServices, as_json: bool) -> int:
    """Value every row of a ``collection,token_id,at`` file in one pass; a bad row gets its
    error line and the others are still valued."""
    try:
        data = read_capped(path, MAX_BATCH_BYTES)
    except OSError as exc:
        raise InputError(f"Cannot read {shown(path.name)}: {exc.strerror}.") from exc
    if data is None:
        raise InputError(f"{shown(path.name)} is larger than {MAX_BATCH_BYTES >> 20} MB.")
    lines = data.decode("utf-8", "replace").splitlines()
    rows = [fields for fields in csv.reader(lines) if fields]
    if rows and [f.strip().lower() for f in rows[0][:2]] == ["collection", "token_id"]:
        rows = rows[1:]
    queries: dict[int, tuple[str, str, datetime | None]] = {}
    results: dict[int, PriceEstimate | LensError] = {}
    for i, fields in enumerate(rows):
        try:
            queries[i] = _batch_row(fields)
        except LensError as exc:
            results[i] = exc
    answers = engine.pricing.value_many(list(queries.values()))
    results.update(zip(queries, answers, strict=True))
    failures = 0
    for i, fields in enumerate(rows):
        result = results[i]
        if isinstance(result, PriceEstimate):
            print(json.dumps(estimate_json(result)) if as_json else format_estimate(result))
            continue
        failures += 1
        query = ",".join(fields)
        if as_json:
            print(json.dumps({"query": query, "error": str(result)}))
        else:
            print(f"{query}: error: {result}", file=sys.stderr)
    sys.stdout.flush()
    return 1 if failures else 0


def _batch_row(fields: list[str]) -> tuple[str, str, datetime | None]:
    slug = parse_slug(fields[0])
    token = fields[1].strip() if len(fields) > 1 else ""
    if not is_token_id(token):
        raise QueryError(f"'{shown(token)}' is not a token id.")
    at = parse_time(fields[2], "at") if len(fields) > 2 and fields[2].strip() else None
    return slug, token, at


def parse_time(text: str, what: str) -> datetime:
    """An ISO 8601 date or time (naive means UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{what} '{shown(text)}' is not an ISO 8601 date or time.") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def train_json(report: TrainReport) -> dict[str, Any]:
    record = report.record
    return {
        "collection": record.collection,
        "model": record.version,
        "trained_until": _iso(record.trained_until),
        "sales_used": record.sales_used,
        "seconds": round(report.seconds, 1),
        "evaluated_from": _iso(report.evaluated_from),
        "evaluated_to": _iso(report.evaluated_to),
        "scores": [s.as_dict() for s in report.scores],
    }


def format_train(report: TrainReport) -> str:
    record = report.record
    lines = [
        f"{record.collection}: model {record.version}, trained on {record.sales_used:,} sales "
        f"before {record.trained_until:%Y-%m-%d} ({report.seconds:.0f} s)"
    ]
    if not report.scores:
        lines.append("  no sales after the cut to evaluate on")
        return "\n".join(lines)
    lines.append(
        f"  evaluated on {report.scores[0].sales:,} sales, "
        f"{report.evaluated_from:%Y-%m-%d} to {report.evaluated_to:%Y-%m-%d}:"
    )
    lines.append(
        f"  {'method':<32} {'MdAPE':>6} {'|log|':>6} {'±25%':>6} {'cover':>6} "
        f"{'top10':>6} {'bot10':>6}"
    )
    for s in report.scores:
        cover = f"{s.coverage:.3f}" if s.coverage is not None else "—"
        lines.append(
            f"  {s.method:<32} {s.mdape:>6.3f} {s.mean_abs_log:>6.3f} {s.within_25:>6.3f} "
            f"{cover:>6} {s.top_mdape:>6.3f} {s.bottom_mdape:>6.3f}"
        )
    model = report.model
    if model is not None and model.coverage_by_month:
        months = ", ".join(f"{m} {v:.2f}" for m, v in model.coverage_by_month.items())
        lines.append(f"  model interval coverage by month: {months}")
    return "\n".join(lines)


def estimate_json(estimate: PriceEstimate) -> dict[str, Any]:
    sale = estimate.last_sale
    return {
        "collection": estimate.collection,
        "token_id": estimate.token_id,
        "at": _iso(estimate.at),
        "estimate": _round(estimate.estimate),
        "low": _round(estimate.low),
        "high": _round(estimate.high),
        "currency": estimate.currency,
        "usd": None if estimate.usd is None else round(estimate.usd, 2),
        "usd_rate": estimate.usd_rate,
        "last_sale": None
        if sale is None
        else {"price": sale.price, "currency": sale.currency, "timestamp": _iso(sale.timestamp)},
        "level": _round(estimate.level),
        "rarity_rank": estimate.rarity_rank,
        "supply": estimate.supply,
        "comps": [
            {
                "collection": c.collection,
                "token_id": c.token_id,
                "price": c.price,
                "currency": c.currency,
                "timestamp": _iso(c.timestamp),
                "similarity": round(c.similarity, 4),
            }
            for c in estimate.comps
        ],
        "reason": estimate.reason,
        "model": estimate.model,
    }


def format_estimate(estimate: PriceEstimate) -> str:
    usd = f" (${estimate.usd:,.0f})" if estimate.usd is not None else ""
    lines = [
        f"{estimate.collection} {estimate.token_id} at {estimate.at:%Y-%m-%d %H:%M} UTC: "
        f"{estimate.estimate:.4g} {estimate.currency}{usd}, "
        f"80% between {estimate.low:.4g} and {estimate.high:.4g}",
        f"  {estimate.reason}",
    ]
    if estimate.last_sale is not None:
        sale = estimate.last_sale
        lines.append(f"  last sale {sale.price:g} {sale.currency} on {sale.timestamp:%Y-%m-%d}")
    if estimate.rarity_rank is not None:
        lines.append(f"  rarity rank {estimate.rarity_rank:,} of {estimate.supply:,}")
    for comp in estimate.comps:
        lines.append(
            f"  comp {comp.token_id}: {comp.price:g} {comp.currency} on "
            f"{comp.timestamp:%Y-%m-%d}, similarity {comp.similarity:.2f}"
        )
    return "\n".join(lines)


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
