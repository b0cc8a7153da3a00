"""Telegram end to end: the real python-telegram-bot Application against a fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from telegram.ext import Application

from bot.access import Admins
from bot.commands import LensCommands
from bot.telegram_bot import running_telegram
from core.config import AdminSettings, TelegramSettings
from tests.bot.conftest import LensFactory
from tests.bot.fake_telegram import TOKEN, Call, FakeBotApi, message, update
from tests.bot.fakes import CRITTERS, CRITTERS_CONTRACT, Library, screenshot_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@asynccontextmanager
async def telegram(
    api: FakeBotApi, lens: LensCommands, admins: tuple[int, ...] = ()
) -> AsyncIterator[Application]:
    settings = TelegramSettings(api_root=api.root, poll_timeout_s=1)
    async with running_telegram(
        TOKEN, settings, lens, Admins(AdminSettings(telegram_user_ids=admins))
    ) as application:
        yield application


def methods(calls: list[Call], chat_id: int) -> list[str]:
    return [c.method for c in calls if c.chat_id == chat_id]


async def test_start_up_registers_the_command_menu(api: FakeBotApi, lens: LensCommands) -> None:
    async with telegram(api, lens) as application:
        assert application.bot.username == "nftlens_test_bot"
        menu = await api.wait_for(lambda calls: any(c.method == "setMyCommands" for c in calls))

    commands = next(c for c in menu if c.method == "setMyCommands").params["commands"]
    assert "similar" in commands and "value" in commands


async def test_photo_with_caption_gets_a_collage_and_a_linked_list(
    api: FakeBotApi, lens: LensCommands, library: Library
) -> None:
    api.files["shot"] = screenshot_png(5, library)

    async with telegram(api, lens):
        await api.push(update(100, caption="/similar k=3", photo="shot"))
        photo = await api.reply_to(100, "sendPhoto")
        listing = await api.reply_to(100, "sendMessage")

    assert photo.files["photo"].startswith(PNG_MAGIC)
    assert "3 look-alikes for your picture" in photo.text
    first = listing.text.splitlines()[1]
    assert f"{CRITTERS} #5" in first
    assert f'href="https://opensea.io/assets/ethereum/{CRITTERS_CONTRACT}/5"' in first
    assert listing.params["parse_mode"] == "HTML"
    # The user sees "sending a photo…" while the engine works.
    assert methods(api.calls, 100)[0] == "sendChatAction"
    assert api.calls[[c.method for c in api.calls].index("sendChatAction")].params["action"] == (
        "upload_photo"
    )


async def test_reply_to_a_photo_uses_that_photo(
    api: FakeBotApi, lens: LensCommands, library: Library
) -> None:
    api.files["earlier"] = screenshot_png(11, library)
    original = message(101, photo="earlier", user_id=7)

    async with telegram(api, lens):
        await api.push(update(101, text="/similar k=1", reply_to=original))
        listing = await api.reply_to(101, "sendMessage")

    assert f"{CRITTERS} #11" in listing.text.splitlines()[1]


async def test_image_document_counts_as_a_picture(
    api: FakeBotApi, lens: LensCommands, library: Library
) -> None:
    data = screenshot_png(3, library)
    api.files["doc"] = data

    async with telegram(api, lens):
        await api.push(
            update(
                102,
                caption="/similar@nftlens_test_bot k=1",
                document=("doc", "image/png", len(data)),
            )
        )
        listing = await api.reply_to(102, "sendMessage")

    assert f"{CRITTERS} #3" in listing.text


async def test_image_url(api: FakeBotApi, make_lens: LensFactory, library: Library) -> None:
    url = "https://img.example/critter-8.png"
    lens = await make_lens(images={url: screenshot_png(8, library)})

    async with telegram(api, lens):
        await api.push(update(103, text=f"/similar {url} k=2"))
        photo = await api.reply_to(103, "sendPhoto")
        listing = await api.reply_to(103, "sendMessage")

    assert "2 look-alikes" in photo.text
    assert f"{CRITTERS} #8" in listing.text.splitlines()[1]


async def test_token_reference(api: FakeBotApi, lens: LensCommands) -> None:
    async with telegram(api, lens):
        await api.push(update(104, text=f"/similar {CRITTERS} 5 k=4"))
        photo = await api.reply_to(104, "sendPhoto")
        listing = await api.reply_to(104, "sendMessage")

    assert f"4 look-alikes for {CRITTERS} #5" in photo.text
    assert len(listing.text.splitlines()) == 5


@pytest.mark.parametrize(
    ("payload", "reply"),
    [
        (dict(text="/similar"), "Send a picture"),
        (dict(text="/similar what is this"), "is not an image URL or a token"),
        (dict(text=f"/similar {CRITTERS} 999"), "Token 999 is not in collection"),
        (dict(text="/similar http://127.0.0.1/secret.png"), "404"),
        (dict(text="/similar k=99 lens-critters 1"), "k must be a whole number from 1 to 20"),
        (dict(caption="/similar", document=("pdf", "application/pdf", 10)), "not an image"),
        (dict(caption="/similar", photo="broken"), "damaged or truncated"),
        (
            dict(caption="/similar", photo="huge", photo_size=50_000_000),
            "47.7 MB; the limit is 20 MB",
        ),
        (dict(text="/value"), "Tell me which token"),
        (dict(text="/value nosuch 1"), "No collection called 'nosuch'"),
    ],
)
async def test_bad_input_gets_one_short_reply(
    api: FakeBotApi,
    lens: LensCommands,
    library: Library,
    payload: dict[str, object],
    reply: str,
) -> None:
    api.files["broken"] = screenshot_png(1, library)[:300]
    api.files["pdf"] = b"%PDF-1.7"

    async with telegram(api, lens):
        await api.push(update(105, **payload))
        answer = await api.reply_to(105, "sendMessage")

    assert reply in answer.text
    assert "Traceback" not in answer.text and len(answer.text) < 200
    assert "sendPhoto" not in methods(api.calls, 105)


async def test_value_sends_a_chart_with_the_sales_summary(
    api: FakeBotApi, lens: LensCommands
) -> None:
    async with telegram(api, lens):
        await api.push(update(106, text=f"/value {CRITTERS} 5"))
        photo = await api.reply_to(106, "sendPhoto")

    assert photo.files["photo"].startswith(PNG_MAGIC)
    assert "Collection median:" in photo.text
    assert "not a model estimate" in photo.text


async def test_collections_and_help(api: FakeBotApi, lens: LensCommands) -> None:
    async with telegram(api, lens):
        await api.push(update(107, text="/collections"))
        await api.push(update(108, text="/help"))
        listing = await api.reply_to(107, "sendMessage")
        help_ = await api.reply_to(108, "sendMessage")

    assert CRITTERS in listing.text and "24 tokens" in listing.text
    assert "/similar" in help_.text and "/value" in help_.text


async def test_status_is_for_admins_only(api: FakeBotApi, lens: LensCommands) -> None:
    async with telegram(api, lens, admins=(900,)):
        await api.push(update(109, text="/status", user_id=42))
        await api.push(update(110, text="/status", user_id=900))
        refused = await api.reply_to(109, "sendMessage")
        status = await api.reply_to(110, "sendMessage")

    assert "only the bot's admins" in refused.text
    assert "NFT Lens status" in status.text


async def test_rate_limit_says_when_to_come_back(api: FakeBotApi, make_lens: LensFactory) -> None:
    lens = await make_lens(bot={"user_rate_limit": {"requests": 1, "per_s": 3600}})

    async with telegram(api, lens):
        await api.push(update(111, text="/collections"))
        await api.reply_to(111, "sendMessage")
        await api.push(update(111, text="/collections"))
        await api.wait_for(
            lambda calls: (
                len([c for c in calls if c.chat_id == 111 and c.method == "sendMessage"]) == 2
            )
        )

    limited = [c for c in api.sent(111)][-1]
    assert "try again in" in limited.text and "3600 s" in limited.text


async def test_flood_control_429_is_waited_out_and_the_reply_still_arrives(
    api: FakeBotApi, lens: LensCommands
) -> None:
    api.flood_next("sendPhoto", retry_after=1)

    async with telegram(api, lens):
        await api.push(update(112, text=f"/similar {CRITTERS}:2 k=2"))
        await api.wait_for(lambda calls: len([c for c in calls if c.method == "sendPhoto"]) == 2)
        listing = await api.reply_to(112, "sendMessage")

    photos = [c for c in api.calls if c.method == "sendPhoto"]
    assert len(photos) == 2 and photos[0].files["photo"] == photos[1].files["photo"]
    assert "2 look-alikes" in photos[1].text
    assert f"{CRITTERS} #" in listing.text


async def test_a_caption_addressed_to_another_bot_is_left_alone(
    api: FakeBotApi, lens: LensCommands, library: Library
) -> None:
    api.files["theirs"] = screenshot_png(1, library)

    async with telegram(api, lens):
        await api.push(update(113, caption="/similar@someone_else_bot", photo="theirs"))
        await api.push(update(113, text="/help"))
        await api.reply_to(113, "sendMessage")

    assert methods(api.calls, 113) == ["sendMessage"]
