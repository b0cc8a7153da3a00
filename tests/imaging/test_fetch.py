"""HttpImageFetcher against a real loopback server: schemes, SSRF guard, redirects and caps."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils, web
from aiohttp.abc import AbstractResolver, ResolveResult

from core.errors import FetchError, ImageTooLarge, UrlRefused
from core.imaging.fetch import FetchLimits, GuardedResolver, HttpImageFetcher, ImageFetcher
from tests.fakes import FakeImageFetcher

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
CAP = 1024
CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Origin:
    """A loopback image server and the paths it was asked for."""

    server: test_utils.TestServer
    seen: list[str]

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    @property
    def host_key(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def build_app(seen: list[str], release: asyncio.Event) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(request.path_qs)
        return await handler(request)

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=IMAGE, content_type="image/png")

    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left > 0:
            raise web.HTTPFound(f"/hop/{left - 1}")
        return web.Response(body=IMAGE, content_type="image/png")

    def redirect_to(location: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            raise web.HTTPFound(location)

        return handler

    async def declared_big(request: web.Request) -> web.Response:
        return web.Response(body=bytes(5 * CAP), content_type="image/png")

    async def chunked_big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(bytes(CAP // 2))
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(body=IMAGE, content_type="image/png")

    app = web.Application(middlewares=[record])
    app.router.add_get("/image.png", image)
    app.router.add_get("/ipfs/{tail:.+}", image)
    app.router.add_get("/hop/{left:\\d+}", hop)
    app.router.add_get("/loop", redirect_to("/loop"))
    app.router.add_get("/to-metadata", redirect_to("http://169.254.169.254/latest/meta-data"))
    app.router.add_get("/to-file", redirect_to("file:///etc/passwd"))
    app.router.add_get("/declared-big", declared_big)
    app.router.add_get("/chunked-big", chunked_big)
    app.router.add_get("/slow", slow)
    return app


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    seen: list[str] = []
    # Lets the slow handler finish at teardown instead of sleeping on a real clock.
    release = asyncio.Event()
    server = test_utils.TestServer(build_app(seen, release), host="127.0.0.1")
    await server.start_server()
    yield Origin(server, seen)
    release.set()
    await server.close()


@pytest.fixture
async def make_fetcher() -> AsyncIterator[Callable[[FetchLimits], HttpImageFetcher]]:
    sessions: list[aiohttp.ClientSession] = []

    def make(limits: FetchLimits) -> HttpImageFetcher:
        session = HttpImageFetcher.session(limits)
        sessions.append(session)
        return HttpImageFetcher(session, limits)

    yield make
    for session in sessions:
        await session.close()


class ScriptedResolver(AbstractResolver):
    """Answers every lookup with one fixed address, like a DNS server an attacker controls."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=self.address, port=port, family=family, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


# Fetching


async def test_fetches_bytes_from_loopback_when_private_addresses_are_allowed(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True))

    assert await fetcher.fetch(origin.url("/image.png")) == IMAGE


async def test_allow_hosts_exempts_exactly_that_server(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(allow_hosts=frozenset({origin.host_key})))

    assert await fetcher.fetch(origin.url("/image.png")) == IMAGE
    with pytest.raises(UrlRefused):
        await fetcher.fetch(f"http://127.0.0.1:{origin.port + 1}/image.png")


@pytest.mark.parametrize("url", [f"ipfs://{CID}/art/7.png", f"ipfs://ipfs/{CID}/art/7.png"])
async def test_ipfs_urls_are_fetched_through_the_gateway_with_the_cid_intact(
    url: str, origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    limits = FetchLimits(ipfs_gateway=origin.url("/"), allow_hosts=frozenset({origin.host_key}))

    assert await make_fetcher(limits).fetch(url) == IMAGE
    assert origin.seen == [f"/ipfs/{CID}/art/7.png"]


# Address guard


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/", r"points at a loopback address \(127\.0\.0\.1\)"),
        ("http://localhost/", r"host localhost resolves to a loopback address"),
        ("http://10.0.0.5/", r"points at a private network address \(10\.0\.0\.5\)"),
        ("http://192.168.1.1/", r"private network address \(192\.168\.1\.1\)"),
        ("http://169.254.169.254/latest/meta-data", r"link-local address \(169\.254\.169\.254\)"),
        ("http://[::1]/", r"loopback address \(::1\)"),
        ("http://[::ffff:127.0.0.1]/", r"loopback address \(::ffff:7f00:1\)"),
        ("http://2130706433/", r"host 2130706433 resolves to a loopback address \(127\.0\.0\.1\)"),
        ("http://0/", r"host 0 resolves to an unspecified address \(0\.0\.0\.0\)"),
        ("http://0x7f.1/", r"loopback address \(127\.0\.0\.1\)"),
        ("http://[fe80::1]/", r"link-local address"),
        ("http://224.0.0.1/", r"multicast address"),
        ("http://100.64.0.1/", r"non-public address"),
        ("http://[2002:7f00:1::]/", r"loopback address \(2002:7f00:1::\)"),
    ],
)
async def test_non_public_addresses_are_refused_before_any_request(url: str, why: str) -> None:
    started: list[str] = []

    async def on_start(session: Any, context: Any, params: Any) -> None:
        started.append(type(params).__name__)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_connection_create_start.append(on_start)
    trace.on_dns_resolvehost_start.append(on_start)
    # A plain session without the guarded resolver: the fetcher's own check must stop these.
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        fetcher = HttpImageFetcher(session, FetchLimits())
        with pytest.raises(UrlRefused, match=why) as caught:
            await fetcher.fetch(url)

    assert str(caught.value).endswith("; only public addresses are fetched.")
    assert started == []


