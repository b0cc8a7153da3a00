"""Ingest one dataset directory: validate rows, copy images by content hash, upsert."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from core.errors import ImageError
from core.imaging.decode import ImageLimits, decode_image
from core.ingest.dataset import Rejected, TokenEntry, read_collection, read_sales, read_tokens
from core.models import Sale
from core.storage import Store
from core.storage.store import TokenWrite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileCounts:
    """What happened to the rows of one file."""

    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class IngestReport:
    """The outcome of ``ingest``: counts per file and every rejected row."""

    collection: str
    collection_changed: bool
    tokens: FileCounts
    sales: FileCounts
    rejected: tuple[Rejected, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        def line(name: str, c: FileCounts) -> str:
            return (
                f"{name}: {c.read} read, {c.added} added, {c.updated} updated, "
                f"{c.unchanged} unchanged, {c.rejected} rejected"
            )

        return f"{self.collection}\n  {line('tokens', self.tokens)}\n  {line('sales', self.sales)}"


def ingest(directory: Path, store: Store, data_dir: Path, limits: ImageLimits) -> IngestReport:
    """Ingest ``directory``; running it twice changes nothing the second time."""
    collection = read_collection(directory)
    collection_pk, changed = store.upsert_collection(collection)
    rejected: list[Rejected] = []

    writes: list[TokenWrite] = []
    token_rows = 0
    entries = list(read_tokens(directory))
    for entry in tqdm(entries, desc="images", unit="img", leave=False, disable=None):
        if isinstance(entry, Rejected):
            rejected.append(entry)
            token_rows += 1
            continue
        token_rows += 1
        try:
            writes.append(_store_image(entry, data_dir, limits))
        except ImageError as exc:
            rejected.append(
                Rejected("tokens.jsonl", entry.line, f"{entry.image_file.name}: {exc}")
            )
    token_counts = store.upsert_tokens(collection_pk, writes)

    known_ids = store.token_ids(collection.slug)
    sales: list[Sale] = []
    sale_rows = 0
    for item in read_sales(directory, collection.slug):
        sale_rows += 1
        if isinstance(item, Rejected):
            rejected.append(item)
            continue
        line, sale = item
        if sale.token_id in known_ids:
            sales.append(sale)
        else:
            reason = f"token {sale.token_id} is not in the collection"
            rejected.append(Rejected("sales.csv", line, reason))
    sale_counts = store.add_sales(collection_pk, sales)

    bad_tokens = sum(1 for r in rejected if r.file == "tokens.jsonl")
    report = IngestReport(
        collection=collection.slug,
        collection_changed=changed,
        tokens=FileCounts(
            read=token_rows,
            added=token_counts.added,
            updated=token_counts.updated,
            unchanged=token_counts.unchanged,
            rejected=bad_tokens,
        ),
        sales=FileCounts(
            read=sale_rows,
            added=sale_counts.added,
            unchanged=sale_counts.unchanged,
            rejected=len(rejected) - bad_tokens,
        ),
        rejected=tuple(rejected),
    )
    log.info("ingested %s", report.summary().replace("\n", " "))
    return report


def _store_image(entry: TokenEntry, data_dir: Path, limits: ImageLimits) -> TokenWrite:
    data = entry.image_file.read_bytes()
    decode_image(data, limits)  # reject what the embedder could not read, at ingest time
    digest = hashlib.sha256(data).hexdigest()
    suffix = entry.image_file.suffix.lower() or ".img"
    relative = Path("images") / digest[:2] / f"{digest}{suffix}"
    target = data_dir / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a killed ingest never leaves half an image behind.
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    return TokenWrite(
        token_id=entry.token_id,
        name=entry.name,
        image_path=relative.as_posix(),
        image_sha256=digest,
        attributes=entry.attributes,
    )
