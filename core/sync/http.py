"""One API's HTTP manners: a request rate, timeouts, retries with backoff, and Retry-After.

Every marketplace and price client talks through an ``ApiClient``: its own session (so one
service's pool, timeout and headers never leak into another's), at most ``requests_per_s``
requests a second, and one policy for what goes wrong on a real network:

- 5xx, connection resets, timeouts, and pages that arrive truncated or malformed are retried
  with exponential backoff and jitter, up to ``max_retries`` times;
- 429 waits as ``Retry-After`` says (seconds or an HTTP date), up to ``max_retry_after_s``;
- 401/403 is a bad or missing API key, 404 an unknown collection or token: not retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from core.config import ApiSettings, MarketplaceSettings
from core.errors import MalformedResponse, MarketplaceAuthError, MarketplaceError

log = logging.getLogger(__name__)

T = TypeVar("T")
# Larger JSON pages than this are refused rather than read into memory.
MAX_BODY_BYTES = 32 << 20
# Pages larger than this are parsed in a worker thread.
PARSE_ON_LOOP_BYTES = 256 << 10
RETRY_STATUSES = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})


class NotFound(Exception):
    """The API says the thing asked for does not exist (the caller words it)."""


class Malformed(ValueError):
    """A page that cannot be parsed as a whole; retried like a 5xx."""


@dataclass(frozen=True)
class RetryPolicy:
    """How failures are retried (see the module docstring)."""

    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 300.0

    @classmethod
    def from_settings(cls, settings: MarketplaceSettings) -> RetryPolicy:
        return cls(
            settings.max_retries,
            settings.backoff_s,
            settings.max_backoff_s,
            settings.max_retry_after_s,
        )

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with jitter (half to all of the step) before retry number
        ``attempt`` (0-based)."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        return ceiling * (0.5 + 0.5 * rng.random())


class RateLimiter:
    """Spaces request starts at least ``1 / per_s`` seconds apart."""

    def __init__(self, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_s
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = self._clock()
            delay = self._next - now
            if delay > 0:
                await asyncio.sleep(delay)
                now = self._clock()
            self._next = max(now, self._next) + self._interval

    def hold(self, seconds: float) -> None:
        """Nothing starts for ``seconds`` (a 429 speaks for the whole host)."""
        self._next = max(self._next, self._clock() + seconds)


class ApiClient:
    """GETs JSON from one API root, politely; ``name`` words its errors ("OpenSea")."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        name: str,
        root: str,
        requests_per_s: float,
        policy: RetryPolicy,
        seed: int | None = None,
        missing: frozenset[int] = frozenset({404}),
    ) -> None:
        self.name = name
        # Statuses that mean "no such thing" (Magic Eden answers 400 for an unknown symbol).
        self._missing = missing
        self._session = session
        self._root = root.rstrip("/")
        self._policy = policy
        self._limiter = RateLimiter(requests_per_s)
        self._rng = random.Random(seed)

    @staticmethod
    @asynccontextmanager
    async def session(
        timeout_s: float, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientSession]:
        """The session one API's client owns; closed on exit."""
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            headers={"Accept": "application/json", **(headers or {})},
            # A proxy from the environment would see the API key.
            trust_env=False,
            raise_for_status=False,
        ) as session:
            yield session

    async def get(
        self,
        path: str,
        params: Mapping[str, str | int] | None,
        parse: Callable[[Any], T],
        *,
        what: str,
    ) -> T:
        """GET ``<root><path>`` and ``parse`` its JSON; raises ``NotFound`` on 404, and
        ``MarketplaceError`` (or a subclass) once retrying cannot help."""
        attempt = 0
        while True:
            await self._limiter.wait()
            try:
                return await self._once(path, params, parse, what)
            except _Retry as retry:
                if attempt >= self._policy.max_retries:
                    raise retry.final(self.name, what) from retry.__cause__
                wait = retry.wait_s
                if wait is None:
                    wait = self._policy.backoff(attempt, self._rng)
                else:
                    self._limiter.hold(wait)
                log.info(
                    "%s %s: %s; retry %d/%d in %.1f s",
                    self.name, what, retry.reason, attempt + 1, self._policy.max_retries, wait,
                )  # fmt: skip
                attempt += 1
                await asyncio.sleep(wait)

    async def _once(
        self,
        path: str,
        params: Mapping[str, str | int] | None,
        parse: Callable[[Any], T],
        what: str,
    ) -> T:
        url = self._root + path
        try:
            async with self._session.get(url, params=params, allow_redirects=False) as response:
                status = response.status
                if status == 429:
                    wait = self._retry_after(response.headers.get("Retry-After"))
                    raise _Retry("rate limited (429)", wait_s=wait)
                if status in RETRY_STATUSES:
                    raise _Retry(f"HTTP {status}")
                if status in (401, 403):
                    raise MarketplaceAuthError(
                        f"{self.name} refused the request for {what} (HTTP {status}): "
                        f"check its API key."
                    )
                if status in self._missing:
                    body = await self._body(response)
                    raise NotFound(body[:200].decode("utf-8", "replace"))
                if not 200 <= status < 300:
                    raise MarketplaceError(f"{self.name} answered HTTP {status} for {what}.")
                body = await self._body(response)
        except TimeoutError as exc:
            raise _Retry("timed out") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise _Retry(f"connection failed ({type(exc).__name__})") from exc
        if len(body) <= PARSE_ON_LOOP_BYTES:
            return self._parse(body, parse)
        # Parsing a page of megabytes takes tens of milliseconds: not on the bot's loop.
        return await asyncio.to_thread(self._parse, body, parse)

    @staticmethod
    def _parse(body: bytes, parse: Callable[[Any], T]) -> T:
        try:
            data = json.loads(body, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise _Retry("the page is not valid JSON", malformed=True) from exc
        try:
            return parse(data)
        except Malformed as exc:
            raise _Retry(f"malformed page: {exc}", malformed=True) from exc

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > MAX_BODY_BYTES:
            raise MarketplaceError(f"{self.name} sent a page larger than we read.")
        # read(n) returns what has arrived so far, not n bytes: gather the chunks, capped.
        body = bytearray()
        async for chunk in response.content.iter_chunked(1 << 16):
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise MarketplaceError(f"{self.name} sent a page larger than we read.")
        return bytes(body)

    def _retry_after(self, header: str | None) -> float:
        wait = self._policy.backoff(0, self._rng)
        if header:
            try:
                wait = float(header)
            except ValueError:
                try:
                    moment = parsedate_to_datetime(header)
                    wait = (moment - datetime.now(UTC)).total_seconds()
                except (TypeError, ValueError):
                    pass
        wait = max(0.0, wait)
        if wait > self._policy.max_retry_after_s:
            raise MarketplaceError(
                f"{self.name} asks us to wait {wait:.0f} s before the next request; "
                "try again later."
            )
        return wait


def _refuse_constant(name: str) -> None:
    # NaN and Infinity are not JSON, and a NaN price or floor would reach the database.
    raise ValueError(f"{name} is not a number JSON allows")


class _Retry(Exception):
    def __init__(self, reason: str, *, wait_s: float | None = None, malformed: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s
        self.malformed = malformed

    def final(self, name: str, what: str) -> MarketplaceError:
        if self.malformed:
            return MalformedResponse(f"{name} kept sending a malformed {what} ({self.reason}).")
        return MarketplaceError(f"{name} could not be read for {what}: {self.reason}.")


def api_client(
    session: aiohttp.ClientSession,
    name: str,
    api: ApiSettings,
    settings: MarketplaceSettings,
    missing: frozenset[int] = frozenset({404}),
) -> ApiClient:
    """A client for one configured API."""
    return ApiClient(
        session,
        name=name,
        root=api.api_root,
        requests_per_s=api.requests_per_s,
        policy=RetryPolicy.from_settings(settings),
        missing=missing,
    )


async def gather_limited(
    items: list[T], concurrency: int, work: Callable[[T], Awaitable[Any]]
) -> list[Any]:
    """``work`` over ``items``, at most ``concurrency`` at once, results in order; an
    exception is returned in its item's place rather than raised."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: T) -> Any:
        async with gate:
            try:
                return await work(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return exc

    return list(await asyncio.gather(*(one(item) for item in items)))


def json_object(data: Any) -> dict[str, Any]:
    """A ``parse`` for answers that must be one JSON object."""
    if not isinstance(data, dict):
        raise Malformed("the answer is not a JSON object")
    return data


def path_segment(text: str) -> str:
    """One URL path segment, percent-encoded: slugs are checked, but contracts, mints and
    token ids come from outside."""
    return quote(text, safe="")
