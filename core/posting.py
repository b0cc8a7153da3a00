"""The posting port: text plus pictures to a chat or channel, whatever the platform.

Jobs (scheduled digests, alerts) post through a ``PostRouter`` without knowing which chat
platforms run; each front end registers a ``Poster`` that knows its platform's message limits
and rate limits. A target is written ``platform:chat``, e.g. ``telegram:-1001234567890``,
``telegram:@nftlens_news``, ``discord:112233445566778899`` or ``console:digests``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from core.errors import ConfigError, PostingError
from core.models import Picture

log = logging.getLogger(__name__)

PLATFORMS = ("telegram", "discord", "console")
_CHAT = re.compile(r"-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64}|[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class Post:
    """What to send: plain text (each platform escapes it) and any number of pictures."""

    text: str
    pictures: tuple[Picture, ...] = ()


@dataclass(frozen=True)
class ChatTarget:
    """Where to send it: a platform and a chat there (id, @channel, or console folder)."""

    platform: str
    chat: str

    @classmethod
    def parse(cls, text: str) -> ChatTarget:
        """Read ``platform:chat``; raise ``ConfigError`` with one sentence when malformed."""
        platform, _, chat = text.strip().partition(":")
        platform = platform.lower()
        if platform not in PLATFORMS or not _CHAT.fullmatch(chat):
            raise ConfigError(
                f"'{text}' is not a chat target; write telegram:CHAT_ID, telegram:@channel, "
                "discord:CHANNEL_ID or console:NAME."
            )
        if platform == "discord" and not chat.isdigit():
            raise ConfigError(f"'{text}': a Discord target is a numeric channel id.")
        if platform == "console" and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", chat):
            raise ConfigError(f"'{text}': a console target is a folder name.")
        return cls(platform, chat)

    def __str__(self) -> str:
        return f"{self.platform}:{self.chat}"


class Poster(Protocol):
    """Delivers posts on one platform, within its message-size and rate limits."""

    @property
    def platform(self) -> str:
        """The platform name targets use: 'telegram', 'discord' or 'console'."""
        ...

    async def post(self, chat: str, post: Post) -> None:
        """Send ``post`` to ``chat``; raise ``PostingError`` when it cannot be delivered."""
        ...


class PostRouter:
    """Sends each post through the poster of its target's platform."""

    def __init__(self, posters: Iterable[Poster] = ()) -> None:
        self._posters: dict[str, Poster] = {}
        for poster in posters:
            self.register(poster)

    def register(self, poster: Poster) -> None:
        """Route ``poster.platform`` targets to ``poster`` (replacing any earlier one)."""
        self._posters[poster.platform] = poster

    def unregister(self, platform: str) -> None:
        """Stop routing to ``platform`` (its front end is shutting down)."""
        self._posters.pop(platform, None)

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(sorted(self._posters))

    async def post(self, target: ChatTarget, post: Post) -> None:
        """Deliver ``post`` to ``target``; raise ``PostingError`` when nobody can."""
        poster = self._posters.get(target.platform)
        if poster is None:
            raise PostingError(
                f"Cannot post to {target}: the {target.platform} bot is not running."
            )
        await poster.post(target.chat, post)


def split_text(text: str, limit: int) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` characters, at line breaks where possible.

    Every platform caps a message's length; a digest or alert longer than that is sent as
    several messages rather than cut short.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            cut = line.rfind(" ", 0, limit + 1)
            cut = cut if cut > limit // 2 else limit
            pieces.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        pieces.append(current)
    return [piece for piece in pieces if piece.strip()] or ([text[:limit]] if text else [])
