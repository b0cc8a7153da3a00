"""The Discord front end (discord.py 2.x slash commands)."""

from bot.discord_bot.client import LensClient, running_discord
from bot.discord_bot.poster import DiscordPoster

__all__ = ["DiscordPoster", "LensClient", "running_discord"]
