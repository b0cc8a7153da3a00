"""The Telegram front end (python-telegram-bot v22), run inside our own event loop."""

from bot.telegram_bot.app import build_application, running_telegram
from bot.telegram_bot.poster import TelegramPoster

__all__ = ["TelegramPoster", "build_application", "running_telegram"]
