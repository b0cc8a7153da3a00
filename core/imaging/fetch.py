"""Fetch image bytes from http(s) and ipfs:// URLs, refusing private networks and huge bodies."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol
from urllib.parse import quote, unquote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from core.errors import FetchError, ImageTooLarge, UrlRefused
from core.imaging.decode import format_size, too_large

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_BASE58 = "1-9A-HJ-NP-Za-km-z"
# CIDv0 is a bare base58btc sha2-256 multihash; CIDv1 starts with its multibase letter. The
# CIDv1 bounds run from a 20-byte digest to a 512-bit one plus the version and codec varints.
CID_PATTERN = re.compile(
    rf"Qm[{_BASE58}]{{44}}|b[a-z2-7]{{32,160}}|k[0-9a-z]{{32,160}}|z[{_BASE58}]{{32,160}}"
)
# RFC 3986 pchar beyond the unreserved characters quote() never touches.
SEGMENT_SAFE = "!$&'()*+,;=:@"
# A separator or dot still encoded after one decoding: a server that decodes twice would see it.
_DOUBLE_ENCODED = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


class ImageFetcher(Protocol):
    """Turns an image URL into the bytes it serves."""

    async def fetch(self, url: str) -> bytes:
        """Return the body at ``url``; raise ``FetchError`` (or a subclass) when it cannot."""
        ...


@dataclass(frozen=True)
class FetchLimits:
    """Caps and address policy applied to every fetch and every redirect hop."""

    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 15.0
    max_redirects: int = 5
    ipfs_gateway: str = "https://ipfs.io"
    # Gateways tried in turn when ``ipfs_gateway`` cannot serve an ipfs:// URL (down, slow,
    # or without the content); a refusal or an over-size image is not retried elsewhere.
    ipfs_fallbacks: tuple[str, ...] = ()
    # Only for tests and self-hosted mirrors: skips every address check (schemes still apply).
    allow_private: bool = False
    # URL prefixes ("http://10.0.0.5:8080/ipfs/") trusted for what they serve: a URL whose
    # scheme, host and port match one and whose path lies under its path skips the address
    # checks. Any other URL on that host is checked like any host.
    trusted_roots: tuple[str, ...] = ()
    _roots: tuple[_Root, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_roots", tuple(_parse_root(root) for root in self.trusted_roots))

    def trusts(self, url: URL) -> bool:
        """Whether ``url`` skips the address checks: it lies under a trusted root."""
        if self.allow_private:
            return True
        path = _plain_path(url.raw_path)
        return path is not None and any(
            (url.scheme, url.raw_host, url.port) == (root.scheme, root.host, root.port)
            and path.startswith(root.path)
            for root in self._roots
        )

    def trusts_host(self, host: str, port: int) -> bool:
        """Whether the resolver lets ``host:port`` resolve to any address (see GuardedResolver)."""
        return self.allow_private or any(
            (host, port) == (root.host, root.port) for root in self._roots
        )


class _Root(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str


class HttpImageFetcher:
    """Fetches images over HTTP(S), following redirects by hand so every hop is checked."""

    def __init__(self, session: aiohttp.ClientSession, limits: FetchLimits) -> None:
        self._session = session
        self._limits = limits

    @staticmethod
    def session(limits: FetchLimits) -> aiohttp.ClientSession:
        """Open a session whose resolver refuses non-public addresses; use it with ``async with``.

        Call it from inside the running event loop; the caller owns and closes the session.
        """
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(limits))
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=limits.timeout_s),
            # A proxy taken from the environment would connect on our behalf, unchecked.
            trust_env=False,
        )

    async def fetch(self, url: str) -> bytes:
        """Return the image bytes at an http(s) or ipfs:// URL, within the configured limits."""
        if url.strip()[:7].lower() != "ipfs://":
            return await self._fetch(_parse_url(url, self._limits.ipfs_gateway))
        gateways = (self._limits.ipfs_gateway, *self._limits.ipfs_fallbacks)
        for i, gateway in enumerate(gateways):
            try:
                return await self._fetch(_parse_url(url, gateway))
            except (UrlRefused, ImageTooLarge):
                raise
            except FetchError:
                if i == len(gateways) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch(self, target: URL) -> bytes:
        try:
            # One deadline for the whole redirect chain; ClientTimeout only bounds each request.
            async with asyncio.timeout(self._limits.timeout_s):
                return await self._follow(target)
        except TimeoutError as exc:
            raise FetchError(
                f"Fetching the image from {target.host} took longer than "
                f"{self._limits.timeout_s:g} s."
            ) from exc

    async def _follow(self, url: URL) -> bytes:
        for _hop in range(self._limits.max_redirects + 1):
            await _check_host(url, self._limits)
            try:
                async with self._session.get(url, allow_redirects=False) as response:
                    if response.status in REDIRECT_STATUSES:
                        url = _redirect_target(url, response)
                        continue
                    if not 200 <= response.status < 300:
                        raise FetchError(
                            f"The server at {url.host} answered HTTP {response.status}."
                        )
                    return await _read_capped(response, url, self._limits.max_bytes)
            except TimeoutError:
                # aiohttp's timeouts are also OSErrors; fetch() words them as a timeout.
                raise
            except aiohttp.ClientConnectorError as exc:
                raise FetchError(f"Could not connect to {url.host}.") from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise FetchError(f"The download from {url.host} failed.") from exc
        raise FetchError(f"The URL redirected more than {self._limits.max_redirects} times.")