async def test_guarded_session_refuses_names_that_resolve_to_loopback(origin: Origin) -> None:
    async with HttpImageFetcher.session(FetchLimits()) as session:
        with pytest.raises(UrlRefused, match="host localhost resolves to a loopback address"):
            await session.get(f"http://localhost:{origin.port}/image.png")

    assert origin.seen == []


async def test_resolver_refuses_a_name_rebound_to_a_private_address() -> None:
    resolver = GuardedResolver(FetchLimits(), inner=ScriptedResolver("10.0.0.5"))

    with pytest.raises(UrlRefused, match=r"nft\.example resolves to a private network address"):
        await resolver.resolve("nft.example", 443)


async def test_resolver_passes_public_addresses_through() -> None:
    resolver = GuardedResolver(FetchLimits(), inner=ScriptedResolver("93.184.216.34"))

    [result] = await resolver.resolve("nft.example", 443)

    assert result["host"] == "93.184.216.34"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/art.png",
        "javascript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "not a url",
        "ipfs://",
        "http:///art.png",
    ],
)
async def test_other_schemes_are_refused_even_when_private_addresses_are_allowed(
    url: str, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True))

    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url)

    assert not isinstance(caught.value, UrlRefused)


# Redirects


async def test_redirects_are_followed_up_to_the_limit(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(max_redirects=2, allow_hosts=frozenset({origin.host_key})))

    assert await fetcher.fetch(origin.url("/hop/2")) == IMAGE
    assert origin.seen == ["/hop/2", "/hop/1", "/hop/0"]


async def test_redirect_loop_stops_after_max_redirects(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(max_redirects=2, allow_hosts=frozenset({origin.host_key})))

    with pytest.raises(FetchError, match="redirected more than 2 times"):
        await fetcher.fetch(origin.url("/loop"))
    assert origin.seen == ["/loop"] * 3


async def test_redirect_to_cloud_metadata_is_refused(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(allow_hosts=frozenset({origin.host_key})))

    with pytest.raises(UrlRefused, match=r"link-local address \(169\.254\.169\.254\)"):
        await fetcher.fetch(origin.url("/to-metadata"))
    assert origin.seen == ["/to-metadata"]


async def test_redirect_to_another_scheme_is_refused(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True))

    with pytest.raises(FetchError, match=r"Only http\(s\) and ipfs:// URLs are supported\."):
        await fetcher.fetch(origin.url("/to-file"))


# Caps and failures


async def test_declared_content_length_over_the_cap_is_refused(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(max_bytes=CAP, allow_private=True))

    with pytest.raises(ImageTooLarge, match=r"is 5 KB; the limit is 1 KB\."):
        await fetcher.fetch(origin.url("/declared-big"))


async def test_chunked_body_over_the_cap_is_cut_off(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(max_bytes=CAP, allow_private=True))

    with pytest.raises(ImageTooLarge, match=r"larger than the 1 KB limit\."):
        await fetcher.fetch(origin.url("/chunked-big"))


async def test_slow_server_times_out(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(timeout_s=0.3, allow_private=True))

    with pytest.raises(FetchError, match=r"from 127\.0\.0\.1 took longer than 0\.3 s\."):
        await fetcher.fetch(origin.url("/slow"))


async def test_error_status_is_reported(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True))

    with pytest.raises(FetchError, match=r"The server at 127\.0\.0\.1 answered HTTP 404\."):
        await fetcher.fetch(origin.url("/missing.png"))


async def test_unreachable_server_is_a_fetch_error(
    make_fetcher: Callable[[FetchLimits], HttpImageFetcher],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    fetcher = make_fetcher(FetchLimits(allow_private=True))

    with pytest.raises(FetchError, match=r"Could not connect to 127\.0\.0\.1\."):
        await fetcher.fetch(f"http://127.0.0.1:{closed_port}/image.png")


# The fake other tests use


async def test_fake_fetcher_serves_known_urls_and_fails_like_a_404_otherwise() -> None:
    fetcher: ImageFetcher = FakeImageFetcher({"https://art.example/1.png": IMAGE})

    assert await fetcher.fetch("https://art.example/1.png") == IMAGE
    with pytest.raises(FetchError, match="404"):
        await fetcher.fetch("https://art.example/2.png")
