"""A stand-in for the Telegram Bot API on loopback, and factories for the updates it feeds.

It speaks the real wire protocol that python-telegram-bot uses: form or multipart POSTs to
``/bot<token>/<method>``, ``{"ok": ..., "result": ...}`` answers, long-polled ``getUpdates``,
and file downloads from ``/file/bot<token>/<path>``. Uploads arrive as PTB sends them: a
photo or document as its own part (``photo``, ``document``), an album's items as a JSON
``media`` list whose ``attach://<name>`` references point at the parts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456789:AAF-fake-telegram-token-for-tests"
BOT_ID = 123456789
BOT_USERNAME = "nftlens_test_bot"


@dataclass
class Call:
    """One Bot API request the bot made."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)

    @property
    def chat_id(self) -> int | str | None:
        """The numeric chat id, or a ``@channelusername`` as sent."""
        value = self.params.get("chat_id")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return str(value)

    @property
    def text(self) -> str:
        """The message text, or the caption (an album's is on its first item)."""
        text = self.params.get("text") or self.params.get("caption")
        if text is None and self.media:
            text = self.media[0].get("caption")
        return str(text or "")

    @property
    def media(self) -> list[dict[str, Any]]:
        """sendMediaGroup's items as sent, each with its upload's ``"data"`` and ``"filename"``."""
        raw = self.params.get("media")
        items = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(items, list):
            return []
        resolved = []
        for item in items:
            part = str(item.get("media")).removeprefix("attach://")
            resolved.append(
                {**item, "data": self.files.get(part), "filename": self.filenames.get(part)}
            )
        return resolved