class GuardedResolver(AbstractResolver):
    """Resolves names like the OS does, then refuses any that lead to a non-public address.

    The fetcher checks each hop before connecting; checking again here, on the very addresses
    the connector will use, closes the DNS-rebinding gap between that check and the connect.
    """

    def __init__(self, limits: FetchLimits, inner: AbstractResolver | None = None) -> None:
        self._limits = limits
        # ThreadedResolver rather than DefaultResolver: with aiodns installed the default is
        # c-ares, whose answers could differ from the getaddrinfo that _check_host relies on.
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; raise ``UrlRefused`` if any address is not public."""
        results = await self._inner.resolve(host, port, family)
        # Keyed by host and port alone because the connector resolves before connecting and
        # never sees the path. Every hop has already passed _check_host, which exempts a
        # trusted root's host only for URLs under that root's path, so a hop reaching here for
        # that host:port is either under the root or was checked like any other host.
        if not self._limits.trusts_host(host, port):
            _refuse_non_public(host, [result["host"] for result in results])
        return results

    async def close(self) -> None:
        """Release the wrapped resolver."""
        await self._inner.close()


def _parse_url(raw: str, ipfs_gateway: str) -> URL:
    """Parse an http(s) or ipfs:// URL, rewriting ipfs:// onto ``<gateway>/ipfs/<cid>/``."""
    text = raw.strip()
    try:
        # Parsed by hand because URL parsers lower-case the host, and a CIDv0 is case-sensitive.
        if text[:7].lower() == "ipfs://":
            url = _gateway_url(text[7:], URL(ipfs_gateway))
        else:
            url = URL(text)
    except ValueError as exc:
        raise FetchError("That is not a valid URL.") from exc
    _check_scheme(url)
    if _has_credentials(url):
        # aiohttp would send them as Basic auth to whichever host the URL names.
        raise UrlRefused("URLs that carry a user name or password are not fetched.")
    return url


async def _check_host(url: URL, limits: FetchLimits) -> None:
    """Raise ``UrlRefused`` if the URL's host is, or resolves to, a non-public address."""
    host = url.raw_host
    port = url.port
    if host is None or port is None:
        raise FetchError("The URL has no host name.")
    if limits.trusts(url):
        return
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        _refuse_non_public(host, [host])
        return
    # getaddrinfo also reads the numeric forms ("2130706433", "0", "0x7f.1") exactly as the
    # socket layer would, so they are judged by the address they really reach.
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"The host {url.host} could not be found.") from exc
    _refuse_non_public(url.host or host, [str(info[4][0]) for info in infos])


def _gateway_url(rest: str, gateway: URL) -> URL:
    """``<gateway>/ipfs/<cid>/<path>`` for what follows ``ipfs://``, each segment checked."""
    # A content address names bytes; a query or fragment could only reach the gateway's API.
    path = re.split(r"[?#]", rest, maxsplit=1)[0].lstrip("/")
    if path[:5].lower() == "ipfs/":
        path = path[5:]
    cid, slash, tail = path.partition("/")
    if not cid:
        raise FetchError("The ipfs:// URL has no content id.")
    if not CID_PATTERN.fullmatch(cid):
        raise FetchError("That is not a valid IPFS address.")
    segments = _plain_segments(tail.split("/") if slash else [])
    if segments is None:
        raise FetchError("The path in that IPFS address cannot be fetched.")
    suffix = "".join(f"/{quote(segment, safe=SEGMENT_SAFE)}" for segment in segments)
    base = gateway.raw_path.rstrip("/")
    return (
        gateway.with_query(None)
        .with_fragment(None)
        .with_path(f"{base}/ipfs/{cid}{suffix}", encoded=True)
    )


