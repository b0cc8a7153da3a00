"""``similar``: resolve a query (file, URL, SLUG:TOKEN_ID or raw bytes) and search the index."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from core.config import Settings
from core.embedding.embedder import Embedder
from core.errors import FetchError, QueryError
from core.imaging.canonical import canonicalise
from core.imaging.decode import ImageLimits, decode_image, too_large
from core.imaging.fetch import ImageFetcher
from core.models import Match, SimilarResult
from core.search.indexing import IndexCache
from core.storage import Store, StoredToken

TOKEN_REF = re.compile(r"^(?P<slug>[a-z0-9][a-z0-9_-]{0,99})[: ](?P<token>[A-Za-z0-9._-]{1,100})$")
URL_SCHEMES = ("http://", "https://", "ipfs://")

R = TypeVar("R")


class SimilarService:
    """Answers "what looks like this?" for every front end."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        indexes: IndexCache,
        fetcher: ImageFetcher | None,
        settings: Settings,
        heavy: asyncio.Semaphore,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._indexes = indexes
        self._fetcher = fetcher
        self._settings = settings
        self._heavy = heavy
        self._limits = ImageLimits(settings.images.max_bytes, settings.images.max_pixels)

    async def similar(
        self, query: str, k: int | None = None, collection: str | None = None
    ) -> SimilarResult:
        """Matches for a file path, an http(s)/ipfs URL or a ``SLUG:TOKEN_ID`` reference."""
        query = query.strip()
        if not query:
            raise QueryError("The query is empty; give an image file, a URL or SLUG:TOKEN_ID.")
        if query.lower().startswith(URL_SCHEMES):
            if self._fetcher is None:
                raise FetchError("Fetching URLs is not available here.")
            data = await self._fetcher.fetch(query)
            return await self.similar_image(data, query, k, collection)
        path = Path(query).expanduser()
        if path.is_file():
            data = await asyncio.to_thread(self._read_file, path)
            return await self.similar_image(data, query, k, collection)
        reference = TOKEN_REF.match(query)
        if reference:
            return await self.similar_token(reference["slug"], reference["token"], k, collection)
        raise QueryError(
            f"'{query}' is not an image file, an http(s)/ipfs URL or a SLUG:TOKEN_ID reference."
        )

    async def similar_image(
        self, data: bytes, label: str, k: int | None = None, collection: str | None = None
    ) -> SimilarResult:
        """Matches for raw image bytes (an upload or a fetched URL)."""
        vector = await self._run(self._embed_bytes, data)
        return await self._run(self._search, vector, label, k, collection, None)

    async def similar_token(
        self, slug: str, token_id: str, k: int | None = None, collection: str | None = None
    ) -> SimilarResult:
        """Matches for a tracked token, leaving the token itself out."""
        token = await self._run(self._store.token, slug, token_id)
        vector = await self._run(self._token_vector, token)
        return await self._run(self._search, vector, f"{slug}:{token_id}", k, collection, token.pk)

    async def _run(self, func: Callable[..., R], *args: object) -> R:
        # Model, FAISS and SQL work never runs on the event loop, and only a bounded number
        # of such jobs run at once.
        async with self._heavy:
            return await asyncio.to_thread(func, *args)

    def _read_file(self, path: Path) -> bytes:
        try:
            size = path.stat().st_size
            if size > self._limits.max_bytes:
                raise too_large(size, self._limits.max_bytes)
            return path.read_bytes()
        except OSError as exc:
            raise QueryError(f"Cannot read {path.name}.") from exc

    def _token_vector(self, token: StoredToken) -> np.ndarray:
        # The index holds the vector already (reading the index may load a large file, so
        # this runs in a worker thread); a token indexed under another model is embedded.
        vector = self._indexes.get().vector(token.pk)
        if vector is None:
            vector = self._embed_bytes(self._read_file(self._settings.data_dir / token.image_path))
        return vector

    def _embed_bytes(self, data: bytes) -> np.ndarray:
        image = decode_image(data, self._limits)
        canonical = canonicalise(
            image, self._embedder.input_size, self._settings.images.background_rgb
        )
        return self._embedder.embed_batch(canonical[None])[0]

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
        allowed = self._store.token_pks(collection) if collection else None
        index = self._indexes.get()
        scores, keys = index.search(vector[None], k + (exclude is not None), allowed)
        pairs = [
            (int(key), float(score))
            for key, score in zip(keys[0], scores[0], strict=True)
            if key >= 0 and key != exclude
        ][:k]
        tokens = self._store.tokens_by_pk(key for key, _ in pairs)
        sales = self._store.last_sales(tokens.values())
        matches = tuple(
            Match(
                collection=tokens[key].collection,
                token_id=tokens[key].token_id,
                score=float(np.clip(score, 0.0, 1.0)),
                image=str(self._settings.data_dir / tokens[key].image_path),
                last_sale=sales.get(key),
            )
            for key, score in pairs
            if key in tokens
        )
        return SimilarResult(query=label, matches=matches)