class FakeBotApi:
    """The Bot API as far as our bot uses it; records every call, serves queued updates."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}
        self.flood: dict[str, list[int]] = {}
        self.failures: dict[str, list[tuple[int, str, dict[str, Any] | None]]] = {}
        self._updates: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        self._closing = False
        self._runner: web.AppRunner | None = None
        self.root = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.root = f"http://127.0.0.1:{port}"
        return self.root

    async def stop(self) -> None:
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # What tests drive ------------------------------------------------------------------------

    async def push(self, update: dict[str, Any]) -> None:
        """Queue an update for the next getUpdates."""
        update = {"update_id": next(self._ids), **update}
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()

    def flood_next(self, method: str, retry_after: int) -> None:
        """Answer the next ``method`` call with 429 Too Many Requests."""
        self.flood.setdefault(method, []).append(retry_after)

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``method`` call with a Bot API error, e.g. ``403, "Forbidden: bot
        was kicked from the supergroup chat"`` or ``400, "Bad Request: chat not found"``."""
        self.failures.setdefault(method, []).append((status, description, parameters))

    async def wait_for(
        self, predicate: Callable[[list[Call]], bool], timeout: float = 15.0
    ) -> list[Call]:
        """Wait until the recorded calls satisfy ``predicate``; returns them."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.calls))
        return self.calls

    async def reply_to(self, chat_id: int, method: str, timeout: float = 15.0) -> Call:
        """The first ``method`` call to ``chat_id`` (waiting for it)."""

        def found(calls: list[Call]) -> bool:
            return any(c.method == method and c.chat_id == chat_id for c in calls)

        calls = await self.wait_for(found, timeout)
        return next(c for c in calls if c.method == method and c.chat_id == chat_id)

    def sent(self, chat_id: int) -> list[Call]:
        return [c for c in self.calls if c.chat_id == chat_id and c.method.startswith("send")]

    # The protocol ----------------------------------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params, files, filenames = await _read_params(request)
        if method == "getUpdates":
            return _ok(await self._get_updates(params))
        call = Call(method, params, files, filenames)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        pending = self.flood.get(method)
        if pending:
            retry_after = pending.pop(0)
            return _error(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        failures = self.failures.get(method)
        if failures:
            return _error(*failures.pop(0))
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _ok(True)
        return _ok(handler(call))

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)

        def ready() -> list[dict[str, Any]]:
            return [u for u in self._updates if u["update_id"] >= offset]

        # Long polling: hold the request until an update arrives or the timeout passes.
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: bool(ready()) or self._closing)
            except TimeoutError:
                pass
            return ready()

    def _api_getMe(self, call: Call) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "NFT Lens",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _api_getFile(self, call: Call) -> dict[str, Any]:
        file_id = str(call.params["file_id"])
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(self.files.get(file_id, b"")),
            "file_path": f"photos/{file_id}",
        }

    def _api_sendMessage(self, call: Call) -> dict[str, Any]:
        return {**self._sent_message(call), "text": call.params.get("text", "")}

    def _api_sendPhoto(self, call: Call) -> dict[str, Any]:
        photo = [
            {
                "file_id": "sent-photo",
                "file_unique_id": "sent-photo",
                "width": 640,
                "height": 320,
                "file_size": len(call.files.get("photo", b"")),
            }
        ]
        message = {**self._sent_message(call), "photo": photo}
        if call.params.get("caption"):
            message["caption"] = call.params["caption"]
        return message

    def _api_sendDocument(self, call: Call) -> dict[str, Any]:
        data = call.files.get("document", b"")
        document = {
            "file_id": f"sent-document-{len(data)}",
            "file_unique_id": f"sent-document-{len(data)}",
            "file_name": call.filenames.get("document", "document"),
            "file_size": len(data),
        }
        message = {**self._sent_message(call), "document": document}
        if call.params.get("caption"):
            message["caption"] = call.params["caption"]
        return message

    def _api_sendMediaGroup(self, call: Call) -> list[dict[str, Any]]:
        group = f"album-{next(self._ids)}"
        messages: list[dict[str, Any]] = []
        for item in call.media:
            photo = {
                "file_id": f"sent-photo-{group}-{len(messages)}",
                "file_unique_id": f"sent-photo-{group}-{len(messages)}",
                "width": 640,
                "height": 320,
                "file_size": len(item["data"] or b""),
            }
            message = {**self._sent_message(call), "media_group_id": group, "photo": [photo]}
            if item.get("caption"):
                message["caption"] = item["caption"]
            messages.append(message)
        return messages

    def _sent_message(self, call: Call) -> dict[str, Any]:
        chat_id = call.chat_id or 0
        if isinstance(chat_id, str):  # a @channelusername
            chat = {"id": -1_009_999_999_999, "type": "channel", "username": chat_id[1:]}
        else:
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        return {
            "message_id": next(self._ids) + 10_000,
            "date": int(time.time()),
            "chat": chat,
            "from": {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "NFT Lens",
                "username": BOT_USERNAME,
            },
        }

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != TOKEN:
            return web.Response(status=401)
        file_id = request.match_info["path"].removeprefix("photos/")
        data = self.files.get(file_id)
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")


async def _read_params(
    request: web.Request,
) -> tuple[dict[str, Any], dict[str, bytes], dict[str, str]]:
    """The call's parameters, its uploaded parts' bytes and their file names, by part name."""
    params: dict[str, Any] = dict(request.query)
    files: dict[str, bytes] = {}
    filenames: dict[str, str] = {}
    if request.content_type == "application/json":
        params.update(await request.json())
        return params, files, filenames
    if request.can_read_body:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = value.file.read()
                filenames[key] = value.filename
            else:
                params[key] = str(value)
    # PTB uploads files as attach://<name> references to separate parts.
    for key, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            files[key] = files.get(value.removeprefix("attach://"), b"")
    return params, files, filenames


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(
    status: int, description: str, parameters: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


# Update factories -------------------------------------------------------------------------

_message_ids = itertools.count(1)


def user(user_id: int = 42, name: str = "Ada") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name}


def chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "type": "private" if chat_id > 0 else "group", "title": "NFT chat"}


def message(
    chat_id: int,
    *,
    text: str | None = None,
    caption: str | None = None,
    user_id: int = 42,
    photo: str | None = None,
    photo_size: int = 5000,
    document: tuple[str, str, int] | None = None,
    reply_to: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A message payload; a leading /command gets its bot_command entity like Telegram's."""
    body: dict[str, Any] = {
        "message_id": next(_message_ids),
        "date": int(time.time()),
        "chat": chat(chat_id),
        "from": user(user_id),
    }
    if text is not None:
        body["text"] = text
        body.update(_command_entities("entities", text))
    if caption is not None:
        body["caption"] = caption
        body.update(_command_entities("caption_entities", caption))
    if photo is not None:
        body["photo"] = [
            {
                "file_id": f"{photo}-small",
                "file_unique_id": f"{photo}-s",
                "width": 90,
                "height": 90,
                "file_size": 1000,
            },
            {
                "file_id": photo,
                "file_unique_id": photo,
                "width": 400,
                "height": 400,
                "file_size": photo_size,
            },
        ]
    if document is not None:
        file_id, mime, size = document
        body["document"] = {
            "file_id": file_id,
            "file_unique_id": file_id,
            "file_name": "f",
            "mime_type": mime,
            "file_size": size,
        }
    if reply_to is not None:
        body["reply_to_message"] = reply_to
    return body


def update(chat_id: int, **kwargs: Any) -> dict[str, Any]:
    return {"message": message(chat_id, **kwargs)}


def _command_entities(key: str, text: str) -> dict[str, Any]:
    if not text.startswith("/"):
        return {}
    length = len(text.split(maxsplit=1)[0])
    return {key: [{"type": "bot_command", "offset": 0, "length": length}]}


def params_json(call: Call, key: str) -> Any:
    return json.loads(call.params[key])
