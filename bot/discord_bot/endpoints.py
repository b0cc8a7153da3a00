"""Pointing discord.py at another Discord: REST root and gateway URL, set and restored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route


def rest_base(api_root: str) -> str:
    return f"{api_root.rstrip('/')}/api/v10"


def gateway_url(api_root: str) -> yarl.URL:
    root = yarl.URL(api_root.rstrip("/"))
    scheme = "wss" if root.scheme == "https" else "ws"
    return root.with_scheme(scheme).with_path("/gateway")


@contextmanager
def discord_endpoints(api_root: str | None) -> Iterator[None]:
    """Use ``api_root`` (REST under ``/api/v10``, gateway at ``/gateway``) while inside.

    discord.py keeps both as class attributes, so this is process-wide: only our bot
    start-up sets them, from config, and puts the old values back when the bot stops.
    ``None`` leaves discord.py talking to Discord itself.
    """
    if api_root is None:
        yield
        return
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = rest_base(api_root)
    DiscordWebSocket.DEFAULT_GATEWAY = gateway_url(api_root)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved
