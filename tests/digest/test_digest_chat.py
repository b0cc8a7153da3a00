"""/digest in chat: admins only; the real Telegram and Discord clients receive the digest."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

from bot.commands import LensCommands
from bot.console import Console
from core.imaging.workers import DecoderPool
from tests.bot.fake_discord import ADMIN_ROLE, CHANNEL_ID, FakeDiscord, interaction
from tests.bot.fake_telegram import FakeBotApi, update
from tests.bot.test_discord_bot import discord_bot
from tests.bot.test_telegram_bot import telegram
from tests.digest.conftest import SLUG, build

PNG = b"\x89PNG"


async def test_telegram_admins_get_a_digest_with_its_montages(
    tmp_path: Path, decoder: DecoderPool, api: FakeBotApi
) -> None:
    for built in build(tmp_path, decoder):
        lens = LensCommands(built.engine)
        async with telegram(api, lens, admins=(900,)):
            await api.push(update(401, text=f"/digest {SLUG}", user_id=42))
            refused = await api.reply_to(401, "sendMessage")
            await api.push(update(402, text=f"/digest {SLUG}", user_id=900))
            await api.wait_for(lambda calls: any(c.chat_id == 402 for c in calls if c.text))
            await api.wait_for(lambda calls: sum(1 for c in calls if c.chat_id == 402) >= 2)
            await api.push(update(402, text=f"/digest subscribe {SLUG} weekly", user_id=900))
            await api.wait_for(lambda calls: any("weekly" in c.text for c in calls))
            subscriptions = built.engine.storage.digests.subscriptions()

    assert "only the bot's admins" in refused.text
    sent = api.sent(402)
    pictures = [m["data"] for call in sent for m in call.media] + [
        data for call in sent for data in call.files.values()
    ]
    assert any(call.text.startswith("Critters: 3 of 3 visual groups") for call in sent)
    assert len(pictures) >= 3 and all(p is not None and p.startswith(PNG) for p in pictures)
    assert [(s.target, s.collection, s.cadence) for s in subscriptions] == [
        ("telegram:402", SLUG, "weekly")
    ]


async def test_discord_admins_get_a_digest_posted_to_the_channel(
    tmp_path: Path, decoder: DecoderPool, fake: FakeDiscord
) -> None:
    options = [{"name": "request", "type": 3, "value": SLUG}]
    for built in build(tmp_path, decoder):
        lens = LensCommands(built.engine)
        async with discord_bot(fake, lens, admin_roles=(int(ADMIN_ROLE),)):
            fake.dispatch("INTERACTION_CREATE", interaction("tok-no", "digest", options))
            fake.dispatch(
                "INTERACTION_CREATE",
                interaction("tok-yes", "digest", options, roles=[ADMIN_ROLE],
                            interaction_id="750000000000000299"),
            )  # fmt: skip
            (refused,) = await fake.answers("tok-no", 1)
            await fake.wait_for(lambda _: len(fake.messages(CHANNEL_ID)) >= 1)
            messages = fake.messages(CHANNEL_ID)

    assert "only the bot's admins" in refused.payload["data"]["content"]
    files = [data for message in messages for data in message.files.values()]
    text = " ".join(str(message.payload.get("content", "")) for message in messages)
    assert "Critters: 3 of 3 visual groups" in text
    assert len(files) == 3 and all(data.startswith(PNG) for data in files)


async def test_the_console_prints_a_digest_and_saves_its_montages(
    tmp_path: Path, decoder: DecoderPool
) -> None:
    out = io.StringIO()
    for built in build(tmp_path, decoder):
        lens = LensCommands(built.engine)
        console = Console(lens, tmp_path / "console", out)
        await console.run(_lines(f"/digest {SLUG}", "/digest list"))

    text = out.getvalue()
    assert "Critters: 3 of 3 visual groups" in text
    assert "This chat gets no scheduled digests." in text
    montages = sorted((tmp_path / "console").glob("digest-*.png"))
    assert len(montages) == 3 and all(p.read_bytes().startswith(PNG) for p in montages)


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line
