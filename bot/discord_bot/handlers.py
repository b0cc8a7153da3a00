"""Discord slash-command callbacks: defer at once, call ``LensCommands``, follow up.

Discord allows three seconds to acknowledge an interaction, and an embedding can take longer,
so every command that touches the engine defers first and answers with a follow-up.
"""

from __future__ import annotations

import io
import logging

import discord
from discord import app_commands

from bot import render
from bot.access import Admins
from bot.commands import LensCommands
from bot.discord_bot.poster import DiscordPoster
from bot.failures import NotAllowed, describe_failure
from core.errors import NotAnImage
from core.models import Picture

log = logging.getLogger(__name__)

EMBED_COLOUR = discord.Colour(0xFFC400)
MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices


class DiscordHandlers:
    """What each slash command does; the tree in ``client.py`` only declares the options."""

    def __init__(self, lens: LensCommands, admins: Admins) -> None:
        self._lens = lens
        self._admins = admins

    async def similar(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment | None,
        query: str | None,
        k: int | None,
        collection: str | None,
    ) -> None:
        self._admit(interaction)
        if image is not None:
            if not (image.content_type or "").startswith("image/"):
                raise NotAnImage("That attachment is not an image (PNG, JPEG, WebP, GIF or SVG).")
            self._lens.check_upload(image.size)
        await interaction.response.defer(thinking=True)
        slug = collection.strip().lower() if collection else None
        if image is not None:
            data = await image.read()
            answer = await self._lens.similar_image(data, image.filename, k, slug)
        else:
            answer = await self._lens.similar_text(query or "", k, slug)
        embed = _embed(render.similar_text(answer, render.MARKDOWN), answer.collage)
        embed.title = "Look-alikes"
        await _follow_up(interaction, embed, answer.collage)
        self._lens.record(ok=True)

    async def value(
        self, interaction: discord.Interaction, collection: str, token: str | None
    ) -> None:
        self._admit(interaction)
        await interaction.response.defer(thinking=True)
        text = collection if token is None else f"{collection.strip().lower()} {token.strip()}"
        answer = await self._lens.value(text)
        embed = _embed(render.value_text(answer, render.MARKDOWN), answer.chart)
        await _follow_up(interaction, embed, *answer.pictures)
        self._lens.record(ok=True)

    async def collections(self, interaction: discord.Interaction) -> None:
        self._admit(interaction)
        await interaction.response.defer(thinking=True)
        answer = await self._lens.collections()
        embed = discord.Embed(
            description=render.collections_text(answer, render.MARKDOWN), colour=EMBED_COLOUR
        )
        await interaction.followup.send(embed=embed)
        self._lens.record(ok=True)

    async def help(self, interaction: discord.Interaction) -> None:
        embed = discord.Embed(description=render.help_text(render.MARKDOWN), colour=EMBED_COLOUR)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        answer = await self._lens.status()
        text = render.status_text(answer, render.MARKDOWN)
        await interaction.followup.send(text, ephemeral=True)

    async def track(self, interaction: discord.Interaction, collection: str) -> None:
        await interaction.response.defer(thinking=True)

        async def notify(text: str) -> None:
            # Follow-ups stay valid for 15 minutes; a longer sync's last lines are logged.
            await interaction.followup.send(text)

        found = await self._lens.track(collection, notify)
        await interaction.followup.send(render.track_started_text(found))

    async def untrack(self, interaction: discord.Interaction, collection: str) -> None:
        await interaction.response.defer(thinking=True)
        slug, was = await self._lens.untrack(collection)
        await interaction.followup.send(render.untrack_text(slug, was))

    async def digest(self, interaction: discord.Interaction, request: str | None) -> None:
        await interaction.response.defer(thinking=True)
        channel = interaction.channel_id
        reply = await self._lens.digest(request or "", f"discord:{channel}")
        if reply.post is not None:
            await interaction.followup.send(f"Digest: {reply.post.text.splitlines()[0]}"[:2000])
            # The posting port's Discord side: the text and montages within Discord's limits.
            await DiscordPoster(interaction.client).post(str(channel), reply.post)
        if reply.text is not None:
            await interaction.followup.send(reply.text)

    def is_admin(self, interaction: discord.Interaction) -> bool:
        """The app-command check for admin-only commands (user id or any configured role)."""
        user = interaction.user
        roles = [role.id for role in getattr(user, "roles", ())]
        return self._admins.discord(user.id, roles)

    async def collection_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Autocomplete for collection options: tracked slugs containing what was typed."""
        typed = current.strip().lower()
        answer = await self._lens.collections()
        choices = [
            app_commands.Choice(
                name=f"{row.collection.name} ({row.collection.slug})"[:100],
                value=row.collection.slug,
            )
            for row in answer.rows
            if typed in row.collection.slug or typed in row.collection.name.lower()
        ]
        return choices[:MAX_CHOICES]

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The tree's one error handler: a short ephemeral reply, the detail in the log."""
        original: BaseException = error
        if isinstance(error, app_commands.CommandInvokeError):
            original = error.original
        elif isinstance(error, app_commands.CheckFailure):
            original = NotAllowed()
        self._lens.record(ok=False)
        text = describe_failure(original, log, "discord")
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            log.warning(
                "could not deliver an error reply for interaction %s",
                interaction.id,
                exc_info=True,
            )

    def _admit(self, interaction: discord.Interaction) -> None:
        self._lens.admit(
            ("discord-user", interaction.user.id),
            ("discord-channel", interaction.channel_id) if interaction.channel_id else None,
        )


def _embed(description: str, picture: Picture) -> discord.Embed:
    embed = discord.Embed(description=description[:4096], colour=EMBED_COLOUR)
    embed.set_image(url=f"attachment://{picture.filename}")
    return embed


async def _follow_up(
    interaction: discord.Interaction, embed: discord.Embed, *pictures: Picture
) -> None:
    """The embed (showing the first picture) with every picture attached."""
    files = [
        discord.File(
            io.BytesIO(picture.data),
            filename=picture.filename,
            description=picture.description[:1024],
        )
        for picture in pictures
    ]
    await interaction.followup.send(embed=embed, files=files)
