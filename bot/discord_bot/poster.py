"""Posting text and pictures to a Discord channel, within Discord's message limits."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence

import aiohttp
import discord

from core.errors import PostingError
from core.models import Picture
from core.posting import Post, split_text

log = logging.getLogger(__name__)

# Discord's limits on a bot's message (Create Message in Discord's API reference).
MAX_CONTENT = 2000  # characters of content
MAX_FILES = 10  # attachments a message
# Unboosted servers take files up to 10 MiB (discord.py's DEFAULT_FILE_SIZE_LIMIT_BYTES);
# boosted ones take more, but a digest should not depend on a server's boosts.
MAX_FILE_BYTES = 10 * 1024 * 1024
# The whole upload request is capped too (25 MiB, as far as is known); several pictures near
# the file limit are spread over messages rather than refused together.
MAX_REQUEST_BYTES = 25 * 1024 * 1024
MAX_ALT_TEXT = 1024  # characters of an attachment's description

# A digest quotes names that minters wrote ("@everyone", "<@&role>"); nobody gets pinged.
NO_MENTIONS = discord.AllowedMentions.none()


class DiscordPoster:
    """Posts to a text channel (or thread) by id, through the bot's logged-in client.

    discord.py already honours Discord's rate limits: it tracks each route's bucket from the
    response headers, waits before a request that would exceed one, and on a 429 sleeps for
    ``retry_after`` and retries, so posts need no throttling of their own here.
    """

    platform = "discord"

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def post(self, chat: str, post: Post) -> None:
        """Send ``post`` to channel ``chat``; raise ``PostingError`` naming it if Discord won't."""
        target = f"discord:{chat}"
        if not re.fullmatch(r"[0-9]{1,20}", chat):
            raise PostingError(f"Cannot post to {target}: a Discord target is a channel id.")
        messages = _plan(post)
        sent = 0
        try:
            channel = await self._channel(int(chat), target)
            for content, pictures in messages:
                await _send(channel, content, pictures)
                sent += 1
        except discord.DiscordException as exc:
            raise PostingError(_failure(target, exc, sent, len(messages))) from exc
        except (aiohttp.ClientError, OSError) as exc:
            progress = _progress(sent, len(messages))
            raise PostingError(
                f"Cannot post to {target}: Discord could not be reached{progress}."
            ) from exc
        log.debug("discord: posted to %s in %d messages", chat, sent)

    async def _channel(self, channel_id: int, target: str) -> discord.abc.Messageable:
        """The channel from the gateway's cache, else from the API (threads, other guilds)."""
        channel = self._client.get_channel(channel_id)
        if channel is None:
            channel = await self._client.fetch_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise PostingError(
                f"Cannot post to {target}: that channel takes no messages (a category or forum)."
            )
        return channel


def _plan(post: Post) -> list[tuple[str | None, list[Picture]]]:
    """Each message's content and attachments; the pictures follow the text's last piece."""
    kept: list[Picture] = []
    notes: list[str] = []
    for picture in post.pictures:
        size = len(picture.data)
        if size <= MAX_FILE_BYTES:
            kept.append(picture)
        else:
            notes.append(
                f"({picture.filename}, {size / 2**20:.1f} MiB, was left out: Discord takes "
                f"files up to {MAX_FILE_BYTES // 2**20} MiB.)"
            )
    text = "\n\n".join(part for part in (post.text.strip(), *notes) if part)
    messages: list[tuple[str | None, list[Picture]]] = [
        (piece, []) for piece in (split_text(text, MAX_CONTENT) if text else [])
    ]
    batches = _batches(kept)
    if messages and batches:
        messages[-1] = (messages[-1][0], batches.pop(0))
    messages += [(None, batch) for batch in batches]
    return messages


def _batches(pictures: Sequence[Picture]) -> list[list[Picture]]:
    """``pictures`` in order, grouped under the per-message count and request-size caps."""
    batches: list[list[Picture]] = []
    size = 0
    for picture in pictures:
        if (
            not batches
            or len(batches[-1]) == MAX_FILES
            or size + len(picture.data) > MAX_REQUEST_BYTES
        ):
            batches.append([])
            size = 0
        batches[-1].append(picture)
        size += len(picture.data)
    return batches


async def _send(
    channel: discord.abc.Messageable, content: str | None, pictures: Sequence[Picture]
) -> None:
    if not pictures:
        await channel.send(content, allowed_mentions=NO_MENTIONS)
        return
    files = [
        discord.File(
            io.BytesIO(picture.data),
            filename=picture.filename,
            description=picture.description[:MAX_ALT_TEXT] or None,
        )
        for picture in pictures
    ]
    await channel.send(content, files=files, allowed_mentions=NO_MENTIONS)


def _failure(target: str, exc: discord.DiscordException, sent: int, total: int) -> str:
    """One sentence on why ``target`` got nothing (or only part) of a post."""
    if isinstance(exc, discord.Forbidden):
        reason = "the bot may not see or post in that channel (check its permissions there)"
    elif isinstance(exc, discord.NotFound):
        reason = "Discord has no such channel, or the bot cannot see it"
    elif isinstance(exc, discord.HTTPException):
        reason = f"Discord refused the message ({exc.status}: {exc.text or 'no reason given'})"
    else:
        reason = f"discord.py could not deliver it ({exc})"
    return f"Cannot post to {target}: {reason}{_progress(sent, total)}."


def _progress(sent: int, total: int) -> str:
    return f" ({sent} of {total} messages went out)" if sent else ""
