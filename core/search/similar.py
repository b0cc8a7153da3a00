"""``similar``: what looks like a query (a token, an upload, a URL, a file), from the index."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from core.config import Settings
from core.embedding.embedder import Embedder
from core.errors import LensError
from core.imaging.decode import ImageLimits
from core.imaging.prepare import PrepareSpec
from core.imaging.workers import ImageDecoder
from core.models import ImageRef, Match, SimilarResult
from core.queries import QueryResolver, TokenSubject
from core.search.indexing import IndexCache
from core.storage import Catalog, SalesBook, StoredToken
from core.storage.images import ImageStore

R = TypeVar("R")
# Longest side of the previews drawn for collages (a collage tile is 192 px).
PREVIEW_SIDE = 256


class SimilarService:
    """Answers "what looks like this?" for every front end."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        sales: SalesBook,
        images: ImageStore,
        decoder: ImageDecoder,
        embedder: Embedder,
        indexes: IndexCache,
        queries: QueryResolver,
        settings: Settings,
        heavy: asyncio.Semaphore,
    ) -> None:
        self._catalog = catalog
        self._sales = sales
        self._images = images
        self._decoder = decoder
        self._embedder = embedder
        self._indexes = indexes
        self._queries = queries
        self._settings = settings
        self._heavy = heavy
        self._limits = ImageLimits(settings.images.max_bytes, settings.images.max_pixels)

    async def similar(
        self,
        query: str,
        k: int | None = None,
        collection: str | None = None,
        *,
        allow_files: bool = False,
        preview: bool = False,
    ) -> SimilarResult:
        """Matches for a token reference, a marketplace item URL, an image URL or (with
        ``allow_files``) a local file; ``preview`` also draws the query for a collage."""
        subject = await self._queries.resolve(query, allow_files=allow_files)
        if isinstance(subject, TokenSubject):
            return await self.similar_token(subject.token, query, k, collection, preview=preview)
        return await self.similar_image(subject.data, query, k, collection, preview=preview)

    async def similar_image(
        self,
        data: bytes,
        label: str,
        k: int | None = None,
        collection: str | None = None,
        *,
        preview: bool = False,
    ) -> SimilarResult:
        """Matches for raw image bytes (an upload or a fetched URL)."""
        # Decoded in a worker process, outside the embedding bound: a hostile image costs a
        # worker for a few seconds, never the engine's embedding slot.
        spec = PrepareSpec(
            self._limits,
            canonical_size=self._embedder.input_size,
            background=self._settings.images.background_rgb,
            preview_side=PREVIEW_SIDE if preview else None,
        )
        prepared = await self._decoder.prepare(data, spec)
        assert prepared.canonical is not None
        vector = await self._run(self._embedder.embed_batch, prepared.canonical[None])
        result = await self._run(self._search, vector[0], label, k, collection, None)
        return SimilarResult(result.query, result.matches, prepared.preview)

    async def similar_token(
        self,
        token: StoredToken,
        label: str | None = None,
        k: int | None = None,
        collection: str | None = None,
        *,
        preview: bool = False,
    ) -> SimilarResult:
        """Matches for a tracked token, leaving the token itself out."""
        label = label or f"{token.collection}:{token.token_id}"
        vector = await self._run(self._indexed_vector, token)
        drawn = None
        if vector is None or preview:
            # A token indexed under another model (or not yet) is embedded from its image.
            data = await asyncio.to_thread(
                self._images.read, token.image, self._settings.images.max_bytes
            )
            spec = PrepareSpec(
                self._limits,
                canonical_size=self._embedder.input_size if vector is None else None,
                background=self._settings.images.background_rgb,
                preview_side=PREVIEW_SIDE if preview else None,
            )
            prepared = await self._decoder.prepare(data, spec)
            drawn = prepared.preview
            if vector is None:
                assert prepared.canonical is not None
                vector = (await self._run(self._embedder.embed_batch, prepared.canonical[None]))[0]
        result = await self._run(self._search, vector, label, k, collection, token.pk)
        return SimilarResult(result.query, result.matches, drawn)

    async def previews(self, refs: Sequence[ImageRef | None]) -> list[bytes | None]:
        """Small PNGs of stored images, for collages; ``None`` where one cannot be drawn."""
        wanted = [(i, ref) for i, ref in enumerate(refs) if ref is not None]
        spec = PrepareSpec(self._limits, preview_side=PREVIEW_SIDE)

        def draw() -> list[bytes | None]:
            blobs: list[bytes] = []
            for _, ref in wanted:
                try:
                    blobs.append(self._images.read(ref, self._settings.images.max_bytes))
                except LensError:
                    blobs.append(b"")
            drawn = self._decoder.prepare_many(blobs, spec)
            return [None if isinstance(item, LensError) else item.preview for item in drawn]

        found = await asyncio.to_thread(draw) if wanted else []
        result: list[bytes | None] = [None] * len(refs)
        for (i, _), picture in zip(wanted, found, strict=True):
            result[i] = picture
        return result

    async def _run(self, func: Callable[..., R], *args: object) -> R:
        # Model, FAISS and SQL work never runs on the event loop, and only a bounded number
        # of such jobs run at once.
        async with self._heavy:
            return await asyncio.to_thread(func, *args)

    def _indexed_vector(self, token: StoredToken) -> np.ndarray | None:
        # Reading the index may load a large file, so this runs in a worker thread.
        return self._indexes.get().vector(token.pk)

    def _search(
        self,
        vector: np.ndarray,
        label: str,
        k: int | None,
        collection: str | None,
        exclude: int | None,
    ) -> SimilarResult:
        search = self._settings.search
        k = min(max(1, k or search.default_k), search.max_k)
        allowed = self._catalog.token_pks(collection) if collection else None
        index = self._indexes.get()
        scores, keys = index.search(vector[None], k + (exclude is not None), allowed)
        pairs = [
            (int(key), float(score))
            for key, score in zip(keys[0], scores[0], strict=True)
            if key >= 0 and key != exclude
        ][:k]
        tokens = self._catalog.tokens_by_pk(key for key, _ in pairs)
        sales = self._sales.last_sales(tokens.values())
        matches = tuple(
            Match(
                collection=tokens[key].collection,
                token_id=tokens[key].token_id,
                score=float(np.clip(score, 0.0, 1.0)),
                image=tokens[key].image,
                last_sale=sales.get(key),
            )
            for key, score in pairs
            if key in tokens
        )
        return SimilarResult(query=label, matches=matches)
