"""Building the Telegram ``Application`` and running it by hand inside our event loop."""

from __future__ import annotations

import datetime as dtm
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.access import Admins
from bot.commands import LensCommands
from bot.telegram_bot.handlers import TelegramHandlers
from core.config import TelegramSettings
from core.errors import ConfigError, LensError

log = logging.getLogger(__name__)

MENU = (
    BotCommand("similar", "Look-alike NFTs for a picture, URL or token"),
    BotCommand("value", "What a token is worth: estimate, range, comparable sales"),
    BotCommand("collections", "What is tracked"),
    BotCommand("help", "How to use the bot"),
)
# A captioned photo or file whose caption starts with /similar (CommandHandler only
# reads message text, never captions).
SIMILAR_CAPTION = (filters.PHOTO | filters.Document.ALL) & filters.CaptionRegex(
    r"^/similar(?:@\w+)?(?:\s|$)"
)


def build_application(
    token: str, settings: TelegramSettings, lens: LensCommands, admins: Admins
) -> Application:
    """The ``Application`` with our handlers, talking to ``settings.api_root``."""
    handlers = TelegramHandlers(lens, admins)
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{settings.api_root}/bot")
        .base_file_url(f"{settings.api_root}/file/bot")
        # Updates are handled side by side (each /similar waits on the engine, not on the
        # previous update); the engine's own bounds keep the heavy work in check.
        .concurrent_updates(lens.settings.bot.max_pending)
        # PTB's limiter paces sends to Telegram's flood limits (30 a second overall, 20 a
        # minute per group or channel, which scheduled posts can reach) and waits out a
        # RetryAfter before trying again, so a reply or post delayed by a 429 still arrives.
        .rate_limiter(AIORateLimiter(max_retries=3))
        # Long polling holds getUpdates open for poll_timeout_s; the read must outlast it.
        .get_updates_read_timeout(settings.poll_timeout_s + 10)
        # We run our own scheduler; PTB's JobQueue would start a second one.
        .job_queue(None)
        .build()
    )
    application.add_handler(CommandHandler("similar", handlers.similar))
    application.add_handler(MessageHandler(SIMILAR_CAPTION, handlers.similar))
    application.add_handler(CommandHandler("value", handlers.value))
    application.add_handler(CommandHandler("collections", handlers.collections))
    application.add_handler(CommandHandler(["help", "start"], handlers.help))
    application.add_handler(CommandHandler("status", handlers.status))
    application.add_handler(CommandHandler("track", handlers.track))
    application.add_handler(CommandHandler("untrack", handlers.untrack))
    application.add_handler(CommandHandler("digest", handlers.digest))
    application.add_error_handler(handlers.on_error)
    return application


@asynccontextmanager
async def running_telegram(
    token: str, settings: TelegramSettings, lens: LensCommands, admins: Admins
) -> AsyncIterator[Application]:
    """Start the bot (polling or webhook, by config) and stop it cleanly on exit."""
    application = build_application(token, settings, lens, admins)
    try:
        await application.initialize()
    except InvalidToken as exc:
        raise ConfigError("Telegram refused TELEGRAM_BOT_TOKEN; check the token.") from exc
    except TelegramError as exc:
        raise LensError(f"Cannot reach the Telegram Bot API at {settings.api_root}.") from exc
    try:
        await application.start()
        await _start_updates(application, settings)
        try:
            await application.bot.set_my_commands(MENU)
        except TelegramError:
            log.warning("could not set the Telegram command menu", exc_info=True)
        log.info("telegram: running as @%s (%s)", application.bot.username, settings.mode)
        yield application
    finally:
        updater = application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()


async def _start_updates(application: Application, settings: TelegramSettings) -> None:
    updater = application.updater
    if updater is None:  # pragma: no cover - the builder always makes one here
        raise RuntimeError("the Telegram application has no updater")
    allowed = [Update.MESSAGE]
    if settings.mode == "polling":
        await updater.start_polling(
            timeout=dtm.timedelta(seconds=settings.poll_timeout_s), allowed_updates=allowed
        )
        return
    try:
        await updater.start_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            # Whatever proxy terminates TLS forwards the public URL's path unchanged.
            url_path=urlsplit(settings.webhook_url or "").path.lstrip("/"),
            webhook_url=settings.webhook_url,
            allowed_updates=allowed,
            # Telegram echoes this header on every webhook call; others cannot forge updates.
            secret_token=secrets.token_urlsafe(32),
        )
    except RuntimeError as exc:
        raise ConfigError(
            "Telegram webhook mode needs python-telegram-bot[webhooks] installed."
        ) from exc