def _decoded_segment(raw: str) -> str | None:
    """The percent-decoded path segment, or None unless every server would read it as one name.

    Refused: dot segments (also as ``..;x``, which Tomcat-style servers read as ``..``),
    separators, NUL and control characters, invalid UTF-8, and separators or dots still
    encoded after one decoding.
    """
    try:
        segment = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None
    if segment.split(";", 1)[0] in (".", ".."):
        return None
    if any(char in "/\\" or ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in segment):
        return None
    if _DOUBLE_ENCODED.search(segment):
        return None
    return segment


def _plain_path(raw_path: str) -> str | None:
    """The decoded path if every segment is plain, else None (so the URL is not trusted).

    yarl has already resolved dot segments, literal and ``%2e``, in every URL it parsed; any
    left were hidden from it and are not resolved a second time, because servers differ on
    whether they would. A "//" before the last segment is refused for the same reason: servers
    that merge slashes would resolve a following ``..`` differently.
    """
    segments = _plain_segments(raw_path.split("/")[1:])
    return None if segments is None else "/" + "/".join(segments)


def _plain_segments(raw: list[str]) -> list[str] | None:
    """Each segment decoded, or None if one is not plain or is empty before the last.

    An empty last segment is a trailing slash (a directory); anywhere else it is a "//".
    """
    decoded = [_decoded_segment(segment) for segment in raw]
    plain = [segment for segment in decoded if segment is not None]
    if len(plain) != len(decoded) or "" in plain[:-1]:
        return None
    return plain


def _parse_root(root: str) -> _Root:
    url = URL(root)
    path = _plain_path(url.raw_path)
    if (
        url.scheme not in ("http", "https")
        or not url.raw_host
        or url.port is None
        or _has_credentials(url)
        or path is None
        or not path.endswith("/")
    ):
        raise ValueError(
            f"A trusted root must be an http(s) URL with a host and a path ending in '/', "
            f"not {root!r}."
        )
    return _Root(url.scheme, url.raw_host, url.port, path)


def _check_scheme(url: URL) -> None:
    if url.scheme not in ("http", "https"):
        raise FetchError("Only http(s) and ipfs:// URLs are supported.")
    if not url.raw_host:
        raise FetchError("The URL has no host name.")


def _has_credentials(url: URL) -> bool:
    return url.raw_user is not None or url.raw_password is not None


def _redirect_target(url: URL, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise FetchError(f"The server at {url.host} redirected without saying where.")
    try:
        target = url.join(URL(location))
    except ValueError as exc:
        raise FetchError(f"The server at {url.host} redirected to an invalid URL.") from exc
    _check_scheme(target)
    if _has_credentials(target):
        raise UrlRefused(
            f"The server at {url.host} redirected to a URL with a user name or password, "
            "which is not fetched."
        )
    return target


async def _read_capped(response: aiohttp.ClientResponse, url: URL, max_bytes: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise too_large(declared, max_bytes, f"The image at {url.host}")
    # Counted while streaming because Content-Length can be missing, wrong, or describe a
    # compressed body that inflates far past it.
    size = 0
    # BytesIO rather than bytearray: CPython's getvalue() shrinks its buffer in place and hands
    # that very bytes object over, where bytes(bytearray) copied the whole body a second time
    # (peak memory for a 20 MB body: ~21 MB instead of ~40 MB, measured with tracemalloc).
    body = io.BytesIO()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise ImageTooLarge(
                f"The image at {url.host} is larger than the {format_size(max_bytes)} limit."
            )
        body.write(chunk)
    return body.getvalue()


def _refuse_non_public(host: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        ip = ipaddress.ip_address(address)
        reason = _non_public_reason(ip)
        if reason is None:
            continue
        if address == host:
            raise UrlRefused(
                f"The URL points at {reason} ({ip}); only public addresses are fetched."
            )
        raise UrlRefused(
            f"The host {host} resolves to {reason} ({ip}); only public addresses are fetched."
        )


def _non_public_reason(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 addresses carried inside IPv6 reach the IPv4 host they embed.
        if ip.ipv4_mapped is not None:
            return _non_public_reason(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and (reason := _non_public_reason(embedded)):
            return reason
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private network address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a non-public address"),
    )
    return next((reason for hit, reason in checks if hit), None)
