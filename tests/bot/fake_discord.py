"""A stand-in for Discord on loopback: REST under ``/api/v10`` and a gateway websocket.

The gateway says HELLO, accepts IDENTIFY, sends READY and GUILD_CREATE, answers heartbeats,
then dispatches whatever INTERACTION_CREATE events a test queues. REST records command
syncs, interaction callbacks, webhook follow-ups and channel messages (with their files),
serves channels (404 for unknown ones, 403 for those a test forbids), and serves
attachments as a CDN would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TOKEN = "MTIzNDU2.fake-discord-bot-token.for-tests-only"
APP_ID = "700000000000000001"
BOT_ID = APP_ID
GUILD_ID = "710000000000000002"
# The fake sends its one guild right after READY, so a client need not wait discord.py's
# default 2 s for more (a guild arriving later is still taken in, as from Discord).
GUILD_READY_S = 0.05
CHANNEL_ID = "720000000000000003"
ADMIN_ROLE = "730000000000000004"


@dataclass
class Request:
    """One REST call the client made."""

    method: str
    path: str
    query: dict[str, str]
    json: Any = None
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def payload(self) -> dict[str, Any]:
        """The JSON body, or a multipart request's ``payload_json``."""
        return self.json if isinstance(self.json, dict) else {}


class FakeDiscord:
    """Discord as far as our client uses it."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.attachments: dict[str, bytes] = {}
        self.identified: list[dict[str, Any]] = []
        self.throttle: dict[str, list[float]] = {}
        self.channels: dict[str, dict[str, Any]] = {CHANNEL_ID: channel_payload(CHANNEL_ID)}
        self.forbidden: set[str] = set()
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._changed = asyncio.Condition()
        self._ids = itertools.count(800_000_000_000_000_000)
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.root = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{name}", self._attachment)
        app.router.add_route("*", "/api/v10/{path:.+}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.root = f"http://127.0.0.1:{port}"
        return self.root

    async def stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # What tests drive ------------------------------------------------------------------------

    def next_id(self) -> str:
        return str(next(self._ids))

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self._events.put_nowait({"t": event, "d": data})

    def throttle_next(self, path_part: str, retry_after: float) -> None:
        """Answer the next request whose path contains ``path_part`` with a 429."""
        self.throttle.setdefault(path_part, []).append(retry_after)

    def add_channel(self, channel_id: str, kind: int = 0, name: str = "digests") -> None:
        """Serve a channel the gateway did not announce (type 0 text, 4 category, 15 forum)."""
        self.channels[channel_id] = channel_payload(channel_id, kind, name)

    def forbid(self, channel_id: str) -> None:
        """Answer reads of and posts to ``channel_id`` with 403 Missing Access."""
        self.forbidden.add(channel_id)

    def messages(self, channel_id: str) -> list[Request]:
        """The messages posted to ``channel_id``, in order (refused ones included)."""
        path = f"/channels/{channel_id}/messages"
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    async def wait_for(
        self, predicate: Callable[[list[Request]], bool], timeout: float = 15.0
    ) -> list[Request]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.requests))
        return self.requests

    def calls(self, interaction_token: str) -> list[Request]:
        """Callbacks and follow-ups made for one interaction, in order."""
        return [r for r in self.requests if f"/{interaction_token}" in r.path]

    async def answers(self, interaction_token: str, count: int) -> list[Request]:
        await self.wait_for(lambda _: len(self.calls(interaction_token)) >= count)
        return self.calls(interaction_token)

    # Gateway ---------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.add(socket)
        sequence = itertools.count(1)
        try:
            await socket.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
            # discord.py heartbeats as soon as HELLO arrives, then identifies.
            while (first := await socket.receive_json(timeout=10))["op"] == 1:
                await socket.send_json({"op": 11})
            assert first["op"] == 2, first
            self.identified.append(first["d"])
            ready = self._ready()
            await socket.send_json({"op": 0, "t": "READY", "s": next(sequence), "d": ready})
            await socket.send_json(
                {"op": 0, "t": "GUILD_CREATE", "s": next(sequence), "d": guild_payload()}
            )
            reader = asyncio.create_task(self._read(socket))
            try:
                while not socket.closed:
                    getter = asyncio.create_task(self._events.get())
                    done, _ = await asyncio.wait(
                        {getter, reader}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                        break
                    event = getter.result()
                    await socket.send_json({"op": 0, "s": next(sequence), **event})
            finally:
                reader.cancel()
        finally:
            self._sockets.discard(socket)
        return socket

    async def _read(self, socket: web.WebSocketResponse) -> None:
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                break
            payload = json.loads(message.data)
            if payload.get("op") == 1:  # heartbeat
                await socket.send_json({"op": 11})

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": bot_user(),
            "guilds": [{"id": GUILD_ID, "unavailable": True}],
            "session_id": "fake-session",
            "resume_gateway_url": self.root.replace("http", "ws"),
            "application": {"id": APP_ID, "flags": 0},
            "shard": [0, 1],
        }

    # REST ------------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        authorised = request.headers.get("Authorization") == f"Bot {TOKEN}"
        webhook = path.startswith(("/webhooks/", "/interactions/"))
        if not authorised and not webhook:
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        recorded = Request(request.method, path, dict(request.query))
        await _read_body(request, recorded)
        async with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        for part, waits in self.throttle.items():
            if part in path and waits:
                retry_after = waits.pop(0)
                # Discord's real 429s come through its proxy, which discord.py checks for.
                return _json(
                    {
                        "message": "You are being rate limited.",
                        "retry_after": retry_after,
                        "global": False,
                    },
                    status=429,
                    headers={
                        "Via": "1.1 google",
                        "Retry-After": str(retry_after),
                        "X-RateLimit-Scope": "user",
                    },
                )
        return self._answer(recorded)

    def _answer(self, request: Request) -> web.Response:
        path, method = request.path, request.method
        if path == "/users/@me":
            return _json(bot_user())
        if path == "/oauth2/applications/@me":
            return _json(application())
        if method == "PUT" and path.endswith("/commands"):
            guild = path.split("/guilds/")[1].split("/")[0] if "/guilds/" in path else None
            return _json(
                [
                    {
                        **command,
                        "id": self.next_id(),
                        "application_id": APP_ID,
                        "version": "1",
                        "type": command.get("type", 1),
                        "guild_id": guild,
                        "description": command.get("description", ""),
                    }
                    for command in request.json
                ]
            )
        if path.startswith("/interactions/") and path.endswith("/callback"):
            interaction_id = path.split("/")[2]
            body = request.payload
            flags = (body.get("data") or {}).get("flags", 0)
            return _json(
                {
                    "interaction": {
                        "id": interaction_id,
                        "type": 2,
                        "response_message_loading": body.get("type") == 5,
                        "response_message_ephemeral": bool(flags & 64),
                    },
                    "resource": {"type": body.get("type")},
                }
            )
        if path.startswith("/webhooks/") and method == "POST":
            return _json(self._message(request))
        if path.startswith("/webhooks/") and method in ("PATCH", "GET"):
            return _json(self._message(request))
        if path.startswith("/channels/"):
            return self._channel(request)
        return _json({"message": f"404: Not Found ({method} {path})", "code": 0}, status=404)

    def _channel(self, request: Request) -> web.Response:
        parts = request.path.split("/")  # "", "channels", id[, "messages"]
        channel_id, rest = parts[2], parts[3:]
        if channel_id in self.forbidden:
            return _json({"message": "Missing Access", "code": 50001}, status=403)
        channel = self.channels.get(channel_id)
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        if request.method == "GET" and not rest:
            return _json(channel)
        if request.method == "POST" and rest == ["messages"]:
            message = self._message(request)
            message.update(channel_id=channel_id, type=0, content=message["content"] or "")
            del message["webhook_id"], message["application_id"]
            return _json(message)
        return _json({"message": "405: Method Not Allowed", "code": 0}, status=405)

    def _message(self, request: Request) -> dict[str, Any]:
        body = request.payload
        attachments = [
            {
                "id": self.next_id(),
                "filename": attachment.get("filename", "file"),
                "size": len(request.files.get(f"files[{n}]", b"")),
                "url": f"{self.root}/cdn/{attachment.get('filename')}",
                "proxy_url": f"{self.root}/cdn/{attachment.get('filename')}",
            }
            for n, attachment in enumerate(body.get("attachments", []))
        ]
        return {
            "id": self.next_id(),
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "type": 20,
            "content": body.get("content", ""),
            "author": bot_user(),
            "embeds": body.get("embeds", []),
            "attachments": attachments,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
            "timestamp": "2024-06-01T12:00:00+00:00",
            "edited_timestamp": None,
            "flags": body.get("flags", 0),
            "components": [],
            "webhook_id": APP_ID,
            "application_id": APP_ID,
        }

    async def _attachment(self, request: web.Request) -> web.Response:
        data = self.attachments.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="image/png")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Discord sends exactly "application/json" (no charset), and discord.py compares the
    # header verbatim before it parses a body as JSON.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


async def _read_body(request: web.Request, recorded: Request) -> None:
    if not request.can_read_body:
        return
    if request.content_type == "application/json":
        recorded.json = await request.json()
        return
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                recorded.files[key] = value.file.read()
            elif key == "payload_json":
                recorded.json = json.loads(str(value))


# Payload factories ------------------------------------------------------------------------


def bot_user() -> dict[str, Any]:
    return {
        "id": BOT_ID,
        "username": "NFT Lens",
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "bot": True,
        "flags": 0,
    }


def channel_payload(channel_id: str, kind: int = 0, name: str = "general") -> dict[str, Any]:
    """A guild channel: type 0 text, 4 category, 15 forum."""
    return {
        "id": channel_id,
        "type": kind,
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "guild_id": GUILD_ID,
    }


def human(user_id: str = "740000000000000005", name: str = "ada") -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "discriminator": "0",
        "global_name": name.title(),
        "avatar": None,
    }


def application() -> dict[str, Any]:
    return {
        "id": APP_ID,
        "name": "NFT Lens",
        "description": "",
        "icon": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": human(),
        "verify_key": "00",
        "flags": 0,
        "team": None,
        "summary": "",
    }


def guild_payload() -> dict[str, Any]:
    role = {
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
        "permissions": "0",
    }
    return {
        "id": GUILD_ID,
        "name": "NFT server",
        "owner_id": human()["id"],
        "unavailable": False,
        "roles": [
            {**role, "id": GUILD_ID, "name": "@everyone"},
            {**role, "id": ADMIN_ROLE, "name": "lens-admin", "position": 1},
        ],
        "channels": [channel_payload(CHANNEL_ID)],
        "members": [],
        "emojis": [],
        "stickers": [],
        "features": [],
        "member_count": 2,
        "large": False,
        "threads": [],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "preferred_locale": "en-US",
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "afk_timeout": 300,
        "mfa_level": 0,
        "premium_tier": 0,
        "nsfw_level": 0,
        "system_channel_flags": 0,
    }


def interaction(
    token: str,
    name: str,
    options: list[dict[str, Any]],
    *,
    kind: int = 2,
    resolved: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    roles: list[str] | None = None,
    interaction_id: str = "750000000000000006",
) -> dict[str, Any]:
    """INTERACTION_CREATE data for a slash command (kind 2) or its autocomplete (kind 4)."""
    data: dict[str, Any] = {
        "id": "760000000000000007",
        "name": name,
        "type": 1,
        "options": options,
        "guild_id": GUILD_ID,
    }
    if resolved:
        data["resolved"] = resolved
    return {
        "id": interaction_id,
        "application_id": APP_ID,
        "type": kind,
        "token": token,
        "version": 1,
        "guild_id": GUILD_ID,
        "channel_id": CHANNEL_ID,
        "channel": {
            "id": CHANNEL_ID,
            "type": 0,
            "name": "general",
            "guild_id": GUILD_ID,
            "position": 0,
            "permission_overwrites": [],
        },
        "guild": {"id": GUILD_ID, "locale": "en-US", "features": []},
        "member": {
            "user": user or human(),
            "roles": roles or [],
            "nick": None,
            "avatar": None,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "permissions": "2147483647",
        },
        "app_permissions": "2147483647",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD_ID},
        "context": 0,
        "attachment_size_limit": 10 * 1024 * 1024,
        "data": data,
    }


def attachment(
    attachment_id: str, filename: str, data: bytes, root: str, content_type: str = "image/png"
) -> dict[str, Any]:
    return {
        "id": attachment_id,
        "filename": filename,
        "size": len(data),
        "url": f"{root}/cdn/{filename}",
        "proxy_url": f"{root}/cdn/{filename}",
        "content_type": content_type,
    }
