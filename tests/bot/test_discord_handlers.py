"""Discord command callbacks with a recording fake interaction (no gateway, no HTTP)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import discord
import pytest
from discord import app_commands

from bot.access import Admins
from bot.commands import LensCommands
from bot.discord_bot.handlers import DiscordHandlers
from core.config import AdminSettings
from tests.bot.fakes import CRITTERS, SOLANA, Library, screenshot_png


@dataclass
class Sent:
    kind: str
    args: dict[str, Any]


@dataclass
class FakeResponse:
    sent: list[Sent]
    done: bool = False

    def is_done(self) -> bool:
        return self.done

    async def defer(self, **kwargs: Any) -> None:
        assert not self.done, "an interaction is answered once"
        self.done = True
        self.sent.append(Sent("defer", kwargs))

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        assert not self.done, "an interaction is answered once"
        self.done = True
        self.sent.append(Sent("message", {"content": content, **kwargs}))


@dataclass
class FakeFollowup:
    sent: list[Sent]

    async def send(self, content: str | None = None, **kwargs: Any) -> None:
        self.sent.append(Sent("followup", {"content": content, **kwargs}))


@dataclass
class FakeRole:
    id: int


@dataclass
class FakeUser:
    id: int = 11
    roles: list[FakeRole] = field(default_factory=list)


class FakeInteraction:
    """Records what a handler sends, in order."""

    def __init__(self, user: FakeUser | None = None, channel_id: int = 22) -> None:
        self.sent: list[Sent] = []
        self.id = 33
        self.user = user or FakeUser()
        self.channel_id = channel_id
        self.response = FakeResponse(self.sent)
        self.followup = FakeFollowup(self.sent)


@dataclass
class FakeAttachment:
    data: bytes
    filename: str = "shot.png"
    content_type: str | None = "image/png"

    @property
    def size(self) -> int:
        return len(self.data)

    async def read(self) -> bytes:
        return self.data


def handlers(lens: LensCommands, **admins: Any) -> DiscordHandlers:
    return DiscordHandlers(lens, Admins(AdminSettings(**admins)))


async def test_similar_defers_first_then_sends_embed_and_file(
    lens: LensCommands, library: Library
) -> None:
    interaction = FakeInteraction()

    await handlers(lens).similar(
        interaction, FakeAttachment(screenshot_png(2, library)), None, 2, None
    )

    defer, followup = interaction.sent
    assert (defer.kind, defer.args) == ("defer", {"thinking": True})
    embed: discord.Embed = followup.args["embed"]
    (file,) = followup.args["files"]
    assert embed.image.url == "attachment://similar.png" == f"attachment://{file.filename}"
    assert f"{CRITTERS} #2" in (embed.description or "").splitlines()[1]
    assert lens.answered == 1


async def test_similar_with_a_query_and_collection_option(lens: LensCommands) -> None:
    interaction = FakeInteraction()

    await handlers(lens).similar(interaction, None, f"{CRITTERS} 4", 3, SOLANA.upper())

    description = interaction.sent[1].args["embed"].description
    assert f"3 look-alikes in {SOLANA}" in description


async def test_value_accepts_a_link_in_the_collection_option(lens: LensCommands) -> None:
    interaction = FakeInteraction()
    link = "https://opensea.io/assets/ethereum/0x" + "ab" * 20 + "/6"

    await handlers(lens).value(interaction, link, None)

    assert interaction.sent[1].args["files"][0].filename == "value.png"
    assert f"{CRITTERS} #6" in interaction.sent[1].args["embed"].description


async def test_collection_autocomplete_matches_slug_or_name(lens: LensCommands) -> None:
    choices = await handlers(lens).collection_choices(FakeInteraction(), "SOL")
    everything = await handlers(lens).collection_choices(FakeInteraction(), "")

    assert [c.value for c in choices] == [SOLANA]
    assert {c.value for c in everything} == {CRITTERS, SOLANA}
    assert all(isinstance(c, app_commands.Choice) for c in everything)


def test_admin_check_by_user_id_or_role(lens: LensCommands) -> None:
    check = handlers(lens, discord_user_ids=(1,), discord_role_ids=(50,)).is_admin

    assert check(FakeInteraction(FakeUser(id=1)))
    assert check(FakeInteraction(FakeUser(id=2, roles=[FakeRole(7), FakeRole(50)])))
    assert not check(FakeInteraction(FakeUser(id=2, roles=[FakeRole(7)])))


async def test_error_handler_turns_a_check_failure_into_a_polite_no(lens: LensCommands) -> None:
    interaction = FakeInteraction()

    await handlers(lens).on_error(interaction, app_commands.CheckFailure())

    (reply,) = interaction.sent
    assert reply.kind == "message" and reply.args["ephemeral"] is True
    assert "only the bot's admins" in reply.args["content"]


async def test_error_handler_hides_internal_failures_behind_an_id(
    lens: LensCommands, caplog: pytest.LogCaptureFixture
) -> None:
    interaction = FakeInteraction()
    await interaction.response.defer(thinking=True)
    command = app_commands.Command(name="x", description="x", callback=_noop)
    error = app_commands.CommandInvokeError(command, ZeroDivisionError("secret detail"))

    with caplog.at_level(logging.ERROR):
        await handlers(lens).on_error(interaction, error)

    reply = interaction.sent[-1]
    assert reply.kind == "followup" and reply.args["ephemeral"] is True
    assert reply.args["content"].startswith("Sorry, something went wrong on our side (ref ")
    assert "secret detail" not in reply.args["content"]
    incident = reply.args["content"].split("ref ")[1].rstrip(").")
    assert incident in caplog.text and "ZeroDivisionError" in caplog.text
    assert lens.failed == 1


async def test_rate_limited_user_is_told_before_any_deferral(make_lens: Any) -> None:
    lens = await make_lens(bot={"user_rate_limit": {"requests": 1, "per_s": 30}})
    h = handlers(lens)
    await h.collections(FakeInteraction())

    with pytest.raises(Exception, match="try again in 30 s"):
        await h.collections(FakeInteraction())


async def _noop(interaction: discord.Interaction) -> None:
    """A callback for building a Command in tests."""
