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
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from PIL import Image

from bot.failures import RateLimited
from bot.ratelimit import PendingGate, RateLimiter
from bot.references import ContractRef, Reference, TokenRef, is_url, parse_reference
from core.app import Engine
from core.errors import IndexNotReady, LensError, QueryError, UnknownToken
from core.imaging.decode import ImageLimits, decode_image, too_large
from core.models import Collection, Sale, SimilarResult
from core.render.chart import render_price_chart
from core.render.collage import render_collage
from core.valuation import SalesValue, SalesValuer

log = logging.getLogger(__name__)

# Chat answers stay readable and the collage stays small enough to send anywhere.
MAX_K = 20
R = TypeVar("R")


@dataclass(frozen=True)
class Picture:
    """A rendered PNG and how to name and describe it."""

    data: bytes
    filename: str
    description: str


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
    """The sales-based value answer and its chart."""

    value: SalesValue
    collection: Collection
    chart: Picture


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


class LensCommands:
    """The bot's commands over one engine, shared by every front end in the process."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        settings = engine.settings
        self.engine = engine
        self.settings = settings
        self._store = engine.store
        self._valuer = SalesValuer(engine.store, settings.valuation, now)
        self._limits = ImageLimits(settings.images.max_bytes, settings.images.max_pixels)
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
                await self._blocking(self._store.collection, collection)
            result = await self.engine.similar.similar_image(data, label, _k(k), collection)
            query_image = await self._render(decode_image, data, self._limits)
            return await self._similar_answer(result, label, query_image, collection)

    async def similar_text(
        self,
        text: str,
        k: int | None = None,
        collection: str | None = None,
        *,
        allow_files: bool = False,
    ) -> SimilarAnswer:
        """Look-alikes of an image URL or a token reference (or, locally, an image file)."""
        text = text.strip()
        if not text:
            raise QueryError(
                "Send a picture with /similar, reply to a picture with /similar, or give an "
                "image URL or a token like 'cryptopunks 7804'."
            )
        with self.gate.enter():
            if collection:
                await self._blocking(self._store.collection, collection)
            # Marketplace token pages are URLs too; they name a token, not an image.
            reference = parse_reference(text)
            similar = self.engine.similar
            if reference is not None:
                token = await self._blocking(self._resolve, reference)
                query_image = await self._render(self._token_image, token)
                result = await similar.similar_token(
                    token.collection, token.token_id, _k(k), collection
                )
                label = f"{token.collection} #{token.token_id}"
                return await self._similar_answer(result, label, query_image, collection)
            if is_url(text) and self.engine.fetcher is not None:
                # Fetched here rather than inside the engine so the collage can show it.
                data = await self.engine.fetcher.fetch(text)
                query_image = await self._render(decode_image, data, self._limits)
                result = await similar.similar_image(data, text, _k(k), collection)
                return await self._similar_answer(result, text, query_image, collection)
            if not allow_files:
                raise QueryError(
                    f"'{_clip(text)}' is not an image URL or a token like 'cryptopunks 7804'."
                )
            path = Path(text).expanduser()
            query_image = None
            if path.is_file():
                data = path.read_bytes()
                query_image = await self._render(decode_image, data, self._limits)
            result = await similar.similar(text, _k(k), collection)
            return await self._similar_answer(result, text, query_image, collection)

    async def _similar_answer(
        self,
        result: SimilarResult,
        label: str,
        query_image: Image.Image | None,
        collection: str | None,
    ) -> SimilarAnswer:
        collage = await self._render(render_collage, query_image, result.matches, self._limits)
        collections = await self._blocking(self._store.collections)
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
            token = await self._blocking(self._resolve, reference)
            value = await self._blocking(self._valuer.value, token.collection, token.token_id)
            collection = await self._blocking(self._store.collection, token.collection)
            chart = await self._render(
                render_price_chart,
                value.history,
                value.token_sales,
                title=f"{value.collection} #{value.token_id} · collection sales",
                currency=value.currency,
            )
        picture = Picture(chart, "value.png", f"Sales of {value.collection}")
        return ValueAnswer(value, collection, picture)

    # /collections, /status ---------------------------------------------------------------

    async def collections(self) -> CollectionsAnswer:
        return await self._blocking(self._collections)

    def _collections(self) -> CollectionsAnswer:
        counts = self._store.counts()
        rows = []
        for collection in self._store.collections():
            count = counts.get(collection.slug, {})
            rows.append(
                CollectionRow(
                    collection,
                    count.get("tokens", 0),
                    count.get("sales", 0),
                    self._store.latest_sale(collection.slug),
                )
            )
        return CollectionsAnswer(tuple(rows))

    async def status(self) -> StatusAnswer:
        def indexed() -> int | None:
            try:
                return len(self.engine.indexes.get())
            except IndexNotReady:
                return None

        size = await self._blocking(indexed)
        collections = await self._blocking(self._store.collections)
        return StatusAnswer(
            uptime_s=self._clock() - self._started,
            indexed=size,
            collections=len(collections),
            answered=self.answered,
            failed=self.failed,
            rate_limited=self.rate_limited,
            pending=self.gate.pending,
            capacity=self.gate.capacity,
        )

    # Helpers -----------------------------------------------------------------------------

    def _resolve(self, reference: Reference) -> TokenRef:
        """The tracked collection and token a reference names; raises when there is none."""
        if isinstance(reference, TokenRef):
            self._store.token(reference.collection, reference.token_id)
            return reference
        collections = self._store.collections()
        if isinstance(reference, ContractRef):
            for collection in collections:
                if (collection.contract or "").lower() == reference.contract and (
                    reference.chain is None or collection.chain == reference.chain
                ):
                    self._store.token(collection.slug, reference.token_id)
                    return TokenRef(collection.slug, reference.token_id)
            raise QueryError("That token's contract is not one of the tracked collections.")
        for collection in collections:
            if collection.chain != "solana" and collection.marketplace != "magiceden":
                continue
            try:
                self._store.token(collection.slug, reference.mint)
            except UnknownToken:
                continue
            return TokenRef(collection.slug, reference.mint)
        raise UnknownToken("That token is not in any tracked collection.")

    def _token_image(self, token: TokenRef) -> Image.Image | None:
        stored = self._store.token(token.collection, token.token_id)
        try:
            data = (self.settings.data_dir / stored.image_path).read_bytes()
            return decode_image(data, self._limits)
        except (OSError, LensError):
            return None

    async def _blocking(self, func: Callable[..., R], *args: object) -> R:
        # SQL and file reads stay off the event loop; they are short, so no extra bound.
        return await asyncio.to_thread(func, *args)

    async def _render(self, func: Callable[..., R], *args: object, **kwargs: object) -> R:
        async with self._renders:
            return await asyncio.to_thread(func, *args, **kwargs)


def _k(k: int | None) -> int | None:
    return None if k is None else max(1, min(MAX_K, k))


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
