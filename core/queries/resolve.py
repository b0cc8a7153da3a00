"""Resolving a query to what it names: a tracked token, or image bytes (a file or a URL)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from core.errors import FetchError, QueryError, UnknownToken, shown
from core.imaging.decode import too_large
from core.imaging.fetch import ImageFetcher
from core.queries.grammar import (
    ContractRef,
    MintRef,
    Reference,
    TokenRef,
    is_url,
    parse_reference,
)
from core.storage import Catalog, StoredToken
from core.storage.files import read_capped


@dataclass(frozen=True)
class TokenSubject:
    """The query names a tracked token."""

    token: StoredToken


@dataclass(frozen=True)
class ImageSubject:
    """The query is a picture: an upload, a local file or a fetched URL."""

    data: bytes
    label: str


Subject = TokenSubject | ImageSubject


class QueryResolver:
    """Turns what people type (or upload) into a ``Subject``, in one place for CLI and chat."""

    def __init__(self, catalog: Catalog, fetcher: ImageFetcher | None, max_bytes: int) -> None:
        self._catalog = catalog
        self._fetcher = fetcher
        self._max_bytes = max_bytes

    async def resolve(self, text: str, *, allow_files: bool = False) -> Subject:
        """A token reference, a marketplace item URL, an image URL, or (``allow_files``, the
        CLI and the local console only) an image file; anything else is a ``QueryError``."""
        text = text.strip()
        if not text:
            raise QueryError("Give a picture, an image URL or a token like 'cryptopunks 7804'.")
        if allow_files:
            path = _existing_file(text)
            if path is not None:
                return ImageSubject(await asyncio.to_thread(self.read_file, path), text)
        reference = parse_reference(text)
        if reference is not None:
            return TokenSubject(await asyncio.to_thread(self.token, reference))
        if is_url(text):
            if self._fetcher is None:
                raise FetchError("Fetching URLs is not available here.")
            return ImageSubject(await self._fetcher.fetch(text), text)
        what = "an image file, " if allow_files else ""
        raise QueryError(
            f"'{shown(text)}' is not {what}an image URL or a token like 'cryptopunks 7804'."
        )

    def token(self, reference: Reference) -> StoredToken:
        """The tracked token a reference names (blocking: SQL); raises when there is none."""
        if isinstance(reference, TokenRef):
            return self._catalog.token(reference.collection, reference.token_id)
        if isinstance(reference, ContractRef):
            for collection in self._catalog.collections():
                if (collection.contract or "").lower() == reference.contract and (
                    reference.chain is None or collection.chain == reference.chain
                ):
                    return self._catalog.token(collection.slug, reference.token_id)
            raise QueryError("That token's contract is not one of the tracked collections.")
        if isinstance(reference, MintRef):
            collections = {c.slug: c for c in self._catalog.collections()}
            for token in self._catalog.tokens_with_id(reference.mint):
                found = collections.get(token.collection)
                if found is not None and (
                    found.chain == "solana" or found.marketplace == "magiceden"
                ):
                    return token
        raise UnknownToken("That token is not in any tracked collection.")

    def read_file(self, path: Path) -> bytes:
        """A local image file, size-checked before it is read."""
        try:
            data = read_capped(path, self._max_bytes)
            if data is None:
                raise too_large(path.stat().st_size, self._max_bytes)
        except (OSError, ValueError) as exc:
            raise QueryError(f"Cannot read {shown(path.name)}.") from exc
        return data


def _existing_file(text: str) -> Path | None:
    # A NUL or an over-long name makes the OS refuse the path; that means "not a file here",
    # not a crash.
    try:
        path = Path(text).expanduser()
        return path if path.is_file() else None
    except (OSError, ValueError, RuntimeError):
        return None
