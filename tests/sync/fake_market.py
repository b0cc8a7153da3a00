"""Stand-ins for OpenSea v2, Magic Eden v2, a CoinGecko-style price API and an IPFS gateway.

Each service listens on its own loopback port (so per-host rate limits are observable), all
served by aiohttp on one event loop in a background thread: in-process async code and a
separate subprocess can both use them. Responses are shaped like the real ones (see
``shared/fixtures``); tests seed collections with :func:`make_nfts` and :func:`make_sales`,
queue faults with :meth:`FakeMarket.fail_next`, and check what was served with
:meth:`FakeMarket.sales_of` and the request log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import random
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any

import numpy as np
from aiohttp import web
from PIL import Image

SERVICES = ("opensea", "magiceden", "prices", "ipfs", "elsewhere")
FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "bad_gateway",
    "timeout",
    "truncated",
    "reset",
    "duplicate_page",
    "malformed_record",
)
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
WRAPPED_SOL = "So11111111111111111111111111111111111111112"
SEAPORT = "0x0000000000000068f116a894984e2db1123eb395"
PAYMENT_TOKENS = {"ETH": "0x" + "0" * 40, "WETH": "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"}

# Trait vocabularies and the colours the images are drawn in.
BACKGROUNDS = {
    "Blue": (70, 110, 200),
    "Green": (80, 170, 90),
    "Orange": (235, 140, 50),
    "Purple": (140, 80, 180),
    "Yellow": (235, 210, 70),
}
BODIES = {
    "Robot": (160, 160, 170),
    "Zombie": (120, 160, 110),
    "Ape": (120, 80, 50),
    "Alien": (150, 220, 210),
}
HATS = {
    "None": None,
    "Cap": (200, 30, 30),
    "Crown": (230, 190, 40),
    "Beanie": (40, 40, 120),
    "Halo": (250, 250, 220),
    "Horns": (90, 20, 20),
}
EYES = {"Laser": (255, 0, 0), "Sleepy": (30, 30, 30), "Wide": (255, 255, 255)}
NON_SALE_TYPES = ("list", "delist", "bid", "cancelBid")


@dataclass(frozen=True)
class FakeNft:
    """One token: its id (a number as text, or a Solana mint), name, traits and PNG bytes.

    ``image_path`` changes where the metadata's image URL points: ``"ipfs://<cid>/<name>"``
    (served by the IPFS gateway at ``/ipfs/<cid>/<name>``), ``"elsewhere:<name>"`` (served by
    the untrusted host at ``/<name>``) or any other URL, given out verbatim and served by
    nobody. ``None`` points at the marketplace's own ``/images/<slug>/<token_id>.png``.
    """

    token_id: str
    name: str
    traits: tuple[tuple[str, str], ...]
    image: bytes
    image_path: str | None = None


@dataclass(frozen=True)
class FakeSale:
    """One token sold once, priced in native units (ETH or SOL)."""

    token_id: str
    timestamp: int
    price: float
    tx: str
    seller: str
    buyer: str
    symbol: str = "ETH"


@dataclass(frozen=True)
class Request:
    """One request a service answered (``status`` 0: the connection was reset instead)."""

    service: str
    time: float
    method: str
    path: str
    query: dict[str, str]
    status: int


# Generators ---------------------------------------------------------------------------------


def make_nfts(n: int, seed: int = 0, *, base58: bool = False) -> list[FakeNft]:
    """``n`` tokens with 2–4 traits and a distinct 24×24 PNG each; ids "0".."n-1", or 44-char
    base58 mints."""
    rng = random.Random(seed)
    nfts: list[FakeNft] = []
    seen: set[str] = set()
    for index in range(n):
        token_id = str(index)
        if base58:
            token_id = _base58(rng, 44)
            while token_id in seen:
                token_id = _base58(rng, 44)
            seen.add(token_id)
        traits = [
            ("Background", rng.choice(list(BACKGROUNDS))),
            ("Body", rng.choice(list(BODIES))),
        ]
        if rng.random() < 0.7:
            traits.append(("Hat", rng.choice(list(HATS))))
        if rng.random() < 0.5:
            traits.append(("Eyes", rng.choice(list(EYES))))
        image = _draw(index, dict(traits))
        nfts.append(FakeNft(token_id, f"Fake #{index}", tuple(traits), image))
    return nfts


def make_sales(
    nfts: list[FakeNft],
    n: int,
    start: int,
    seed: int = 0,
    *,
    symbol: str = "ETH",
    signature: bool = False,
) -> list[FakeSale]:
    """``n`` sales of random tokens, oldest first, 30–600 s apart from ``start``.

    Prices are lognormal around 1.0, rounded to 4 decimals (so wei and lamports are exact).
    About one transaction in ten sells a second token: same tx, same timestamp, another token,
    so only transactions, not sales, have strictly increasing timestamps. ``signature`` gives
    88-char base58 signatures and Solana addresses instead of ``0x`` hashes.
    """
    rng = random.Random(seed)
    sales: list[FakeSale] = []
    timestamp = start
    while len(sales) < n:
        token = rng.choice(nfts)
        tx = _base58(rng, 88) if signature else "0x" + _hex(rng, 64)
        sales.append(_sale(rng, token.token_id, timestamp, tx, symbol, signature))
        if len(sales) < n and len(nfts) > 1 and rng.random() < 0.1:
            other = rng.choice([nft for nft in nfts if nft.token_id != token.token_id])
            sales.append(_sale(rng, other.token_id, timestamp, tx, symbol, signature))
        timestamp += rng.randint(30, 600)
    return sales


def _sale(
    rng: random.Random, token_id: str, timestamp: int, tx: str, symbol: str, solana: bool
) -> FakeSale:
    price = max(0.0001, round(rng.lognormvariate(0.0, 0.5), 4))
    seller, buyer = (
        (_base58(rng, 44), _base58(rng, 44)) if solana else (_address(rng), _address(rng))
    )
    return FakeSale(token_id, timestamp, price, tx, seller, buyer, symbol)


def _draw(index: int, traits: dict[str, str]) -> bytes:
    pixels = np.empty((24, 24, 3), dtype=np.uint8)
    pixels[:] = BACKGROUNDS[traits["Background"]]
    pixels[6:20, 6:18] = BODIES[traits["Body"]]
    hat = HATS.get(traits.get("Hat", "None"))
    if hat is not None:
        pixels[3:6, 5:19] = hat
    if "Eyes" in traits:
        pixels[9:11, 8:10] = EYES[traits["Eyes"]]
        pixels[9:11, 14:16] = EYES[traits["Eyes"]]
    bits = ((index + 1) >> np.arange(24)) & 1  # the bottom row spells the index: all distinct
    pixels[23] = np.where(bits[:, None] == 1, 255, 0)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _base58(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(BASE58) for _ in range(length))


def _hex(rng: random.Random, length: int) -> str:
    return f"{rng.getrandbits(4 * length):0{length}x}"


def _address(rng: random.Random) -> str:
    return "0x" + _hex(rng, 40)


# Server state -------------------------------------------------------------------------------


@dataclass
class _OpenSeaCollection:
    slug: str
    name: str
    contract: str
    floor: float
    nfts: dict[str, FakeNft]
    sales: list[FakeSale]


@dataclass(frozen=True)
class _Activity:
    """A Magic Eden activity; ``sale`` is set on the buyNow ones only."""

    type: str
    signature: str
    token: str
    block_time: int
    price: float
    buyer: str | None
    seller: str | None
    price_info: bool = False
    sale: FakeSale | None = None


@dataclass
class _MagicEdenCollection:
    symbol: str
    floor_lamports: int
    nfts: dict[str, FakeNft]
    activities: list[_Activity]  # newest first, as served


@dataclass
class _Fault:
    service: str
    path_contains: str
    kind: str
    times: int
    retry_after: float
    delay_s: float
    # Matching requests served normally before the fault starts.
    skip: int = 0


@dataclass
class _PagingChange:
    symbol: str
    remaining: int
    apply: Callable[[], None] = field(repr=False)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class FakeMarket:
    """The four market services and an untrusted image host, on loopback, in a thread."""

    def __init__(self, api_key: str | None = "test-opensea-key") -> None:
        self.api_key = api_key
        self.requests: list[Request] = []
        self.opensea_root = self.magiceden_root = self.prices_root = ""
        self.ipfs_root = self.elsewhere_root = ""
        self._lock = threading.Lock()
        self._opensea: dict[str, _OpenSeaCollection] = {}
        self._magiceden: dict[str, _MagicEdenCollection] = {}
        self._ipfs: dict[str, bytes] = {}
        self._elsewhere: dict[str, bytes] = {}
        self._prices = {"ethereum": 3000.0, "solana": 150.0}
        self._faults: list[_Fault] = []
        self._paging: list[_PagingChange] = []
        self._last_page: dict[tuple[str, str], bytes] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._error: BaseException | None = None

    # Lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeMarket:
        """Bind every service to a free loopback port and serve them from a thread."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="fake-market", daemon=True
        )
        self._thread.start()
        if not ready.wait(30) or self._error is not None:
            self.stop()
            raise RuntimeError("the fake market did not start") from self._error
        return self

    def stop(self) -> None:
        """Wake any delayed ("timeout") handlers, close every server and join the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._closing is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._closing.set)
        self._thread.join(30)
        self._thread = None

    def __enter__(self) -> FakeMarket:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # What tests set up ----------------------------------------------------------------------

    def add_opensea_collection(
        self,
        slug: str,
        name: str,
        nfts: list[FakeNft],
        sales: list[FakeSale],
        *,
        contract: str | None = None,
        floor: float = 0.5,
    ) -> None:
        """Serve an Ethereum collection; the contract defaults to one derived from the slug."""
        address = contract or "0x" + hashlib.sha256(slug.encode()).hexdigest()[:40]
        collection = _OpenSeaCollection(slug, name, address.lower(), floor, _by_id(nfts), [])
        _check_sales(collection.nfts, [], sales)
        collection.sales = sorted(sales, key=_sale_key)
        with self._lock:
            self._opensea[slug] = collection
            self._register_images(nfts)

    def add_magiceden_collection(
        self,
        symbol: str,
        nfts: list[FakeNft],
        sales: list[FakeSale],
        *,
        floor_lamports: int = 2_500_000_000,
    ) -> None:
        """Serve a Solana collection; each sale gets one non-sale activity next to it."""
        collection = _MagicEdenCollection(symbol, floor_lamports, _by_id(nfts), [])
        _check_sales(collection.nfts, [], sales)
        collection.activities = _newest_first(_activities(sales))
        with self._lock:
            self._magiceden[symbol] = collection
            self._register_images(nfts)

    def add_sales(self, slug_or_symbol: str, sales: list[FakeSale]) -> None:
        """Add (newer) sales to a collection, e.g. between a first and a second sync."""
        with self._lock:
            if slug_or_symbol in self._opensea:
                collection = self._opensea[slug_or_symbol]
                _check_sales(collection.nfts, collection.sales, sales)
                collection.sales = sorted([*collection.sales, *sales], key=_sale_key)
            else:
                self._add_activities(slug_or_symbol, sales)

    def set_prices(self, eth: float = 3000.0, sol: float = 150.0) -> None:
        """The USD prices the price API answers with."""
        with self._lock:
            self._prices = {"ethereum": eth, "solana": sol}

    def arrive_during_paging(
        self, symbol: str, sales: list[FakeSale], *, after_requests: int = 1
    ) -> None:
        """Magic Eden: once ``after_requests`` more activity pages of ``symbol`` have been
        answered, put these (newer) sales and their non-sale activities at the front."""
        self._schedule(symbol, after_requests, lambda: self._add_activities(symbol, sales))

    def remove_during_paging(self, symbol: str, count: int, *, after_requests: int = 1) -> None:
        """Magic Eden: once ``after_requests`` more activity pages of ``symbol`` have been
        answered, drop its ``count`` newest activities (of any type)."""

        def remove() -> None:
            del self._magiceden[symbol].activities[:count]

        self._schedule(symbol, after_requests, remove)

    def fail_next(
        self,
        service: str,
        path_contains: str,
        kind: str,
        *,
        times: int = 1,
        retry_after: float = 1.0,
        delay_s: float = 5.0,
        skip: int = 0,
    ) -> None:
        """After ``skip`` matching requests served normally, give the next ``times`` requests
        to ``service`` whose path contains ``path_contains`` the fault ``kind``, then serve
        normally again:

        - ``rate_limit``: 429, ``Retry-After: <retry_after>``, ``{"detail": ...}``;
        - ``server_error``: 500, text ``internal error``; ``bad_gateway``: 502, an HTML page;
        - ``timeout``: the right answer, ``delay_s`` late (``stop()`` cuts the wait short);
        - ``truncated``: 200, application/json, the first half of the right body's bytes;
        - ``reset``: the connection is dropped unanswered (logged with status 0);
        - ``duplicate_page``: the last 200 JSON body this path served, whatever the query
          (the right answer when there is none yet);
        - ``malformed_record``: the right body with one record broken, see ``_break_record``.
        """
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._faults.append(
                _Fault(service, path_contains, kind, times, retry_after, delay_s, skip)
            )

    def clear_faults(self) -> None:
        """Serve normally from now on."""
        with self._lock:
            self._faults.clear()

    # What tests check -----------------------------------------------------------------------

    def requests_for(self, service: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.service == service]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def sales_of(self, slug_or_symbol: str) -> list[FakeSale]:
        """Every sale the collection serves now, oldest first (Magic Eden: buyNow only)."""
        with self._lock:
            if slug_or_symbol in self._opensea:
                return list(self._opensea[slug_or_symbol].sales)
            activities = self._me(slug_or_symbol).activities
            return sorted((a.sale for a in activities if a.sale is not None), key=_sale_key)

    def nfts_of(self, slug_or_symbol: str) -> list[FakeNft]:
        with self._lock:
            if slug_or_symbol in self._opensea:
                return list(self._opensea[slug_or_symbol].nfts.values())
            return list(self._me(slug_or_symbol).nfts.values())

    def gateway_url(self, ipfs_uri: str) -> str:
        """``ipfs://<cid>/<name>`` as a URL on the fake gateway."""
        return f"{self.ipfs_root}/ipfs/{ipfs_uri.removeprefix('ipfs://')}"

    # Internals ------------------------------------------------------------------------------

    def _me(self, symbol: str) -> _MagicEdenCollection:
        if symbol not in self._magiceden:
            raise KeyError(f"no collection {symbol!r}")
        return self._magiceden[symbol]

    def _add_activities(self, symbol: str, sales: list[FakeSale]) -> None:
        collection = self._me(symbol)
        served = [a.sale for a in collection.activities if a.sale is not None]
        _check_sales(collection.nfts, served, sales)
        collection.activities = _newest_first([*collection.activities, *_activities(sales)])

    def _schedule(self, symbol: str, after_requests: int, apply: Callable[[], None]) -> None:
        with self._lock:
            self._me(symbol)
            if after_requests <= 0:
                apply()
            else:
                self._paging.append(_PagingChange(symbol, after_requests, apply))

    def _paged(self, symbol: str) -> None:
        """One activity page of ``symbol`` was answered: apply the changes that were due."""
        for change in [c for c in self._paging if c.symbol == symbol]:
            change.remaining -= 1
            if change.remaining == 0:
                self._paging.remove(change)
                change.apply()

    def _register_images(self, nfts: list[FakeNft]) -> None:
        for nft in nfts:
            path = nft.image_path or ""
            if path.startswith("ipfs://"):
                self._ipfs[path.removeprefix("ipfs://")] = nft.image
            elif path.startswith("elsewhere:"):
                self._elsewhere[path.removeprefix("elsewhere:")] = nft.image

    def _image_url(self, root: str, key: str, nft: FakeNft) -> str:
        path = nft.image_path
        if path is None:
            return f"{root}/images/{key}/{nft.token_id}.png"
        if path.startswith("elsewhere:"):
            return f"{self.elsewhere_root}/{path.removeprefix('elsewhere:')}"
        return path

    def _take_fault(self, service: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.service == service and fault.path_contains in path:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # The servers ----------------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready))
        except Exception as exc:  # start() raises it
            self._error = exc
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        runners: list[web.AppRunner] = []
        try:
            for service in SERVICES:
                runner = web.AppRunner(self._app(service), access_log=None, shutdown_timeout=2)
                runners.append(runner)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                setattr(self, f"{service}_root", f"http://127.0.0.1:{runner.addresses[0][1]}")
            ready.set()
            await self._closing.wait()
        finally:
            self._closing.set()
            for runner in runners:
                await runner.cleanup()

    def _app(self, service: str) -> web.Application:
        app = web.Application(middlewares=[self._middleware(service)])
        routes = {
            "opensea": [
                ("/api/v2/collections/{slug}", self._os_collection),
                ("/api/v2/collections/{slug}/stats", self._os_stats),
                ("/api/v2/events/collection/{slug}", self._os_events),
                ("/api/v2/chain/{chain}/contract/{address}/nfts/{identifier}", self._os_nft),
                ("/images/{key}/{token}.png", self._os_image),
            ],
            "magiceden": [
                ("/v2/collections/{symbol}/stats", self._me_stats),
                ("/v2/collections/{symbol}/activities", self._me_activities),
                ("/v2/tokens/{mint}", self._me_token),
                ("/images/{key}/{token}.png", self._me_image),
            ],
            "prices": [("/api/v3/simple/price", self._prices_simple)],
            "ipfs": [("/ipfs/{path:.+}", self._ipfs_file)],
            "elsewhere": [("/{path:.+}", self._elsewhere_file)],
        }[service]
        for path, handler in routes:
            app.router.add_get(path, handler)
        return app

    def _middleware(self, service: str) -> Middleware:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            arrived = time.monotonic()
            try:
                response = await self._answer(service, request, handler)
            except web.HTTPException as exc:  # the router's 404 and 405
                self._log(service, arrived, request, exc.status)
                raise
            if response is None:  # reset: the connection is closed, nothing will be written
                self._log(service, arrived, request, 0)
                return web.Response()
            self._log(service, arrived, request, response.status)
            return response

        return middleware

    async def _answer(
        self, service: str, request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        """The response, with the first matching queued fault applied; ``None`` for a reset."""
        fault = self._take_fault(service, request.path)
        kind = fault.kind if fault is not None else ""
        if fault is not None and kind == "rate_limit":
            headers = {"Retry-After": _seconds(fault.retry_after)}
            return _json({"detail": "Request was throttled."}, 429, headers)
        if kind == "server_error":
            return web.Response(status=500, text="internal error")
        if kind == "bad_gateway":
            html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            return web.Response(status=502, text=html, content_type="text/html")
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return None
        if fault is not None and kind == "timeout":
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):  # stop() ends the wait early
                await asyncio.wait_for(self._closing.wait(), fault.delay_s)
        key_needed = service == "opensea" and "/api/" in request.path and self.api_key is not None
        if key_needed and request.headers.get("X-API-KEY") != self.api_key:
            return _json({"detail": "Invalid API key"}, 401)
        response = await handler(request)
        if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
            return response
        body, page = response.body, (service, request.path)
        if kind == "truncated":
            return web.Response(body=body[: len(body) // 2], content_type="application/json")
        if kind == "duplicate_page":
            with self._lock:
                stale = self._last_page.get(page)
            if stale is not None:
                return web.Response(body=stale, content_type="application/json")
        if kind == "malformed_record" and response.content_type == "application/json":
            return _json(_break_record(service, json.loads(body)), response.status)
        if response.status == 200 and response.content_type == "application/json":
            with self._lock:
                self._last_page[page] = body
        return response

    def _log(self, service: str, arrived: float, request: web.Request, status: int) -> None:
        entry = Request(
            service, arrived, request.method, request.path, dict(request.query), status
        )
        with self._lock:
            self.requests.append(entry)

    # OpenSea --------------------------------------------------------------------------------

    async def _os_collection(self, request: web.Request) -> web.Response:
        with self._lock:
            c = self._opensea.get(request.match_info["slug"])
            if c is None:
                return _json({"errors": ["Collection not found"]}, 404)
            first = next(iter(c.nfts.values()), None)
            logo = self._image_url(self.opensea_root, c.slug, first) if first else ""
            blank = ("banner_image_url", "project_url", "wiki_url", "discord_url")
            blank += ("telegram_url", "twitter_username", "instagram_username")
            body = {
                "collection": c.slug,
                "name": c.name,
                "description": f"{c.name}, made up for tests.",
                "image_url": logo,
                "owner": "0x" + "1" * 40,
                "safelist_status": "approved",
                "category": "pfps",
                "is_disabled": False,
                "is_nsfw": False,
                "trait_offers_enabled": True,
                "collection_offers_enabled": True,
                "opensea_url": f"https://opensea.io/collection/{c.slug}",
                **dict.fromkeys(blank, ""),
                "contracts": [{"address": c.contract, "chain": "ethereum"}],
                "editors": [],
                "fees": [],
                "payment_tokens": [],
                "total_supply": len(c.nfts),
                "unique_item_count": len(c.nfts),
                "created_date": "2024-01-01",
                "rarity": None,
            }
        return _json(body)

    async def _os_stats(self, request: web.Request) -> web.Response:
        with self._lock:
            c = self._opensea.get(request.match_info["slug"])
            if c is None:
                return _json({"errors": ["Collection not found"]}, 404)
            volume = sum(s.price for s in c.sales)
            average = volume / len(c.sales) if c.sales else 0.0
            owners = len({s.buyer for s in c.sales})
        zeros = ("volume", "volume_diff", "volume_change", "sales", "sales_diff", "average_price")
        intervals = [
            {"interval": name, **dict.fromkeys(zeros, 0)}
            for name in ("one_day", "seven_day", "thirty_day")
        ]
        total = {
            "volume": volume,
            "sales": len(c.sales),
            "num_owners": owners,
            "market_cap": c.floor * len(c.nfts),
            "floor_price": c.floor,
            "floor_price_symbol": "ETH",
            "average_price": average,
        }
        return _json({"total": total, "intervals": intervals})

    async def _os_events(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            limit = int(query.get("limit", "50"))
            after = int(query["after"]) if "after" in query else None
            before = int(query["before"]) if "before" in query else None
            cursor = query.get("next") or query.get("next.value")
            below = _decode_cursor(cursor) if cursor else None
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _json({"errors": ["Invalid query parameters"]}, 400)
        if not 1 <= limit <= 200:
            return _json({"errors": ["limit: ensure this value is between 1 and 200"]}, 400)
        with self._lock:
            c = self._opensea.get(request.match_info["slug"])
            if c is None:
                return _json({"errors": ["Collection not found"]}, 404)
            types = query.getall("event_type", ["sale"])
            sales = [
                s
                for s in reversed(c.sales)
                if "sale" in types
                and (after is None or s.timestamp > after)
                and (before is None or s.timestamp < before)
                and (below is None or _sale_key(s) < below)
            ]
            page = sales[:limit]
            events = [self._os_event(c, s) for s in page]
        body: dict[str, Any] = {"asset_events": events}
        if len(sales) > limit:
            body["next"] = _encode_cursor(_sale_key(page[-1]))
        return _json(body)

    def _os_event(self, c: _OpenSeaCollection, sale: FakeSale) -> dict[str, Any]:
        nft = c.nfts[sale.token_id]
        return {
            "event_type": "sale",
            "event_timestamp": sale.timestamp,
            "transaction": sale.tx,
            "order_hash": "0x" + hashlib.sha256(f"{sale.tx}{sale.token_id}".encode()).hexdigest(),
            "protocol_address": SEAPORT,
            "chain": "ethereum",
            "payment": {
                "quantity": str(_units(sale.price, 18)),
                "token_address": PAYMENT_TOKENS.get(sale.symbol, PAYMENT_TOKENS["ETH"]),
                "decimals": 18,
                "symbol": sale.symbol,
            },
            "closing_date": sale.timestamp,
            "seller": sale.seller,
            "buyer": sale.buyer,
            "quantity": 1,
            "nft": self._os_nft_summary(c, nft),
        }

    def _os_nft_summary(self, c: _OpenSeaCollection, nft: FakeNft) -> dict[str, Any]:
        image = self._image_url(self.opensea_root, c.slug, nft)
        return {
            "identifier": nft.token_id,
            "collection": c.slug,
            "contract": c.contract,
            "token_standard": "erc721",
            "name": nft.name,
            "description": "",
            "image_url": image,
            "display_image_url": image,
            "display_animation_url": None,
            "metadata_url": None,
            "opensea_url": f"https://opensea.io/assets/ethereum/{c.contract}/{nft.token_id}",
            "updated_at": "2025-01-01T00:00:00.000000",
            "is_disabled": False,
            "is_nsfw": False,
        }

    async def _os_nft(self, request: web.Request) -> web.Response:
        info = request.match_info
        address, identifier = info["address"].lower(), info["identifier"]
        with self._lock:
            for c in self._opensea.values():
                if info["chain"] == "ethereum" and c.contract == address and identifier in c.nfts:
                    nft = c.nfts[identifier]
                    bought = [s.buyer for s in c.sales if s.token_id == identifier]
                    owner = bought[-1] if bought else "0x" + "2" * 40
                    traits = [
                        {"trait_type": t, "display_type": None, "max_value": None, "value": v}
                        for t, v in nft.traits
                    ]
                    detail = {
                        **self._os_nft_summary(c, nft),
                        "animation_url": None,
                        "is_suspicious": False,
                        "creator": "",
                        "traits": traits,
                        "owners": [{"address": owner, "quantity": 1}],
                        "rarity": None,
                    }
                    return _json({"nft": detail})
        return _json({"errors": ["NFT not found"]}, 404)

    async def _os_image(self, request: web.Request) -> web.Response:
        with self._lock:
            c = self._opensea.get(request.match_info["key"])
            nft = c.nfts.get(request.match_info["token"]) if c else None
        return _png(nft.image if nft else None)

    # Magic Eden -----------------------------------------------------------------------------

    async def _me_stats(self, request: web.Request) -> web.Response:
        with self._lock:
            c = self._magiceden.get(request.match_info["symbol"])
            if c is None:
                return _json({"errors": [{"msg": "Collection not found"}]}, 404)
            sales = [a.sale for a in c.activities if a.sale is not None]
        volume = sum(_units(s.price, 9) for s in sales)
        return _json(
            {
                "symbol": c.symbol,
                "floorPrice": c.floor_lamports,
                "listedCount": max(1, len(c.nfts) // 10),
                "avgPrice24hr": volume / len(sales) if sales else 0,
                "volumeAll": volume,
            }
        )

    async def _me_activities(self, request: web.Request) -> web.Response:
        limit, offset = request.query.get("limit", "100"), request.query.get("offset", "0")
        if not (limit.isdigit() and 1 <= int(limit) <= 1000):
            return _me_error(400, "limit", limit, "limit must be between 1 and 1000")
        if not offset.isdigit():
            return _me_error(400, "offset", offset, "offset must be a non-negative integer")
        symbol = request.match_info["symbol"]
        with self._lock:
            c = self._magiceden.get(symbol)
            if c is None:
                return _me_error(400, "symbol", symbol, "Invalid symbol")
            page = c.activities[int(offset) : int(offset) + int(limit)]
            body = [_me_activity(symbol, a) for a in page]
            self._paged(symbol)
        return _json(body)

    async def _me_token(self, request: web.Request) -> web.Response:
        mint = request.match_info["mint"]
        with self._lock:
            for c in self._magiceden.values():
                if mint in c.nfts:
                    nft = c.nfts[mint]
                    bought = [a.buyer for a in c.activities if a.sale and a.token == mint]
                    owner = bought[0] if bought else "11111111111111111111111111111111"
                    image = self._image_url(self.magiceden_root, c.symbol, nft)
                    return _json(
                        {
                            "mintAddress": mint,
                            "owner": owner,
                            "supply": 1,
                            "collection": c.symbol,
                            "collectionName": c.symbol,
                            "name": nft.name,
                            "updateAuthority": "11111111111111111111111111111111",
                            "primarySaleHappened": True,
                            "sellerFeeBasisPoints": 500,
                            "image": image,
                            "externalUrl": "",
                            "attributes": [{"trait_type": t, "value": v} for t, v in nft.traits],
                            "properties": {
                                "files": [{"uri": image, "type": "image/png"}],
                                "category": "image",
                                "creators": [],
                            },
                        }
                    )
        return _me_error(400, "token_mint", mint, "Token not found")

    async def _me_image(self, request: web.Request) -> web.Response:
        with self._lock:
            c = self._magiceden.get(request.match_info["key"])
            nft = c.nfts.get(request.match_info["token"]) if c else None
        return _png(nft.image if nft else None)

    # Prices, IPFS and the untrusted host ----------------------------------------------------

    async def _prices_simple(self, request: web.Request) -> web.Response:
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        currencies = request.query.get("vs_currencies", "").split(",")
        if not ids or not currencies:
            return _json({"error": "Missing parameter ids or vs_currencies"}, 400)
        with self._lock:
            prices = dict(self._prices)
        answer = {
            coin: {"usd": prices[coin]} if "usd" in currencies else {}
            for coin in ids
            if coin in prices
        }
        return _json(answer)

    async def _ipfs_file(self, request: web.Request) -> web.Response:
        with self._lock:
            return _png(self._ipfs.get(request.match_info["path"]))

    async def _elsewhere_file(self, request: web.Request) -> web.Response:
        with self._lock:
            return _png(self._elsewhere.get(request.match_info["path"]))


# Helpers ------------------------------------------------------------------------------------


def _by_id(nfts: list[FakeNft]) -> dict[str, FakeNft]:
    return {nft.token_id: nft for nft in nfts}


def _sale_key(sale: FakeSale) -> tuple[int, str, str]:
    """The order sales are served in (descending) and the cursor's position."""
    return (sale.timestamp, sale.tx, sale.token_id)


def _check_sales(nfts: dict[str, FakeNft], existing: list[FakeSale], new: list[FakeSale]) -> None:
    keys = {(s.tx, s.token_id) for s in existing}
    for sale in new:
        if sale.token_id not in nfts:
            raise ValueError(f"sale of unknown token {sale.token_id!r}")
        if (sale.tx, sale.token_id) in keys:
            raise ValueError(f"duplicate sale {sale.tx} / {sale.token_id}")
        keys.add((sale.tx, sale.token_id))


def _activities(sales: list[FakeSale]) -> list[_Activity]:
    """Each sale as a buyNow, plus one listing, delisting, bid or bid cancel a little before."""
    out: list[_Activity] = []
    for sale in sales:
        rng = random.Random(f"{sale.tx}/{sale.token_id}")
        out.append(
            _Activity(
                "buyNow",
                sale.tx,
                sale.token_id,
                sale.timestamp,
                sale.price,
                sale.buyer,
                sale.seller,
                price_info=zlib.crc32(f"{sale.tx}/{sale.token_id}".encode()) % 2 == 0,
                sale=sale,
            )
        )
        kind = rng.choice(NON_SALE_TYPES)
        bidder = kind in ("bid", "cancelBid")
        out.append(
            _Activity(
                kind,
                _base58(rng, 88),
                sale.token_id,
                sale.timestamp - rng.randint(1, 25),
                round(sale.price * rng.uniform(0.85, 1.15), 4),
                _base58(rng, 44) if bidder else None,
                None if bidder else sale.seller,
            )
        )
    return out


def _newest_first(activities: list[_Activity]) -> list[_Activity]:
    return sorted(activities, key=lambda a: (a.block_time, a.signature, a.token), reverse=True)


def _me_activity(symbol: str, a: _Activity) -> dict[str, Any]:
    record: dict[str, Any] = {
        "signature": a.signature,
        "type": a.type,
        "source": "magiceden_v2",
        "tokenMint": a.token,
        "collection": symbol,
        "collectionSymbol": symbol,
        "slot": 2 * a.block_time,
        "blockTime": a.block_time,
        "buyer": a.buyer,
        "buyerReferral": "",
        "seller": a.seller,
        "sellerReferral": "",
        "price": a.price,
    }
    if a.price_info:
        raw = str(_units(a.price, 9))
        record["priceInfo"] = {
            "solPrice": {"rawAmount": raw, "address": WRAPPED_SOL, "decimals": 9}
        }
    return record


def _break_record(service: str, body: Any) -> Any:
    """OpenSea: the first event's payment.quantity becomes "not-a-number". Magic Eden: the first
    buyNow's price becomes "x" and loses its priceInfo. Anything else is left as it was."""
    if service == "opensea" and isinstance(body, dict) and body.get("asset_events"):
        body["asset_events"][0]["payment"]["quantity"] = "not-a-number"
    if service == "magiceden" and isinstance(body, list):
        for record in body:
            if isinstance(record, dict) and record.get("type") == "buyNow":
                record["price"] = "x"
                record.pop("priceInfo", None)
                break
    return body


def _units(price: float, decimals: int) -> int:
    """A native-unit price in its smallest unit (wei, lamports), exactly as written."""
    return int(Decimal(repr(price)).scaleb(decimals))


def _encode_cursor(key: tuple[int, str, str]) -> str:
    return base64.b64encode(json.dumps(list(key)).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, str, str]:
    timestamp, tx, token = json.loads(base64.b64decode(cursor, validate=True))
    return (int(timestamp), str(tx), str(token))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _me_error(status: int, param: str, value: str, message: str) -> web.Response:
    error = {"value": value, "msg": message, "param": param, "location": "query"}
    return _json({"errors": [error]}, status)


def _png(data: bytes | None) -> web.Response:
    if data is None:
        return web.Response(status=404, text="not found")
    return web.Response(body=data, content_type="image/png")
