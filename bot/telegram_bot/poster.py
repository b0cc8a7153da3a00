"""Posting text and pictures to a Telegram chat or channel, within the Bot API's limits."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from telegram import Bot, InputMediaPhoto
from telegram.constants import FileSizeLimit, MediaGroupLimit, MessageLimit
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from core.errors import PostingError
from core.models import Picture
from core.posting import Post, split_text

log = logging.getLogger(__name__)

# The Bot API's limits, as python-telegram-bot's constants state them.
MAX_TEXT = int(MessageLimit.MAX_TEXT_LENGTH)  # 4,096 characters a message
MAX_CAPTION = int(MessageLimit.CAPTION_LENGTH)  # 1,024 characters a photo or file caption
MAX_ALBUM = int(MediaGroupLimit.MAX_MEDIA_LENGTH)  # sendMediaGroup takes 2 to 10 items
MAX_PHOTO_BYTES = int(FileSizeLimit.PHOTOSIZE_UPLOAD)  # 10 MB a photo
MAX_FILE_BYTES = int(FileSizeLimit.FILESIZE_UPLOAD)  # 50 MB any other file

_NUMERIC_CHAT = re.compile(r"-?[0-9]+")

Send = Callable[[], Awaitable[object]]


class TelegramPoster:
    """Posts to a chat id (groups and channels are negative) or a ``@channelusername``.

    Give it the ``Application``'s bot: its ``AIORateLimiter`` paces these sends to Telegram's
    flood limits and waits out a ``RetryAfter``; a plain ``Bot`` sends unthrottled.
    """

    platform = "telegram"

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def post(self, chat: str, post: Post) -> None:
        """Send ``post`` to ``chat``; raise ``PostingError`` naming it if Telegram refuses."""
        chat_id: int | str = int(chat) if _NUMERIC_CHAT.fullmatch(chat) else chat
        sends = self._plan(chat_id, post)
        sent = 0
        try:
            for send in sends:
                await send()
                sent += 1
        except TelegramError as exc:
            raise PostingError(_failure(f"telegram:{chat}", exc, sent, len(sends))) from exc
        log.debug("telegram: posted to %s in %d messages", chat, sent)

    def _plan(self, chat_id: int | str, post: Post) -> list[Send]:
        """The Bot API calls that deliver ``post``, in order."""
        photos: list[Picture] = []
        documents: list[Picture] = []
        notes: list[str] = []
        for picture in post.pictures:
            size = len(picture.data)
            if size <= MAX_PHOTO_BYTES:
                photos.append(picture)
            elif size <= MAX_FILE_BYTES:
                # Too big for a photo, but Telegram still takes it as a file.
                documents.append(picture)
            else:
                notes.append(
                    f"({picture.filename}, {size / 1e6:.1f} MB, was left out: Telegram takes "
                    f"files up to {MAX_FILE_BYTES / 1e6:.0f} MB.)"
                )
        text = "\n\n".join(part for part in (post.text.strip(), *notes) if part)
        has_pictures = bool(photos or documents)
        caption = text if has_pictures and len(text) <= MAX_CAPTION else None

        # No parse_mode anywhere: the text is plain, so a name a minter chose cannot break
        # (or inject) formatting, whatever defaults the application was built with.
        sends: list[Send] = []
        if text and caption is None:
            sends += [
                partial(self._bot.send_message, chat_id, piece, parse_mode=None)
                for piece in split_text(text, MAX_TEXT)
            ]
        for album in _albums(photos):
            if len(album) == 1:
                photo = album[0]
                sends.append(
                    partial(
                        self._bot.send_photo,
                        chat_id,
                        photo.data,
                        filename=photo.filename,
                        caption=caption,
                        parse_mode=None,
                    )
                )
            else:
                media = [
                    InputMediaPhoto(
                        photo.data,
                        filename=photo.filename,
                        caption=caption if n == 0 else None,
                        parse_mode=None,
                    )
                    for n, photo in enumerate(album)
                ]
                sends.append(partial(self._bot.send_media_group, chat_id, media))
            caption = None
        for document in documents:
            sends.append(
                partial(
                    self._bot.send_document,
                    chat_id,
                    document.data,
                    filename=document.filename,
                    caption=caption,
                    parse_mode=None,
                )
            )
            caption = None
        return sends


def _albums(photos: Sequence[Picture]) -> list[Sequence[Picture]]:
    """``photos`` in runs of at most ``MAX_ALBUM``; a lone last one goes as a plain photo."""
    return [photos[start : start + MAX_ALBUM] for start in range(0, len(photos), MAX_ALBUM)]


def _failure(target: str, exc: TelegramError, sent: int, total: int) -> str:
    """One sentence on why ``target`` got nothing (or only part) of a post."""
    if isinstance(exc, ChatMigrated):
        reason = (
            f"the group became a supergroup, so change the target to telegram:{exc.new_chat_id}"
        )
    elif isinstance(exc, Forbidden):
        reason = (
            "the bot may not post there (it was removed from the chat, blocked, or is not "
            "an admin of the channel)"
        )
    elif isinstance(exc, BadRequest) and "chat not found" in exc.message.lower():
        reason = "Telegram knows no such chat, or the bot was never added to it"
    elif isinstance(exc, BadRequest):
        reason = f"Telegram refused the message ({exc.message})"
    elif isinstance(exc, RetryAfter):
        reason = "Telegram's flood control still held the bot back after several retries"
    elif isinstance(exc, InvalidToken):
        reason = "Telegram refused the bot token"
    elif isinstance(exc, NetworkError):
        reason = "Telegram could not be reached"
    else:
        reason = f"Telegram answered with an error ({exc.message})"
    progress = f" ({sent} of {total} messages went out)" if sent else ""
    return f"Cannot post to {target}: {reason}{progress}."
