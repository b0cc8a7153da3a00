"""Discord end to end: the real discord.py client against a local stand-in for Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import discord
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.access import Admins
from bot.commands import LensCommands
from bot.discord_bot import LensClient, running_discord
from core.config import AdminSettings, DiscordSettings
from tests.bot.fake_discord import (
    ADMIN_ROLE,
    GUILD_ID,
    GUILD_READY_S,
    TOKEN,
    FakeDiscord,
    attachment,
    interaction,
)
from tests.bot.fakes import CRITTERS, SOLANA, Library, screenshot_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFERRED = 5  # InteractionResponseType.deferred_channel_message
MESSAGE = 4  # InteractionResponseType.channel_message
AUTOCOMPLETE = 8  # InteractionResponseType.autocomplete_result


@asynccontextmanager
async def discord_bot(
    fake: FakeDiscord, lens: LensCommands, sync: str = "guild", admin_roles: tuple[int, ...] = ()
) -> AsyncIterator[LensClient]:
    settings = DiscordSettings(
        api_root=fake.root,
        command_sync=sync,
        guild_ids=(int(GUILD_ID),),
        guild_ready_timeout_s=GUILD_READY_S,
    )
    admins = Admins(AdminSettings(discord_role_ids=admin_roles))
    async with running_discord(TOKEN, settings, lens, admins) as client:
        yield client


async def test_connects_through_the_configured_root_and_restores_discord_after(
    fake: FakeDiscord, lens: LensCommands
) -> None:
    before = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY

    async with discord_bot(fake, lens) as client:
        assert f"{fake.root}/api/v10" == Route.BASE
        gateway = fake.root.replace("http", "ws") + "/gateway"
        assert str(DiscordWebSocket.DEFAULT_GATEWAY) == gateway
        assert client.is_ready() and client.get_guild(int(GUILD_ID)) is not None

    assert before == (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    assert fake.identified[0]["token"] == TOKEN
    synced = [r for r in fake.requests if r.method == "PUT"]
    assert [r.path for r in synced] == [
        f"/applications/{client.application_id}/guilds/{GUILD_ID}/commands"
    ]
    names = {command["name"] for command in synced[0].json}
    assert names == {
        "similar",
        "value",
        "collections",
        "help",
        "status",
        "track",
        "untrack",
        "digest",
    }
    similar = next(c for c in synced[0].json if c["name"] == "similar")
    image = next(o for o in similar["options"] if o["name"] == "image")
    assert image["type"] == discord.AppCommandOptionType.attachment.value
    collection = next(o for o in similar["options"] if o["name"] == "collection")
    assert collection["autocomplete"] is True


async def test_global_sync_when_configured(fake: FakeDiscord, lens: LensCommands) -> None:
    async with discord_bot(fake, lens, sync="global") as client:
        pass

    assert [r.path for r in fake.requests if r.method == "PUT"] == [
        f"/applications/{client.application_id}/commands"
    ]


async def test_similar_with_an_attachment_defers_then_follows_up_with_the_collage(
    fake: FakeDiscord, lens: LensCommands, library: Library
) -> None:
    fake.attachments["shot.png"] = screenshot_png(5, library)
    resolved = {
        "attachments": {
            "900": attachment("900", "shot.png", fake.attachments["shot.png"], fake.root)
        }
    }
    options = [{"name": "image", "type": 11, "value": "900"}, {"name": "k", "type": 4, "value": 3}]

    async with discord_bot(fake, lens):
        fake.dispatch(
            "INTERACTION_CREATE", interaction("tok-similar", "similar", options, resolved=resolved)
        )
        deferral, follow_up = await fake.answers("tok-similar", 2)

    assert deferral.path.endswith("/tok-similar/callback")
    assert deferral.payload["type"] == DEFERRED
    assert follow_up.method == "POST" and follow_up.path.startswith("/webhooks/")
    embed = follow_up.payload["embeds"][0]
    assert embed["image"]["url"] == "attachment://similar.png"
    assert f"{CRITTERS} #5" in embed["description"].splitlines()[1]
    assert follow_up.payload["attachments"][0]["filename"] == "similar.png"
    assert follow_up.files["files[0]"].startswith(PNG_MAGIC)


async def test_value_follows_up_with_a_chart(fake: FakeDiscord, lens: LensCommands) -> None:
    options = [
        {"name": "collection", "type": 3, "value": CRITTERS},
        {"name": "token", "type": 3, "value": "5"},
    ]

    async with discord_bot(fake, lens):
        fake.dispatch("INTERACTION_CREATE", interaction("tok-value", "value", options))
        deferral, follow_up = await fake.answers("tok-value", 2)

    assert deferral.payload["type"] == DEFERRED
    embed = follow_up.payload["embeds"][0]
    assert "Collection median" in embed["description"]
    assert "not a model estimate" in embed["description"]
    assert embed["image"]["url"] == "attachment://value.png"
    assert follow_up.files["files[0]"].startswith(PNG_MAGIC)


async def test_a_429_on_the_follow_up_is_retried_and_the_answer_arrives(
    fake: FakeDiscord, lens: LensCommands
) -> None:
    fake.throttle_next("/webhooks/", retry_after=0.05)
    options = [{"name": "query", "type": 3, "value": f"{CRITTERS}:4"}]

    async with discord_bot(fake, lens):
        fake.dispatch("INTERACTION_CREATE", interaction("tok-429", "similar", options))
        calls = await fake.answers("tok-429", 3)

    deferral, throttled, follow_up = calls
    assert deferral.payload["type"] == DEFERRED
    assert throttled.payload == follow_up.payload
    assert follow_up.files["files[0]"].startswith(PNG_MAGIC)


async def test_bad_input_gets_an_ephemeral_sentence(fake: FakeDiscord, lens: LensCommands) -> None:
    options = [{"name": "query", "type": 3, "value": "not a thing"}]

    async with discord_bot(fake, lens):
        fake.dispatch("INTERACTION_CREATE", interaction("tok-bad", "similar", options))
        deferral, reply = await fake.answers("tok-bad", 2)

    assert deferral.payload["type"] == DEFERRED
    assert "is not an image URL or a token" in reply.payload["content"]
    assert reply.payload["flags"] & 64  # ephemeral


async def test_non_image_attachment_is_refused_before_deferring(
    fake: FakeDiscord, lens: LensCommands
) -> None:
    resolved = {
        "attachments": {
            "901": attachment("901", "notes.txt", b"hello", fake.root, content_type="text/plain")
        }
    }
    options = [{"name": "image", "type": 11, "value": "901"}]

    async with discord_bot(fake, lens):
        fake.dispatch(
            "INTERACTION_CREATE", interaction("tok-txt", "similar", options, resolved=resolved)
        )
        (reply,) = await fake.answers("tok-txt", 1)

    assert reply.payload["type"] == MESSAGE
    assert "not an image" in reply.payload["data"]["content"]


async def test_status_checks_admin_roles(fake: FakeDiscord, lens: LensCommands) -> None:
    async with discord_bot(fake, lens, admin_roles=(int(ADMIN_ROLE),)):
        fake.dispatch("INTERACTION_CREATE", interaction("tok-no", "status", []))
        fake.dispatch(
            "INTERACTION_CREATE",
            interaction(
                "tok-yes", "status", [], roles=[ADMIN_ROLE], interaction_id="750000000000000099"
            ),
        )
        (refused,) = await fake.answers("tok-no", 1)
        _, status = await fake.answers("tok-yes", 2)

    assert "only the bot's admins" in refused.payload["data"]["content"]
    assert "NFT Lens status" in status.payload["content"]


async def test_collection_autocomplete_over_the_gateway(
    fake: FakeDiscord, lens: LensCommands
) -> None:
    options = [{"name": "collection", "type": 3, "value": "sol", "focused": True}]

    async with discord_bot(fake, lens):
        fake.dispatch("INTERACTION_CREATE", interaction("tok-auto", "similar", options, kind=4))
        (reply,) = await fake.answers("tok-auto", 1)

    assert reply.payload["type"] == AUTOCOMPLETE
    assert [c["value"] for c in reply.payload["data"]["choices"]] == [SOLANA]
