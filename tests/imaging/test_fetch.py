"""HttpImageFetcher against a real loopback server: URL rules, SSRF guard, redirects, caps."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

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
CID_V1_BASE32 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
CID_V1_BASE36 = "k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8"
CID_V1_BASE58 = "zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7"
SECRET = "hunter2"

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

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def gateway_limits(self) -> FetchLimits:
        """Limits for this server as the configured IPFS gateway, trusted for /ipfs/ only."""
        return FetchLimits(ipfs_gateway=self.url("/"), trusted_roots=(self.url("/ipfs/"),))


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

    async def redirect_to_query(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def admin(request: web.Request) -> web.Response:
        return web.Response(text="the gateway's admin page")

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
    app.router.add_get("/admin", admin)
    # Registered before the catch-all so a trusted gateway can redirect from inside /ipfs/.
    app.router.add_get("/ipfs/{cid}/to-admin", redirect_to("/admin"))
    app.router.add_get("/ipfs/{cid}/redirect", redirect_to_query)
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


async def test_fetched_body_is_immutable_bytes(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    body = await make_fetcher(FetchLimits(allow_private=True)).fetch(origin.url("/image.png"))

    assert type(body) is bytes


async def test_a_trusted_root_exempts_exactly_that_server_and_path(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(trusted_roots=(origin.url("/ipfs/"),)))

    assert await fetcher.fetch(origin.url(f"/ipfs/{CID}")) == IMAGE
    with pytest.raises(UrlRefused, match=r"loopback address \(127\.0\.0\.1\)"):
        await fetcher.fetch(origin.url("/image.png"))
    with pytest.raises(UrlRefused):
        await fetcher.fetch(f"http://127.0.0.1:{origin.port + 1}/ipfs/{CID}")
    assert origin.seen == [f"/ipfs/{CID}"]


@pytest.mark.parametrize(
    "root", ["http://h.example/ipfs", "ftp://h.example/ipfs/", "/ipfs/", "http://u:p@h.example/"]
)
def test_a_trusted_root_must_be_an_http_url_ending_in_a_slash(root: str) -> None:
    with pytest.raises(ValueError, match="A trusted root must be an http"):
        FetchLimits(trusted_roots=(root,))


# ipfs:// URLs


@pytest.mark.parametrize(
    ("url", "path"),
    [
        (f"ipfs://{CID}/art/7.png", f"/ipfs/{CID}/art/7.png"),
        (f"ipfs://ipfs/{CID}/art/7.png", f"/ipfs/{CID}/art/7.png"),
        (f"ipfs:///ipfs/{CID}/art/7.png", f"/ipfs/{CID}/art/7.png"),
        (f"IPFS://{CID}", f"/ipfs/{CID}"),
        (f"ipfs://{CID}/art/7.png?filename=x.png#top", f"/ipfs/{CID}/art/7.png"),
        (f"ipfs://{CID}/my art/%C3%BC 1.png", f"/ipfs/{CID}/my%20art/%C3%BC%201.png"),
        (f"ipfs://{CID_V1_BASE32}/7.png", f"/ipfs/{CID_V1_BASE32}/7.png"),
        (f"ipfs://{CID_V1_BASE36}/a/b.png", f"/ipfs/{CID_V1_BASE36}/a/b.png"),
        (f"ipfs://{CID_V1_BASE58}/", f"/ipfs/{CID_V1_BASE58}/"),
    ],
)
async def test_ipfs_urls_are_fetched_through_a_trusted_gateway_with_the_cid_intact(
    url: str, path: str, origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    assert await make_fetcher(origin.gateway_limits()).fetch(url) == IMAGE
    assert origin.seen == [path]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ipfs://../../admin", "That is not a valid IPFS address."),
        ("ipfs://ipfs/../admin", "That is not a valid IPFS address."),
        ("ipfs://Qm123/a.png", "That is not a valid IPFS address."),
        (f"ipfs://{CID[:-1]}0", "That is not a valid IPFS address."),
        (f"ipfs://{CID_V1_BASE32.upper()}", "That is not a valid IPFS address."),
        (f"ipfs://{CID_V1_BASE32}!", "That is not a valid IPFS address."),
        (f"ipfs://{CID_V1_BASE32[:20]}", "That is not a valid IPFS address."),
        (f"ipfs://user:{SECRET}@{CID}", "That is not a valid IPFS address."),
        (f"ipfs://{CID}/../../admin", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/./a.png", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/%2e%2e/%2e%2e/admin", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/%2E%2E;x/admin", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/%252e%252e/admin", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/a%2fb", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/a%5Cb", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/a//b.png", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/a%00.png", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/a%0d%0aHost:x", "The path in that IPFS address cannot be fetched."),
        (f"ipfs://{CID}/%ff.png", "The path in that IPFS address cannot be fetched."),
    ],
)
async def test_bad_ipfs_addresses_are_refused_before_any_request(
    url: str, why: str, origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    with pytest.raises(FetchError) as caught:
        await make_fetcher(origin.gateway_limits()).fetch(url)

    assert str(caught.value) == why
    assert not isinstance(caught.value, UrlRefused)
    assert origin.seen == []


# A trusted gateway, trusted for /ipfs/ only


@pytest.mark.parametrize(
    "path",
    ["/admin", "/image.png", "/ipfs/%2e%2e/admin", "/ipfs/..%2fadmin", "/ipfs/..;/admin", "/ipfs"],
)
async def test_other_paths_on_a_trusted_gateway_are_checked_like_any_host(
    path: str, origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    with pytest.raises(UrlRefused, match=r"points at a loopback address \(127\.0\.0\.1\)"):
        await make_fetcher(origin.gateway_limits()).fetch(origin.url(path))
    assert origin.seen == []


async def test_gateway_redirect_out_of_ipfs_on_itself_is_refused(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    with pytest.raises(UrlRefused, match=r"points at a loopback address \(127\.0\.0\.1\)"):
        await make_fetcher(origin.gateway_limits()).fetch(f"ipfs://{CID}/to-admin")
    assert origin.seen == [f"/ipfs/{CID}/to-admin"]


@pytest.mark.parametrize(
    "location",
    ["/admin", "../../admin", "/ipfs/%2e%2e/admin", "/ipfs/..%2fadmin", "/ipfs/%252e%252e/admin"],
)
async def test_gateway_redirect_that_escapes_ipfs_by_encoding_is_refused(
    location: str, origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    start = f"/ipfs/{CID}/redirect?to={quote(location, safe='/')}"

    with pytest.raises(UrlRefused, match=r"points at a loopback address \(127\.0\.0\.1\)"):
        await make_fetcher(origin.gateway_limits()).fetch(origin.url(start))
    assert origin.seen == [start]


async def test_gateway_redirect_within_ipfs_on_itself_is_followed(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    start = f"/ipfs/{CID}/redirect?to=/ipfs/{CID_V1_BASE32}/7.png"

    assert await make_fetcher(origin.gateway_limits()).fetch(origin.url(start)) == IMAGE
    assert origin.seen == [start, f"/ipfs/{CID_V1_BASE32}/7.png"]


async def test_resolver_trusts_a_root_host_on_its_port_only() -> None:
    limits = FetchLimits(trusted_roots=("http://ipfs-node.lan:8080/ipfs/",))
    resolver = GuardedResolver(limits, inner=ScriptedResolver("10.0.0.5"))

    [result] = await resolver.resolve("ipfs-node.lan", 8080)
    assert result["host"] == "10.0.0.5"
    with pytest.raises(UrlRefused, match="private network address"):
        await resolver.resolve("ipfs-node.lan", 80)


# Credentials


@pytest.mark.parametrize(
    "userinfo", [f"user:{SECRET}", "user", f":{SECRET}", f"user:{SECRET.upper()}"]
)
async def test_urls_with_credentials_are_refused_without_contacting_the_server(
    userinfo: str, origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    url = f"http://{userinfo}@127.0.0.1:{origin.port}/image.png"

    with pytest.raises(UrlRefused) as caught:
        await make_fetcher(FetchLimits(allow_private=True)).fetch(url)

    assert str(caught.value) == "URLs that carry a user name or password are not fetched."
    assert origin.seen == []


async def test_redirect_to_a_url_with_credentials_is_refused(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    start = f"/ipfs/{CID}/redirect?to=http://user:{SECRET}@127.0.0.1:{origin.port}/image.png"

    with pytest.raises(UrlRefused) as caught:
        await make_fetcher(FetchLimits(allow_private=True)).fetch(origin.url(start))

    assert str(caught.value) == (
        "The server at 127.0.0.1 redirected to a URL with a user name or password, "
        "which is not fetched."
    )
    assert SECRET not in str(caught.value)
    assert origin.seen == [start]


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
    fetcher = make_fetcher(FetchLimits(max_redirects=2, trusted_roots=(origin.url("/"),)))

    assert await fetcher.fetch(origin.url("/hop/2")) == IMAGE
    assert origin.seen == ["/hop/2", "/hop/1", "/hop/0"]


async def test_redirect_loop_stops_after_max_redirects(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(max_redirects=2, trusted_roots=(origin.url("/"),)))

    with pytest.raises(FetchError, match="redirected more than 2 times"):
        await fetcher.fetch(origin.url("/loop"))
    assert origin.seen == ["/loop"] * 3


async def test_redirect_to_cloud_metadata_is_refused(
    origin: Origin, make_fetcher: Callable[[FetchLimits], HttpImageFetcher]
) -> None:
    fetcher = make_fetcher(FetchLimits(trusted_roots=(origin.url("/"),)))

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
