"""The Telegram front end (python-telegram-bot v22), run inside our own event loop."""

from bot.telegram_bot.app import build_application, running_telegram

__all__ = ["build_application", "running_telegram"]
