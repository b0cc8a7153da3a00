"""Ingest one dataset directory: validate rows, store images by content, upsert in chunks.

Everything streams: token rows are read, checked and written a chunk at a time, images are
decoded (to validate them) in the image workers a small batch at a time, and sales are
inserted a chunk at a time with ``ON CONFLICT DO NOTHING``, so memory stays flat however large
the dataset is, and a killed run keeps every chunk it committed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from core.config import Settings
from core.errors import LensError
from core.imaging.decode import ImageLimits, too_large
from core.imaging.prepare import PrepareSpec
from core.imaging.workers import ImageDecoder
from core.ingest.dataset import (
    Rejected,
    TokenEntry,
    read_collection,
    read_daily,
    read_sales,
    read_tokens,
)
from core.models import Collection, Sale
from core.storage import Catalog, MarketData, SalesBook, TokenWrite, UpsertCounts
from core.storage.files import STALE_TEMP_S, read_capped, sweep_temp_files
from core.storage.images import ImageStore

log = logging.getLogger(__name__)

T = TypeVar("T")

# Optional daily market files beside sales.csv: `date,floor` in the collection's currency, and
# `date,usd`, the USD rate of that currency.
FLOORS_FILE = "floor_daily.csv"
RATES_FILE = "usd_daily.csv"
# Token rows per database transaction, and sales rows per insert (one transaction each).
TOKEN_CHUNK = 500
SALES_CHUNK = 5000
# Images checked by the workers at once: enough to keep them all busy, and at most this
# many bytes held while they work.
IMAGE_BATCH = 64
IMAGE_BATCH_BYTES = 64 << 20
# Rejected rows kept to show; the rest are only counted.
KEEP_REJECTED = 50


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
    """The outcome of ``ingest``: counts per file and the first rejected rows."""

    collection: str
    collection_changed: bool
    tokens: FileCounts
    sales: FileCounts
    rejected: tuple[Rejected, ...] = ()
    # The optional daily files: floor_daily.csv and usd_daily.csv.
    floors: FileCounts = FileCounts()
    rates: FileCounts = FileCounts()

    @property
    def rejected_total(self) -> int:
        return sum(c.rejected for c in (self.tokens, self.sales, self.floors, self.rates))

    def summary(self) -> str:
        def line(name: str, c: FileCounts) -> str:
            return (
                f"\n  {name}: {c.read} read, {c.added} added, {c.updated} updated, "
                f"{c.unchanged} unchanged, {c.rejected} rejected"
            )

        text = self.collection + line("tokens", self.tokens) + line("sales", self.sales)
        for name, counts in (("daily floors", self.floors), ("daily USD rates", self.rates)):
            if counts.read:
                text += line(name, counts)
        return text


class _Rejections:
    """Counts rejected rows per file and keeps the first few to show."""

    def __init__(self) -> None:
        self.kept: list[Rejected] = []
        self.counts: dict[str, int] = {}

    def add(self, rejected: Rejected) -> None:
        self.counts[rejected.file] = self.counts.get(rejected.file, 0) + 1
        if len(self.kept) < KEEP_REJECTED:
            self.kept.append(rejected)


class Ingester:
    """Reads a dataset directory into the catalog, the sales book and the image store."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        sales: SalesBook,
        market: MarketData,
        images: ImageStore,
        decoder: ImageDecoder,
        settings: Settings,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._catalog = catalog
        self._sales = sales
        self._market = market
        self._images = images
        self._decoder = decoder
        self._max_bytes = settings.images.max_bytes
        self._spec = PrepareSpec(
            ImageLimits(settings.images.max_bytes, settings.images.max_pixels)
        )
        self._clock = clock or (lambda: datetime.now(UTC))

    def ingest(self, directory: Path, *, progress: bool = True) -> IngestReport:
        """Ingest ``directory``; running it twice changes nothing the second time."""
        collection = read_collection(directory)
        tokens = read_tokens(directory)  # a dataset without tokens.jsonl fails before writing
        sweep_temp_files(self._images.root, STALE_TEMP_S)
        collection_pk, changed = self._catalog.upsert_collection(collection)
        rejections = _Rejections()

        token_rows = 0
        token_counts = UpsertCounts()
        bar = tqdm(desc="tokens", unit="row", leave=False, disable=not progress or None)
        with bar:
            entries: list[TokenEntry] = []
            for entry in tokens:
                token_rows += 1
                bar.update()
                if isinstance(entry, Rejected):
                    rejections.add(entry)
                    continue
                entries.append(entry)
                if len(entries) >= TOKEN_CHUNK:
                    token_counts += self._store_tokens(collection_pk, entries, rejections)
                    entries = []
            token_counts += self._store_tokens(collection_pk, entries, rejections)

        sale_rows = 0
        sale_counts = UpsertCounts()
        now = self._clock()
        for chunk in _chunked(read_sales(directory, collection, now), SALES_CHUNK):
            sale_rows += len(chunk)
            good: list[tuple[int, Sale]] = []
            for item in chunk:
                if isinstance(item, Rejected):
                    rejections.add(item)
                else:
                    good.append(item)
            known = self._catalog.token_ids(collection.slug, {s.token_id for _, s in good})
            sales = []
            for line, sale in good:
                if sale.token_id in known:
                    sales.append(sale)
                else:
                    reason = f"token {sale.token_id} is not in the collection"
                    rejections.add(Rejected("sales.csv", line, reason))
            sale_counts += self._sales.add(collection_pk, sales)

        floors = self._daily(
            directory, FLOORS_FILE, "floor", collection, now, rejections,
            lambda days: self._market.save_floors(collection_pk, days),
        )  # fmt: skip
        rates = self._daily(
            directory, RATES_FILE, "usd", collection, now, rejections,
            lambda days: self._market.save_rates(collection.currency, days),
        )  # fmt: skip
        report = IngestReport(
            collection=collection.slug,
            collection_changed=changed,
            tokens=FileCounts(
                read=token_rows,
                added=token_counts.added,
                updated=token_counts.updated,
                unchanged=token_counts.unchanged,
                rejected=rejections.counts.get("tokens.jsonl", 0),
            ),
            sales=FileCounts(
                read=sale_rows,
                added=sale_counts.added,
                unchanged=sale_counts.unchanged,
                rejected=rejections.counts.get("sales.csv", 0),
            ),
            rejected=tuple(rejections.kept),
            floors=floors,
            rates=rates,
        )
        log.info("ingested %s", report.summary().replace("\n", " "))
        return report

    def _daily(
        self,
        directory: Path,
        name: str,
        column: str,
        collection: Collection,
        now: datetime,
        rejections: _Rejections,
        save: Callable[[list[tuple[date, float]]], int],
    ) -> FileCounts:
        """Read an optional daily file and write its days (each day once: later rows win)."""
        read = 0
        days: dict[date, float] = {}
        for item in read_daily(directory, name, column, collection, now):
            read += 1
            if isinstance(item, Rejected):
                rejections.add(item)
            else:
                _, day, value = item
                days[day] = value
        written = save(sorted(days.items())) if days else 0
        return FileCounts(read=read, added=written, rejected=rejections.counts.get(name, 0))

    def _store_tokens(
        self, collection_pk: int, entries: list[TokenEntry], rejections: _Rejections
    ) -> UpsertCounts:
        writes: list[TokenWrite] = []
        for batch in self._image_batches(entries):
            for entry, outcome in zip(batch, self._store_images(batch), strict=True):
                if isinstance(outcome, LensError):
                    reason = f"{entry.image_file.name}: {outcome}"
                    rejections.add(Rejected("tokens.jsonl", entry.line, reason))
                else:
                    writes.append(outcome)
        return self._catalog.upsert_tokens(collection_pk, writes) if writes else UpsertCounts()

    def _image_batches(self, entries: list[TokenEntry]) -> Iterator[list[TokenEntry]]:
        """Batches of at most ``IMAGE_BATCH`` images and about ``IMAGE_BATCH_BYTES``."""
        batch: list[TokenEntry] = []
        size = 0
        for entry in entries:
            with contextlib.suppress(OSError):  # an unreadable image is reported when read
                size += min(entry.image_file.stat().st_size, self._max_bytes)
            batch.append(entry)
            if len(batch) >= IMAGE_BATCH or size >= IMAGE_BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _store_images(self, batch: list[TokenEntry]) -> list[TokenWrite | LensError]:
        """Check each image in the workers (what the embedder could not read is refused at
        ingest), then copy the good ones into the image store."""
        blobs: list[bytes] = []
        unreadable: dict[int, LensError] = {}
        for i, entry in enumerate(batch):
            try:
                data = read_capped(entry.image_file, self._max_bytes)
                if data is None:
                    raise too_large(entry.image_file.stat().st_size, self._max_bytes)
            except OSError:
                unreadable[i] = LensError("the image file cannot be read")
                data = b""
            except LensError as exc:
                unreadable[i] = exc
                data = b""
            blobs.append(data)
        checked = self._decoder.prepare_many(blobs, self._spec)
        outcomes: list[TokenWrite | LensError] = []
        for i, (entry, data, result) in enumerate(zip(batch, blobs, checked, strict=True)):
            if i in unreadable:
                outcomes.append(unreadable[i])
            elif isinstance(result, LensError):
                outcomes.append(result)
            else:
                image = self._images.put(data, entry.image_file.suffix)
                outcomes.append(TokenWrite(entry.token_id, entry.name, image, entry.attributes))
        return outcomes


def _chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
