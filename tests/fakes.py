"""Hand-written fakes for the engine's external boundaries, shared by the test suite."""

from __future__ import annotations

from collections.abc import Mapping

from core.errors import FetchError


class FakeImageFetcher:
    """An ``ImageFetcher`` serving canned bytes per URL; unknown URLs fail like a 404."""

    def __init__(self, images: Mapping[str, bytes] | None = None) -> None:
        self.images: dict[str, bytes] = dict(images or {})
        self.requested: list[str] = []

    async def fetch(self, url: str) -> bytes:
        """Return the canned bytes for ``url`` and remember that it was asked for."""
        self.requested.append(url)
        try:
            return self.images[url]
        except KeyError:
            raise FetchError("The server answered HTTP 404.") from None
