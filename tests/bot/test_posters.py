"""The posting port's adapters, each through its real client library against a loopback fake."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import discord
import pytest
import telegram
from telegram.ext import AIORateLimiter, ExtBot

from bot.console_poster import ConsolePoster
from bot.discord_bot.endpoints import discord_endpoints
from bot.discord_bot.poster import DiscordPoster
from bot.telegram_bot.poster import TelegramPoster
from core.errors import PostingError
from core.models import Picture
from core.posting import ChatTarget, Post, PostRouter
from tests.bot import fake_discord, fake_telegram
from tests.bot.fake_discord import CHANNEL_ID, GUILD_READY_S, FakeDiscord
from tests.bot.fake_telegram import FakeBotApi

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GROUP = -100123
MB = 1_000_000


def picture(n: int, size: int = 64, description: str = "") -> Picture:
    return Picture(
        PNG_MAGIC + bytes([n % 256]) * (size - len(PNG_MAGIC)), f"p{n}.png", description
    )


def pictures(count: int) -> tuple[Picture, ...]:
    return tuple(picture(n) for n in range(count))


def long_text() -> str:
    """10,000 characters in 100 lines of 99 plus line breaks, the last line one short."""
    lines = [f"{n:03d} " + "x" * 95 for n in range(100)]
    return "\n".join(lines) + "x"


# Telegram ------------------------------------------------------------------------------------


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[telegram.Bot]:
    # Pointed at the fake the way build_application points the Application's bot.
    async with telegram.Bot(
        fake_telegram.TOKEN,
        base_url=f"{api.root}/bot",
        base_file_url=f"{api.root}/file/bot",
    ) as real_bot:
        yield real_bot


def sends(api: FakeBotApi) -> list[fake_telegram.Call]:
    return [c for c in api.calls if c.method.startswith("send")]


async def test_telegram_splits_long_text_at_the_message_limit(
    api: FakeBotApi, bot: telegram.Bot
) -> None:
    text = long_text()
    assert len(text) == 10_000

    await TelegramPoster(bot).post(str(GROUP), Post(text))

    messages = sends(api)
    assert [c.method for c in messages] == ["sendMessage"] * 3
    assert all(c.chat_id == GROUP for c in messages)
    assert all(len(c.text) <= 4096 for c in messages)
    assert "\n".join(c.text for c in messages) == text
    # Plain text: a name with <b> or *stars* in it is shown as written.
    assert all("parse_mode" not in c.params for c in messages)


async def test_telegram_one_picture_is_a_captioned_photo(
    api: FakeBotApi, bot: telegram.Bot
) -> None:
    await TelegramPoster(bot).post("@nftlens_news", Post("<b>Daily</b> digest", (picture(1),)))

    (photo,) = sends(api)
    assert photo.method == "sendPhoto" and photo.chat_id == "@nftlens_news"
    assert photo.params["caption"] == "<b>Daily</b> digest"
    assert "parse_mode" not in photo.params
    assert photo.files["photo"] == picture(1).data
    assert photo.filenames["photo"] == "p1.png"


async def test_telegram_twelve_pictures_go_as_albums_of_ten_and_two(
    api: FakeBotApi, bot: telegram.Bot
) -> None:
    await TelegramPoster(bot).post(str(GROUP), Post("Twelve looks", pictures(12)))

    first, second = sends(api)
    assert first.method == second.method == "sendMediaGroup"
    assert [item["data"] for item in first.media] == [p.data for p in pictures(12)[:10]]
    assert [item["data"] for item in second.media] == [p.data for p in pictures(12)[10:]]
    assert all(item["type"] == "photo" for item in first.media + second.media)
    captions = [item.get("caption") for item in first.media + second.media]
    assert captions == ["Twelve looks"] + [None] * 11


async def test_telegram_text_over_the_caption_limit_goes_before_the_pictures(
    api: FakeBotApi, bot: telegram.Bot
) -> None:
    text = "y" * 1025

    await TelegramPoster(bot).post(str(GROUP), Post(text, pictures(11)))

    methods = [c.method for c in sends(api)]
    assert methods == ["sendMessage", "sendMediaGroup", "sendPhoto"]
    assert sends(api)[0].text == text
    assert not any(item.get("caption") for item in sends(api)[1].media)
    assert "caption" not in sends(api)[2].params


async def test_telegram_sends_a_picture_over_10_mb_as_a_file_and_leaves_out_one_over_50(
    api: FakeBotApi, bot: telegram.Bot
) -> None:
    big, huge = picture(1, 11 * MB), picture(2, 51 * MB)

    await TelegramPoster(bot).post(str(GROUP), Post("Big ones", (big, huge)))

    (document,) = sends(api)
    assert document.method == "sendDocument"
    assert document.files["document"] == big.data
    assert document.filenames["document"] == "p1.png"
    assert document.text.startswith("Big ones\n\n(p2.png, 51.0 MB, was left out")
    assert "50 MB" in document.text


@pytest.mark.parametrize(
    ("status", "description", "parameters", "expected"),
    [
        (403, "Forbidden: bot was kicked from the supergroup chat", None, "may not post there"),
        (400, "Bad Request: chat not found", None, "no such chat"),
        (
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            {"migrate_to_chat_id": -1009876},
            "telegram:-1009876",
        ),
    ],
)
async def test_telegram_errors_become_one_sentence_naming_the_target(
    api: FakeBotApi,
    bot: telegram.Bot,
    status: int,
    description: str,
    parameters: dict[str, int] | None,
    expected: str,
) -> None:
    api.fail_next("sendMessage", status, description, parameters)

    with pytest.raises(PostingError) as failed:
        await TelegramPoster(bot).post(str(GROUP), Post("gm"))

    message = str(failed.value)
    assert message.startswith(f"Cannot post to telegram:{GROUP}: ") and expected in message
    assert message.endswith(".") and message.count(". ") == 0
    assert isinstance(failed.value.__cause__, telegram.error.TelegramError)


async def test_telegram_a_failure_midway_says_how_much_went_out(
    api: FakeBotApi, bot: telegram.Bot
) -> None:
    api.fail_next("sendMediaGroup", 403, "Forbidden: bot was kicked from the supergroup chat")

    with pytest.raises(PostingError, match=r"\(1 of 2 messages went out\)\.$"):
        await TelegramPoster(bot).post(str(GROUP), Post("z" * 2000, pictures(2)))


async def test_telegram_album_held_back_by_flood_control_still_arrives(api: FakeBotApi) -> None:
    api.flood_next("sendMediaGroup", retry_after=1)
    limited = ExtBot(
        fake_telegram.TOKEN,
        base_url=f"{api.root}/bot",
        base_file_url=f"{api.root}/file/bot",
        rate_limiter=AIORateLimiter(max_retries=3),
    )

    async with limited:
        await TelegramPoster(limited).post(str(GROUP), Post("Two", pictures(2)))

    refused, delivered = sends(api)
    assert refused.method == delivered.method == "sendMediaGroup"
    assert [item["data"] for item in delivered.media] == [p.data for p in pictures(2)]


async def test_router_sends_a_telegram_target_to_the_telegram_poster(
    api: FakeBotApi, bot: telegram.Bot, tmp_path: Path
) -> None:
    router = PostRouter([TelegramPoster(bot), ConsolePoster(tmp_path)])

    await router.post(ChatTarget.parse("telegram:-100123"), Post("routed"))

    (message,) = sends(api)
    assert message.chat_id == -100123 and message.text == "routed"
    assert not any(tmp_path.iterdir())
    with pytest.raises(PostingError, match="the discord bot is not running"):
        await router.post(ChatTarget.parse("discord:112233445566778899"), Post("nobody"))


# Discord -------------------------------------------------------------------------------------


@asynccontextmanager
async def connected(fake: FakeDiscord) -> AsyncIterator[discord.Client]:
    """A plain discord.py client, logged in and READY on the fake gateway."""
    with discord_endpoints(fake.root):
        # READY waits this long for more GUILD_CREATEs (2 s by default); the fake sends its
        # one guild right after READY.
        client = discord.Client(
            intents=discord.Intents(guilds=True), guild_ready_timeout=GUILD_READY_S
        )
        await client.login(fake_discord.TOKEN)
        connection = asyncio.create_task(client.connect())
        try:
            async with asyncio.timeout(15):
                await client.wait_until_ready()
            yield client
        finally:
            await client.close()
            await connection


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[discord.Client]:
    async with connected(fake) as ready:
        yield ready


async def test_discord_splits_long_text_at_the_content_limit(
    fake: FakeDiscord, client: discord.Client
) -> None:
    text = long_text()

    await DiscordPoster(client).post(CHANNEL_ID, Post(text))

    messages = fake.messages(CHANNEL_ID)
    assert len(messages) == 5
    assert all(len(m.payload["content"]) <= 2000 for m in messages)
    assert "\n".join(m.payload["content"] for m in messages) == text
    # The channel came from the gateway's cache; nothing was fetched.
    assert not any(r.method == "GET" and r.path.startswith("/channels/") for r in fake.requests)


async def test_discord_never_pings_anyone(fake: FakeDiscord, client: discord.Client) -> None:
    await DiscordPoster(client).post(CHANNEL_ID, Post("@everyone look at <@&730000000000000004>"))

    (message,) = fake.messages(CHANNEL_ID)
    assert message.payload["content"] == "@everyone look at <@&730000000000000004>"
    assert message.payload["allowed_mentions"] == {"parse": []}


async def test_discord_twelve_pictures_go_as_two_messages(
    fake: FakeDiscord, client: discord.Client
) -> None:
    twelve = (*pictures(11), picture(11, description="The twelfth"))

    await DiscordPoster(client).post(CHANNEL_ID, Post("Twelve looks", twelve))

    first, second = fake.messages(CHANNEL_ID)
    assert first.payload["content"] == "Twelve looks"
    assert [a["filename"] for a in first.payload["attachments"]] == [
        f"p{n}.png" for n in range(10)
    ]
    assert [first.files[f"files[{n}]"] for n in range(10)] == [p.data for p in twelve[:10]]
    assert second.payload.get("content") is None
    assert [a["filename"] for a in second.payload["attachments"]] == ["p10.png", "p11.png"]
    assert second.payload["attachments"][1]["description"] == "The twelfth"
    assert first.payload["allowed_mentions"] == second.payload["allowed_mentions"]


async def test_discord_pictures_follow_the_last_piece_of_long_text(
    fake: FakeDiscord, client: discord.Client
) -> None:
    await DiscordPoster(client).post(CHANNEL_ID, Post(long_text(), pictures(2)))

    messages = fake.messages(CHANNEL_ID)
    assert len(messages) == 5
    assert [len(m.files) for m in messages] == [0, 0, 0, 0, 2]


async def test_discord_leaves_out_a_picture_over_10_mib_and_says_so(
    fake: FakeDiscord, client: discord.Client
) -> None:
    await DiscordPoster(client).post(CHANNEL_ID, Post("Big", (picture(1, 11 * MB), picture(2))))

    (message,) = fake.messages(CHANNEL_ID)
    assert message.payload["content"].startswith("Big\n\n(p1.png, 10.5 MiB, was left out")
    assert [a["filename"] for a in message.payload["attachments"]] == ["p2.png"]
    assert list(message.files.values()) == [picture(2).data]


async def test_discord_fetches_a_channel_the_gateway_did_not_announce(
    fake: FakeDiscord, client: discord.Client
) -> None:
    fake.add_channel("720000000000000099")

    await DiscordPoster(client).post("720000000000000099", Post("gm"))

    assert [(r.method, r.path) for r in fake.requests if r.path.startswith("/channels/")] == [
        ("GET", "/channels/720000000000000099"),
        ("POST", "/channels/720000000000000099/messages"),
    ]


async def test_discord_a_429_is_waited_out_by_discord_py(
    fake: FakeDiscord, client: discord.Client
) -> None:
    fake.throttle_next(f"/channels/{CHANNEL_ID}/messages", retry_after=0.05)

    await DiscordPoster(client).post(CHANNEL_ID, Post("patience"))

    throttled, delivered = fake.messages(CHANNEL_ID)
    assert throttled.payload == delivered.payload


@pytest.mark.parametrize(
    ("channel", "setup", "expected", "cause"),
    [
        ("720000000000000098", "unknown", "no such channel", discord.NotFound),
        (CHANNEL_ID, "forbidden", "may not see or post", discord.Forbidden),
        ("720000000000000097", "category", "takes no messages", None),
    ],
)
async def test_discord_errors_become_one_sentence_naming_the_target(
    fake: FakeDiscord,
    client: discord.Client,
    channel: str,
    setup: str,
    expected: str,
    cause: type[Exception] | None,
) -> None:
    if setup == "forbidden":
        fake.forbid(channel)
    elif setup == "category":
        fake.add_channel(channel, kind=4)

    with pytest.raises(PostingError) as failed:
        await DiscordPoster(client).post(channel, Post("gm"))

    message = str(failed.value)
    assert message.startswith(f"Cannot post to discord:{channel}: ") and expected in message
    assert message.endswith(".") and message.count(". ") == 0
    if cause is not None:
        assert isinstance(failed.value.__cause__, cause)


# Console -------------------------------------------------------------------------------------


def at_noon() -> datetime:
    return datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


async def test_console_writes_the_text_and_pictures_under_the_chat(tmp_path: Path) -> None:
    poster = ConsolePoster(tmp_path, clock=at_noon)
    art = Picture(b"png bytes", "../../etc/evil name!.png", "A chart")

    await poster.post("digests", Post("Daily digest", (art, picture(2))))
    await poster.post("digests", Post("Second"))

    folder = tmp_path / "digests"
    names = sorted(path.name for path in folder.iterdir())
    assert names == [
        "20240601T120000Z-1-1-_.._etc_evil_name_.png",
        "20240601T120000Z-1-2-p2.png",
        "20240601T120000Z-1.txt",
        "20240601T120000Z-2.txt",
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in names)
    assert (folder / names[0]).read_bytes() == b"png bytes"
    text = (folder / "20240601T120000Z-1.txt").read_text()
    assert text.startswith("Daily digest\n")
    assert "[picture 1: 20240601T120000Z-1-1-_.._etc_evil_name_.png] A chart" in text
    assert (folder / "20240601T120000Z-2.txt").read_text() == "Second\n"
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.parent != folder] == []


async def test_console_a_new_poster_does_not_overwrite_an_earlier_post(tmp_path: Path) -> None:
    await ConsolePoster(tmp_path, clock=at_noon).post("alerts", Post("first"))
    await ConsolePoster(tmp_path, clock=at_noon).post("alerts", Post("second"))

    folder = tmp_path / "alerts"
    assert (folder / "20240601T120000Z-1.txt").read_text() == "first\n"
    assert (folder / "20240601T120000Z-2.txt").read_text() == "second\n"


async def test_console_sanitises_the_chat_folder(tmp_path: Path) -> None:
    await ConsolePoster(tmp_path / "out", clock=at_noon).post("../escape", Post("kept in"))

    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.txt")] == [
        "out/_escape/20240601T120000Z-1.txt"
    ]


async def test_console_an_unwritable_folder_is_a_posting_error(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the folder should be")

    with pytest.raises(PostingError, match=r"^Cannot post to console:digests: .* cannot be"):
        await ConsolePoster(blocker, clock=at_noon).post("digests", Post("lost"))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
