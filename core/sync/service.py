"""``sync``: new sales and tokens from the marketplaces, stored once each, never skipped.

For each collection: page its sales newest first from its checkpoint (less an overlap, for
sales the marketplace indexes late), store each page in one transaction (``ON CONFLICT DO
NOTHING`` on collection + transaction + token), and note how far the run got. Then fetch the
metadata and image of every token that has sales but no token row, and embed them into the
index (incrementally). The checkpoint moves only when the whole range is stored, so a run
killed at any moment is finished by the next: it pages only what the killed run had not
stored (``resume_before``), and the token and vector steps pick up whatever is missing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tqdm import tqdm

from core.config import Settings
from core.errors import (
    IndexBusy,
    InputError,
    LensError,
    MarketplaceAuthError,
    MarketplaceError,
    UnknownCollection,
    shown,
)
from core.imaging.decode import ImageLimits
from core.imaging.fetch import ImageFetcher
from core.imaging.prepare import PrepareSpec
from core.imaging.workers import ImageDecoder
from core.ingest.dataset import GENESIS
from core.models import Collection, is_slug
from core.search.indexing import Indexer, IndexReport
from core.storage import Storage, SyncState, TokenWrite
from core.storage.images import ImageStore
from core.sync.http import gather_limited
from core.sync.prices import UsdPrices
from core.sync.source import MarketplaceSource, SalesPage, TokenMeta

log = logging.getLogger(__name__)

MARKETPLACES = ("opensea", "magiceden")
# Token metadata and images fetched, checked and stored per round.
TOKEN_BATCH = 64
# Reasons kept to show per run; the rest are counted.
KEEP_REASONS = 20
# A collection counts as due this much before its interval is up, so the scheduler's jitter
# does not push every other sync one tick late.
DUE_SLACK = timedelta(seconds=60)

Notify = Callable[[str], Awaitable[None]]


class Marketplaces(Protocol):
    """The open clients a sync reads from (see ``core/sync/clients.py``)."""

    @property
    def sources(self) -> Mapping[str, MarketplaceSource]: ...

    @property
    def prices(self) -> UsdPrices | None: ...

    @property
    def fetcher(self) -> ImageFetcher: ...


@dataclass(frozen=True)
class CollectionSync:
    """What one collection's sync did."""

    slug: str
    marketplace: str
    pages: int = 0
    sales_seen: int = 0
    sales_added: int = 0
    skipped: int = 0
    tokens_added: int = 0
    tokens_failed: int = 0
    # More tokens than sync.max_new_tokens were new: the rest follow on the next run.
    more_tokens_waiting: bool = False
    floor: float | None = None
    checkpoint: datetime | None = None
    reasons: tuple[str, ...] = ()
    error: str | None = None

    def summary(self) -> str:
        if self.error is not None:
            return f"{self.slug}: failed: {self.error}"
        text = (
            f"{self.slug}: {self.sales_seen} sales read ({self.pages} pages), "
            f"{self.sales_added} new, {self.sales_seen - self.sales_added} already stored, "
            f"{self.skipped} skipped; {self.tokens_added} new tokens"
        )
        if self.tokens_failed:
            text += f", {self.tokens_failed} without usable metadata or image (retried later)"
        if self.more_tokens_waiting:
            text += " (more wait for the next run)"
        if self.floor is not None:
            text += f"; floor {self.floor:g}"
        return text


