"""The Discord client: the slash-command tree, command sync by config, start and stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import discord
from discord import app_commands

from bot.access import Admins
from bot.commands import MAX_K, LensCommands
from bot.discord_bot.endpoints import discord_endpoints
from bot.discord_bot.handlers import DiscordHandlers
from core.config import DiscordSettings
from core.errors import ConfigError, LensError

log = logging.getLogger(__name__)

# How long start-up waits for the gateway's READY before giving up.
READY_TIMEOUT_S = 60.0


def build_tree(tree: app_commands.CommandTree[discord.Client], handlers: DiscordHandlers) -> None:
    """Declare the slash commands and their options; the handlers do the work."""

    @tree.command(name="similar", description="NFTs that look like a picture, URL or token")
    @app_commands.describe(
        image="A picture to match",
        query="An image URL, or a token like 'cryptopunks 7804' or a marketplace link",
        k=f"How many matches (1-{MAX_K}, default 5)",
        collection="Only match this collection",
    )
    async def similar(
        interaction: discord.Interaction,
        image: discord.Attachment | None = None,
        query: str | None = None,
        k: app_commands.Range[int, 1, 20] | None = None,  # 20 is MAX_K
        collection: str | None = None,
    ) -> None:
        await handlers.similar(interaction, image, query, k, collection)

    @tree.command(
        name="value", description="What a token is worth: estimate, range, comparable sales"
    )
    @app_commands.describe(
        collection="The collection (or paste a marketplace link to the token here)",
        token="The token id",
    )
    async def value(
        interaction: discord.Interaction, collection: str, token: str | None = None
    ) -> None:
        await handlers.value(interaction, collection, token)

    @tree.command(name="collections", description="What NFT Lens tracks")
    async def collections(interaction: discord.Interaction) -> None:
        await handlers.collections(interaction)

    @tree.command(name="help", description="How to use NFT Lens")
    async def help_(interaction: discord.Interaction) -> None:
        await handlers.help(interaction)

    @tree.command(name="status", description="Admins only: how the bot is doing")
    @app_commands.check(handlers.is_admin)
    async def status(interaction: discord.Interaction) -> None:
        await handlers.status(interaction)

    @tree.command(name="track", description="Admins only: follow a collection and index it")
    @app_commands.describe(collection="OpenSea or Magic Eden collection URL, or a slug")
    @app_commands.check(handlers.is_admin)
    async def track(interaction: discord.Interaction, collection: str) -> None:
        await handlers.track(interaction, collection)

    @tree.command(name="untrack", description="Admins only: stop following a collection")
    @app_commands.check(handlers.is_admin)
    async def untrack(interaction: discord.Interaction, collection: str) -> None:
        await handlers.untrack(interaction, collection)

    @tree.command(name="digest", description="Admins only: a collection's visual groups now")
    @app_commands.describe(
        request="a collection, or: subscribe <collection> daily|weekly, list, unsubscribe"
    )
    @app_commands.check(handlers.is_admin)
    async def digest(interaction: discord.Interaction, request: str | None = None) -> None:
        await handlers.digest(interaction, request)

    similar.autocomplete("collection")(handlers.collection_choices)
    untrack.autocomplete("collection")(handlers.collection_choices)
    value.autocomplete("collection")(handlers.collection_choices)
    tree.on_error = handlers.on_error  # type: ignore[method-assign]


class LensClient(discord.Client):
    """A gateway client that only serves our slash commands."""

    def __init__(self, settings: DiscordSettings, handlers: DiscordHandlers) -> None:
        # Slash commands need no privileged intents; guild events keep roles for admin checks.
        super().__init__(
            intents=discord.Intents(guilds=True),
            guild_ready_timeout=settings.guild_ready_timeout_s,
        )
        self._settings = settings
        self.tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(self)
        build_tree(self.tree, handlers)

    async def setup_hook(self) -> None:
        """Sync the commands to the configured guilds, or globally, before connecting."""
        mode = self._settings.command_sync
        if mode == "guild":
            for guild_id in self._settings.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("discord: synced %d commands to guild %s", len(synced), guild_id)
        elif mode == "global":
            synced = await self.tree.sync()
            log.info("discord: synced %d commands globally", len(synced))


@asynccontextmanager
async def running_discord(
    token: str,
    settings: DiscordSettings,
    lens: LensCommands,
    admins: Admins,
    on_lost: Callable[[], None] | None = None,
) -> AsyncIterator[LensClient]:
    """Log in, connect to the gateway, and yield once READY; close everything on exit.

    ``on_lost`` is called if the gateway connection ends for good while still in use
    (discord.py itself reconnects through everything that can be reconnected).
    """
    if settings.command_sync == "guild" and not settings.guild_ids:
        raise ConfigError("bot.discord.command_sync is 'guild' but guild_ids is empty.")
    with discord_endpoints(settings.api_root):
        client = LensClient(settings, DiscordHandlers(lens, admins))
        connection: asyncio.Task[None] | None = None
        stopping = False

        def lost(_: asyncio.Task[None]) -> None:
            if not stopping and on_lost is not None:
                log.error("discord: the gateway connection ended; stopping")
                on_lost()

        try:
            try:
                await client.login(token)
            except discord.LoginFailure as exc:
                raise ConfigError("Discord refused DISCORD_BOT_TOKEN; check the token.") from exc
            except (discord.HTTPException, OSError) as exc:
                raise LensError("Cannot reach Discord to log in.") from exc
            connection = asyncio.create_task(client.connect(), name="discord-gateway")
            connection.add_done_callback(lost)
            await _ready(client, connection)
            log.info("discord: running as %s", client.user)
            yield client
        finally:
            stopping = True
            await client.close()
            if connection is not None:
                try:
                    await connection
                except Exception:
                    log.warning(
                        "discord: the gateway connection ended with an error", exc_info=True
                    )


async def _ready(client: LensClient, connection: asyncio.Task[None]) -> None:
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait(
            {ready, connection}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        ready.cancel()
    if ready in done:
        return
    if connection in done:
        connection.result()  # re-raises why the gateway connection failed
        raise LensError("The Discord gateway connection closed during start-up.")
    raise LensError(f"Discord did not get ready within {READY_TIMEOUT_S:.0f} s.")
