"""CLI glue for ``python -m core digest [--collection SLUG] [--out DIR] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core.config import Settings
from core.digest.model import Digest, cluster_line, headline
from core.digest.service import DigestService
from core.errors import InputError
from core.storage import Storage
from core.storage.files import atomic_write


class DigestServices(Protocol):
    """What ``digest`` needs from the engine."""

    @property
    def settings(self) -> Settings: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def digests(self) -> DigestService: ...


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "digest", help="a collection's visual groups, their sales, and which are moving"
    )
    parser.add_argument("--collection", metavar="SLUG", help="one collection (default: all)")
    parser.add_argument("--out", type=Path, help="where montages go (default: DATA_DIR/digests)")
    parser.add_argument("--json", action="store_true", help="one JSON object per collection")
    parser.add_argument("--at", help="the window ends at this ISO time (default: now)")
    parser.add_argument("--days", type=int, help="window length in days (default: config)")
    parser.add_argument("--recluster", action="store_true", help="re-cluster from scratch")
    parser.set_defaults(run=run_digest)


async def run_digest(args: argparse.Namespace, engine: DigestServices) -> int:
    out = args.out or engine.settings.data_dir / "digests"
    at = _moment(args.at) if args.at else None
    slugs = (
        [args.collection]
        if args.collection
        else [c.slug for c in engine.storage.catalog.collections()]
    )
    if not slugs:
        print("No collections yet: ingest or sync one first.", file=sys.stderr)
        return 0
    for slug in slugs:
        digest = await engine.digests.digest(
            slug, now=at, window_days=args.days, recluster=args.recluster
        )
        paths = _write(digest, out)
        if args.json:
            print(json.dumps(digest_json(digest, paths)))
        else:
            print(digest_text(digest, paths))
    return 0


def digest_json(digest: Digest, paths: dict[int, Path]) -> dict[str, Any]:
    """PRODUCT.md's shape: collection, window, clusters with id, label, size, image."""
    return {
        "collection": digest.collection.slug,
        "window": {
            "start": _iso(digest.start),
            "end": _iso(digest.end),
            "previous_start": _iso(digest.previous_start),
        },
        "currency": digest.collection.currency,
        "k": digest.k,
        "silhouettes": {str(k): round(v, 4) for k, v in digest.silhouettes},
        "sales": digest.sales,
        "volume": digest.volume,
        "message": digest.nothing,
        "clusters": [
            {
                "id": c.id,
                "label": c.label,
                "size": c.size,
                "image": str(paths[c.id]) if c.id in paths else None,
                "why": c.why,
                "terms": [
                    {"trait": t.trait, "value": t.value, "share": round(t.share, 4),
                     "lift": round(t.lift, 3)}
                    for t in c.terms
                ],
                "representatives": list(c.representatives),
                **{key: getattr(c.numbers, key) for key in (
                    "sales", "volume", "median", "previous_median", "previous_sales", "change",
                    "low", "top", "top_token", "share", "below_model", "above_model",
                )},
            }
            for c in digest.clusters
        ],
    }  # fmt: skip


def digest_text(digest: Digest, paths: dict[int, Path]) -> str:
    lines = [headline(digest)]
    for c in digest.clusters:
        tag = "moving" if c.why == "mover" else "large"
        lines.append(
            f"  [{c.id}] {c.label} ({tag}): {cluster_line(c, digest.collection.currency)}"
        )
        if c.id in paths:
            lines.append(f"      {paths[c.id]}")
    return "\n".join(lines)


def _write(digest: Digest, out: Path) -> dict[int, Path]:
    paths: dict[int, Path] = {}
    out.mkdir(parents=True, exist_ok=True)
    for c in digest.clusters:
        if c.montage is not None:
            path = out / c.montage.filename
            atomic_write(path, c.montage.data, durable=False)
            paths[c.id] = path.resolve()
    return paths


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"--at '{text}' is not an ISO 8601 time.") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
