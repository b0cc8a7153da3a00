"""Fetch image bytes from http(s) and ipfs:// URLs, refusing private networks and huge bodies."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from core.errors import FetchError, ImageTooLarge, UrlRefused
from core.imaging.decode import format_size, too_large

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    # Only for tests and self-hosted mirrors: skips every address check (schemes still apply).
    allow_private: bool = False
    # Exact "host:port" pairs (IPv6 as "[::1]:8080") exempt from the address checks.
    allow_hosts: frozenset[str] = frozenset()


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
        target = _parse_url(url, self._limits.ipfs_gateway)
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
        if not _is_exempt(host, port, self._limits):
            _refuse_non_public(host, [result["host"] for result in results])
        return results

    async def close(self) -> None:
        """Release the wrapped resolver."""
        await self._inner.close()


def _parse_url(raw: str, ipfs_gateway: str) -> URL:
    """Parse an http(s) or ipfs:// URL, rewriting ipfs:// onto ``<gateway>/ipfs/``."""
    text = raw.strip()
    # Parsed by hand because URL parsers lower-case the host, and a CIDv0 is case-sensitive.
    if text[:7].lower() == "ipfs://":
        text = _gateway_url(text[7:], ipfs_gateway)
    try:
        url = URL(text)
    except ValueError as exc:
        raise FetchError("That is not a valid URL.") from exc
    _check_scheme(url)
    return url


async def _check_host(url: URL, limits: FetchLimits) -> None:
    """Raise ``UrlRefused`` if the URL's host is, or resolves to, a non-public address."""
    host = url.raw_host
    port = url.port
    if host is None or port is None:
        raise FetchError("The URL has no host name.")
    if _is_exempt(host, port, limits):
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


def _gateway_url(rest: str, gateway: str) -> str:
    path = rest.lstrip("/")
    if path[:5].lower() == "ipfs/":
        path = path[5:]
    if not path or path.startswith("/"):
        raise FetchError("The ipfs:// URL has no content id.")
    return f"{gateway.rstrip('/')}/ipfs/{path}"


def _check_scheme(url: URL) -> None:
    if url.scheme not in ("http", "https"):
        raise FetchError("Only http(s) and ipfs:// URLs are supported.")
    if not url.raw_host:
        raise FetchError("The URL has no host name.")


def _redirect_target(url: URL, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise FetchError(f"The server at {url.host} redirected without saying where.")
    try:
        target = url.join(URL(location))
    except ValueError as exc:
        raise FetchError(f"The server at {url.host} redirected to an invalid URL.") from exc
    _check_scheme(target)
    return target


async def _read_capped(response: aiohttp.ClientResponse, url: URL, max_bytes: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise too_large(declared, max_bytes, f"The image at {url.host}")
    # Counted while streaming because Content-Length can be missing, wrong, or describe a
    # compressed body that inflates far past it.
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            raise ImageTooLarge(
                f"The image at {url.host} is larger than the {format_size(max_bytes)} limit."
            )
    return bytes(body)


def _is_exempt(host: str, port: int, limits: FetchLimits) -> bool:
    key = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return limits.allow_private or key in limits.allow_hosts


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
