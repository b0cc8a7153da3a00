"""Hostile uploads through the real Telegram client: a clear reply each, in time, and the bot
still answers the next person."""

from __future__ import annotations

import time

from bot.access import Admins
from bot.commands import LensCommands
from bot.telegram_bot import running_telegram
from core.config import AdminSettings, TelegramSettings
from tests.bot.fake_telegram import TOKEN, FakeBotApi, update
from tests.bot.fakes import CRITTERS, Library, screenshot_png
from tests.hostile import ANSWER_WITHIN_S, CORPUS

MIME = {".svg": "image/svg+xml", ".png": "image/png", ".gif": "image/gif"}


async def test_every_hostile_upload_gets_a_clear_reply_and_the_bot_goes_on(
    api: FakeBotApi, lens: LensCommands, library: Library
) -> None:
    settings = TelegramSettings(api_root=api.root, poll_timeout_s=1)
    replies = {}
    async with running_telegram(TOKEN, settings, lens, Admins(AdminSettings())):
        for n, case in enumerate(CORPUS):
            chat = 500 + n
            data = case.make()
            api.files[case.name] = data
            started = time.monotonic()
            await api.push(
                update(
                    chat,
                    caption="/similar",
                    document=(case.name, MIME[case.suffix], len(data)),
                    # One attacker per upload: the per-user rate limit is not under test.
                    user_id=9000 + n,
                )
            )
            reply = await api.reply_to(chat, "sendMessage", timeout=ANSWER_WITHIN_S)
            replies[case.name] = (reply.text, time.monotonic() - started)
        api.files["fine"] = screenshot_png(4, library)
        await api.push(update(600, caption="/similar k=1", photo="fine"))
        after = await api.reply_to(600, "sendMessage", timeout=ANSWER_WITHIN_S)

    for case in CORPUS:
        text, took = replies[case.name]
        assert case.answer in text, case.name
        assert "Traceback" not in text and len(text) < 200
        assert took < ANSWER_WITHIN_S
    assert f"{CRITTERS} #4" in after.text
    assert lens.failed == len(CORPUS)
