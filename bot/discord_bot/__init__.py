"""The Discord front end (discord.py 2.x slash commands)."""

from bot.discord_bot.client import LensClient, running_discord

__all__ = ["LensClient", "running_discord"]
