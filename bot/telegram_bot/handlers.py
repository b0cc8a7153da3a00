"""Telegram commands: read the message, call ``LensCommands``, reply with pictures and HTML."""

from __future__ import annotations

import io
import logging
import re

from telegram import Document, LinkPreviewOptions, Message, PhotoSize, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import render
from bot.access import Admins
from bot.commands import MAX_K, LensCommands
from bot.failures import describe_failure
from bot.options import parse_options
from bot.telegram_bot.poster import TelegramPoster
from core.errors import NotAnImage
from core.models import Picture

log = logging.getLogger(__name__)

# "/similar", "/similar@our_bot" at the start of a text or caption.
COMMAND = re.compile(r"^/(?P<name>[A-Za-z0-9_]{1,32})(?:@(?P<bot>[A-Za-z0-9_]{1,64}))?(?:\s+|$)")
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
Context = ContextTypes.DEFAULT_TYPE


class TelegramHandlers:
    """The callbacks registered on the ``Application``, plus its one error handler."""

    def __init__(self, lens: LensCommands, admins: Admins) -> None:
        self._lens = lens
        self._admins = admins

    async def similar(self, update: Update, context: Context) -> None:
        message = _message(update)
        if not _addressed_to_us(message, context):
            return
        self._admit(update)
        options = parse_options(_arguments(message), MAX_K)
        image = _image_of(message) or (
            _image_of(message.reply_to_message) if message.reply_to_message else None
        )
        await message.reply_chat_action(ChatAction.UPLOAD_PHOTO)
        if image is not None:
            self._lens.check_upload(image.file_size)
            data = await _download(image, context)
            label = "your picture"
            answer = await self._lens.similar_image(data, label, options.k, options.collection)
        else:
            answer = await self._lens.similar_text(options.rest, options.k, options.collection)
        await _reply_picture(message, answer.collage, render.similar_summary(answer, render.HTML))
        await message.reply_html(
            render.similar_text(answer, render.HTML), link_preview_options=NO_PREVIEW
        )
        self._lens.record(ok=True)

    async def value(self, update: Update, context: Context) -> None:
        message = _message(update)
        self._admit(update)
        await message.reply_chat_action(ChatAction.UPLOAD_PHOTO)
        answer = await self._lens.value(_arguments(message))
        await _reply_picture(message, answer.chart, render.value_text(answer, render.HTML))
        if answer.comps is not None:
            await message.reply_photo(
                answer.comps.data,
                caption=answer.comps.description[:1024],
                filename=answer.comps.filename,
            )
        self._lens.record(ok=True)

    async def collections(self, update: Update, context: Context) -> None:
        message = _message(update)
        self._admit(update)
        answer = await self._lens.collections()
        await message.reply_html(render.collections_text(answer, render.HTML))
        self._lens.record(ok=True)

    async def help(self, update: Update, context: Context) -> None:
        await _message(update).reply_html(
            render.help_text(render.HTML), link_preview_options=NO_PREVIEW
        )

    async def status(self, update: Update, context: Context) -> None:
        message = _message(update)
        self._require_admin(update)
        answer = await self._lens.status()
        await message.reply_html(render.status_text(answer, render.HTML))

    async def track(self, update: Update, context: Context) -> None:
        message = _message(update)
        self._require_admin(update)

        async def notify(text: str) -> None:
            await message.reply_text(text)

        collection = await self._lens.track(_arguments(message), notify)
        await message.reply_text(render.track_started_text(collection))

    async def untrack(self, update: Update, context: Context) -> None:
        message = _message(update)
        self._require_admin(update)
        slug, was = await self._lens.untrack(_arguments(message))
        await message.reply_text(render.untrack_text(slug, was))

    async def digest(self, update: Update, context: Context) -> None:
        message = _message(update)
        self._require_admin(update)
        await message.reply_chat_action(ChatAction.UPLOAD_PHOTO)
        reply = await self._lens.digest(_arguments(message), f"telegram:{message.chat_id}")
        if reply.post is not None:
            # The posting port's Telegram side: text and montages within Telegram's limits.
            await TelegramPoster(context.bot).post(str(message.chat_id), reply.post)
        if reply.text is not None:
            await message.reply_text(reply.text)

    async def on_error(self, update: object, context: Context) -> None:
        """The one place a failed command becomes a short reply (and a log line with an id)."""
        error = context.error
        if error is None:  # pragma: no cover - PTB always sets it for error handlers
            return
        self._lens.record(ok=False)
        text = describe_failure(error, log, "telegram")
        message = update.effective_message if isinstance(update, Update) else None
        if message is None:
            return
        try:
            await message.reply_text(text)
        except TelegramError:
            log.warning(
                "could not deliver an error reply to chat %s", message.chat_id, exc_info=True
            )

    def _require_admin(self, update: Update) -> None:
        user = update.effective_user
        self._admins.require(self._admins.telegram(user.id if user else None))

    def _admit(self, update: Update) -> None:
        user = update.effective_user
        chat = update.effective_chat
        self._lens.admit(
            ("telegram-user", user.id if user else None),
            ("telegram-chat", chat.id) if chat else None,
        )


def _message(update: Update) -> Message:
    message = update.effective_message
    if message is None:  # pragma: no cover - the handlers' filters only pass messages
        raise RuntimeError("an update without a message reached a message handler")
    return message


def _arguments(message: Message) -> str:
    """Whatever follows the command word in the text or caption."""
    text = message.text or message.caption or ""
    match = COMMAND.match(text)
    return text[match.end() :] if match else text


def _addressed_to_us(message: Message, context: Context) -> bool:
    """False for ``/similar@another_bot`` (CommandHandler checks text; captions need this)."""
    match = COMMAND.match(message.text or message.caption or "")
    mentioned = match["bot"] if match else None
    return mentioned is None or mentioned.lower() == (context.bot.username or "").lower()


def _image_of(message: Message | None) -> PhotoSize | Document | None:
    """The largest photo size, or an image sent as a file; ``None`` when there is neither."""
    if message is None:
        return None
    if message.photo:
        return message.photo[-1]
    document = message.document
    if document is not None:
        if not (document.mime_type or "").startswith("image/"):
            raise NotAnImage("That file is not an image (PNG, JPEG, WebP, GIF or SVG expected).")
        return document
    return None


async def _download(image: PhotoSize | Document, context: Context) -> bytes:
    file = await context.bot.get_file(image.file_id)
    # BytesIO.getvalue() hands over its buffer without a copy; a bytearray would need one.
    buffer = io.BytesIO()
    await file.download_to_memory(out=buffer)
    return buffer.getvalue()


async def _reply_picture(message: Message, picture: Picture, caption: str) -> None:
    # Telegram captions stop at 1024 characters; longer text goes in its own message.
    if len(caption) <= 1024:
        await message.reply_photo(
            picture.data, caption=caption, parse_mode=ParseMode.HTML, filename=picture.filename
        )
        return
    await message.reply_photo(picture.data, filename=picture.filename)
    await message.reply_html(caption, link_preview_options=NO_PREVIEW)