@dataclass(frozen=True)
class SyncReport:
    """What a ``sync`` did, per collection, plus the index update and the USD rates."""

    collections: tuple[CollectionSync, ...]
    index: IndexReport | None = None
    index_note: str | None = None
    rates: Mapping[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[CollectionSync, ...]:
        return tuple(c for c in self.collections if c.error is not None)

    def summary(self) -> str:
        if not self.collections:
            return "nothing to sync"
        lines = [c.summary() for c in self.collections]
        for c in self.collections:
            lines.extend(f"  skipped: {reason}" for reason in c.reasons)
        if self.index is not None:
            lines.append("index: " + self.index.summary())
        elif self.index_note:
            lines.append("index: " + self.index_note)
        if self.rates:
            lines.append(
                "USD: " + ", ".join(f"{c} {usd:,.2f}" for c, usd in sorted(self.rates.items()))
            )
        return "\n".join(lines)


class Syncer:
    """Keeps followed collections current from their marketplaces."""

    def __init__(
        self,
        *,
        storage: Storage,
        images: ImageStore,
        decoder: ImageDecoder,
        indexer: Indexer,
        settings: Settings,
        clock: Callable[[], datetime],
        marketplaces: Marketplaces | None,
    ) -> None:
        self._storage = storage
        self._images = images
        self._decoder = decoder
        self._indexer = indexer
        self._settings = settings
        self._sync = settings.sync
        self._clock = clock
        self._marketplaces = marketplaces
        self._spec = PrepareSpec(
            ImageLimits(settings.images.max_bytes, settings.images.max_pixels)
        )
        # One sync per collection at a time in this process (the job and a /track may meet).
        self._locks: dict[str, asyncio.Lock] = {}

    # Following -------------------------------------------------------------------------------

    async def track(
        self, slug: str, marketplace: str | None = None, *, every_minutes: float | None = None
    ) -> Collection:
        """Follow ``slug``: created from its marketplace's description if it is new."""
        if not is_slug(slug):
            raise InputError(f"'{shown(slug)}' is not a collection slug.")
        try:
            existing: Collection | None = await asyncio.to_thread(
                self._storage.catalog.collection, slug
            )
        except UnknownCollection:
            existing = None
        if existing is not None and marketplace not in (None, existing.marketplace):
            # Same slug, other marketplace: syncing it would mix two collections' sales.
            raise InputError(
                f"'{slug}' is already tracked from {existing.marketplace}; it cannot also "
                f"follow {marketplace}."
            )
        if existing is not None:
            collection = existing
        else:
            collection = await self._source(marketplace or "opensea").collection(slug)
        pk, _ = await asyncio.to_thread(self._storage.catalog.upsert_collection, collection)
        await asyncio.to_thread(self._storage.sync.follow, pk, every_minutes=every_minutes)
        return collection

    def untrack(self, slug: str) -> bool:
        """Stop following ``slug`` (blocking); its data stays. False if it was not followed."""
        return self._storage.sync.unfollow(self._storage.catalog.collection_pk(slug))

    async def follow_configured(self) -> list[CollectionSync]:
        """Follow the collections config.yaml lists, unless an admin has untracked them; a
        new one its marketplace cannot describe now is reported and tried again next time."""
        failed = []
        catalog = self._storage.catalog
        for entry in self._sync.collections:
            try:
                pk = await asyncio.to_thread(catalog.collection_pk, entry.slug)
            except UnknownCollection:
                try:
                    collection = await self._source(entry.marketplace).collection(entry.slug)
                except LensError as exc:
                    failed.append(CollectionSync(entry.slug, entry.marketplace, error=str(exc)))
                    continue
                pk, _ = await asyncio.to_thread(catalog.upsert_collection, collection)
            await asyncio.to_thread(
                self._storage.sync.follow, pk, every_minutes=entry.every_minutes, replace=False
            )
        return failed

    def due(self, now: datetime) -> list[SyncState]:
        """Followed collections whose interval is up (blocking)."""
        states = self._storage.sync.states(following_only=True)
        due = []
        for state in states:
            every = timedelta(minutes=state.every_minutes or self._sync.every_minutes)
            if state.last_started_at is None or now - state.last_started_at + DUE_SLACK >= every:
                due.append(state)
        return due

    # Syncing ---------------------------------------------------------------------------------

    async def sync(
        self,
        slug: str | None = None,
        marketplace: str | None = None,
        *,
        progress: bool = False,
        notify: Notify | None = None,
        wait_for_index: bool = True,
    ) -> SyncReport:
        """Sync one collection (created from ``marketplace`` if new) or every followed one.

        One collection's failure is reported in its line; the others still run.
        """
        failed: list[CollectionSync] = []
        if slug is not None:
            if marketplace is not None:
                await self.track(slug, marketplace)
            try:
                collections = [await asyncio.to_thread(self._storage.catalog.collection, slug)]
            except UnknownCollection as exc:
                raise UnknownCollection(
                    f"{exc} To follow it, add --marketplace opensea (its slug) or "
                    "--marketplace magiceden (its symbol)."
                ) from exc
        else:
            failed = await self.follow_configured()
            states = await asyncio.to_thread(self._storage.sync.states, following_only=True)
            collections = [
                await asyncio.to_thread(self._storage.catalog.collection, s.slug) for s in states
            ]
        return await self._run(collections, progress, notify, wait_for_index, failed)

    async def sync_due(self) -> SyncReport:
        """The scheduled job: every followed collection whose interval is up."""
        failed = await self.follow_configured()
        states = await asyncio.to_thread(self.due, self._clock())
        collections = [
            await asyncio.to_thread(self._storage.catalog.collection, s.slug) for s in states
        ]
        return await self._run(collections, False, None, False, failed)

    async def _run(
        self,
        collections: list[Collection],
        progress: bool,
        notify: Notify | None,
        wait_for_index: bool,
        failed: list[CollectionSync],
    ) -> SyncReport:
        results = list(failed)
        for collection in collections:
            result = await self._sync_collection(collection, progress, notify)
            results.append(result)
            log.info("sync %s", result.summary())
        if not collections:
            # Nothing was due: no index run and no price request every few minutes.
            return SyncReport(tuple(results))
        # Also after a run that added no tokens: a killed run may have stored some it did
        # not get to embed.
        index, note = await self._index(progress, wait_for_index)
        if index is not None:
            await say(notify, f"Indexed: {index.summary()}.")
        rates = await self._rates({c.currency for c in collections})
        return SyncReport(tuple(results), index, note, rates)

    async def _sync_collection(
        self, collection: Collection, progress: bool, notify: Notify | None
    ) -> CollectionSync:
        lock = self._locks.setdefault(collection.slug, asyncio.Lock())
        async with lock:
            storage = self._storage
            pk = await asyncio.to_thread(storage.catalog.collection_pk, collection.slug)
            await asyncio.to_thread(storage.sync.started, pk, self._clock())
            try:
                source = self._source(collection.marketplace)
                result = await self._sales(collection, pk, source, progress, notify)
                result = await self._tokens(collection, pk, source, result, progress, notify)
                result = await self._floor(collection, pk, source, result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Whatever a marketplace sends, one collection's failure ends its run only:
                # its checkpoint stays, and the others still sync.
                if isinstance(exc, LensError):
                    message = str(exc)
                else:
                    incident = secrets.token_hex(4)
                    log.error("sync %s failed [%s]", collection.slug, incident, exc_info=exc)
                    message = f"something went wrong on our side (ref {incident})"
                await asyncio.to_thread(storage.sync.failed, pk, self._clock(), message)
                return CollectionSync(collection.slug, collection.marketplace, error=message)
            await asyncio.to_thread(storage.sync.finished, pk, self._clock(), result.summary())
            return result

    async def _sales(
        self,
        collection: Collection,
        pk: int,
        source: MarketplaceSource,
        progress: bool,
        notify: Notify | None,
    ) -> CollectionSync:
        book = self._storage.sync
        state = await asyncio.to_thread(book.state, collection.slug)
        now = self._clock()
        checkpoint = state.checkpoint if state else None
        overlap = timedelta(minutes=self._sync.overlap_minutes)
        if checkpoint is not None:
            since = checkpoint - overlap
        elif self._sync.history_days:
            since = now - timedelta(days=self._sync.history_days)
        else:
            since = GENESIS.get(collection.chain, GENESIS["bitcoin"])
        # An unfinished run stored [resume_before, resume_until]: finish below it first.
        segments: list[tuple[datetime | None, datetime | None]] = []
        if state is not None and state.resume_before is not None:
            segments.append((state.resume_before + timedelta(seconds=1), state.resume_until))
        segments.append((None, None))
        counts: Counter[str] = Counter()
        reasons: list[str] = []
        bar = tqdm(
            desc=f"{collection.slug} sales", unit="sale", leave=False,
            disable=not progress or None,
        )  # fmt: skip
        with bar:
            for before, top in segments:
                if checkpoint is not None and before is None:
                    since = checkpoint - overlap
                newest = top
                async for page in source.sales(collection, since, before):
                    added = await self._store_page(pk, page)
                    counts.update(
                        pages=1, seen=len(page.sales), added=added, skipped=len(page.skipped)
                    )
                    for reason in page.skipped:
                        log.warning("sync %s: skipped %s", collection.slug, reason)
                        if len(reasons) < KEEP_REASONS:
                            reasons.append(reason)
                    page_newest = max((s.timestamp for s in page.sales), default=None)
                    if page_newest is not None:
                        # A sale stamped ahead of our clock must not carry the checkpoint
                        # past sales that have not happened yet.
                        page_newest = min(page_newest, now)
                    if page_newest is not None and (newest is None or page_newest > newest):
                        newest = page_newest
                    if page.oldest is not None and newest is not None:
                        await asyncio.to_thread(book.progressed, pk, page.oldest, newest)
                    bar.update(len(page.sales))
                    if counts["pages"] % 20 == 0:
                        await say(notify, f"{collection.slug}: {counts['seen']} sales read…")
                if newest is not None and (checkpoint is None or newest > checkpoint):
                    checkpoint = newest
                # This stretch is stored whole: the next run starts from here.
                await asyncio.to_thread(book.advanced, pk, checkpoint)
        return CollectionSync(
            collection.slug,
            collection.marketplace,
            pages=counts["pages"],
            sales_seen=counts["seen"],
            sales_added=counts["added"],
            skipped=counts["skipped"],
            checkpoint=checkpoint,
            reasons=tuple(reasons),
        )

    async def _store_page(self, pk: int, page: SalesPage) -> int:
        if not page.sales:
            return 0
        counts = await asyncio.to_thread(self._storage.sales.add, pk, list(page.sales))
        return counts.added

    async def _tokens(
        self,
        collection: Collection,
        pk: int,
        source: MarketplaceSource,
        result: CollectionSync,
        progress: bool,
        notify: Notify | None,
    ) -> CollectionSync:
        book = self._storage.sync
        limit = self._sync.max_new_tokens
        todo = await asyncio.to_thread(book.tokens_to_fetch, pk, self._clock(), limit + 1)
        waiting = len(todo) > limit
        todo = todo[:limit]
        if todo:
            await say(notify, f"{collection.slug}: fetching {len(todo)} new tokens…")
        added = failed = 0
        bar = tqdm(
            total=len(todo), desc=f"{collection.slug} tokens", unit="token", leave=False,
            disable=not progress or None,
        )  # fmt: skip
        with bar:
            for start in range(0, len(todo), TOKEN_BATCH):
                batch = todo[start : start + TOKEN_BATCH]
                good, bad = await self._fetch_tokens(collection, source, batch)
                writes = await asyncio.to_thread(self._checked, good, bad)
                if writes:
                    await asyncio.to_thread(self._storage.catalog.upsert_tokens, pk, writes)
                    await asyncio.to_thread(
                        book.tokens_recovered, pk, [w.token_id for w in writes]
                    )
                now = self._clock()
                for token_id, error in bad.items():
                    log.info("sync %s: token %s: %s", collection.slug, token_id, error)
                    await asyncio.to_thread(
                        book.token_failed, pk, token_id, error, now, self._sync.retry_hours
                    )
                added += len(writes)
                failed += len(bad)
                bar.update(len(batch))
        return replace(
            result, tokens_added=added, tokens_failed=failed, more_tokens_waiting=waiting
        )

    async def _fetch_tokens(
        self, collection: Collection, source: MarketplaceSource, token_ids: list[str]
    ) -> tuple[list[tuple[TokenMeta, bytes]], dict[str, str]]:
        fetcher = self._require().fetcher

        async def one(token_id: str) -> tuple[TokenMeta, bytes]:
            meta = await source.token(collection, token_id)
            if meta.image_url is None:
                raise InputError("its metadata has no image")
            return meta, await fetcher.fetch(meta.image_url)

        outcomes = await gather_limited(token_ids, self._sync.token_concurrency, one)
        good: list[tuple[TokenMeta, bytes]] = []
        bad: dict[str, str] = {}
        down = [o for o in outcomes if isinstance(o, MarketplaceError)]
        if down and len(down) == len(outcomes):
            # The marketplace itself failed for a whole batch (after its retries): stop here
            # rather than mark every token as broken; the next run carries on.
            raise down[0]
        for token_id, outcome in zip(token_ids, outcomes, strict=True):
            if isinstance(outcome, MarketplaceAuthError):
                raise outcome
            if isinstance(outcome, LensError):
                bad[token_id] = str(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                good.append(outcome)
        return good, bad

    def _checked(
        self, fetched: list[tuple[TokenMeta, bytes]], bad: dict[str, str]
    ) -> list[TokenWrite]:
        """Decode each image in the workers (a minter's image is untrusted), and store the
        good ones by content (blocking)."""
        results = self._decoder.prepare_many([data for _, data in fetched], self._spec)
        writes = []
        for (meta, data), result in zip(fetched, results, strict=True):
            if isinstance(result, LensError):
                bad[meta.token_id] = f"image: {result}"
                continue
            image = self._images.put(data, _suffix(data))
            writes.append(TokenWrite(meta.token_id, meta.name, image, meta.attributes))
        return writes

    async def _floor(
        self, collection: Collection, pk: int, source: MarketplaceSource, result: CollectionSync
    ) -> CollectionSync:
        try:
            floor = await source.floor(collection.slug)
        except MarketplaceAuthError:
            raise
        except LensError as exc:
            log.warning("sync %s: no floor this time: %s", collection.slug, exc)
            return result
        if floor is None:
            return result
        day = self._clock().astimezone(UTC).date()
        await asyncio.to_thread(self._storage.market.save_floors, pk, [(day, floor)])
        return replace(result, floor=floor)

    async def _index(self, progress: bool, wait: bool) -> tuple[IndexReport | None, str | None]:
        try:
            report = await asyncio.to_thread(self._indexer.run, progress=progress, wait=wait)
        except IndexBusy:
            return None, "another index run is in progress; it will add the new tokens"
        except LensError as exc:
            return None, f"not updated: {exc}"
        return report, None

    async def _rates(self, currencies: set[str]) -> dict[str, float]:
        prices = self._require().prices
        if prices is None or not currencies:
            return {}
        try:
            rates = await prices.rates(currencies)
        except (LensError, OSError) as exc:
            log.warning("USD rates not updated: %s", exc)
            return {}
        day = self._clock().astimezone(UTC).date()
        for currency, usd in rates.items():
            await asyncio.to_thread(self._storage.market.save_rates, currency, [(day, usd)])
        return rates

    def _source(self, marketplace: str) -> MarketplaceSource:
        sources = self._require().sources
        if marketplace not in sources:
            raise InputError(
                f"'{shown(marketplace)}' is not a marketplace NFT Lens syncs from "
                f"({', '.join(MARKETPLACES)})."
            )
        return sources[marketplace]

    def _require(self) -> Marketplaces:
        if self._marketplaces is None:
            raise MarketplaceError("Marketplace sync needs the network clients, not opened here.")
        return self._marketplaces


async def say(notify: Notify | None, text: str) -> None:
    """Progress for whoever asked; a chat that cannot be reached must not stop the sync."""
    if notify is None:
        return
    try:
        await notify(text)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("could not post sync progress: %s", text, exc_info=True)


def _suffix(data: bytes) -> str:
    """The file suffix for stored image bytes, from their first bytes."""
    head = data[:16]
    if head.startswith(b"\x89PNG"):
        return ".png"
    if head.startswith(b"\xff\xd8"):
        return ".jpg"
    if head.startswith(b"GIF8"):
        return ".gif"
    if head[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if head.startswith(b"BM"):
        return ".bmp"
    return ".svg" if b"<svg" in data[:1024].lower() else ".img"
