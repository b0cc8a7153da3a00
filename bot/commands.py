"""What every front end's commands do, platform-free: parse, call the engine, draw pictures.

Front ends turn a chat message into one call here and the typed answer back into a reply;
nothing in this module knows about Telegram, Discord or a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from bot.failures import RateLimited
from bot.ratelimit import PendingGate, RateLimiter
from core.app import Engine
from core.digest.jobs import CADENCES, digest_post
from core.errors import LensError, QueryError
from core.imaging.decode import too_large
from core.models import Collection, ImageRef, Picture, PriceEstimate, Sale, SimilarResult
from core.posting import Post
from core.queries import TokenSubject, parse_collection_target, parse_reference, parse_slug
from core.render.chart import EstimateBand, render_price_chart
from core.render.collage import render_collage, render_strip
from core.status.report import JobStatus, gather_status
from core.sync.service import Notify, say
from core.valuation import SalesValue

log = logging.getLogger(__name__)

# Chat answers stay readable and the collage stays small enough to send anywhere.
MAX_K = 20
R = TypeVar("R")


@dataclass(frozen=True)
class SimilarAnswer:
    """Look-alikes for one query, the collage, and the collections needed to link matches."""

    result: SimilarResult
    label: str
    collage: Picture
    collections: Mapping[str, Collection]
    collection_filter: str | None = None


@dataclass(frozen=True)
class ValueAnswer:
    """What a token is worth: the model's estimate when there is a model (with the comps as
    a picture strip), always what the sales say, and a chart of them."""

    value: SalesValue
    collection: Collection
    chart: Picture
    estimate: PriceEstimate | None = None
    comps: Picture | None = None

    @property
    def pictures(self) -> tuple[Picture, ...]:
        return (self.chart,) if self.comps is None else (self.chart, self.comps)


@dataclass(frozen=True)
class DigestReply:
    """What /digest answers: a line of text, or a digest to post (text and montages)."""

    text: str | None
    post: Post | None = None


@dataclass(frozen=True)
class CollectionRow:
    collection: Collection
    tokens: int
    sales: int
    latest_sale: Sale | None


@dataclass(frozen=True)
class CollectionsAnswer:
    rows: tuple[CollectionRow, ...]


@dataclass(frozen=True)
class StatusAnswer:
    """For admins: how the bot is doing."""

    uptime_s: float
    indexed: int | None
    collections: int
    answered: int
    failed: int
    rate_limited: int
    pending: int
    capacity: int
    jobs: tuple[JobStatus, ...] = ()


class LensCommands:
    """The bot's commands over one engine, shared by every front end in the process."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = engine.settings
        self.engine = engine
        self.settings = settings
        self._catalog = engine.storage.catalog
        self.rate_limiter = RateLimiter(
            settings.bot.user_rate_limit, settings.bot.chat_rate_limit, clock
        )
        self.gate = PendingGate(settings.bot.max_pending)
        # Drawing collages and charts is CPU work too; it gets its own small bound so it
        # never competes with the embedding bound for slots.
        self._renders = asyncio.Semaphore(settings.bot.max_concurrent_renders)
        self._clock = clock
        self._started = clock()
        self.answered = 0
        self.failed = 0
        self.rate_limited = 0
        # A /track's first sync runs on after its reply; close() cancels what is left.
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def max_upload_bytes(self) -> int:
        """Uploads larger than this are refused before they are downloaded."""
        return min(self.settings.images.max_bytes, self.settings.fetch.max_bytes)

    # Admission -----------------------------------------------------------------------------

    def admit(self, user: Hashable, chat: Hashable | None = None) -> None:
        """Count one command against the user's and the chat's limits, or raise RateLimited."""
        try:
            self.rate_limiter.admit(user, chat)
        except RateLimited:
            self.rate_limited += 1
            raise

    def record(self, ok: bool) -> None:
        """Front ends report each command's outcome here, for /status."""
        if ok:
            self.answered += 1
        else:
            self.failed += 1

    def check_upload(self, size: int | None) -> None:
        """Refuse an upload by its declared size, before spending time downloading it."""
        if size is not None and size > self.max_upload_bytes:
            raise too_large(size, self.max_upload_bytes, "The picture")

    # /similar ----------------------------------------------------------------------------

    async def similar_image(
        self, data: bytes, label: str, k: int | None = None, collection: str | None = None
    ) -> SimilarAnswer:
        """Look-alikes of an uploaded picture."""
        with self.gate.enter():
            if collection:
                await self._blocking(self._catalog.collection, collection)
            result = await self.engine.similar.similar_image(
                data, label, _k(k), collection, preview=True
            )
            return await self._similar_answer(result, label, collection)

    async def similar_text(
        self,
        text: str,
        k: int | None = None,
        collection: str | None = None,
        *,
        allow_files: bool = False,
    ) -> SimilarAnswer:
        """Look-alikes of a token, a marketplace item URL, an image URL (or, locally, a file)."""
        text = text.strip()
        if not text:
            raise QueryError(
                "Send a picture with /similar, reply to a picture with /similar, or give an "
                "image URL or a token like 'cryptopunks 7804'."
            )
        with self.gate.enter():
            if collection:
                await self._blocking(self._catalog.collection, collection)
            subject = await self.engine.queries.resolve(text, allow_files=allow_files)
            similar = self.engine.similar
            if isinstance(subject, TokenSubject):
                token = subject.token
                label = f"{token.collection} #{token.token_id}"
                result = await similar.similar_token(token, label, _k(k), collection, preview=True)
            else:
                label = subject.label
                result = await similar.similar_image(
                    subject.data, label, _k(k), collection, preview=True
                )
            return await self._similar_answer(result, label, collection)

    async def _similar_answer(
        self, result: SimilarResult, label: str, collection: str | None
    ) -> SimilarAnswer:
        previews = await self.engine.similar.previews([match.image for match in result.matches])
        collage = await self._render(render_collage, result.preview, result.matches, previews)
        collections = await self._blocking(self._catalog.collections)
        return SimilarAnswer(
            result=result,
            label=label,
            collage=Picture(collage, "similar.png", f"Look-alikes for {label}"),
            collections={c.slug: c for c in collections},
            collection_filter=collection,
        )

    # /value ------------------------------------------------------------------------------

    async def value(self, text: str) -> ValueAnswer:
        """``collection token``, ``collection:token`` or a marketplace token URL."""
        reference = parse_reference(text)
        if reference is None:
            raise QueryError(
                "Tell me which token: '/value cryptopunks 7804' or a marketplace link to it."
            )
        with self.gate.enter():
            token = await self._blocking(self.engine.queries.token, reference)
            value = await self._blocking(
                self.engine.valuation.value, token.collection, token.token_id
            )
            collection = await self._blocking(self._catalog.collection, token.collection)
            pricing = self.engine.pricing
            estimate: PriceEstimate | None = None
            if await self._blocking(pricing.has_model, token.collection):
                # Model work is CPU work: bounded like the pictures.
                estimate = await self._render(pricing.value, token.collection, token.token_id)
            band = None
            if estimate is not None:
                band = EstimateBand(estimate.at, estimate.estimate, estimate.low, estimate.high)
            chart = await self._render(
                render_price_chart,
                value.history,
                value.token_sales,
                title=f"{value.collection} #{value.token_id} · collection sales",
                currency=value.currency,
                band=band,
            )
            comps = await self._comps_strip(estimate) if estimate and estimate.comps else None
        picture = Picture(chart, "value.png", f"Sales of {value.collection}")
        return ValueAnswer(value, collection, picture, estimate, comps)

    async def _comps_strip(self, estimate: PriceEstimate) -> Picture:
        def refs() -> list[ImageRef | None]:
            found: list[ImageRef | None] = []
            for comp in estimate.comps:
                try:
                    found.append(self._catalog.token(comp.collection, comp.token_id).image)
                except LensError:
                    found.append(None)
            return found

        previews = await self.engine.similar.previews(await self._blocking(refs))
        items = [
            (
                preview,
                [
                    f"{comp.collection} #{comp.token_id}",
                    f"{comp.price:.4g} {comp.currency} · {comp.timestamp:%Y-%m-%d}",
                ],
            )
            for comp, preview in zip(estimate.comps, previews, strict=True)
        ]
        strip = await self._render(render_strip, items)
        return Picture(strip, "comps.png", f"Sales of tokens like {estimate.token_id}")

    # /collections, /status ---------------------------------------------------------------

    async def collections(self) -> CollectionsAnswer:
        return await self._blocking(self._collections)

    def _collections(self) -> CollectionsAnswer:
        storage = self.engine.storage
        tokens = storage.catalog.token_counts()
        sales = storage.sales.counts()
        rows = [
            CollectionRow(
                collection,
                tokens.get(collection.slug, 0),
                sales.get(collection.slug, 0),
                storage.sales.latest(collection.slug),
            )
            for collection in storage.catalog.collections()
        ]
        return CollectionsAnswer(tuple(rows))

    async def status(self) -> StatusAnswer:
        engine = self.engine
        report = await self._blocking(
            gather_status,
            engine.storage,
            engine.embedder.key,
            engine.indexer.path,
            engine.jobs,
            engine.settings.sync.every_minutes,
        )
        return StatusAnswer(
            uptime_s=self._clock() - self._started,
            indexed=report.embedded if report.index_file else None,
            collections=len(report.collections),
            answered=self.answered,
            failed=self.failed,
            rate_limited=self.rate_limited,
            pending=self.gate.pending,
            capacity=self.gate.capacity,
            jobs=report.jobs,
        )

    # Following collections (admins) ----------------------------------------------------------

    async def track(self, text: str, notify: Notify) -> Collection:
        """Follow a collection and start its first sync in the background; ``notify`` hears
        its progress and, at the end, whether /similar and /value can use it."""
        target = parse_collection_target(text)
        collection = await self.engine.syncer.track(target.slug, target.marketplace)
        task = asyncio.create_task(self._first_sync(collection, notify))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return collection

    async def untrack(self, text: str) -> tuple[str, bool]:
        """Stop following a collection (its data stays): (slug, whether it was followed)."""
        slug = parse_slug(text)
        return slug, await self._blocking(self.engine.syncer.untrack, slug)

    async def settle(self) -> None:
        """Wait for background work (a /track's sync) to finish."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel background work (a /track's sync) and wait for it to stop."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _first_sync(self, collection: Collection, notify: Notify) -> None:
        slug = collection.slug
        try:
            report = await self.engine.syncer.sync(slug, notify=notify)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await say(notify, f"Syncing {slug} failed: {_sentence(exc, log)}")
            return
        result = report.collections[0]
        if result.error is not None:
            await say(notify, f"Syncing {slug} failed: {result.error}")
            return
        if report.index is None:
            await say(
                notify,
                f"{collection.name} ({slug}): {result.sales_added} new sales stored; its tokens "
                f"join /similar at the next index run ({report.index_note}).",
            )
            return
        counts = await self._blocking(self.engine.storage.vectors.counts, self.engine.embedder.key)
        more = " More tokens follow with the next syncs." if result.more_tokens_waiting else ""
        await say(
            notify,
            f"{collection.name} ({slug}) is ready: {result.sales_added} new sales, "
            f"{counts.get(slug, 0)} tokens indexed. /similar and /value can use it now; it "
            f"stays in sync.{more}",
        )

    # Digests (admins) ------------------------------------------------------------------------

    async def digest(self, text: str, target: str) -> DigestReply:
        """``/digest [collection]`` posts one now; ``subscribe <collection> daily|weekly``,
        ``list`` and ``unsubscribe [<collection>]`` manage this chat (``target``)."""
        words = text.split()
        book = self.engine.storage.digests
        now = self.engine.clock()
        if words[:1] == ["list"]:
            subscriptions = await self._blocking(book.subscriptions, target)
            if not subscriptions:
                return DigestReply("This chat gets no scheduled digests.")
            lines = [f"{s.collection}: {s.cadence}" for s in subscriptions]
            return DigestReply("Scheduled digests here:\n" + "\n".join(lines))
        if words[:1] == ["subscribe"]:
            if len(words) != 3 or words[2].lower() not in CADENCES:
                raise QueryError("Write /digest subscribe <collection> daily|weekly.")
            slug, cadence = parse_slug(words[1]), words[2].lower()
            pk = await self._blocking(self._catalog.collection_pk, slug)
            new = await self._blocking(book.subscribe, target, pk, cadence, now)
            verb = "will get" if new else "now gets"
            return DigestReply(f"This chat {verb} the {slug} digest {cadence}.")
        if words[:1] == ["unsubscribe"]:
            if len(words) > 2:
                raise QueryError("Write /digest unsubscribe [<collection>].")
            only: int | None = None
            if len(words) == 2:
                only = await self._blocking(self._catalog.collection_pk, parse_slug(words[1]))
            removed = await self._blocking(book.unsubscribe, target, only)
            return DigestReply(
                f"Removed {removed} scheduled digest{'s' if removed != 1 else ''} from this chat."
            )
        if len(words) > 1:
            raise QueryError("Write /digest [collection], or /digest subscribe|list|unsubscribe.")
        slug = parse_slug(words[0]) if words else await self._only_collection()
        digest = await self.engine.digests.digest(slug)
        return DigestReply(None, digest_post(digest))

    async def _only_collection(self) -> str:
        collections = await self._blocking(self._catalog.collections)
        if len(collections) != 1:
            raise QueryError("Which collection? Write /digest <collection>.")
        return collections[0].slug

    # Helpers -----------------------------------------------------------------------------

    async def _blocking(self, func: Callable[..., R], *args: object) -> R:
        # SQL and file reads stay off the event loop; they are short, so no extra bound.
        return await asyncio.to_thread(func, *args)

    async def _render(self, func: Callable[..., R], *args: object, **kwargs: object) -> R:
        async with self._renders:
            return await asyncio.to_thread(func, *args, **kwargs)


def _sentence(exc: BaseException, logger: logging.Logger) -> str:
    if isinstance(exc, LensError):
        return str(exc)
    logger.error("a /track sync failed", exc_info=exc)
    return "something went wrong on our side; see the bot's log."


def _k(k: int | None) -> int | None:
    return None if k is None else max(1, min(MAX_K, k))
